//! `start-dms`: starts the DMS full-load task — `start-replication` on its
//! first run, `reload-target` on every later one — and refuses when it is
//! already starting or running (`ReplicationAlreadyRunning`, nothing started).
//!
//! Input: any object. Output: a [`ReplicationOutput`] with `status`
//! `starting`, the run's start time and the first wait (`POLL_MIN_SECONDS`:
//! a short load is seen quickly, `poll-dms` stretches the waits after that).
//!
//! Configuration: the same variables as `poll-dms` ([`poll_dms::Config`]):
//! `REPLICATION_TASK_ARN`, `POLL_MIN_SECONDS`, `POLL_MAX_SECONDS`,
//! `MAX_REPLICATION_SECONDS`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dbsync_workflow::{
    io::{parse_input, ReplicationOutput, ReplicationStatus},
    ports::{ReplicationTask, StartKind, StartRefusal},
    StepError,
};
use poll_dms::{PollConfig, RunInfo};
use serde_json::Value;

/// DMS's name of a start kind.
pub fn kind_name(kind: StartKind) -> &'static str {
    match kind {
        StartKind::StartReplication => "start-replication",
        StartKind::ReloadTarget => "reload-target",
    }
}

fn other(kind: StartKind) -> StartKind {
    match kind {
        StartKind::StartReplication => StartKind::ReloadTarget,
        StartKind::ReloadTarget => StartKind::StartReplication,
    }
}

/// Starts the task with `kind`; when DMS answers that the kind does not fit
/// the task's history ("valid only for tasks running for the first time"),
/// once more with the other kind. Every other refusal is returned as is.
pub async fn start(
    task: &impl ReplicationTask,
    task_arn: &str,
    kind: StartKind,
) -> Result<StartKind, StepError> {
    match task.start(task_arn, kind).await {
        Ok(()) => Ok(kind),
        Err(StartRefusal::Failed(e)) => Err(e),
        Err(StartRefusal::WrongStartKind) => {
            let retry = other(kind);
            tracing::info!(
                refused = kind_name(kind),
                retry = kind_name(retry),
                "start kind refused, retrying"
            );
            match task.start(task_arn, retry).await {
                Ok(()) => Ok(retry),
                Err(StartRefusal::Failed(e)) => Err(e),
                Err(StartRefusal::WrongStartKind) => Err(StepError::ReplicationTaskNotReady(
                    "DMS refused both start-replication and reload-target".into(),
                )),
            }
        }
    }
}

pub async fn handle(
    task: &impl ReplicationTask,
    task_arn: &str,
    config: &PollConfig,
    event: Value,
) -> Result<ReplicationOutput, StepError> {
    let _: serde::de::IgnoredAny = parse_input(event)?;
    let state = task.describe(task_arn).await?;
    match state.status.as_str() {
        "starting" | "running" => return Err(StepError::ReplicationAlreadyRunning(state.status)),
        "ready" | "stopped" | "failed" => {}
        other => {
            return Err(StepError::ReplicationTaskNotReady(format!(
                "the task is {other}"
            )))
        }
    }
    let first = if state.ever_started {
        StartKind::ReloadTarget
    } else {
        StartKind::StartReplication
    };
    let kind = start(task, task_arn, first).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    tracing::info!(
        task = task_arn,
        kind = kind_name(kind),
        "replication started"
    );
    let run = RunInfo {
        task_arn: task_arn.to_owned(),
        start_kind: Some(kind_name(kind).to_owned()),
        started_at: now,
        elapsed: Duration::ZERO,
        polls: 0,
    };
    // Counts from the previous run would mislead the summary: report a fresh start.
    let fresh = dbsync_workflow::ports::TaskState {
        status: "starting".into(),
        ..Default::default()
    };
    Ok(poll_dms::output(
        &run,
        &fresh,
        ReplicationStatus::Starting,
        config.min_wait,
    ))
}
