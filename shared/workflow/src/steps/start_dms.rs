//! `start-dms`: starts the DMS full-load task — `start-replication` on its
//! first run, `reload-target` on every later one — and refuses when it is
//! already starting or running (`ReplicationAlreadyRunning`, nothing started).
//!
//! Idempotent within an execution: a task that is starting or running with a
//! run that began after this execution started (`executionStartTime`) was
//! started by this execution — an earlier attempt whose answer was lost (a
//! 5xx after DMS accepted the start, a Lambda timeout) — and counts as
//! started, not as `ReplicationAlreadyRunning`.
//!
//! Input: any object. Output: a [`ReplicationOutput`] with `status`
//! `starting`, the run's start time and the first wait (`POLL_MIN_SECONDS`:
//! a short load is seen quickly, `poll-dms` stretches the waits after that).
//!
//! Configuration: [`ReplicationConfig`](super::replication::ReplicationConfig),
//! shared with `poll-dms`.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::replication::{epoch_seconds, output, PollConfig, RunInfo};
use crate::{
    io::{execution_start, parse_input, ReplicationOutput, ReplicationStatus, StartInput},
    ports::{DescribeTask, StartKind, StartRefusal, StartTask, TaskState, TaskStatus},
    StepError,
};

/// Starts the task with `kind`; when DMS answers that the kind does not fit
/// the task's history ("valid only for tasks running for the first time"),
/// once more with the other kind. Every other refusal is returned as is.
pub async fn start(
    task: &impl StartTask,
    task_arn: &str,
    kind: StartKind,
) -> Result<StartKind, StepError> {
    match task.start(task_arn, kind).await {
        Ok(()) => Ok(kind),
        Err(StartRefusal::Failed(e)) => Err(e),
        Err(StartRefusal::WrongStartKind) => {
            let retry = kind.other();
            tracing::info!(
                refused = kind.as_str(),
                retry = retry.as_str(),
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

/// Clocks of DMS and Step Functions agree closely; this much earlier still counts as ours.
const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// Whether the task's current (or last) run began after `since` (this execution's start).
pub fn run_is_since(state: &TaskState, since: Option<SystemTime>) -> bool {
    let Some(t0) = since else {
        return false;
    };
    // Started after t0 — or, where the start date is gone (DMS Serverless
    // after deprovisioning), stopped after t0: start-dms never starts over a
    // running load, so a run that stopped since this execution began is its own.
    let started = state.started_at.is_some_and(|s| s + CLOCK_SLACK >= t0);
    let stopped = state.started_at.is_none() && state.stopped_at.is_some_and(|s| s >= t0);
    started || stopped
}

fn started_output(
    task_arn: &str,
    config: &PollConfig,
    kind: Option<StartKind>,
    started_at: SystemTime,
) -> ReplicationOutput {
    let run = RunInfo {
        task_arn: task_arn.to_owned(),
        start_kind: kind.map(|k| k.as_str().to_owned()),
        started_at: epoch_seconds(started_at),
        elapsed: SystemTime::now()
            .duration_since(started_at)
            .unwrap_or_default(),
        load_elapsed: None,
        polls: 0,
    };
    // Counts from the previous run would mislead the summary: report a fresh start.
    let fresh = TaskState {
        status: TaskStatus::Starting,
        ..Default::default()
    };
    output(&run, &fresh, ReplicationStatus::Starting, config.min_wait)
}

pub async fn handle(
    task: &(impl DescribeTask + StartTask),
    task_arn: &str,
    config: &PollConfig,
    event: Value,
) -> Result<ReplicationOutput, StepError> {
    let input: StartInput = parse_input(event)?;
    let since = execution_start(input.execution_start_time.as_deref())?;
    let state = task.describe(task_arn).await?;
    match &state.status {
        s if s.is_active() && run_is_since(&state, since) => {
            tracing::info!(task = task_arn, "already started by this execution");
            let started = state.started_at.unwrap_or_else(SystemTime::now);
            return Ok(started_output(task_arn, config, None, started));
        }
        s if s.is_active() => {
            return Err(StepError::ReplicationAlreadyRunning(s.to_string()));
        }
        TaskStatus::Ready | TaskStatus::Stopped | TaskStatus::Failed => {}
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
    let kind = match start(task, task_arn, first).await {
        Ok(kind) => kind,
        Err(e) => {
            // An ambiguous answer (5xx after DMS accepted, the SDK's retry then
            // refused as "already starting"): look again before giving up.
            let again = task.describe(task_arn).await?;
            if again.status.is_active() && run_is_since(&again, since) {
                tracing::info!(task = task_arn, error = %e, "the start took effect despite the error");
                let started = again.started_at.unwrap_or_else(SystemTime::now);
                return Ok(started_output(task_arn, config, None, started));
            }
            return Err(e);
        }
    };
    tracing::info!(task = task_arn, kind = kind.as_str(), "replication started");
    Ok(started_output(
        task_arn,
        config,
        Some(kind),
        SystemTime::now(),
    ))
}
