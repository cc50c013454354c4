//! Step input and output documents (camelCase JSON, as the state machine sees them).

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::StepError;

/// Parses a step's event, turning any mismatch into the stable `InvalidInput`
/// error (the runtime's own deserialisation error would surface a Rust type name).
pub fn parse_input<T: DeserializeOwned>(event: serde_json::Value) -> Result<T, StepError> {
    if !event.is_object() {
        return Err(StepError::InvalidInput(format!(
            "expected a JSON object, got {}",
            kind(&event)
        )));
    }
    serde_json::from_value(event).map_err(|e| StepError::InvalidInput(e.to_string()))
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Input of the database steps. Everything they need is configuration or lives
/// in the target; unknown fields are accepted so the state machine can pass its
/// whole state.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbStepInput {
    /// The execution's ARN (`$$.Execution.Id`): the run lease must be this
    /// execution's (or free, for a step started by hand with `{}`).
    #[serde(default)]
    pub execution_id: Option<String>,
    /// Restore on the failure path: never deletes rows, whatever ORPHAN_POLICY says.
    #[serde(default)]
    pub compensation: bool,
}

/// When the execution started (`$$.Execution.StartTime`, RFC 3339), for the
/// DMS steps to tell this execution's run from an earlier one.
pub fn execution_start(text: Option<&str>) -> Result<Option<std::time::SystemTime>, StepError> {
    text.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(std::time::SystemTime::from)
            .map_err(|_| {
                StepError::InvalidInput(format!(
                    "executionStartTime {:?} is not an RFC 3339 time",
                    t.chars().take(40).collect::<String>()
                ))
            })
    })
    .transpose()
}

/// Input of `start-dms`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartInput {
    #[serde(default)]
    pub execution_start_time: Option<String>,
}

/// Where the target endpoint of the DMS task points.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointTarget {
    pub server: String,
    pub port: i32,
    pub database: String,
}

/// Output of `preflight`: what the DB side checks next, and what it reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreflightOutput {
    pub task_arn: String,
    /// The task's target endpoint: the lease step refuses a staging connection
    /// elsewhere (null with the Lambda engine: no endpoint).
    pub target: Option<EndpointTarget>,
    /// The task's own table mappings (the one source of the synced tables).
    pub table_mappings: String,
    /// Settings that do not stop a sync but change what lands in staging.
    pub warnings: Vec<String>,
    /// Publish a notification when the sync succeeds (`NOTIFY_ON_SUCCESS`):
    /// read once here so the state machine's choice sees one value per run.
    #[serde(default)]
    pub notify_on_success: bool,
}

/// Input of `lease`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseInput {
    pub action: LeaseAction,
    #[serde(default)]
    pub execution_id: Option<String>,
    /// From preflight (acquire): the DMS target endpoint and the table mappings.
    #[serde(default)]
    pub target: Option<EndpointTarget>,
    #[serde(default)]
    pub table_mappings: Option<String>,
    /// Take the lease over from this execution (acquire), which Step Functions
    /// says is no longer running.
    #[serde(default)]
    pub take_over: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseAction {
    #[default]
    Acquire,
    Release,
}

/// Output of `lease`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseOutput {
    /// Acquire: this execution holds the lease now. Release: it was released.
    pub done: bool,
    /// Acquire refused: the execution holding the lease (ask Step Functions whether it still runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Acquire: tables the mappings select in the target.
    #[serde(default)]
    pub tables: u64,
    /// Acquire: whether the source database was reached (only when a source connection is configured).
    #[serde(default)]
    pub source_checked: bool,
}

/// Output of `drop-fks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DropFksOutput {
    /// Tables selected by the table mappings.
    pub tables: u64,
    /// Foreign keys dropped by this invocation.
    pub dropped: u64,
    /// Foreign keys saved in the target and waiting to be restored (this run's and any earlier).
    pub saved: u64,
    /// `CHECK … NOT VALID` constraints saved and dropped for the load (restored with the FKs).
    #[serde(default)]
    pub checks_dropped: u64,
    /// User triggers saved (with their mode) and switched off for the load.
    #[serde(default)]
    pub triggers_disabled: u64,
    /// Indexes (and primary keys / unique constraints) saved and dropped for
    /// the load, rebuilt by `restore-fks`.
    #[serde(default)]
    pub indexes_dropped: u64,
}

/// One constraint that could not be validated because of orphan rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanReport {
    /// `schema.table.constraint`, identifiers quoted where needed.
    pub constraint: String,
    pub orphan_rows: u64,
}

/// Output of `restore-fks`. The state machine loops while `remaining > 0`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreFksOutput {
    /// Constraints re-created (NOT VALID, or validated on the spot where PostgreSQL requires it).
    pub added: u64,
    /// `CHECK … NOT VALID` constraints put back as they were.
    #[serde(default)]
    pub checks_restored: u64,
    /// User triggers switched back on, each in the mode it had.
    #[serde(default)]
    pub triggers_restored: u64,
    /// Indexes dropped for the load and built again by this invocation.
    #[serde(default)]
    pub indexes_rebuilt: u64,
    /// Indexes still to build (counted in `remaining` too).
    #[serde(default)]
    pub indexes_remaining: u64,
    /// Constraints validated by this invocation.
    pub validated: u64,
    /// Constraints skipped because an identical one already existed.
    pub skipped_existing: u64,
    /// Constraints still waiting for validation (call again).
    pub remaining: u64,
    /// Orphan rows deleted (ORPHAN_POLICY=delete).
    pub deleted_orphan_rows: u64,
    /// Constraints left NOT VALID on purpose (ORPHAN_POLICY=keep-not-valid, or
    /// on the failure path); at most [`RestoreFksOutput::LISTED`] listed.
    pub kept_not_valid: Vec<OrphanReport>,
    /// How many constraints were left NOT VALID, listed or not.
    #[serde(default)]
    pub kept_not_valid_total: u64,
}

impl RestoreFksOutput {
    /// Outputs stay far below Step Functions' 256 KB, however big the schema.
    pub const LISTED: usize = 20;
}

/// Output of `fix-sequences`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FixSequencesOutput {
    /// Sequences behind the selected tables' columns.
    pub sequences: u64,
    /// Sequences whose position was changed.
    pub changed: u64,
}

/// Output of `refresh-views`. The state machine loops while `remaining > 0`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshViewsOutput {
    /// Materialized views that depend on the synced tables.
    pub views: u64,
    /// Refreshed by this invocation.
    pub refreshed: u64,
    /// Of those, refreshed `CONCURRENTLY` (readers not blocked).
    pub concurrently: u64,
    /// Still to refresh (call again).
    pub remaining: u64,
    /// Refreshing is switched off (`REFRESH_VIEWS=false`).
    #[serde(default)]
    pub disabled: bool,
}

/// What the `after-load` step does in one invocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AfterLoadAction {
    /// Apply the data rules to the loaded rows (AWS; locally they were masked in flight).
    #[default]
    Mask,
    /// Count each table's rows against the rows the load copied.
    Verify,
    /// Run the `after_sync` statements.
    AfterSync,
}

/// Input of `after-load`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AfterLoadInput {
    #[serde(default)]
    pub action: AfterLoadAction,
    #[serde(default)]
    pub execution_id: Option<String>,
    /// `verify`: the rows the load copied per table (`schema.table`), from
    /// the replication document; absent when they were not reported.
    #[serde(default)]
    pub copied: Option<BTreeMap<String, i64>>,
}

/// Output of `after-load` with `mask`. The state machine loops while `remaining > 0`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaskOutput {
    /// Tables (partitions counted one by one) with masked columns.
    pub tables: u64,
    /// Masked columns over those tables.
    pub columns: u64,
    /// Rows updated by this invocation.
    pub rows: u64,
    /// Rows updated by this execution so far.
    pub rows_total: u64,
    /// Tables not finished yet (call again).
    pub remaining: u64,
    /// Masked in flight by the copy (local mode): nothing left to update.
    #[serde(default)]
    pub in_flight: bool,
}

/// Output of `after-load` with `after-sync`. The state machine loops while `remaining > 0`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AfterSyncOutput {
    pub statements: u64,
    /// Run by this invocation.
    pub ran: u64,
    pub remaining: u64,
}

/// One table whose count differs from what the load reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableCount {
    pub table: String,
    /// Rows the load reported copying (absent: the load did not report the table).
    pub copied: Option<i64>,
    /// Rows in the target (absent: the table is not there).
    pub target: Option<i64>,
}

/// At most this many flagged tables travel in the summary (the rest are counted).
pub const MAX_FLAGGED: usize = 25;

/// At most this many tables are listed with their counts (in name order).
pub const MAX_LISTED: usize = 100;

/// Output of `after-load` with `verify`: the verification summary, compact
/// whatever the schema's size. The state machine loops while `remaining > 0`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyOutput {
    /// Tables counted.
    pub tables: u64,
    /// Rows the load reported (sum), when it reported them.
    pub rows_copied: Option<i64>,
    /// Rows counted in the target (sum).
    pub rows_in_target: i64,
    /// The first [`MAX_FLAGGED`] tables whose counts differ.
    pub flagged: Vec<TableCount>,
    /// The first [`MAX_LISTED`] tables with their counts, for the run's report.
    #[serde(default)]
    pub counts: Vec<TableCount>,
    pub flagged_total: u64,
    /// Tables still to count (call again).
    pub remaining: u64,
    /// The load reported no per-table counts (too many tables for the
    /// payload, or an older replication document): totals only.
    #[serde(default)]
    pub per_table_unavailable: bool,
}

/// Output of `version-check`. The state machine's Choice reads `inSync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionCheckOutput {
    pub in_sync: bool,
    pub prod_version: String,
    pub staging_version: String,
}

/// Where a replication run stands, as the state machine's Choice sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationStatus {
    /// Just started (start-dms).
    Starting,
    /// Still loading: wait `waitSeconds`, then poll again.
    Running,
    /// Stopped with `FULL_LOAD_ONLY_FINISHED` and no table errored.
    Succeeded,
    /// Stop mode: asked to stop, not stopped yet (wait, then ask again).
    Stopping,
    /// Stop mode: the task is not writing (stopped, failed, ready).
    Stopped,
}

/// The replication document: `start-dms`'s output and `poll-dms`'s output,
/// fed back to `poll-dms` as its input's `replication` (so it carries the
/// run's start time and poll count). Small on purpose: counts, not tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationOutput {
    pub task_arn: String,
    pub status: ReplicationStatus,
    /// `start-replication` or `reload-target`: how this run was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_kind: Option<String>,
    /// When the run started, seconds since the Unix epoch.
    pub started_at: u64,
    /// Seconds since `startedAt`.
    pub elapsed_seconds: u64,
    /// The next Wait state's duration (`SecondsPath`); 0 once finished.
    pub wait_seconds: u64,
    /// Polls so far (each costs Wait + Task + Choice transitions).
    pub polls: u32,
    /// DMS's `FullLoadProgressPercent`, once the task is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_percent: Option<i32>,
    /// Seconds into the full load itself at that reading (`FullLoadStartDate`
    /// known): the clock for the progress rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_elapsed_seconds: Option<u64>,
    /// DMS's own word for the state, when it says more (DMS Serverless:
    /// `provisioning_capacity`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub tables_loaded: i64,
    pub tables_loading: i64,
    pub tables_queued: i64,
    pub tables_errored: i64,
    /// Rows copied, when the replicator reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_loaded: Option<i64>,
    /// Rows copied per table (`schema.table`), once the load has succeeded;
    /// null before, or when the list would not fit the payload
    /// ([`MAX_TABLE_ROWS_BYTES`]). Always present, so a state can pass it on.
    #[serde(default)]
    pub table_rows: Option<BTreeMap<String, i64>>,
    /// A poll has seen this execution's own run (started, or stopped, after
    /// the execution began): remembered, so statistics and start dates lost
    /// later (DMS Serverless deprovisioning) cannot make it someone else's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub run_seen: bool,
}

/// The per-table counts travel in the execution's state only up to this size
/// (Step Functions caps a state's data at 256 KB); verification falls back to
/// totals beyond it.
pub const MAX_TABLE_ROWS_BYTES: usize = 64 * 1024;

/// Input of `poll-dms`: the previous [`ReplicationOutput`] under `replication`
/// (every field optional, so a hand-made `{}` polls too; unknown fields ignored).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollInput {
    #[serde(default)]
    pub replication: Option<PollState>,
    /// `$$.Execution.StartTime`: only a run started after it is this execution's.
    #[serde(default)]
    pub execution_start_time: Option<String>,
    /// `poll` (default) or `stop`: stop the task if it runs and report when it has.
    #[serde(default)]
    pub mode: PollMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    #[default]
    Poll,
    Stop,
}

/// What `poll-dms` carries from one poll to the next.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollState {
    #[serde(default)]
    pub started_at: Option<u64>,
    #[serde(default)]
    pub polls: Option<u32>,
    #[serde(default)]
    pub start_kind: Option<String>,
    /// The previous poll's reading (time into the run, percent), for the rate.
    #[serde(default)]
    pub elapsed_seconds: Option<u64>,
    #[serde(default)]
    pub progress_percent: Option<i32>,
    /// The previous reading's time into the full load itself (start-up and
    /// provisioning left out), when DMS reported when the load began.
    #[serde(default)]
    pub progress_elapsed_seconds: Option<u64>,
    /// A poll already saw this execution's run.
    #[serde(default)]
    pub run_seen: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn db_input_accepts_any_object_and_rejects_the_rest() {
        parse_input::<DbStepInput>(json!({})).unwrap();
        parse_input::<DbStepInput>(json!({"source": "schedule", "x": [1]})).unwrap();
        let e = parse_input::<DbStepInput>(json!([1])).unwrap_err();
        assert_eq!(e.name(), "InvalidInput");
        assert!(e.to_string().contains("an array"), "{e}");
    }

    #[test]
    fn outputs_are_camel_case() {
        let v = serde_json::to_value(RestoreFksOutput {
            remaining: 2,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(v["remaining"], 2);
        assert!(v.get("skippedExisting").is_some());
        assert!(v.get("deletedOrphanRows").is_some());
    }

    #[test]
    fn poll_input_takes_the_previous_output_or_nothing() {
        let p: PollInput = parse_input(json!({})).unwrap();
        assert!(p.replication.is_none());
        let p: PollInput = parse_input(json!({
            "execution": "x",
            "replication": {"taskArn": "t", "status": "running", "startedAt": 1700000000, "polls": 3, "waitSeconds": 60}
        }))
        .unwrap();
        let r = p.replication.unwrap();
        assert_eq!((r.started_at, r.polls), (Some(1_700_000_000), Some(3)));
        let e = parse_input::<PollInput>(json!({"replication": {"startedAt": "yesterday"}}))
            .unwrap_err();
        assert_eq!(e.name(), "InvalidInput");
    }
}
