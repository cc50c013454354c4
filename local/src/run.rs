//! One local sync: the deployed definition in the local engine with the
//! in-process steps, under the target's run lock.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use dbsync_asl::{
    run, ExecutionResult, Observer, RunOptions, ScaledClock, StateMachine, TaskRequest,
};
use dbsync_db::DbConfig;
use dbsync_workflow::StepError;
use serde_json::json;

use crate::{
    config::{local_definition, RunConfig},
    progress::Progress,
    steps::LocalSteps,
};

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
    let opts = RunOptions {
        region: crate::config::LOCAL_REGION.into(),
        account: "000000000000".into(),
        ..RunOptions::default()
    }
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

/// Runs one sync holding the target's run lock (a second run at once is refused).
pub async fn run_with_lock(cfg: &RunConfig, quiet: bool) -> Result<ExecutionResult, StepError> {
    let lock = RunLock::acquire(&cfg.target).await?;
    let progress = Arc::new(Progress::new(quiet));
    let p = progress.clone();
    let notify = Box::new(move |subject: &str, message: &str| {
        p.line(&format!("SNS notification: {subject}: {message}"))
    });
    let steps = Arc::new(LocalSteps::new(cfg, notify));
    let result = run_sync(cfg, steps, progress.clone()).await;
    progress.finish();
    lock.release().await;
    result
}
