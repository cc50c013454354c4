//! `preflight`: looks at the DMS task before anything changes, and refuses a
//! task that would break staging or never finish (`ReplicationTaskMisconfigured`,
//! saying which setting to change and to what), or one that is busy
//! (`ReplicationAlreadyRunning` / `ReplicationTaskNotReady`).
//!
//! Refused: a migration type other than `full-load` (a CDC task never stops);
//! `TargetTablePrepMode` other than `TRUNCATE_BEFORE_LOAD` (`DROP_AND_CREATE`
//! recreates staging's tables without their indexes, defaults and grants;
//! `DO_NOTHING` appends duplicate rows); a target endpoint that is not
//! PostgreSQL or names no server/database; table mappings too large to pass on.
//!
//! Reported, not refused (`warnings`): limited LOB mode (values above
//! `LobMaxSize` are cut with only a log line), LOBs not copied at all, data
//! error policies that only log. User triggers need no endpoint setting
//! (DMS documents `AfterConnectScript` for CDC only, and
//! `session_replication_role` needs a superuser): the drop-fks step switches
//! them off itself, saved with their modes, and restore puts them back.
//!
//! The output carries the target endpoint (the lease step checks that the
//! staging connection points at the same database) and the task's table
//! mappings: the one source of the synced tables.
//!
//! Configuration: [`PreflightConfig`] (`REPLICATION_TASK_ARN` or
//! `REPLICATION_CONFIG_ARN`, `NOTIFY_ON_SUCCESS`). IAM: `dms:DescribeReplicationTasks`,
//! `dms:DescribeEndpoints`.

use serde_json::Value;

use crate::{
    io::{parse_input, EndpointTarget, PreflightOutput},
    ports::{EndpointInfo, InspectTask, TaskConfig, TaskStatus},
    StepError,
};

/// Table mappings travel through the state machine once; Step Functions caps a
/// state's data at 256 KB, so larger mappings are refused up front.
pub const MAX_TABLE_MAPPINGS: usize = 64 * 1024;

/// What preflight is told: the task, and the run's settings it hands on.
#[derive(Debug, Clone)]
pub struct PreflightConfig {
    /// The task's or the replication config's ARN.
    pub task_arn: String,
    pub kind: super::replication::ReplicationKind,
    /// `NOTIFY_ON_SUCCESS`: also notify when a sync succeeds (default: failures only).
    pub notify_on_success: bool,
    /// `COPY_ENGINE`: with `lambda` there is no task to look at; the table
    /// mappings come from `TABLE_MAPPINGS` (every user table when unset).
    pub engine: crate::config::CopyEngine,
    /// The Lambda engine's table mappings (`TABLE_MAPPINGS` or the file
    /// `TABLE_MAPPINGS_FILE`); `None`: every user table.
    pub table_mappings: Option<String>,
}

/// The mappings that select every user table.
pub const ALL_TABLES: &str = r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "all", "object-locator": {"schema-name": "%", "table-name": "%"}, "rule-action": "include"}]}"#;

impl PreflightConfig {
    pub fn from_env() -> Result<Self, StepError> {
        let engine = crate::config::CopyEngine::from_env()?;
        let (kind, task_arn) = match engine {
            crate::config::CopyEngine::Dms => super::replication::replication_from_env()?,
            crate::config::CopyEngine::Lambda => {
                (super::replication::ReplicationKind::Task, String::new())
            }
        };
        let table_mappings = crate::config::table_mappings()?;
        Ok(Self {
            engine,
            table_mappings,
            task_arn,
            kind,
            notify_on_success: crate::config::flag(
                crate::vars::NOTIFY_ON_SUCCESS,
                crate::vars::default(crate::vars::NOTIFY_ON_SUCCESS) == "true",
            )?,
        })
    }
}

pub async fn handle(
    task: &impl InspectTask,
    settings: &PreflightConfig,
    event: Value,
) -> Result<PreflightOutput, StepError> {
    let task_arn = settings.task_arn.as_str();
    let _: serde::de::IgnoredAny = parse_input(event)?;
    if settings.engine == crate::config::CopyEngine::Lambda {
        return lambda_engine(settings);
    }
    let config = task.task_config(task_arn).await?;
    check_status(&config.status)?;
    let mut problems = task_problems(&config);
    let target = match &config.target_endpoint_arn {
        Some(arn) => Some(task.endpoint(arn).await?),
        None => {
            problems.push("the task names no target endpoint".into());
            None
        }
    };
    let target = target.and_then(|t| match endpoint_target(&t) {
        Ok(target) => Some((t, target)),
        Err(p) => {
            problems.push(p);
            None
        }
    });
    let mappings = config.table_mappings.clone().unwrap_or_default();
    if mappings.trim().is_empty() {
        problems.push("the task has no table mappings".into());
    } else if mappings.len() > MAX_TABLE_MAPPINGS {
        problems.push(format!(
            "its table mappings are {} KB; dbsync passes them through the state machine and accepts at most {} KB — select tables with % wildcards instead of listing them one by one",
            mappings.len() / 1024,
            MAX_TABLE_MAPPINGS / 1024
        ));
    }
    let Some((_, target)) = target.filter(|_| problems.is_empty()) else {
        return Err(StepError::ReplicationTaskMisconfigured(problems.join("; ")));
    };
    let warnings = warnings(&config.settings);
    for w in &warnings {
        tracing::warn!(task = task_arn, "{w}");
    }
    Ok(PreflightOutput {
        task_arn: task_arn.to_owned(),
        target: Some(target),
        table_mappings: mappings,
        warnings,
        notify_on_success: settings.notify_on_success,
    })
}

/// The Lambda engine: no DMS task; the mappings are the function's own
/// (`TABLE_MAPPINGS`, checked by the lease), and no endpoint to compare.
fn lambda_engine(settings: &PreflightConfig) -> Result<PreflightOutput, StepError> {
    let mappings = settings
        .table_mappings
        .clone()
        .unwrap_or_else(|| ALL_TABLES.into());
    if mappings.len() > MAX_TABLE_MAPPINGS {
        return Err(StepError::InvalidTableMappings(format!(
            "TableMappings is {} KB; at most {} KB pass through the state machine — select tables with % wildcards",
            mappings.len() / 1024,
            MAX_TABLE_MAPPINGS / 1024
        )));
    }
    Ok(PreflightOutput {
        task_arn: "lambda".into(),
        target: None,
        table_mappings: mappings,
        warnings: Vec::new(),
        notify_on_success: settings.notify_on_success,
    })
}

/// A task that is doing something (or being changed) is not started over.
fn check_status(status: &TaskStatus) -> Result<(), StepError> {
    match status {
        s if s.is_active() => Err(StepError::ReplicationAlreadyRunning(format!(
            "{s} before this sync began (started from the console or another execution?)"
        ))),
        TaskStatus::Ready | TaskStatus::Stopped | TaskStatus::Failed => Ok(()),
        other => Err(StepError::ReplicationTaskNotReady(format!(
            "the task is {other}"
        ))),
    }
}

/// The settings that make a sync wrong, each with the fix.
pub fn task_problems(config: &TaskConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if config.migration_type != "full-load" {
        problems.push(format!(
            "its migration type is {:?}; set MigrationType to full-load (a task with change data capture never stops, so the sync would wait until it times out)",
            config.migration_type
        ));
    }
    let prep = config.settings["FullLoadSettings"]["TargetTablePrepMode"].as_str();
    match prep {
        Some("TRUNCATE_BEFORE_LOAD") => {}
        Some("DROP_AND_CREATE") => problems.push(
            "TargetTablePrepMode is DROP_AND_CREATE, which recreates staging's tables without their indexes, defaults, constraints and grants; set FullLoadSettings.TargetTablePrepMode to TRUNCATE_BEFORE_LOAD".into(),
        ),
        Some("DO_NOTHING") => problems.push(
            "TargetTablePrepMode is DO_NOTHING, which appends every row to what staging holds (duplicates, key violations); set FullLoadSettings.TargetTablePrepMode to TRUNCATE_BEFORE_LOAD".into(),
        ),
        other => problems.push(format!(
            "TargetTablePrepMode is {}; set FullLoadSettings.TargetTablePrepMode to TRUNCATE_BEFORE_LOAD",
            other.unwrap_or("not set (DMS's default, DROP_AND_CREATE)")
        )),
    }
    problems
}

fn endpoint_target(e: &EndpointInfo) -> Result<EndpointTarget, String> {
    let engine = e.engine.as_deref().unwrap_or("unknown");
    if !matches!(engine, "postgres" | "aurora-postgresql") {
        return Err(format!(
            "its target endpoint's engine is {engine}; dbsync syncs into PostgreSQL"
        ));
    }
    match (&e.server, e.port, &e.database) {
        (Some(server), Some(port), Some(database)) if !server.is_empty() && !database.is_empty() => {
            Ok(EndpointTarget {
                server: server.clone(),
                port,
                database: database.clone(),
            })
        }
        _ => Err(
            "its target endpoint names no server, port or database (endpoints that take them from a secret are not supported yet); set them on the endpoint".into(),
        ),
    }
}

/// What a sync accepts but the user should know.
pub fn warnings(settings: &Value) -> Vec<String> {
    let mut w = Vec::new();
    let meta = &settings["TargetMetadata"];
    if meta["SupportLobs"] == Value::Bool(false) {
        w.push(
            "SupportLobs is false: LOB columns (text, bytea, json, …) are copied as NULL".into(),
        );
    } else if meta["LimitedSizeLobMode"] == Value::Bool(true)
        && meta["FullLobMode"] != Value::Bool(true)
    {
        let size = meta["LobMaxSize"].as_i64().unwrap_or(32);
        w.push(format!(
            "limited LOB mode: values above LobMaxSize ({size} KB) are cut short with only a log line; use FullLobMode or raise LobMaxSize"
        ));
    }
    let errors = &settings["ErrorBehavior"];
    for key in ["DataErrorPolicy", "DataTruncationErrorPolicy"] {
        if let Some(p @ ("LOG_ERROR" | "IGNORE_RECORD" | "SUSPEND_TABLE")) = errors[key].as_str() {
            w.push(format!(
                "ErrorBehavior.{key} is {p}: rows DMS cannot write are skipped and only logged; STOP_TASK fails the sync instead"
            ));
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> TaskConfig {
        TaskConfig {
            status: TaskStatus::Stopped,
            migration_type: "full-load".into(),
            settings: json!({"FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD"}}),
            table_mappings: Some("{}".into()),
            source_endpoint_arn: Some("s".into()),
            target_endpoint_arn: Some("t".into()),
        }
    }

    #[test]
    fn a_good_task_has_no_problems() {
        assert!(task_problems(&good()).is_empty());
    }

    #[test]
    fn each_bad_setting_is_named_with_its_fix() {
        for (settings, kind, want) in [
            (
                json!({"FullLoadSettings": {"TargetTablePrepMode": "DROP_AND_CREATE"}}),
                "full-load",
                "DROP_AND_CREATE",
            ),
            (
                json!({"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}}),
                "full-load",
                "duplicates",
            ),
            (json!({}), "full-load", "not set"),
            (
                json!({"FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD"}}),
                "full-load-and-cdc",
                "MigrationType to full-load",
            ),
        ] {
            let c = TaskConfig {
                settings,
                migration_type: kind.into(),
                ..good()
            };
            let p = task_problems(&c).join("; ");
            assert!(p.contains(want), "{p}");
        }
    }

    #[test]
    fn busy_tasks_are_refused_by_name() {
        assert_eq!(
            check_status(&TaskStatus::Running).unwrap_err().name(),
            "ReplicationAlreadyRunning"
        );
        assert_eq!(
            check_status(&TaskStatus::Starting).unwrap_err().name(),
            "ReplicationAlreadyRunning"
        );
        assert_eq!(
            check_status(&TaskStatus::Modifying).unwrap_err().name(),
            "ReplicationTaskNotReady"
        );
        assert!(check_status(&TaskStatus::Ready).is_ok());
    }

    #[test]
    fn warnings_for_lobs_and_error_policies_not_for_triggers() {
        // No endpoint setting is asked for: drop-fks switches triggers off itself.
        assert!(warnings(&json!({})).is_empty());
        let w = warnings(
            &json!({"TargetMetadata": {"LimitedSizeLobMode": true, "LobMaxSize": 32},
                     "ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR"}}),
        )
        .join("\n");
        assert!(
            w.contains("32 KB") && w.contains("DataErrorPolicy is LOG_ERROR"),
            "{w}"
        );
    }
}
