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

use std::{
    sync::{Arc, Mutex},
    time::SystemTime,
};

use dbsync_db::{classify, mask::MaskPlan, schema::CopyFormat, sql::ident, DbConfig, Selection};
use dbsync_workflow::{
    ports::{
        DescribeTask, StartKind, StartRefusal, StartTask, StopTask, TaskState, TaskStatus,
        FULL_LOAD_FINISHED,
    },
    sync_config::SyncConfig,
    StepError,
};
use futures_util::SinkExt;
use tokio::task::JoinHandle;
use tokio_postgres::{types::Type, Client};

/// The source tables to copy, leaf tables only, with their sizes and columns.
const SOURCE_TABLES: &str = "
WITH sel AS (SELECT unnest($1::pg_catalog.oid[]) AS oid),
leaves AS (
    -- pg_partition_tree() is empty for a plain table: take those as they are.
    SELECT oid FROM sel
    UNION
    SELECT t.relid FROM sel, pg_catalog.pg_partition_tree(sel.oid) AS t WHERE t.isleaf
)
SELECT n.nspname::text, c.relname::text, pg_catalog.pg_relation_size(c.oid),
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
             ORDER BY a.attnum)
FROM (SELECT DISTINCT oid FROM leaves) AS l
JOIN pg_catalog.pg_class c ON c.oid = l.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
ORDER BY pg_catalog.pg_relation_size(c.oid) DESC, 1, 2";

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

/// The smallest block range worth a worker of its own.
pub const MIN_PIECE_BYTES: i64 = 8 * 1024 * 1024;

/// How many block ranges each table (sizes in bytes, any order) is copied in
/// by `workers` workers. A table larger than one worker's share of the whole
/// copy is split into pieces of about half a share, so the pieces and the
/// other tables, taken largest first, keep every worker busy to the end.
pub fn piece_counts(sizes: &[i64], workers: usize) -> Vec<usize> {
    let total: i64 = sizes.iter().map(|s| (*s).max(1)).sum();
    let w = workers.max(1) as i64;
    sizes
        .iter()
        .map(|&bytes| {
            if w < 2 || bytes * w <= total || bytes < 2 * MIN_PIECE_BYTES {
                return 1;
            }
            let by_share = (bytes * 2 * w + total - 1) / total;
            by_share.min(bytes / MIN_PIECE_BYTES).max(2) as usize
        })
        .collect()
}

/// `n` block ranges covering a table of `blocks` blocks: `[start, end)`, the
/// last one open (rows in blocks added after the plan are not visible to the
/// snapshot anyway, but an open end cannot miss any).
pub fn block_ranges(blocks: i64, n: usize) -> Vec<(i64, Option<i64>)> {
    let n = n.max(1) as i64;
    (0..n)
        .map(|k| {
            let start = blocks * k / n;
            let end = (k + 1 < n).then(|| blocks * (k + 1) / n);
            (start, end)
        })
        .collect()
}

/// One table to copy.
#[derive(Debug, Clone)]
pub struct TableCopy {
    pub schema: String,
    pub name: String,
    pub bytes: i64,
    pub columns: Vec<String>,
}

impl TableCopy {
    pub fn qualified(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One table's copy, shared by the pieces it is copied in.
struct TableJob {
    copy: TableCopy,
    /// Block ranges it is copied in (more than 1: truncated up front, no FREEZE).
    pieces: usize,
    state: Mutex<JobState>,
}

#[derive(Default)]
struct JobState {
    pieces_left: usize,
    started: bool,
    rows: u64,
    error: Option<String>,
}

/// One unit of copy work: a whole table, or one block range of a split one.
struct Piece {
    job: Arc<TableJob>,
    blocks: Option<(i64, Option<i64>)>,
    bytes: i64,
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

/// A local stand-in for one DMS task.
pub struct LocalReplicator {
    opts: ReplicateOptions,
    progress: Arc<Mutex<Progress>>,
    job: Mutex<Option<JoinHandle<()>>>,
}

impl LocalReplicator {
    pub fn new(opts: ReplicateOptions) -> Self {
        Self {
            opts,
            progress: Arc::new(Mutex::new(Progress::default())),
            job: Mutex::new(None),
        }
    }

    /// A copy of the current progress.
    pub fn progress(&self) -> Progress {
        self.progress.lock().expect("progress lock").clone()
    }
}

impl DescribeTask for LocalReplicator {
    async fn describe(&self, _task: &str) -> Result<TaskState, StepError> {
        let mut state = self.progress().task_state();
        // Like DMS: a stopped copy reports `stopping` until its workers are really gone.
        let winding_down = self
            .job
            .lock()
            .expect("job lock")
            .as_ref()
            .is_some_and(|j| !j.is_finished());
        if state.status == TaskStatus::Stopped && winding_down {
            state.status = TaskStatus::Stopping;
        }
        Ok(state)
    }
}

impl StartTask for LocalReplicator {
    async fn start(&self, _task: &str, kind: StartKind) -> Result<(), StartRefusal> {
        {
            let mut p = self.progress.lock().expect("progress lock");
            // Mirror DMS's rule so the start step's fallback is exercised locally too.
            if (kind == StartKind::StartReplication) == p.ever_started {
                return Err(StartRefusal::WrongStartKind);
            }
            if p.running {
                return Err(StartRefusal::Failed(StepError::Configuration(
                    "the local replicator is already running".into(),
                )));
            }
            *p = Progress {
                running: true,
                ever_started: true,
                started_at: Some(SystemTime::now()),
                ..Progress::default()
            };
        }
        let (opts, progress) = (self.opts.clone(), self.progress.clone());
        let job = tokio::spawn(async move {
            let outcome = replicate(&opts, &progress).await;
            let mut p = progress.lock().expect("progress lock");
            if let Err(e) = outcome {
                p.failure = Some(e.to_string());
            }
            p.running = false;
            p.tables_loading = 0;
            p.finished = p.failure.is_none();
        });
        *self.job.lock().expect("job lock") = Some(job);
        Ok(())
    }
}

impl StopTask for LocalReplicator {
    async fn stop(&self, _task: &str) -> Result<(), StepError> {
        // Kept: `describe` says `stopping` until the aborted copy has ended.
        if let Some(job) = self.job.lock().expect("job lock").as_ref() {
            job.abort();
        }
        let mut p = self.progress.lock().expect("progress lock");
        if p.running {
            p.running = false;
            p.stopped_by_user = true;
        }
        Ok(())
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

/// How each table is read: the schemas compared again at the copy's start
/// (staging may have changed since the run's check), refused on any
/// difference the configuration does not allow; binary format only where
/// every column's binary value reads the same on both sides, and the casts
/// the configuration allows.
async fn copy_formats(opts: &ReplicateOptions) -> Result<Formats, StepError> {
    let (source, target) = (opts.source.connect().await?, opts.target.connect().await?);
    let compat = dbsync_db::schema::check(&source, &target, &opts.selection).await?;
    compat.require(opts.sync.allow_lossless_casts)?;
    Ok(compat.formats)
}

type Formats = std::collections::BTreeMap<(String, String), CopyFormat>;

/// What every worker reads besides the queue.
#[derive(Clone, Copy)]
struct Plans<'a> {
    masks: &'a MaskPlan,
    formats: &'a Formats,
}

/// The work queue: every table whole, or in block ranges when it is larger
/// than one worker's share and can be split; largest piece first. Split
/// tables are truncated here, before any of their ranges is loaded.
async fn split(
    opts: &ReplicateOptions,
    source: &Client,
    tables: Vec<TableCopy>,
    workers: usize,
    progress: &Mutex<Progress>,
) -> Result<Vec<Piece>, StepError> {
    let ctx = "planning the copy";
    {
        let mut p = progress.lock().expect("progress lock");
        p.tables_total = tables.len();
        p.bytes_total = tables.iter().map(|t| t.bytes.max(1)).sum();
    }
    // Experiment hook (benchmarks): DBSYNC_SPLIT=off copies every table whole.
    let split_workers = if std::env::var("DBSYNC_SPLIT").as_deref() == Ok("off") {
        1
    } else {
        workers
    };
    let counts = piece_counts(
        &tables.iter().map(|t| t.bytes).collect::<Vec<_>>(),
        split_workers,
    );
    let row = source
        .query_one(
            "SELECT current_setting('server_version_num')::int4, current_setting('block_size')::int8",
            &[],
        )
        .await
        .map_err(|e| classify(e, ctx))?;
    // TID range scans arrived in PostgreSQL 14; before, every range would scan the whole table.
    let (version, block_size): (i32, i64) = (row.get(0), row.get(1));
    let target = if version >= 140_000 && counts.iter().any(|&n| n > 1) {
        Some(opts.target.connect().await?)
    } else {
        None
    };
    let mut pieces = Vec::new();
    for (copy, n) in tables.into_iter().zip(counts) {
        let n = match (&target, n > 1) {
            (Some(target), true) => match prepare_split(target, &copy).await {
                Ok(true) => n,
                Ok(false) => 1,
                Err(e) => {
                    // Not loaded at all: booked as errored, like a failed copy.
                    let job = Arc::new(TableJob::new(copy, 1));
                    job.start(progress);
                    job.finish(progress, job.copy.bytes.max(1), Err(e));
                    continue;
                }
            },
            _ => 1,
        };
        let job = Arc::new(TableJob::new(copy, n));
        let bytes = job.copy.bytes.max(1);
        if n == 1 {
            pieces.push(Piece {
                job,
                blocks: None,
                bytes,
            });
            continue;
        }
        let blocks = (job.copy.bytes / block_size).max(1);
        for range in block_ranges(blocks, n) {
            pieces.push(Piece {
                job: job.clone(),
                blocks: Some(range),
                bytes: bytes / n as i64,
            });
        }
    }
    pieces.sort_by_key(|p| std::cmp::Reverse(p.bytes));
    Ok(pieces)
}

/// Truncates a table that is to be copied in ranges; `false` when it has user
/// triggers on the target (then it is copied whole, triggers off in its transaction).
async fn prepare_split(target: &Client, t: &TableCopy) -> Result<bool, StepError> {
    let name = t.qualified();
    let err = |e| classify(e, &format!("copying {name}"));
    if !dbsync_db::triggers::user_triggers(target, &name)
        .await
        .map_err(err)?
        .is_empty()
    {
        return Ok(false);
    }
    target
        .batch_execute(&format!("TRUNCATE ONLY {name}"))
        .await
        .map_err(err)?;
    Ok(true)
}

impl TableJob {
    fn new(copy: TableCopy, pieces: usize) -> Self {
        Self {
            copy,
            pieces,
            state: Mutex::new(JobState {
                pieces_left: pieces,
                ..JobState::default()
            }),
        }
    }

    /// Marks a piece begun; `false` when the table has already failed (skip the piece).
    fn start(&self, progress: &Mutex<Progress>) -> bool {
        let mut s = self.state.lock().expect("job lock");
        if !s.started {
            s.started = true;
            progress.lock().expect("progress lock").tables_loading += 1;
        }
        s.error.is_none()
    }

    /// Books one piece's outcome; the table's result once its last piece is in.
    fn finish(&self, progress: &Mutex<Progress>, bytes: i64, result: Result<u64, StepError>) {
        let mut s = self.state.lock().expect("job lock");
        s.pieces_left -= 1;
        let result_rows = result.as_ref().map(|r| *r).map_err(|_| ());
        match result {
            Ok(rows) => s.rows += rows,
            Err(e) => {
                // Reported with the run's result (the failed tables and their causes).
                tracing::info!(table = %self.copy.qualified(), error = %e, "table copy failed");
                s.error.get_or_insert(e.to_string());
            }
        }
        let mut p = progress.lock().expect("progress lock");
        p.bytes_done += bytes;
        if let Ok(rows) = result_rows {
            p.rows += rows;
        }
        if s.pieces_left > 0 {
            return;
        }
        p.tables_loading -= 1;
        if s.error.is_some() {
            // A failed table counts no rows (its loaded ranges are not a copy).
            p.rows -= s.rows;
        }
        let t = &self.copy;
        p.results.push(TableResult {
            table: t.qualified(),
            key: format!("{}.{}", t.schema, t.name),
            rows: if s.error.is_some() { 0 } else { s.rows },
            error: s.error.clone(),
            pieces: self.pieces,
        });
    }
}

/// The tables the selection covers in the source, largest first.
pub async fn plan(source: &Client, selection: &Selection) -> Result<Vec<TableCopy>, StepError> {
    let oids: Vec<u32> = dbsync_db::selected_tables(source, selection)
        .await?
        .iter()
        .map(|t| t.oid)
        .collect();
    let rows = source
        .query_typed(SOURCE_TABLES, &[(&oids, Type::OID_ARRAY)])
        .await
        .map_err(|e| classify(e, "listing the tables to copy"))?;
    Ok(rows
        .iter()
        .map(|r| TableCopy {
            schema: r.get(0),
            name: r.get(1),
            bytes: r.get(2),
            columns: r.get(3),
        })
        .collect())
}

/// One pair of connections taking pieces off the queue until it is empty.
async fn worker(
    opts: &ReplicateOptions,
    snapshot: &str,
    plans: Plans<'_>,
    queue: &Mutex<std::collections::VecDeque<Piece>>,
    progress: &Mutex<Progress>,
) -> Result<(), StepError> {
    let ctx = "opening copy sessions";
    let source = opts.source.connect().await?;
    source
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            dbsync_db::sql::literal(snapshot)
        ))
        .await
        .map_err(|e| classify(e, ctx))?;
    // Deterministic data rules read their key from the session.
    plans.masks.set_salt(&source).await?;
    let open_target = || async {
        let target = opts.target.connect().await?;
        // A refresh can be redone from the source: no need to wait for the WAL flush.
        target
            .batch_execute("SET synchronous_commit = off")
            .await
            .map_err(|e| classify(e, ctx))?;
        Ok::<_, StepError>(target)
    };
    let mut target = open_target().await?;
    loop {
        let Some(piece) = queue.lock().expect("queue lock").pop_front() else {
            return Ok(());
        };
        let job = &piece.job;
        if !job.start(progress) {
            // Another range of this table failed: the table is errored already.
            job.finish(progress, piece.bytes, Ok(0));
            continue;
        }
        let table = &job.copy;
        let key = (table.schema.clone(), table.name.clone());
        // A table the check did not see (created since) goes as text: never reinterpreted.
        let format = plans.formats.get(&key).cloned().unwrap_or_default();
        let select =
            plans
                .masks
                .select_list(&table.schema, &table.name, &table.columns, &format.casts);
        let how = match piece.blocks {
            None => Load::Whole {
                freeze: opts.freeze,
            },
            Some((start, end)) => Load::Range { start, end },
        };
        let result = copy_piece(
            &source,
            &target,
            table,
            &select,
            how,
            format.binary,
            opts.fail_table.as_deref(),
        )
        .await
        .map_err(|e| name_mask_rules(e, plans.masks, table));
        let failed = result.is_err();
        job.finish(progress, piece.bytes, result);
        // The target session may be mid-transaction after a failed COPY, or
        // closed by it: roll back, or start a new session for the next table.
        if failed && target.batch_execute("ROLLBACK").await.is_err() {
            target = open_target().await?;
        }
    }
}

/// A copy that broke a constraint or a type's rules on a masked table: say
/// which data rules wrote into it (a masked value must satisfy staging's
/// constraints, e.g. `random_int` under `CHECK (age >= 18)`).
fn name_mask_rules(e: StepError, masks: &MaskPlan, t: &TableCopy) -> StepError {
    match e {
        StepError::Database { code, message }
            if code.starts_with("23") || code.starts_with("22") =>
        {
            match masks.rules_on(&t.schema, &t.name) {
                Some(rules) => StepError::Database {
                    code,
                    message: format!(
                        "{message}; {rules} masks this table: a masked value must satisfy staging's constraints and types — change the rule"
                    ),
                },
                None => StepError::Database { code, message },
            }
        }
        other => other,
    }
}

/// How a piece is loaded.
#[derive(Debug, Clone, Copy)]
enum Load {
    /// The whole table: truncated and loaded in one transaction, user triggers off.
    Whole { freeze: bool },
    /// Blocks `[start, end)` of a table truncated up front (no user triggers).
    Range { start: i64, end: Option<i64> },
}

/// Loads one piece in one target transaction; returns the rows copied.
async fn copy_piece(
    source: &Client,
    target: &Client,
    t: &TableCopy,
    select: &str,
    how: Load,
    binary: bool,
    fail_table: Option<&str>,
) -> Result<u64, StepError> {
    let ctx = format!("copying {}", t.qualified());
    let err = |e| classify(e, &ctx);
    let (name, cols) = (t.qualified(), t.column_list());
    target.batch_execute("BEGIN").await.map_err(err)?;
    // User triggers stay quiet for copied rows (a BEFORE INSERT trigger would
    // rewrite them, audit triggers would log them). Switched off and back on
    // inside this transaction: a crash can never leave one disabled.
    let mut triggers = Vec::new();
    let (filter, options) = match how {
        Load::Whole { freeze } => {
            triggers = dbsync_db::triggers::user_triggers(target, &name)
                .await
                .map_err(err)?;
            if let Some(off) = dbsync_db::triggers::triggers_statement(&name, &triggers, false) {
                target.batch_execute(&off).await.map_err(err)?;
            }
            target
                .batch_execute(&format!("TRUNCATE ONLY {name}"))
                .await
                .map_err(err)?;
            (String::new(), if freeze { ", FREEZE" } else { "" })
        }
        Load::Range { start, end } => {
            let upper = end
                .map(|e| format!(" AND ctid < '({e},0)'::pg_catalog.tid"))
                .unwrap_or_default();
            (
                format!(" WHERE ctid >= '({start},0)'::pg_catalog.tid{upper}"),
                "",
            )
        }
    };
    let format = if binary { "binary" } else { "text" };
    let out = source
        .copy_out(&format!(
            "COPY (SELECT {select} FROM ONLY {name}{filter}) TO STDOUT (FORMAT {format})"
        ))
        .await
        .map_err(err)?;
    let sink = target
        .copy_in::<_, bytes::Bytes>(&format!(
            "COPY {name} ({cols}) FROM STDIN (FORMAT {format}{options})"
        ))
        .await
        .map_err(err)?;
    futures_util::pin_mut!(out);
    futures_util::pin_mut!(sink);
    if fail_table == Some(format!("{}.{}", t.schema, t.name).as_str()) {
        return Err(StepError::Database {
            code: "XX000".into(),
            message: format!("injected failure while {ctx}"),
        });
    }
    sink.send_all(&mut out).await.map_err(err)?;
    let rows = sink.as_mut().finish().await.map_err(err)?;
    if let Some(on) = dbsync_db::triggers::triggers_statement(&name, &triggers, true) {
        target.batch_execute(&on).await.map_err(err)?;
    }
    target.batch_execute("COMMIT").await.map_err(err)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: i64 = 1024 * 1024;

    #[test]
    fn only_a_table_larger_than_a_workers_share_is_split() {
        // Eight even tables: nothing to gain from splitting.
        assert_eq!(piece_counts(&[134 * MB; 8], 2), vec![1; 8]);
        assert_eq!(piece_counts(&[134 * MB; 8], 4), vec![1; 8]);
        // One table holding 80%: pieces of about half a worker's share.
        let skewed = [800 * MB, 50 * MB, 50 * MB, 50 * MB, 50 * MB];
        assert_eq!(piece_counts(&skewed, 2), vec![4, 1, 1, 1, 1]);
        assert_eq!(piece_counts(&skewed, 4), vec![7, 1, 1, 1, 1]);
        // One worker, or a table too small for two pieces: whole.
        assert_eq!(piece_counts(&skewed, 1), vec![1; 5]);
        assert_eq!(piece_counts(&[10 * MB], 4), vec![1]);
        // A lone table is split for every worker, but not below the piece floor.
        assert_eq!(piece_counts(&[1024 * MB], 2), vec![4]);
        assert_eq!(piece_counts(&[20 * MB], 8), vec![2]);
    }

    #[test]
    fn block_ranges_cover_the_table_once_and_the_last_is_open() {
        assert_eq!(
            block_ranges(10, 3),
            vec![(0, Some(3)), (3, Some(6)), (6, None)]
        );
        assert_eq!(block_ranges(1, 1), vec![(0, None)]);
        for (blocks, n) in [(1000, 7), (5, 4), (4096, 2)] {
            let r = block_ranges(blocks, n);
            assert_eq!(r.len(), n);
            assert_eq!(r[0].0, 0);
            for w in r.windows(2) {
                assert_eq!(Some(w[1].0), w[0].1, "ranges meet: {r:?}");
            }
        }
    }
}
