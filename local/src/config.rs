//! What a local run is given: the databases, where versions come from, the
//! table selection and the knobs; plus the deployed definition with local ARNs.

use std::time::Duration;

use dbsync_db::{fks::OrphanPolicy, DbConfig, Selection};
use dbsync_workflow::config::CopyEngine;
use dbsync_workflow::{naming, steps::replication::PollConfig, sync_config::SyncConfig, StepError};

/// The one state machine definition, as deployed.
pub const DEFINITION: &str = include_str!("../../statemachine/db-sync.asl.json");

/// The account/region local ARNs use.
const LOCAL: &str = "local:000000000000";
/// What the start/poll steps are told the task is.
pub const LOCAL_TASK_ARN: &str = "arn:aws:dms:local:000000000000:task:dbsync-local";

/// Local poll bounds: short, since local copies are quick (waits are also scaled).
pub const LOCAL_POLL: PollConfig = PollConfig {
    min_wait: Duration::from_secs(2),
    max_wait: Duration::from_secs(60),
    max_duration: Duration::from_secs(6 * 3600),
};

/// The region local execution ARNs carry: an execution of another region is
/// not a local run's to judge.
pub const LOCAL_REGION: &str = "local";

/// Mappings that select every user table (what `--table-mappings` defaults to).
pub use dbsync_workflow::steps::preflight::ALL_TABLES;

/// The definition with local ARNs in place of the template's substitutions.
pub fn local_definition(engine: CopyEngine) -> Result<String, StepError> {
    naming::substitute_for(DEFINITION, LOCAL, engine)
}

/// Where schema versions come from in a local run.
#[derive(Debug, Clone)]
pub enum Versions {
    /// A directory with `production` and `staging` files.
    Dir(std::path::PathBuf),
    /// A query run against both databases.
    Query(String),
}

/// Everything a local run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub source: DbConfig,
    pub target: DbConfig,
    pub versions: Versions,
    pub selection: Selection,
    /// Refresh the materialized views over the synced tables after the load.
    pub refresh_views: bool,
    /// The mappings' JSON text, as a DMS task would hold it (`None`: every user table).
    pub table_mappings: Option<String>,
    pub orphan_policy: OrphanPolicy,
    pub parallelism: usize,
    /// Load into the indexed tables (`--keep-indexes`): nothing dropped.
    pub keep_indexes: bool,
    /// Real seconds per state-machine second (Wait states, retries).
    pub time_scale: f64,
    /// Test hook: make the copy of this table fail.
    pub fail_table: Option<String>,
    /// Data rules (applied in flight by the copy) and `after_sync` SQL.
    pub sync: SyncConfig,
    /// Who copies: the local replicator behind the DMS states, or the Lambda
    /// engine's plan and copy-piece handlers (`--engine lambda`).
    pub engine: CopyEngine,
    /// The Lambda engine's piece size, in MB.
    pub piece_mb: u64,
}
