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
    let machine = StateMachine::from_json(&local_definition(cfg.engine)?).map_err(|e| {
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

/// What a local run ended with.
pub struct LocalRun {
    pub result: ExecutionResult,
    /// What the local copy did (empty when it never started).
    pub copy: dbsync_replicate::Progress,
    /// Ctrl-C or SIGTERM stopped it.
    pub interrupted: bool,
    /// Foreign keys the failure path left NOT VALID (orphan rows from a
    /// partial copy; saved, validated by the next run).
    pub kept_not_valid: i64,
}

impl LocalRun {
    /// Tables loaded in full, and the others the selection covers, as
    /// `schema.table` (with the reason where one table's copy failed).
    pub fn tables(&self) -> (Vec<String>, Vec<String>) {
        let refreshed = self
            .copy
            .results
            .iter()
            .filter(|r| r.error.is_none())
            .map(|r| r.key.clone())
            .collect();
        let mut not: Vec<String> = self
            .copy
            .results
            .iter()
            .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.key)))
            .collect();
        let unfinished = self
            .copy
            .tables_total
            .saturating_sub(self.copy.results.len());
        if unfinished > 0 {
            not.push(format!("{unfinished} table(s) not copied"));
        }
        (refreshed, not)
    }
}

/// Runs one sync holding the target's run lock (a second run at once is
/// refused). The first Ctrl-C (or SIGTERM) stops the copy and lets the
/// state machine's failure path put staging back; a second one exits at once.
pub async fn run_with_lock(cfg: &RunConfig, quiet: bool) -> Result<LocalRun, StepError> {
    let lock = RunLock::acquire(&cfg.target).await?;
    let progress = Arc::new(Progress::new(quiet));
    // Notifications go to SNS on AWS; locally the final report says the same.
    let notify = Box::new(|subject: &str, _message: &str| {
        tracing::info!(subject, "notification (published to SNS on AWS)")
    });
    let steps = Arc::new(LocalSteps::new(cfg, notify));
    let watcher = tokio::spawn(watch_signals(
        steps.interrupt_flag(),
        progress.clone(),
        cfg.target.clone(),
    ));
    let result = run_sync(cfg, steps.clone(), progress.clone()).await;
    watcher.abort();
    progress.finish();
    lock.release().await;
    let result = result?;
    let kept_not_valid = if result.error.is_some() {
        kept_not_valid(&cfg.target).await
    } else {
        0
    };
    Ok(LocalRun {
        result,
        copy: steps.copy_progress(),
        interrupted: steps.interrupted(),
        kept_not_valid,
    })
}

/// First signal: ask the steps to stop (they fail with `Interrupted` and the
/// state machine compensates). Second: say what is left and exit now.
async fn watch_signals(
    flag: Arc<std::sync::atomic::AtomicBool>,
    progress: Arc<Progress>,
    target: DbConfig,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    let mut seen = 0;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => if r.is_err() { return },
            _ = term.recv() => {}
        }
        seen += 1;
        if seen == 1 {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            progress.line(
                "interrupted: stopping the copy, then putting staging's foreign keys, sequences and lease back (press Ctrl-C again to exit at once)",
            );
            continue;
        }
        progress.finish();
        eprintln!("{}", left_behind(&target).await);
        std::process::exit(130);
    }
}

/// Saved foreign keys left NOT VALID on purpose (0 when it cannot tell).
async fn kept_not_valid(target: &DbConfig) -> i64 {
    let Ok(client) = target.connect().await else {
        return 0;
    };
    client
        .query_one(
            "SELECT CASE WHEN pg_catalog.to_regclass('dbsync.saved_fk') IS NULL THEN 0::int8 \
             ELSE (SELECT pg_catalog.count(*) FROM dbsync.saved_fk WHERE state = 'kept_not_valid') END",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(0)
}

/// What an exit in the middle leaves on staging, read in at most a few seconds.
async fn left_behind(target: &DbConfig) -> String {
    let read = async {
        let client = target.connect().await.ok()?;
        let saved = client
            .query_one("SELECT pg_catalog.count(*) FROM dbsync.saved_fk", &[])
            .await
            .ok()
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0);
        let lease = dbsync_db::lease::holder(&client).await.ok().flatten();
        Some((saved, lease.is_some()))
    };
    let found = tokio::time::timeout(Duration::from_secs(3), read)
        .await
        .ok()
        .flatten();
    let what = match found {
        Some((0, false)) => "nothing is left to put back".to_owned(),
        Some((saved, held)) => format!(
            "left on staging: {saved} foreign key(s) saved in dbsync.saved_fk and not restored{}",
            if held { ", and the run lease" } else { "" }
        ),
        None => {
            "staging may be left with foreign keys saved but not restored and the run lease held"
                .into()
        }
    };
    format!("exiting at once: {what}; the next `dbsync run` takes the lease over and restores them (`dbsync plan` shows what is waiting)")
}
