//! The in-process "Lambdas" of a local run: the same step handlers the
//! functions run, with local adapters (the local replicator in DMS's place,
//! version files or a query), and SNS publishes handed to a notifier.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dbsync_asl::{TaskError, TaskRequest};
use dbsync_db::{
    steps as db_steps, version::SqlVersionSource, Budget, Db, DbConfig, StepEnv, Timeouts,
};
use dbsync_replicate::{LocalReplicator, ReplicateOptions};
use dbsync_workflow::{
    steps::{poll_dms, start_dms, version_check},
    StepError,
};
use serde_json::{json, Value};

use crate::config::{RunConfig, Versions, LOCAL_POLL, LOCAL_TASK_ARN};

/// Where SNS publishes go in local mode: (subject, message).
pub type Notifier = Box<dyn Fn(&str, &str) + Send + Sync>;

/// The in-process "Lambdas" of a local run.
pub struct LocalSteps {
    env: StepEnv,
    source: DbConfig,
    versions: Versions,
    replicator: LocalReplicator,
    notify: Notifier,
}

impl LocalSteps {
    pub fn new(cfg: &RunConfig, notify: Notifier) -> Self {
        Self {
            env: StepEnv {
                db: Db::new(cfg.target.clone().with_application_name("dbsync-local")),
                selection: cfg.selection.clone(),
                timeouts: Timeouts::default(),
                orphan_policy: cfg.orphan_policy,
                margin: Duration::from_secs(15),
            },
            source: cfg.source.clone(),
            versions: cfg.versions.clone(),
            replicator: LocalReplicator::new(ReplicateOptions {
                source: cfg.source.clone(),
                target: cfg.target.clone(),
                selection: cfg.selection.clone(),
                parallelism: cfg.parallelism,
                fail_table: cfg.fail_table.clone(),
            }),
            notify,
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
                    Ok(v) => {
                        Ok(json!({"ExecutedVersion": "$LATEST", "Payload": v, "StatusCode": 200}))
                    }
                    // Lambda's shape: Error = errorType, Cause = the error document as JSON text.
                    Err(e) => Err(TaskError::new(
                        e.name(),
                        json!({"errorType": e.name(), "errorMessage": e.to_string()}).to_string(),
                    )),
                }
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
        // Lambda limits: restore may use 15 minutes, the others get 5.
        let budget = |secs| Budget::from_now(Duration::from_secs(secs) - self.env.margin);
        match step {
            "version-check" => out(self.version_check(payload).await),
            "drop-fks" => out(db_steps::drop_fks(&self.env, payload, budget(300)).await),
            "start-dms" => {
                out(start_dms::handle(&self.replicator, LOCAL_TASK_ARN, &LOCAL_POLL, payload).await)
            }
            "poll-dms" => {
                out(poll_dms::handle(&self.replicator, LOCAL_TASK_ARN, &LOCAL_POLL, payload).await)
            }
            "restore-fks" => out(db_steps::restore_fks(&self.env, payload, budget(900)).await),
            "fix-sequences" => out(db_steps::fix_sequences(&self.env, payload, budget(300)).await),
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
