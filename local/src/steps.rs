//! The in-process "Lambdas" of a local run: the same step handlers the
//! functions run, with local adapters (the local replicator in DMS's place,
//! version files or a query), and SNS publishes handed to a notifier.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use dbsync_asl::{TaskError, TaskRequest};
use dbsync_db::{
    steps as db_steps, version::SqlVersionSource, Budget, Db, DbConfig, StepEnv, Timeouts,
};
use dbsync_replicate::{
    pieces::{self, CopyConfig},
    LocalReplicator, ReplicateOptions,
};
use dbsync_workflow::{
    config::CopyEngine,
    ports::{EndpointInfo, InspectTask, StopTask, TaskConfig, TaskStatus},
    steps::{poll_dms, preflight, start_dms, version_check},
    StepError,
};
use serde_json::{json, Value};

use crate::config::{RunConfig, Versions, ALL_TABLES, LOCAL_POLL, LOCAL_REGION, LOCAL_TASK_ARN};

/// What preflight sees of the local "task": a full load with
/// TRUNCATE_BEFORE_LOAD (what the local replicator does), the run's mappings,
/// and the target database as its endpoint.
struct LocalTask {
    table_mappings: String,
    target: DbConfig,
}

impl InspectTask for LocalTask {
    async fn task_config(&self, _task: &str) -> Result<TaskConfig, StepError> {
        Ok(TaskConfig {
            status: TaskStatus::Ready,
            migration_type: "full-load".into(),
            settings: json!({"FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD"}}),
            table_mappings: Some(self.table_mappings.clone()),
            source_endpoint_arn: Some("local:source".into()),
            target_endpoint_arn: Some("local:target".into()),
        })
    }

    async fn endpoint(&self, arn: &str) -> Result<EndpointInfo, StepError> {
        Ok(EndpointInfo {
            arn: arn.to_owned(),
            engine: Some("postgres".into()),
            server: self.target.host(),
            port: self.target.port().map(i32::from),
            database: self.target.database(),
        })
    }
}

/// Where SNS publishes go in local mode: (subject, message).
pub type Notifier = Box<dyn Fn(&str, &str) + Send + Sync>;

/// The in-process "Lambdas" of a local run.
pub struct LocalSteps {
    env: StepEnv,
    engine: CopyEngine,
    /// What each in-process copy-piece "Lambda" gets: its own sessions, as
    /// each real invocation has (lanes run at once).
    copy: CopyConfig,
    task: LocalTask,
    source: DbConfig,
    versions: Versions,
    replicator: LocalReplicator,
    notify: Notifier,
    /// Set by Ctrl-C / SIGTERM: the steps that move the run forward refuse,
    /// the ones that put staging back go on.
    interrupted: Arc<AtomicBool>,
}

impl LocalSteps {
    pub fn new(cfg: &RunConfig, notify: Notifier) -> Self {
        Self {
            engine: cfg.engine,
            copy: CopyConfig {
                source: cfg
                    .source
                    .clone()
                    .with_application_name("dbsync-local-copy"),
                target: cfg
                    .target
                    .clone()
                    .with_application_name("dbsync-local-copy"),
                selection: cfg.selection.clone(),
                sync: cfg.sync.clone(),
                piece_bytes: cfg.piece_mb as i64 * 1024 * 1024,
                concurrency: cfg.parallelism.max(1) as u32,
                fail_table: cfg.fail_table.clone(),
            },
            env: StepEnv {
                db: Db::new(cfg.target.clone().with_application_name("dbsync-local")),
                // Local runs reach production: the lease step checks it answers before any change.
                source: Some(Db::new(
                    cfg.source.clone().with_application_name("dbsync-local"),
                )),
                lease_ttl: dbsync_db::lease::DEFAULT_TTL,
                refresh_views: cfg.refresh_views,
                selection: cfg.selection.clone(),
                timeouts: Timeouts::default(),
                orphan_policy: cfg.orphan_policy,
                margin: Duration::from_secs(15),
                sync: cfg.sync.clone(),
                // The local copy selects masked values from the source.
                masked_in_flight: true,
                // A plain COPY needs no index: every one comes back after the load.
                index_drop: if cfg.keep_indexes {
                    dbsync_db::indexes::IndexDrop::None
                } else {
                    dbsync_db::indexes::IndexDrop::All
                },
                // Index builds load staging, not production: at least two
                // even when the copy reads production with one worker.
                index_jobs: cfg.parallelism.max(2),
            },
            task: LocalTask {
                table_mappings: cfg
                    .table_mappings
                    .clone()
                    .unwrap_or_else(|| ALL_TABLES.into()),
                target: cfg.target.clone(),
            },
            source: cfg.source.clone(),
            versions: cfg.versions.clone(),
            replicator: LocalReplicator::new(ReplicateOptions {
                source: cfg.source.clone(),
                target: cfg.target.clone(),
                selection: cfg.selection.clone(),
                parallelism: cfg.parallelism,
                fail_table: cfg.fail_table.clone(),
                sync: cfg.sync.clone(),
                freeze: true,
            }),
            notify,
            interrupted: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn interrupt_flag(&self) -> Arc<AtomicBool> {
        self.interrupted.clone()
    }

    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// What the local copy has done so far.
    pub fn copy_progress(&self) -> dbsync_replicate::Progress {
        self.replicator.progress()
    }

    /// Whether a step moves the run forward (refused once interrupted) or
    /// puts staging back (restore, sequences, the lease's release, stopping
    /// the copy), which must run whatever happens.
    fn moves_forward(step: &str, payload: &Value) -> bool {
        match step {
            "restore-fks" | "fix-sequences" => false,
            "lease" => payload["action"] != "release",
            "poll-dms" => payload["mode"] != "stop",
            "plan-copy" => payload["action"] != "stop",
            _ => true,
        }
    }

    /// One Task state, as Step Functions' Lambda and SNS integrations would run it.
    pub async fn invoke(&self, req: TaskRequest) -> Result<Value, TaskError> {
        match req.resource.as_str() {
            "arn:aws:states:::lambda:invoke" => {
                let function = req.input["FunctionName"].as_str().unwrap_or_default();
                let step = function.rsplit(':').next().unwrap_or_default();
                let payload = req
                    .input
                    .get("Payload")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                match self.step(step, payload).await {
                    Ok(v) => Ok(dbsync_asl::lambda_invoke_output(v)),
                    Err(e) => Err(TaskError::from_lambda(e.name(), &e.to_string())),
                }
            }
            "arn:aws:states:::aws-sdk:sfn:describeExecution" => {
                // Only local runs are judged here, and this process holds the
                // target's run lock: another local execution cannot be alive.
                let arn = req.input["ExecutionArn"].as_str().unwrap_or_default();
                let this = req.context["Execution"]["Id"].as_str().unwrap_or_default();
                let local = arn.split(':').nth(3) == Some(LOCAL_REGION);
                let status = if arn == this || !local {
                    "RUNNING"
                } else {
                    "ABORTED"
                };
                Ok(json!({"ExecutionArn": arn, "Status": status}))
            }
            "arn:aws:states:::sns:publish" => {
                let subject = req.input["Subject"].as_str().unwrap_or_default();
                let message = req.input["Message"].as_str().unwrap_or_default();
                (self.notify)(subject, message);
                let id = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                Ok(json!({"MessageId": format!("local-{id}")}))
            }
            other => Err(TaskError::new(
                "States.TaskFailed",
                format!("local mode has no implementation for the resource {other}"),
            )),
        }
    }

    async fn step(&self, step: &str, payload: Value) -> Result<Value, StepError> {
        fn out<T: serde::Serialize>(r: Result<T, StepError>) -> Result<Value, StepError> {
            r.map(|v| serde_json::to_value(v).expect("step outputs serialize"))
        }
        if self.interrupted() && Self::moves_forward(step, &payload) {
            if step == "poll-dms" {
                // The failure path stops it too; stopping now ends the copy sooner.
                let _ = StopTask::stop(&self.replicator, LOCAL_TASK_ARN).await;
            }
            let during = match step {
                "poll-dms" => "the copy",
                "after-load" => "the work after the copy",
                "refresh-views" => "the view refresh",
                _ => "the checks before any change",
            };
            return Err(StepError::Interrupted(format!(
                "Ctrl-C or SIGTERM during {during}"
            )));
        }
        // The function's own time limit (the step table's), less the margin.
        let budget = || {
            Budget::from_now(dbsync_workflow::naming::timeout(step).saturating_sub(self.env.margin))
        };
        match step {
            "preflight" => {
                // The local run prints its own summary: no success notification.
                let config = preflight::PreflightConfig {
                    task_arn: LOCAL_TASK_ARN.into(),
                    kind: dbsync_workflow::steps::replication::ReplicationKind::Task,
                    notify_on_success: false,
                    engine: self.engine,
                    table_mappings: Some(self.task.table_mappings.clone()),
                };
                out(preflight::handle(&self.task, &config, payload).await)
            }
            "lease" => out(db_steps::lease(&self.env, payload, budget()).await),
            "version-check" => out(self.version_check(payload).await),
            "drop-fks" => out(db_steps::drop_fks(&self.env, payload, budget()).await),
            "start-dms" => {
                out(start_dms::handle(&self.replicator, LOCAL_TASK_ARN, &LOCAL_POLL, payload).await)
            }
            "poll-dms" => {
                out(poll_dms::handle(&self.replicator, LOCAL_TASK_ARN, &LOCAL_POLL, payload).await)
            }
            "restore-fks" => out(db_steps::restore_fks(&self.env, payload, budget()).await),
            "fix-sequences" => out(db_steps::fix_sequences(&self.env, payload, budget()).await),
            "refresh-views" => out(db_steps::refresh_views(&self.env, payload, budget()).await),
            "after-load" => db_steps::after_load(&self.env, payload, budget()).await,
            "plan-copy" => pieces::plan_copy(&self.copy.env(), payload, budget()).await,
            "copy-piece" => out(pieces::copy_lane(&self.copy.env(), payload, budget()).await),
            other => Err(StepError::Configuration(format!("no step named {other:?}"))),
        }
    }

    async fn version_check(
        &self,
        payload: Value,
    ) -> Result<dbsync_workflow::io::VersionCheckOutput, StepError> {
        match &self.versions {
            Versions::Dir(dir) => {
                version_check::handle(&version_check::DirSource::new(dir.clone()), payload).await
            }
            Versions::Query(q) => {
                let src =
                    SqlVersionSource::new(Db::new(self.source.clone()), &self.env.db, q.clone());
                version_check::handle(&src, payload).await
            }
        }
    }
}
