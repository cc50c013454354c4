//! Capabilities the AWS-facing steps need, each as narrow as the step using
//! it. The Lambdas implement them with the AWS SDK; local mode implements them
//! with the local replicator and local files, so the same handler code runs
//! in both places. IAM policies in `template.yaml` mirror these capabilities.

use std::{future::Future, time::SystemTime};

use crate::StepError;

/// A replication task's state, as DMS's `DescribeReplicationTasks` reports it
/// (only what the steps read; never the task's settings or table mappings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskState {
    /// DMS status string: `creating`, `ready`, `starting`, `running`,
    /// `stopping`, `stopped`, `failed`, `deleting`, `modifying`, `moving`, …
    pub status: String,
    /// e.g. `Stop Reason FULL_LOAD_ONLY_FINISHED`.
    pub stop_reason: Option<String>,
    pub last_failure_message: Option<String>,
    /// Whether the task has ever been started (DMS: `ReplicationTaskStartDate` is set).
    pub ever_started: bool,
    /// When the current (or last) run started.
    pub started_at: Option<SystemTime>,
    pub full_load_progress_percent: Option<i32>,
    pub tables_loaded: i64,
    pub tables_loading: i64,
    pub tables_queued: i64,
    pub tables_errored: i64,
    /// Rows copied so far, when the replicator knows it (DMS statistics do not carry it).
    pub rows_loaded: Option<i64>,
}

/// How to start a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    /// `start-replication`: the task's first run.
    StartReplication,
    /// `reload-target`: every later run (truncate and load again).
    ReloadTarget,
}

/// Why a start was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRefusal {
    /// DMS: "start-replication is valid only for tasks running for the first time"
    /// (or the converse for reload-target): retry with the other kind.
    WrongStartKind,
    /// Any other failure, already named.
    Failed(StepError),
}

/// Something that can describe, start and stop one replication task.
pub trait ReplicationTask: Send + Sync {
    fn describe(&self, task: &str) -> impl Future<Output = Result<TaskState, StepError>> + Send;
    fn start(
        &self,
        task: &str,
        kind: StartKind,
    ) -> impl Future<Output = Result<(), StartRefusal>> + Send;
    fn stop(&self, task: &str) -> impl Future<Output = Result<(), StepError>> + Send;
}

/// Which side's schema version to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Production,
    Staging,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Production => "production",
            Side::Staging => "staging",
        }
    }
}

/// Something that can read one side's schema version (S3 object, SQL query, local file).
pub trait VersionSource: Send + Sync {
    fn read(&self, side: Side) -> impl Future<Output = Result<String, StepError>> + Send;
}
