//! The copy itself: workers taking pieces off the queue, each piece one
//! `COPY … TO STDOUT` streamed into `COPY … FROM STDIN` from the run's
//! snapshot, masks applied in the source's `SELECT`.

use std::sync::{Arc, Mutex};

use dbsync_db::{classify, mask::MaskPlan, schema::CopyFormat};
use dbsync_workflow::StepError;
use futures_util::SinkExt;
use tokio_postgres::Client;

use crate::{plan::TableCopy, Progress, ReplicateOptions, TableResult};

/// One table's copy, shared by the pieces it is copied in.
pub(crate) struct TableJob {
    pub(crate) copy: TableCopy,
    /// Block ranges it is copied in (more than 1: truncated up front, no FREEZE).
    pub(crate) pieces: usize,
    pub(crate) state: Mutex<JobState>,
}

#[derive(Default)]
pub(crate) struct JobState {
    pub(crate) pieces_left: usize,
    pub(crate) started: bool,
    pub(crate) rows: u64,
    pub(crate) error: Option<String>,
}

/// One unit of copy work: a whole table, or one block range of a split one.
pub(crate) struct Piece {
    pub(crate) job: Arc<TableJob>,
    pub(crate) blocks: Option<(i64, Option<i64>)>,
    pub(crate) bytes: i64,
}

/// How each table is read: the schemas compared again at the copy's start
/// (staging may have changed since the run's check), refused on any
/// difference the configuration does not allow; binary format only where
/// every column's binary value reads the same on both sides, and the casts
/// the configuration allows.
pub(crate) async fn copy_formats(opts: &ReplicateOptions) -> Result<Formats, StepError> {
    let (source, target) = (opts.source.connect().await?, opts.target.connect().await?);
    let compat = dbsync_db::schema::check(&source, &target, &opts.selection).await?;
    compat.require(opts.sync.allow_lossless_casts)?;
    Ok(compat.formats)
}

pub(crate) type Formats = std::collections::BTreeMap<(String, String), CopyFormat>;

/// What every worker reads besides the queue.
#[derive(Clone, Copy)]
pub(crate) struct Plans<'a> {
    pub(crate) masks: &'a MaskPlan,
    pub(crate) formats: &'a Formats,
}

impl TableJob {
    pub(crate) fn new(copy: TableCopy, pieces: usize) -> Self {
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
    pub(crate) fn start(&self, progress: &Mutex<Progress>) -> bool {
        let mut s = self.state.lock().expect("job lock");
        if !s.started {
            s.started = true;
            progress.lock().expect("progress lock").tables_loading += 1;
        }
        s.error.is_none()
    }

    /// Books one piece's outcome; the table's result once its last piece is in.
    pub(crate) fn finish(
        &self,
        progress: &Mutex<Progress>,
        bytes: i64,
        result: Result<u64, StepError>,
    ) {
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

/// One pair of connections taking pieces off the queue until it is empty.
pub(crate) async fn worker(
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
            Some((start, end)) => Load::Part(block_filter(start, end)),
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
pub(crate) fn name_mask_rules(e: StepError, masks: &MaskPlan, t: &TableCopy) -> StepError {
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
#[derive(Debug, Clone)]
pub(crate) enum Load {
    /// The whole table: truncated and loaded in one transaction, user triggers off.
    Whole { freeze: bool },
    /// The rows of a table emptied up front (no user triggers on) that match
    /// this condition: a block range, or a key range (the Lambda engine).
    Part(String),
}

/// The condition selecting blocks `[start, end)` (TID range scan, PostgreSQL 14+).
pub(crate) fn block_filter(start: i64, end: Option<i64>) -> String {
    let upper = end
        .map(|e| format!(" AND ctid < '({e},0)'::pg_catalog.tid"))
        .unwrap_or_default();
    format!("ctid >= '({start},0)'::pg_catalog.tid{upper}")
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
    let err = |e| classify(e, &format!("copying {}", t.qualified()));
    target.batch_execute("BEGIN").await.map_err(err)?;
    let rows = load(source, target, t, select, &how, binary, fail_table).await?;
    target.batch_execute("COMMIT").await.map_err(err)?;
    Ok(rows)
}

/// Loads one piece inside the target's open transaction; returns the rows copied.
pub(crate) async fn load(
    source: &Client,
    target: &Client,
    t: &TableCopy,
    select: &str,
    how: &Load,
    binary: bool,
    fail_table: Option<&str>,
) -> Result<u64, StepError> {
    let ctx = format!("copying {}", t.qualified());
    let err = |e| classify(e, &ctx);
    let (name, cols) = (t.qualified(), t.column_list());
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
            (String::new(), if *freeze { ", FREEZE" } else { "" })
        }
        Load::Part(condition) => (format!(" WHERE {condition}"), ""),
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
    Ok(rows)
}
