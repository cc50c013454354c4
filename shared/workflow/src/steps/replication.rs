//! What start-dms and poll-dms share: the task and poll-schedule
//! configuration, and the replication document they both return.
//!
//! Configuration (read once per cold start, see [`ReplicationConfig::from_env`]):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `REPLICATION_TASK_ARN` | the DMS full-load task | required |
//! | `POLL_MIN_SECONDS` | shortest wait between polls (and the first one) | 30 |
//! | `POLL_MAX_SECONDS` | longest wait between polls | 7200 |
//! | `MAX_REPLICATION_SECONDS` | a load running longer is stopped and fails | 43200 |

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{
    config,
    io::{ReplicationOutput, ReplicationStatus},
    ports::{TaskState, TaskStatus},
    StepError,
};

/// Wait bounds and the run's time limit (shared with `start-dms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollConfig {
    pub min_wait: Duration,
    pub max_wait: Duration,
    pub max_duration: Duration,
}

impl Default for PollConfig {
    fn default() -> Self {
        Self {
            min_wait: Duration::from_secs(30),
            max_wait: Duration::from_secs(7200),
            max_duration: Duration::from_secs(12 * 3600),
        }
    }
}

impl PollConfig {
    /// `POLL_MIN_SECONDS`, `POLL_MAX_SECONDS`, `MAX_REPLICATION_SECONDS`.
    pub fn from_env() -> Result<Self, StepError> {
        let d = Self::default();
        let c = Self {
            min_wait: config::seconds("POLL_MIN_SECONDS", d.min_wait)?,
            max_wait: config::seconds("POLL_MAX_SECONDS", d.max_wait)?,
            max_duration: config::seconds("MAX_REPLICATION_SECONDS", d.max_duration)?,
        };
        if c.min_wait > c.max_wait {
            return Err(StepError::Configuration(
                "POLL_MIN_SECONDS must not exceed POLL_MAX_SECONDS".into(),
            ));
        }
        Ok(c)
    }
}

/// Everything the DMS steps read from their environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    pub task_arn: String,
    pub poll: PollConfig,
}

impl ReplicationConfig {
    /// `REPLICATION_TASK_ARN` plus [`PollConfig::from_env`].
    pub fn from_env() -> Result<Self, StepError> {
        Ok(Self {
            task_arn: config::arn(
                "REPLICATION_TASK_ARN",
                "the DMS task (arn:aws:dms:…:task:…)",
            )?,
            poll: PollConfig::from_env()?,
        })
    }
}

/// Seconds since the Unix epoch.
pub fn epoch_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where a run stands besides the task's own state.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub task_arn: String,
    pub start_kind: Option<String>,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    pub elapsed: Duration,
    pub polls: u32,
}

/// The replication document for `state`.
pub fn output(
    run: &RunInfo,
    state: &TaskState,
    status: ReplicationStatus,
    wait: Duration,
) -> ReplicationOutput {
    ReplicationOutput {
        task_arn: run.task_arn.clone(),
        status,
        start_kind: run.start_kind.clone(),
        started_at: run.started_at,
        elapsed_seconds: run.elapsed.as_secs(),
        wait_seconds: wait.as_secs(),
        polls: run.polls,
        // A percentage means something only once DMS is loading.
        progress_percent: state.full_load_progress_percent.filter(|_| {
            matches!(
                status,
                ReplicationStatus::Running | ReplicationStatus::Succeeded
            ) && state.status != TaskStatus::Starting
        }),
        tables_loaded: state.tables_loaded,
        tables_loading: state.tables_loading,
        tables_queued: state.tables_queued,
        tables_errored: state.tables_errored,
        rows_loaded: state.rows_loaded,
        table_rows: (status == ReplicationStatus::Succeeded)
            .then(|| table_rows(state))
            .flatten(),
    }
}

/// The per-table counts as a map, if any were reported and they fit the payload.
fn table_rows(state: &TaskState) -> Option<std::collections::BTreeMap<String, i64>> {
    if state.table_rows.is_empty() {
        return None;
    }
    let mut map = std::collections::BTreeMap::new();
    for (table, rows) in &state.table_rows {
        *map.entry(table.clone()).or_insert(0) += rows;
    }
    let size: usize = map.keys().map(|k| k.len() + 24).sum();
    (size <= crate::io::MAX_TABLE_ROWS_BYTES).then_some(map)
}
