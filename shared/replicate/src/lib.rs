//! The local replicator: what AWS DMS's full load does for dbsync, on one
//! machine, behind the same task ports (`DescribeTask`, `StartTask`,
//! `StopTask`) the start/poll steps use.
//!
//! - The tables are the ones the DMS selection rules choose (partitioned
//!   tables are copied partition by partition; their parents hold no rows).
//! - Every copy reads **one exported snapshot** of the source
//!   (`pg_export_snapshot` / `SET TRANSACTION SNAPSHOT`), so, unlike DMS, the
//!   copy is consistent across tables and leaves no orphans.
//! - User triggers of a table are switched off for its load and back on (in
//!   the mode each had) in the same transaction, so copied rows are not
//!   rewritten or audited and no crash leaves a trigger off.
//! - The schemas are compared again when the copy starts (see
//!   `dbsync_db::schema`): a difference refuses the copy before any table is
//!   touched. Columns are matched by name; a lossless cast the configuration
//!   allows is done in the source's `SELECT`.
//! - Each table is `TRUNCATE`d and loaded in one target transaction, with
//!   `COPY … TO STDOUT` streamed into `COPY … FROM STDIN (FREEZE)`: binary
//!   format where every column's binary value reads the same on both sides,
//!   text (each value parsed by staging's type) where it would not (arrays
//!   and composites of user types carry type oids);
//!   several tables at once on separate connections, largest first.
//! - A table larger than one worker's share of the copy is split into block
//!   ranges (TID range scans, PostgreSQL 14+) that several workers copy at
//!   once, all from the same snapshot, so one big table uses every worker.
//!   Such a table is truncated once up front and its ranges are loaded
//!   without FREEZE (which needs the truncation in the loading transaction);
//!   a table with user triggers on the target is never split, since
//!   switching them off per range would serialize the ranges.
//! - Explicit column lists: generated columns are skipped (the target
//!   computes them), identity `ALWAYS` columns are written as they are.
//! - Like DMS, a table that fails is counted as errored and the others go on;
//!   the task then stops with errored tables, which the poll step reports.
//!
//! Layout: [`plan`](plan()) and the pieces (`plan.rs`), the workers and the
//! copy of one piece (`copy.rs`), the DMS ports a local run drives
//! (`ports.rs`); this file holds the options, the progress and [`replicate`].

mod copy;
pub mod pieces;
mod plan;
mod ports;

use std::{
    sync::{Arc, Mutex},
    time::SystemTime,
};

use dbsync_db::{classify, DbConfig, Selection};
use dbsync_workflow::{
    ports::{TaskState, TaskStatus, FULL_LOAD_FINISHED},
    sync_config::SyncConfig,
    StepError,
};

use crate::copy::{copy_formats, worker, Plans};
use crate::plan::split;

pub use plan::{
    block_ranges, key_bounds, piece_counts, pieces_by_size, plan, primary_key, Key, TableCopy,
    MIN_PIECE_BYTES,
};
pub use ports::LocalReplicator;

/// How a replication is set up.
#[derive(Debug, Clone)]
pub struct ReplicateOptions {
    pub source: DbConfig,
    pub target: DbConfig,
    pub selection: Selection,
    /// Tables copied at once (each uses one source and one target connection).
    pub parallelism: usize,
    /// For tests of the failure path: make the copy of this table (`schema.table`) fail.
    pub fail_table: Option<String>,
    /// The data rules, applied in flight: the copy selects masked values from
    /// the source, so raw ones never reach the target.
    pub sync: SyncConfig,
    /// `COPY … FREEZE` for tables loaded whole: rows arrive frozen and
    /// all-visible, so the verification's count and later reads write no
    /// hint bits (measured in BENCHMARKS.md; `false` only to measure it).
    pub freeze: bool,
}

/// Per-table result, for summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableResult {
    pub table: String,
    /// `schema.table` unquoted, as DMS's table statistics name it.
    pub key: String,
    pub rows: u64,
    pub error: Option<String>,
    /// Block ranges the table was copied in (1: whole, with FREEZE).
    pub pieces: usize,
}

/// Live progress of one replication run, readable while it runs.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub running: bool,
    pub finished: bool,
    pub ever_started: bool,
    pub started_at: Option<SystemTime>,
    pub tables_total: usize,
    pub tables_loading: usize,
    pub bytes_total: i64,
    pub bytes_done: i64,
    pub rows: u64,
    pub results: Vec<TableResult>,
    /// A failure of the whole run (not of one table).
    pub failure: Option<String>,
    pub stopped_by_user: bool,
}

impl Progress {
    pub fn tables_loaded(&self) -> usize {
        self.results.iter().filter(|r| r.error.is_none()).count()
    }

    pub fn tables_errored(&self) -> usize {
        self.results.iter().filter(|r| r.error.is_some()).count()
    }

    pub fn percent(&self) -> i32 {
        if self.finished {
            return 100;
        }
        if self.bytes_total > 0 {
            (self.bytes_done * 100 / self.bytes_total).clamp(0, 99) as i32
        } else {
            (self.results.len() * 100)
                .checked_div(self.tables_total)
                .unwrap_or(0)
                .min(99) as i32
        }
    }

    /// The state DMS would report for this run.
    pub fn task_state(&self) -> TaskState {
        let (status, stop_reason) = if self.running {
            (TaskStatus::Running, None)
        } else if self.failure.is_some() {
            (TaskStatus::Failed, None)
        } else if self.stopped_by_user {
            (TaskStatus::Stopped, Some("Stop Reason STOPPED_BY_USER"))
        } else if self.finished {
            (TaskStatus::Stopped, Some(FULL_LOAD_FINISHED))
        } else {
            (TaskStatus::Ready, None)
        };
        let first_error = self
            .results
            .iter()
            .find_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.table)));
        TaskState {
            status,
            stop_reason: stop_reason.map(Into::into),
            last_failure_message: self.failure.clone().or(first_error),
            ever_started: self.ever_started,
            started_at: self.started_at,
            full_load_progress_percent: Some(self.percent()),
            tables_loaded: self.tables_loaded() as i64,
            tables_loading: self.tables_loading as i64,
            tables_queued: self
                .tables_total
                .saturating_sub(self.results.len() + self.tables_loading)
                as i64,
            tables_errored: self.tables_errored() as i64,
            rows_loaded: Some(self.rows as i64),
            failed_tables: self
                .results
                .iter()
                .filter(|r| r.error.is_some())
                .map(|r| format!("{}: Table error", r.table))
                .collect(),
            table_rows: self
                .results
                .iter()
                .filter(|r| r.error.is_none())
                .map(|r| (r.key.clone(), r.rows as i64))
                .collect(),
            ..Default::default()
        }
    }
}

/// Copies every selected table; per-table failures are recorded in `progress`.
pub async fn replicate(
    opts: &ReplicateOptions,
    progress: &Arc<Mutex<Progress>>,
) -> Result<(), StepError> {
    let ctx = "starting the copy";
    // The exporting transaction must stay open until every worker has imported the snapshot.
    let exporter = opts.source.connect().await?;
    exporter
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| classify(e, ctx))?;
    let snapshot: String = exporter
        .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
        .await
        .map_err(|e| classify(e, ctx))?
        .get(0);
    let tables = plan(&exporter, &opts.selection).await?;
    let masks = Arc::new(dbsync_db::mask::plan(&exporter, &opts.selection, &opts.sync).await?);
    let formats = Arc::new(copy_formats(opts).await?);
    let workers = opts.parallelism.max(1);
    let pieces = split(opts, &exporter, tables, workers, progress).await?;
    let queue = Arc::new(Mutex::new(
        pieces
            .into_iter()
            .collect::<std::collections::VecDeque<_>>(),
    ));
    // A JoinSet: when the copy is stopped (this future dropped), every worker
    // is aborted with it — its session closes and its table's transaction
    // rolls back — instead of copying on behind the stop.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (opts, progress, queue, snapshot, masks, formats) = (
            opts.clone(),
            progress.clone(),
            queue.clone(),
            snapshot.clone(),
            masks.clone(),
            formats.clone(),
        );
        set.spawn(async move {
            let plans = Plans {
                masks: &masks,
                formats: &formats,
            };
            worker(&opts, &snapshot, plans, &queue, &progress).await
        });
    }
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(StepError::Configuration(format!(
                    "a copy worker stopped: {e}"
                )));
            }
        }
    }
    let _ = exporter.batch_execute("COMMIT").await;
    first_err.map_or(Ok(()), Err)
}
