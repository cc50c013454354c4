//! The DMS adapter behind the task ports (`DescribeTask`, `StartTask`,
//! `StopTask`) that start-dms and poll-dms use.
//!
//! IAM: `dms:DescribeReplicationTasks` (no resource-level permissions),
//! `dms:StartReplicationTask`, `dms:StopReplicationTask`,
//! `dms:DescribeTableStatistics` (rows and failed tables at the end of a run),
//! `dms:DescribeEndpoints` (preflight).

use std::time::SystemTime;

use aws_sdk_databasemigration::{
    types::{Filter, StartReplicationTaskTypeValue},
    Client,
};
use aws_smithy_types::DateTime;
use dbsync_workflow::{
    ports::{
        DescribeTask, EndpointInfo, InspectTask, StartKind, StartRefusal, StartTask, StopTask,
        TaskConfig, TaskState, TaskStatus,
    },
    StepError,
};

use crate::{classify, error_code, error_message};

/// One DMS replication task, reached through the SDK.
#[derive(Debug, Clone)]
pub struct DmsTask {
    client: Client,
    row_counts: bool,
}

impl DmsTask {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            row_counts: false,
        }
    }

    /// Also read the table statistics once a run has ended (one more call,
    /// `DescribeTableStatistics`, paginated): rows copied for the summary,
    /// and tables that errored or failed validation, which fail the run.
    pub fn with_table_statistics(mut self) -> Self {
        self.row_counts = true;
        self
    }

    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        Self::new(Client::new(config))
    }

    /// Rows copied by the last run, and its failed tables (`schema.table: state`).
    async fn table_statistics(&self, task: &str) -> Result<TableStatistics, StepError> {
        let mut pages = self
            .client
            .describe_table_statistics()
            .replication_task_arn(task)
            .max_records(500)
            .into_paginator()
            .send();
        let mut stats = TableStatistics::default();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("DescribeTableStatistics", &e))?;
            for t in page.table_statistics() {
                stats.add(t);
            }
        }
        Ok(stats)
    }
}

/// What a run's table statistics say (`DescribeTableStatistics`, or
/// `DescribeReplicationTableStatistics` for a serverless replication).
#[derive(Debug, Default)]
pub(crate) struct TableStatistics {
    /// Rows copied by the full load.
    pub rows: i64,
    /// `schema.table: why` of the tables that errored or failed validation.
    pub failed: Vec<String>,
    /// Rows per `schema.table`.
    pub per_table: Vec<(String, i64)>,
}

impl TableStatistics {
    pub(crate) fn add(&mut self, t: &aws_sdk_databasemigration::types::TableStatistics) {
        let name = format!(
            "{}.{}",
            t.schema_name().unwrap_or("?"),
            t.table_name().unwrap_or("?")
        );
        self.rows += t.full_load_rows();
        self.per_table.push((name.clone(), t.full_load_rows()));
        let state = t.table_state().unwrap_or_default();
        let validation = t.validation_state().unwrap_or_default();
        let why = if FAILED_TABLE_STATES.contains(&state) {
            Some(state.to_owned())
        } else if FAILED_VALIDATION_STATES.contains(&validation) {
            Some(format!("validation: {validation}"))
        } else if t.validation_failed_records() > 0 {
            Some(format!(
                "{} record(s) failed validation",
                t.validation_failed_records()
            ))
        } else {
            None
        };
        if let Some(why) = why {
            self.failed.push(format!("{name}: {why}"));
        }
    }
}

impl DmsTask {
    /// The task, by ARN (`DescribeReplicationTasks` filtered to it).
    async fn find_task(
        &self,
        task: &str,
        without_settings: bool,
    ) -> Result<aws_sdk_databasemigration::types::ReplicationTask, StepError> {
        let filter = Filter::builder()
            .name("replication-task-arn")
            .values(task)
            .build()
            .map_err(|e| StepError::Configuration(format!("cannot build the DMS filter: {e}")))?;
        let out = match self
            .client
            .describe_replication_tasks()
            .filters(filter)
            .without_settings(without_settings)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if error_code(&e) == Some("ResourceNotFoundFault") => {
                return Err(StepError::ReplicationTaskNotFound(task.to_owned()))
            }
            Err(e) => return Err(classify("DescribeReplicationTasks", &e)),
        };
        out.replication_tasks()
            .iter()
            .find(|t| t.replication_task_arn() == Some(task))
            .cloned()
            .ok_or_else(|| StepError::ReplicationTaskNotFound(task.to_owned()))
    }
}

/// Table states of a run that did not copy the table (DMS API: TableStatistics).
pub const FAILED_TABLE_STATES: &[&str] = &["Table error", "Table cancelled"];
/// Validation states that mean the copy does not match (when validation is on).
pub const FAILED_VALIDATION_STATES: &[&str] = &[
    "Mismatched records",
    "Suspended records",
    "Table error",
    "Error",
];

/// DMS's answer when the start kind does not fit the task's history:
/// "Start Type : START_REPLICATION, valid only for tasks running for the first time"
/// (InvalidParameterCombinationException, whatever its wording; an
/// InvalidResourceStateFault only with that wording, since it also means "running").
pub fn is_wrong_start_kind(code: Option<&str>, message: Option<&str>) -> bool {
    match code {
        // dbsync sends nothing else a start could find at odds (no CDC
        // position or time): the type does not fit the history. AWS documents
        // which type a first run takes, not the wording of the refusal.
        Some("InvalidParameterCombinationException") => true,
        Some("InvalidResourceStateFault") => {
            message.is_some_and(|m| m.to_ascii_lowercase().contains("first time"))
        }
        _ => false,
    }
}

pub(crate) fn system_time(t: &DateTime) -> Option<SystemTime> {
    SystemTime::try_from(*t).ok()
}

impl DescribeTask for DmsTask {
    async fn describe(&self, task: &str) -> Result<TaskState, StepError> {
        // WithoutSettings: the task's settings and table mappings are large and unused here.
        let t = self.find_task(task, true).await?;
        let stats = t.replication_task_stats();
        let status = TaskStatus::from(t.status().unwrap_or("unknown"));
        // FreshStartDate: the last start-replication or reload-target, i.e. this run.
        let started_at = stats
            .and_then(|s| s.fresh_start_date().or(s.start_date()))
            .or(t.replication_task_start_date())
            .and_then(system_time);
        let (rows_loaded, failed_tables, table_rows) =
            if self.row_counts && matches!(status, TaskStatus::Stopped | TaskStatus::Failed) {
                let s = self.table_statistics(task).await?;
                (Some(s.rows), s.failed, s.per_table)
            } else {
                (None, Vec::new(), Vec::new())
            };
        Ok(TaskState {
            status,
            stop_reason: t.stop_reason().map(str::to_owned),
            last_failure_message: t
                .last_failure_message()
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            ever_started: t.replication_task_start_date().is_some()
                || stats.and_then(|s| s.start_date()).is_some(),
            started_at,
            full_load_progress_percent: stats.map(|s| s.full_load_progress_percent()),
            tables_loaded: stats.map_or(0, |s| s.tables_loaded().into()),
            tables_loading: stats.map_or(0, |s| s.tables_loading().into()),
            tables_queued: stats.map_or(0, |s| s.tables_queued().into()),
            tables_errored: stats.map_or(0, |s| s.tables_errored().into()),
            rows_loaded,
            failed_tables,
            table_rows,
            load_started_at: stats
                .and_then(|s| s.full_load_start_date())
                .and_then(system_time),
            ..Default::default()
        })
    }
}

impl InspectTask for DmsTask {
    async fn task_config(&self, task: &str) -> Result<TaskConfig, StepError> {
        let t = self.find_task(task, false).await?;
        let settings = match t.replication_task_settings() {
            Some(text) => serde_json::from_str(text).map_err(|e| {
                StepError::ReplicationTaskMisconfigured(format!(
                    "its ReplicationTaskSettings are not JSON ({e})"
                ))
            })?,
            None => serde_json::Value::Null,
        };
        Ok(TaskConfig {
            status: TaskStatus::from(t.status().unwrap_or("unknown")),
            migration_type: t
                .migration_type()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            settings,
            table_mappings: t.table_mappings().map(str::to_owned),
            source_endpoint_arn: t.source_endpoint_arn().map(str::to_owned),
            target_endpoint_arn: t.target_endpoint_arn().map(str::to_owned),
        })
    }

    async fn endpoint(&self, arn: &str) -> Result<EndpointInfo, StepError> {
        describe_endpoint(&self.client, arn).await
    }
}

/// An endpoint, by ARN (`DescribeEndpoints`): where it connects.
pub(crate) async fn describe_endpoint(
    client: &Client,
    arn: &str,
) -> Result<EndpointInfo, StepError> {
    let filter = Filter::builder()
        .name("endpoint-arn")
        .values(arn)
        .build()
        .map_err(|e| StepError::Configuration(format!("cannot build the DMS filter: {e}")))?;
    let out = match client.describe_endpoints().filters(filter).send().await {
        Ok(out) => out,
        Err(e) if error_code(&e) == Some("ResourceNotFoundFault") => {
            return Err(StepError::ReplicationTaskMisconfigured(format!(
                "its endpoint {arn} does not exist"
            )))
        }
        Err(e) => return Err(classify("DescribeEndpoints", &e)),
    };
    let e = out
        .endpoints()
        .iter()
        .find(|e| e.endpoint_arn() == Some(arn))
        .ok_or_else(|| {
            StepError::ReplicationTaskMisconfigured(format!("its endpoint {arn} does not exist"))
        })?;
    Ok(EndpointInfo {
        arn: arn.to_owned(),
        engine: e.engine_name().map(str::to_owned),
        server: e.server_name().map(str::to_owned),
        port: e.port(),
        database: e.database_name().map(str::to_owned),
    })
}

impl StartTask for DmsTask {
    async fn start(&self, task: &str, kind: StartKind) -> Result<(), StartRefusal> {
        let kind_value = match kind {
            StartKind::StartReplication => StartReplicationTaskTypeValue::StartReplication,
            StartKind::ReloadTarget => StartReplicationTaskTypeValue::ReloadTarget,
        };
        match self
            .client
            .start_replication_task()
            .replication_task_arn(task)
            .start_replication_task_type(kind_value)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(start_refusal("StartReplicationTask", task, &e)),
        }
    }
}

/// A refused start (task or serverless), named the same way for both.
pub(crate) fn start_refusal<E>(
    action: &str,
    arn: &str,
    e: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> StartRefusal
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    if is_wrong_start_kind(error_code(e), error_message(e)) {
        return StartRefusal::WrongStartKind;
    }
    StartRefusal::Failed(match error_code(e) {
        Some("ResourceNotFoundFault") => StepError::ReplicationTaskNotFound(arn.to_owned()),
        Some("InvalidResourceStateFault") => StepError::ReplicationTaskNotReady(
            error_message(e).unwrap_or("invalid state").to_owned(),
        ),
        _ => classify(action, e),
    })
}

/// A stop's error (task or serverless): already stopping or stopped meets the goal.
pub(crate) fn stop_outcome<E>(
    action: &str,
    arn: &str,
    e: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> Result<(), StepError>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    match error_code(e) {
        Some("InvalidResourceStateFault") => Ok(()),
        Some("ResourceNotFoundFault") => Err(StepError::ReplicationTaskNotFound(arn.to_owned())),
        _ => Err(classify(action, e)),
    }
}

impl StopTask for DmsTask {
    async fn stop(&self, task: &str) -> Result<(), StepError> {
        match self
            .client
            .stop_replication_task()
            .replication_task_arn(task)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => stop_outcome("StopReplicationTask", task, &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_wrong_start_kind_answer_only() {
        let m = "Start Type : START_REPLICATION, valid only for tasks running for the first time";
        assert!(is_wrong_start_kind(
            Some("InvalidParameterCombinationException"),
            Some(m)
        ));
        assert!(is_wrong_start_kind(
            Some("InvalidResourceStateFault"),
            Some(m)
        ));
        // Whatever the wording: the type is what a start can be at odds over.
        assert!(is_wrong_start_kind(
            Some("InvalidParameterCombinationException"),
            Some("StartReplicationType does not fit")
        ));
        assert!(!is_wrong_start_kind(
            Some("InvalidResourceStateFault"),
            Some("Replication Task cannot be started, invalid state: running")
        ));
        assert!(!is_wrong_start_kind(Some("AccessDeniedFault"), Some(m)));
        assert!(!is_wrong_start_kind(None, None));
    }
}
