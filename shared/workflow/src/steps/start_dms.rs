//! `start-dms`: starts the DMS full-load task — `start-replication` on its
//! first run, `reload-target` on every later one — and refuses when it is
//! already starting or running (`ReplicationAlreadyRunning`, nothing started).
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
    io::{parse_input, ReplicationOutput, ReplicationStatus},
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

pub async fn handle(
    task: &(impl DescribeTask + StartTask),
    task_arn: &str,
    config: &PollConfig,
    event: Value,
) -> Result<ReplicationOutput, StepError> {
    let _: serde::de::IgnoredAny = parse_input(event)?;
    let state = task.describe(task_arn).await?;
    match &state.status {
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
    let kind = start(task, task_arn, first).await?;
    tracing::info!(task = task_arn, kind = kind.as_str(), "replication started");
    let run = RunInfo {
        task_arn: task_arn.to_owned(),
        start_kind: Some(kind.as_str().to_owned()),
        started_at: epoch_seconds(SystemTime::now()),
        elapsed: Duration::ZERO,
        polls: 0,
    };
    // Counts from the previous run would mislead the summary: report a fresh start.
    let fresh = TaskState {
        status: TaskStatus::Starting,
        ..Default::default()
    };
    Ok(output(
        &run,
        &fresh,
        ReplicationStatus::Starting,
        config.min_wait,
    ))
}
