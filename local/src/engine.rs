//! Runs the deployed state machine definition locally: the step handlers run
//! in-process, the local replicator stands in for DMS behind the same start
//! and poll steps, and SNS publishes are printed.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use dbsync_asl::{
    run, ExecutionResult, Observer, RunOptions, ScaledClock, StateMachine, TaskError, TaskRequest,
};
use dbsync_db::{
    env::StepEnv, fks::OrphanPolicy, Budget, Db, DbConfig, Selection, StepLimits, Timeouts,
};
use dbsync_replicate::{LocalReplicator, ReplicateOptions};
use dbsync_workflow::{naming, StepError};
use serde_json::{json, Value};

/// The one state machine definition, as deployed.
pub const DEFINITION: &str = include_str!("../../statemachine/db-sync.asl.json");

/// The account/region local ARNs use.
const LOCAL: &str = "local:000000000000";
/// What the start/poll steps are told the task is.
pub const LOCAL_TASK_ARN: &str = "arn:aws:dms:local:000000000000:task:dbsync-local";

/// The definition with local ARNs in place of the template's substitutions.
pub fn local_definition() -> Result<String, StepError> {
    naming::substitute(DEFINITION, LOCAL)
}

/// Where schema versions come from in a local run.
#[derive(Debug, Clone)]
pub enum Versions {
    /// A directory with `production` and `staging` files.
    Dir(std::path::PathBuf),
    /// A query run against both databases.
    Query(String),
}

/// Everything a local run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub source: DbConfig,
    pub target: DbConfig,
    pub versions: Versions,
    pub selection: Selection,
    pub orphan_policy: OrphanPolicy,
    pub parallelism: usize,
    /// Real seconds per state-machine second (Wait states, retries).
    pub time_scale: f64,
    /// Test hook: make the copy of this table fail.
    pub fail_table: Option<String>,
}

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
        let timeouts = Timeouts::default();
        Self {
            env: StepEnv {
                db: Db::new(cfg.target.clone().with_application_name("dbsync-local")),
                selection: cfg.selection.clone(),
                limits: StepLimits::from(timeouts),
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
            "version-check" => out(crate::local_steps::version_check(
                &self.versions,
                &self.source,
                &self.env,
                payload,
            )
            .await),
            "drop-fks" => out(drop_fks::handle(&self.env, payload, budget(300)).await),
            "start-dms" => out(crate::local_steps::start(&self.replicator, payload).await),
            "poll-dms" => out(crate::local_steps::poll(&self.replicator, payload).await),
            "restore-fks" => out(restore_fks::handle(&self.env, payload, budget(900)).await),
            "fix-sequences" => out(fix_sequences::handle(&self.env, payload, budget(300)).await),
            other => Err(StepError::Configuration(format!("no step named {other:?}"))),
        }
    }
}

/// Runs one sync locally. The caller holds the target's run lock.
pub async fn run_sync(
    cfg: &RunConfig,
    steps: Arc<LocalSteps>,
    observer: Arc<dyn Observer>,
) -> Result<ExecutionResult, StepError> {
    let machine = StateMachine::from_json(&local_definition()?).map_err(|e| {
        StepError::Configuration(format!("the state machine definition is invalid: {e:?}"))
    })?;
    let name = format!(
        "local-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    );
    let handler = move |req: TaskRequest| {
        let steps = steps.clone();
        async move { steps.invoke(req).await }
    };
    let opts = RunOptions::default()
        .with_execution_name(&name)
        .with_state_machine_name("dbsync-local")
        .with_clock(Arc::new(ScaledClock::new(cfg.time_scale)))
        .with_observer(observer);
    Ok(run(
        &machine,
        json!({"source": "local", "time": name}),
        Arc::new(handler),
        opts,
    )
    .await)
}

/// Holds the target for one run: a session-level advisory lock on its own
/// connection, released when dropped (or when the process dies).
pub struct RunLock {
    client: tokio_postgres::Client,
}

/// Key of the run lock (distinct from the steps' transaction lock).
const RUN_LOCK_KEY: i64 = 0x6462_7379_6e64;

impl RunLock {
    /// Takes the lock, or fails with `SyncInProgress`. A run that just ended
    /// may still hold it for a moment (its session is closing): try for a few seconds.
    pub async fn acquire(target: &DbConfig) -> Result<RunLock, StepError> {
        let client = target.connect().await?;
        for attempt in 0..20 {
            let got: bool = client
                .query_one(
                    "SELECT pg_catalog.pg_try_advisory_lock($1)",
                    &[&RUN_LOCK_KEY],
                )
                .await
                .map_err(|e| dbsync_db::classify(e, "taking the run lock"))?
                .get(0);
            if got {
                return Ok(RunLock { client });
            }
            if attempt < 19 {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Err(StepError::SyncInProgress(format!(
            "target {}",
            target.describe()
        )))
    }

    /// Lets the next run start at once (dropping the lock's session also
    /// releases it, a moment later).
    pub async fn release(self) {
        let _ = self
            .client
            .query_one("SELECT pg_catalog.pg_advisory_unlock($1)", &[&RUN_LOCK_KEY])
            .await;
    }
}
