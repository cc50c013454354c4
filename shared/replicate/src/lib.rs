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
//! - Each table is `TRUNCATE`d and loaded in one target transaction, with
//!   binary `COPY … TO STDOUT` streamed into `COPY … FROM STDIN (FREEZE)`;
//!   several tables at once on separate connections, largest first.
//! - Explicit column lists: generated columns are skipped (the target
//!   computes them), identity `ALWAYS` columns are written as they are.
//! - Like DMS, a table that fails is counted as errored and the others go on;
//!   the task then stops with errored tables, which the poll step reports.

use std::{
    sync::{Arc, Mutex},
    time::SystemTime,
};

use dbsync_db::{classify, mask::MaskPlan, sql::ident, DbConfig, Selection};
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

/// Per-table result, for summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableResult {
    pub table: String,
    /// `schema.table` unquoted, as DMS's table statistics name it.
    pub key: String,
    pub rows: u64,
    pub error: Option<String>,
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
    {
        let mut p = progress.lock().expect("progress lock");
        p.tables_total = tables.len();
        p.bytes_total = tables.iter().map(|t| t.bytes.max(1)).sum();
    }
    let queue = Arc::new(Mutex::new(
        tables
            .into_iter()
            .collect::<std::collections::VecDeque<_>>(),
    ));
    let workers = opts.parallelism.max(1);
    // A JoinSet: when the copy is stopped (this future dropped), every worker
    // is aborted with it — its session closes and its table's transaction
    // rolls back — instead of copying on behind the stop.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (opts, progress, queue, snapshot, masks) = (
            opts.clone(),
            progress.clone(),
            queue.clone(),
            snapshot.clone(),
            masks.clone(),
        );
        set.spawn(async move { worker(&opts, &snapshot, &masks, &queue, &progress).await });
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

/// One pair of connections taking tables off the queue until it is empty.
async fn worker(
    opts: &ReplicateOptions,
    snapshot: &str,
    masks: &MaskPlan,
    queue: &Mutex<std::collections::VecDeque<TableCopy>>,
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
    let target = opts.target.connect().await?;
    // A refresh can be redone from the source: no need to wait for the WAL flush.
    target
        .batch_execute("SET synchronous_commit = off")
        .await
        .map_err(|e| classify(e, ctx))?;
    loop {
        let Some(table) = queue.lock().expect("queue lock").pop_front() else {
            return Ok(());
        };
        progress.lock().expect("progress lock").tables_loading += 1;
        let select = masks.select_list(&table.schema, &table.name, &table.columns);
        let result = copy_table(
            &source,
            &target,
            &table,
            &select,
            opts.fail_table.as_deref(),
        )
        .await;
        let failed = record(progress, &table, result);
        // The target session may be mid-transaction after a failed COPY.
        if failed && target.batch_execute("ROLLBACK").await.is_err() {
            return Err(StepError::DatabaseUnavailable(
                "the target connection broke during a copy".into(),
            ));
        }
    }
}

/// Books one table's outcome; returns whether it failed.
fn record(progress: &Mutex<Progress>, table: &TableCopy, result: Result<u64, StepError>) -> bool {
    let mut p = progress.lock().expect("progress lock");
    p.tables_loading -= 1;
    p.bytes_done += table.bytes.max(1);
    let (rows, error) = match result {
        Ok(rows) => (rows, None),
        Err(e) => {
            tracing::warn!(table = %table.qualified(), error = %e, "table copy failed");
            (0, Some(e.to_string()))
        }
    };
    p.rows += rows;
    let failed = error.is_some();
    p.results.push(TableResult {
        table: table.qualified(),
        key: format!("{}.{}", table.schema, table.name),
        rows,
        error,
    });
    failed
}

/// Truncates and loads one table in one target transaction; returns the rows copied.
async fn copy_table(
    source: &Client,
    target: &Client,
    t: &TableCopy,
    select: &str,
    fail_table: Option<&str>,
) -> Result<u64, StepError> {
    let ctx = format!("copying {}", t.qualified());
    let err = |e| classify(e, &ctx);
    let (name, cols) = (t.qualified(), t.column_list());
    target.batch_execute("BEGIN").await.map_err(err)?;
    // User triggers stay quiet for copied rows (a BEFORE INSERT trigger would
    // rewrite them, audit triggers would log them). Switched off and back on
    // inside this transaction: a crash can never leave one disabled.
    let triggers = dbsync_db::triggers::user_triggers(target, &name)
        .await
        .map_err(err)?;
    if let Some(off) = dbsync_db::triggers::triggers_statement(&name, &triggers, false) {
        target.batch_execute(&off).await.map_err(err)?;
    }
    target
        .batch_execute(&format!("TRUNCATE ONLY {name}"))
        .await
        .map_err(err)?;
    let out = source
        .copy_out(&format!(
            "COPY (SELECT {select} FROM ONLY {name}) TO STDOUT (FORMAT binary)"
        ))
        .await
        .map_err(err)?;
    let sink = target
        .copy_in::<_, bytes::Bytes>(&format!(
            "COPY {name} ({cols}) FROM STDIN (FORMAT binary, FREEZE)"
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
