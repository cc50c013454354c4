//! The DMS adapter behind the task ports (`DescribeTask`, `StartTask`,
//! `StopTask`) that start-dms and poll-dms use.
//!
//! IAM: `dms:DescribeReplicationTasks` (no resource-level permissions),
//! `dms:StartReplicationTask`, `dms:StopReplicationTask`,
//! `dms:DescribeTableStatistics` (row counts for the summary; optional).

use std::time::SystemTime;

use aws_sdk_databasemigration::{
    types::{Filter, StartReplicationTaskTypeValue},
    Client,
};
use aws_smithy_types::DateTime;
use dbsync_workflow::{
    ports::{DescribeTask, StartKind, StartRefusal, StartTask, StopTask, TaskState, TaskStatus},
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

    /// Also report rows copied once a run has ended (one more call,
    /// `DescribeTableStatistics`, paginated); for poll-dms's summary.
    pub fn with_row_counts(mut self) -> Self {
        self.row_counts = true;
        self
    }

    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        Self::new(Client::new(config))
    }

    /// Rows copied by the last run, summed over its tables. Only for the
    /// summary: a failure here is logged, never fails the step.
    async fn rows_loaded(&self, task: &str) -> Option<i64> {
        let mut pages = self
            .client
            .describe_table_statistics()
            .replication_task_arn(task)
            .max_records(500)
            .into_paginator()
            .send();
        let mut rows = 0i64;
        while let Some(page) = pages.next().await {
            match page {
                Ok(p) => {
                    rows += p
                        .table_statistics()
                        .iter()
                        .map(|t| t.full_load_rows())
                        .sum::<i64>()
                }
                Err(e) => {
                    tracing::warn!(error = %classify("DescribeTableStatistics", &e), "row counts unavailable");
                    return None;
                }
            }
        }
        Some(rows)
    }
}

/// DMS's answer when the start kind does not fit the task's history:
/// "Start Type : START_REPLICATION, valid only for tasks running for the first time"
/// (InvalidParameterCombinationException; InvalidResourceStateFault is matched too).
pub fn is_wrong_start_kind(code: Option<&str>, message: Option<&str>) -> bool {
    matches!(
        code,
        Some("InvalidParameterCombinationException" | "InvalidResourceStateFault")
    ) && message.is_some_and(|m| m.to_ascii_lowercase().contains("first time"))
}

fn system_time(t: &DateTime) -> Option<SystemTime> {
    SystemTime::try_from(*t).ok()
}

impl DescribeTask for DmsTask {
    async fn describe(&self, task: &str) -> Result<TaskState, StepError> {
        let filter = Filter::builder()
            .name("replication-task-arn")
            .values(task)
            .build()
            .map_err(|e| StepError::Configuration(format!("cannot build the DMS filter: {e}")))?;
        // WithoutSettings: the task's settings and table mappings are large and unused.
        let out = match self
            .client
            .describe_replication_tasks()
            .filters(filter)
            .without_settings(true)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if error_code(&e) == Some("ResourceNotFoundFault") => {
                return Err(StepError::ReplicationTaskNotFound(task.to_owned()))
            }
            Err(e) => return Err(classify("DescribeReplicationTasks", &e)),
        };
        let t = out
            .replication_tasks()
            .iter()
            .find(|t| t.replication_task_arn() == Some(task))
            .ok_or_else(|| StepError::ReplicationTaskNotFound(task.to_owned()))?;
        let stats = t.replication_task_stats();
        let status = TaskStatus::from(t.status().unwrap_or("unknown"));
        let started_at = stats
            .and_then(|s| s.start_date())
            .or(t.replication_task_start_date())
            .and_then(system_time);
        let rows_loaded =
            if self.row_counts && matches!(status, TaskStatus::Stopped | TaskStatus::Failed) {
                self.rows_loaded(task).await
            } else {
                None
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
        })
    }
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
            Err(e) if is_wrong_start_kind(error_code(&e), error_message(&e)) => {
                Err(StartRefusal::WrongStartKind)
            }
            Err(e) => Err(StartRefusal::Failed(match error_code(&e) {
                Some("ResourceNotFoundFault") => {
                    StepError::ReplicationTaskNotFound(task.to_owned())
                }
                Some("InvalidResourceStateFault") => StepError::ReplicationTaskNotReady(
                    error_message(&e).unwrap_or("invalid state").to_owned(),
                ),
                _ => classify("StartReplicationTask", &e),
            })),
        }
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
            Err(e) => match error_code(&e) {
                // Already stopping or stopped: the goal is met.
                Some("InvalidResourceStateFault") => Ok(()),
                Some("ResourceNotFoundFault") => {
                    Err(StepError::ReplicationTaskNotFound(task.to_owned()))
                }
                _ => Err(classify("StopReplicationTask", &e)),
            },
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
        assert!(!is_wrong_start_kind(
            Some("InvalidParameterCombinationException"),
            Some("other")
        ));
        assert!(!is_wrong_start_kind(Some("AccessDeniedFault"), Some(m)));
        assert!(!is_wrong_start_kind(None, None));
    }
}
