//! The capabilities the steps use, each as narrow as the step using it. The
//! Lambdas implement them with the AWS SDK (`dbsync-aws`) or PostgreSQL
//! (`dbsync-db`); local mode implements them with the local replicator and
//! local files, so the same handler code runs in both places. IAM policies in
//! `template.yaml` mirror these capabilities.
//!
//! | port | used by | AWS adapter | local adapter |
//! |---|---|---|---|
//! | [`InspectTask`] | preflight | `DmsTask` | the local run's own settings |
//! | [`DescribeTask`] | start-dms, poll-dms | `DmsTask` | `LocalReplicator` |
//! | [`StartTask`] | start-dms | `DmsTask` | `LocalReplicator` |
//! | [`StopTask`] | poll-dms | `DmsTask` | `LocalReplicator` |
//! | [`VersionSource`] | version-check | `S3Source` | `DirSource`, `SqlVersionSource` |
//! | [`Executions`] | trigger | `StateMachine` | — |
//! | [`SecretReader`] | every database connection from a secret | `SecretsManager` | — |

use std::{fmt, future::Future, pin::Pin, str::FromStr, time::SystemTime};

use crate::StepError;

/// A boxed future, for the ports that are used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A replication task's status, as DMS reports it (`Status` of
/// `DescribeReplicationTasks`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TaskStatus {
    Creating,
    #[default]
    Ready,
    Starting,
    Running,
    Stopping,
    Stopped,
    Failed,
    Deleting,
    Modifying,
    Moving,
    FailedMove,
    Testing,
    /// A status this version does not know (kept as DMS wrote it).
    Other(String),
}

impl TaskStatus {
    const NAMES: [(TaskStatus, &'static str); 12] = [
        (TaskStatus::Creating, "creating"),
        (TaskStatus::Ready, "ready"),
        (TaskStatus::Starting, "starting"),
        (TaskStatus::Running, "running"),
        (TaskStatus::Stopping, "stopping"),
        (TaskStatus::Stopped, "stopped"),
        (TaskStatus::Failed, "failed"),
        (TaskStatus::Deleting, "deleting"),
        (TaskStatus::Modifying, "modifying"),
        (TaskStatus::Moving, "moving"),
        (TaskStatus::FailedMove, "failed-move"),
        (TaskStatus::Testing, "testing"),
    ];

    /// DMS's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            TaskStatus::Other(s) => s,
            known => Self::NAMES
                .iter()
                .find(|(s, _)| s == known)
                .map(|(_, n)| *n)
                .unwrap_or("unknown"),
        }
    }

    /// Starting or running: a load is in progress.
    pub fn is_active(&self) -> bool {
        matches!(self, TaskStatus::Starting | TaskStatus::Running)
    }
}

impl FromStr for TaskStatus {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::NAMES
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(st, _)| st.clone())
            .unwrap_or_else(|| TaskStatus::Other(s.to_owned())))
    }
}

impl From<&str> for TaskStatus {
    fn from(s: &str) -> Self {
        s.parse().unwrap_or_else(|never| match never {})
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A replication task's state, as DMS's `DescribeReplicationTasks` reports it
/// (only what the steps read; never the task's settings or table mappings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskState {
    pub status: TaskStatus,
    /// When the last run stopped (DMS Serverless: `ReplicationLastStopTime`,
    /// kept after deprovisioning, when start dates and statistics are gone).
    pub stopped_at: Option<SystemTime>,
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
    /// Tables of the last run that ended in `Table error` / `Table cancelled`
    /// or failed validation (read once the run has ended), as `schema.table: state`.
    pub failed_tables: Vec<String>,
    /// Rows copied per table (`schema.table`), when reported (at the end of a run).
    pub table_rows: Vec<(String, i64)>,
    /// Still getting capacity before loading (DMS Serverless: initializing …
    /// provisioning_capacity, replication_starting); `status` is `starting`.
    pub provisioning: bool,
    /// The status as DMS wrote it, when it says more than `status`.
    pub detail: Option<String>,
    /// When this run's full load began (`FullLoadStartDate`): the clock for
    /// progress rates, without start-up or provisioning time.
    pub load_started_at: Option<SystemTime>,
}

/// A replication task's configuration, as preflight reads it
/// (`DescribeReplicationTasks` with its settings and table mappings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskConfig {
    pub status: TaskStatus,
    /// `full-load`, `cdc` or `full-load-and-cdc`.
    pub migration_type: String,
    /// `ReplicationTaskSettings`, parsed (`Null` when DMS sent none).
    pub settings: serde_json::Value,
    /// `TableMappings`, as DMS holds it (JSON text).
    pub table_mappings: Option<String>,
    pub source_endpoint_arn: Option<String>,
    pub target_endpoint_arn: Option<String>,
}

/// A DMS endpoint: where it connects (`DescribeEndpoints`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointInfo {
    pub arn: String,
    pub engine: Option<String>,
    pub server: Option<String>,
    pub port: Option<i32>,
    pub database: Option<String>,
}

/// Something that can read a replication task's configuration and its endpoints.
pub trait InspectTask: Send + Sync {
    fn task_config(&self, task: &str)
        -> impl Future<Output = Result<TaskConfig, StepError>> + Send;
    fn endpoint(&self, arn: &str) -> impl Future<Output = Result<EndpointInfo, StepError>> + Send;
}

/// The stop reason of a full-load-only task that finished its work.
pub const FULL_LOAD_FINISHED: &str = "Stop Reason FULL_LOAD_ONLY_FINISHED";

/// How to start a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    /// `start-replication`: the task's first run.
    StartReplication,
    /// `reload-target`: every later run (truncate and load again).
    ReloadTarget,
}

impl StartKind {
    /// DMS's name of the start kind.
    pub fn as_str(self) -> &'static str {
        match self {
            StartKind::StartReplication => "start-replication",
            StartKind::ReloadTarget => "reload-target",
        }
    }

    /// The other kind (DMS refused this one).
    pub fn other(self) -> StartKind {
        match self {
            StartKind::StartReplication => StartKind::ReloadTarget,
            StartKind::ReloadTarget => StartKind::StartReplication,
        }
    }
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

/// Something that can report one replication task's state.
pub trait DescribeTask: Send + Sync {
    fn describe(&self, task: &str) -> impl Future<Output = Result<TaskState, StepError>> + Send;
}

/// Something that can start one replication task.
pub trait StartTask: Send + Sync {
    fn start(
        &self,
        task: &str,
        kind: StartKind,
    ) -> impl Future<Output = Result<(), StartRefusal>> + Send;
}

/// Something that can ask one replication task to stop.
pub trait StopTask: Send + Sync {
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

/// Something that can read one side's schema version (S3 object, SQL query,
/// local file). A trait object: the Lambda picks the source at cold start.
pub trait VersionSource: Send + Sync {
    fn read(&self, side: Side) -> BoxFuture<'_, Result<String, StepError>>;
}

/// What starting an execution did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Started {
        execution_arn: String,
    },
    /// The name is taken (by a running or a finished execution).
    AlreadyExists,
}

/// Something that can list running executions and start one (a state machine).
pub trait Executions: Send + Sync {
    /// Names of the executions currently running.
    fn running(&self) -> impl Future<Output = Result<Vec<String>, StepError>> + Send;
    fn start(
        &self,
        name: &str,
        input: &str,
    ) -> impl Future<Output = Result<Start, StepError>> + Send;
}

/// Something that can read a secret's text (a Secrets Manager `SecretString`).
/// Errors name the secret, never its contents. A trait object: the database
/// layer keeps it to read the secret again after a rotation.
pub trait SecretReader: Send + Sync {
    fn secret_string<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<String, StepError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_statuses_round_trip() {
        for (status, name) in TaskStatus::NAMES {
            assert_eq!(TaskStatus::from(name), status);
            assert_eq!(status.as_str(), name);
        }
        let odd = TaskStatus::from("hibernating");
        assert_eq!(odd, TaskStatus::Other("hibernating".into()));
        assert_eq!(odd.to_string(), "hibernating");
        assert!(TaskStatus::Running.is_active() && !TaskStatus::Stopped.is_active());
    }
}
