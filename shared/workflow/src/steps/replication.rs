//! What start-dms and poll-dms share: the task and poll-schedule
//! configuration, and the replication document they both return.
//!
//! Configuration (read once per cold start, see [`ReplicationConfig::from_env`]):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `REPLICATION_TASK_ARN` | the DMS full-load task | this or `REPLICATION_CONFIG_ARN` |
//! | `REPLICATION_CONFIG_ARN` | a DMS Serverless replication config (full load) | this or `REPLICATION_TASK_ARN` |
//! | `POLL_MIN_SECONDS` | shortest wait between polls (and the first one) | 30 |
//! | `POLL_MAX_SECONDS` | longest wait between polls | 7200 |
//! | `MAX_REPLICATION_SECONDS` | a load running longer is stopped and fails | 43200 |

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{
    config,
    io::{ReplicationOutput, ReplicationStatus},
    ports::{TaskState, TaskStatus},
    vars, StepError,
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
            min_wait: Duration::from_secs(vars::default_u64(vars::POLL_MIN_SECONDS)),
            max_wait: Duration::from_secs(vars::default_u64(vars::POLL_MAX_SECONDS)),
            max_duration: Duration::from_secs(vars::default_u64(vars::MAX_REPLICATION_SECONDS)),
        }
    }
}

impl PollConfig {
    /// `POLL_MIN_SECONDS`, `POLL_MAX_SECONDS`, `MAX_REPLICATION_SECONDS`.
    pub fn from_env() -> Result<Self, StepError> {
        let d = Self::default();
        let c = Self {
            min_wait: config::seconds(vars::POLL_MIN_SECONDS, d.min_wait)?,
            max_wait: config::seconds(vars::POLL_MAX_SECONDS, d.max_wait)?,
            max_duration: config::seconds(vars::MAX_REPLICATION_SECONDS, d.max_duration)?,
        };
        if c.min_wait > c.max_wait {
            return Err(StepError::Configuration(
                "POLL_MIN_SECONDS must not exceed POLL_MAX_SECONDS".into(),
            ));
        }
        Ok(c)
    }
}

/// What dbsync drives: a DMS replication task or a DMS Serverless replication
/// config. The steps treat both alike; the adapter differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationKind {
    /// `arn:aws:dms:…:task:…`
    Task,
    /// `arn:aws:dms:…:replication-config:…`
    Serverless,
}

impl ReplicationKind {
    /// The kind an ARN names (its resource type).
    pub fn of(arn: &str) -> Option<Self> {
        let resource = arn.splitn(6, ':').nth(5)?;
        if arn.starts_with("arn:") && arn.split(':').nth(2) == Some("dms") {
            if resource.starts_with("task:") {
                return Some(Self::Task);
            }
            if resource.starts_with("replication-config:") {
                return Some(Self::Serverless);
            }
        }
        None
    }
}

/// `REPLICATION_TASK_ARN` or `REPLICATION_CONFIG_ARN`, exactly one, each of its kind.
pub fn replication_from_env() -> Result<(ReplicationKind, String), StepError> {
    let pick = |var: &str, want: ReplicationKind, what: &str| {
        config::var(var)
            .map(|arn| match ReplicationKind::of(&arn) {
                Some(k) if k == want => Ok(arn),
                _ => Err(StepError::Configuration(format!(
                    "{var} must be {what}'s ARN (arn:aws:dms:region:account:{}:…)",
                    if want == ReplicationKind::Task {
                        "task"
                    } else {
                        "replication-config"
                    }
                ))),
            })
            .transpose()
    };
    let task = pick(
        vars::REPLICATION_TASK_ARN,
        ReplicationKind::Task,
        "a DMS task",
    )?;
    let serverless = pick(
        vars::REPLICATION_CONFIG_ARN,
        ReplicationKind::Serverless,
        "a DMS Serverless replication config",
    )?;
    match (task, serverless) {
        (Some(t), None) => Ok((ReplicationKind::Task, t)),
        (None, Some(s)) => Ok((ReplicationKind::Serverless, s)),
        (Some(_), Some(_)) => Err(StepError::Configuration(
            "both REPLICATION_TASK_ARN and REPLICATION_CONFIG_ARN are set; set only one".into(),
        )),
        (None, None) => Err(StepError::Configuration(
            "set REPLICATION_TASK_ARN (a DMS task) or REPLICATION_CONFIG_ARN (a DMS Serverless replication config)".into(),
        )),
    }
}

/// Everything the DMS steps read from their environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// The task's or the replication config's ARN.
    pub task_arn: String,
    pub kind: ReplicationKind,
    pub poll: PollConfig,
}

impl ReplicationConfig {
    /// [`replication_from_env`] plus [`PollConfig::from_env`].
    pub fn from_env() -> Result<Self, StepError> {
        let (kind, task_arn) = replication_from_env()?;
        Ok(Self {
            task_arn,
            kind,
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
    /// Time into the full load itself, when DMS says when it began.
    pub load_elapsed: Option<Duration>,
    pub polls: u32,
}

/// The replication document for `state`.
pub fn output(
    run: &RunInfo,
    state: &TaskState,
    status: ReplicationStatus,
    wait: Duration,
) -> ReplicationOutput {
    // A percentage means something only once DMS is loading.
    let progress_percent = state.full_load_progress_percent.filter(|_| {
        matches!(
            status,
            ReplicationStatus::Running | ReplicationStatus::Succeeded
        ) && state.status != TaskStatus::Starting
    });
    ReplicationOutput {
        task_arn: run.task_arn.clone(),
        status,
        start_kind: run.start_kind.clone(),
        started_at: run.started_at,
        elapsed_seconds: run.elapsed.as_secs(),
        wait_seconds: wait.as_secs(),
        polls: run.polls,
        // A percentage means something only once DMS is loading.
        progress_percent,
        progress_elapsed_seconds: progress_percent.and(run.load_elapsed).map(|d| d.as_secs()),
        detail: state.detail.clone(),
        tables_loaded: state.tables_loaded,
        tables_loading: state.tables_loading,
        tables_queued: state.tables_queued,
        tables_errored: state.tables_errored,
        rows_loaded: state.rows_loaded,
        table_rows: (status == ReplicationStatus::Succeeded)
            .then(|| table_rows(state))
            .flatten(),
        run_seen: false,
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
