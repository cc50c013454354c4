//! The Lambda engine: the replicator's copy as a queue of pieces in staging,
//! worked by copy-piece Lambdas, with no DMS.
//!
//! - **plan** (`plan-copy`): checks the schemas (as the local copy does),
//!   lists every synced leaf table and cuts the ones larger than
//!   `COPY_PIECE_MB` into pieces of about that size — by primary-key ranges
//!   (from a block sample of the keys) where the table has a key none of
//!   whose columns is masked, block ranges otherwise (PostgreSQL 14+), whole
//!   before 14 — and writes them, largest first, to `dbsync.copy_piece` in
//!   one staging transaction that also empties the tables copied in pieces.
//! - **lanes** (`copy-piece`, one Map iteration each, `COPY_CONCURRENCY` at
//!   once): each takes the next piece nobody holds (`FOR UPDATE SKIP
//!   LOCKED`) and, **in that same staging transaction**, loads it — a whole
//!   table truncated first and loaded with FREEZE, a piece's rows into its
//!   emptied table — from one `REPEATABLE READ READ ONLY` transaction on
//!   production, the data rules applied in the `SELECT`, then marks the
//!   piece done with its row count and commits. A piece is therefore loaded
//!   exactly once: an attempt that dies (a Lambda timeout, a broken
//!   connection) rolls back with its mark, and the piece is taken again.
//! - **finish**: every piece done → the per-table counts for verification;
//!   pieces left (held by a dead session not yet ended) → another round.
//! - **stop** (the failure path): no piece is taken any more, and returns once
//!   no piece is being loaded (each lane holds the run row `FOR KEY SHARE` while
//!   it loads), so the restore never runs beside a load.
//!
//! What staging's queue holds is only where each piece is (table names, key
//! values of unmasked keys, block numbers): each lane takes the columns, the
//! masks and the key columns from production itself, so a changed queue row
//! can select fewer rows, never unmasked ones.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use dbsync_db::{classify, lease, mask, schema, sql, triggers, Budget, Db, StepEnv};
use dbsync_workflow::{
    config,
    io::{parse_input, ReplicationOutput, ReplicationStatus},
    vars, StepError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::{types::Type, Client};

use crate::{
    copy::{block_filter, load, name_mask_rules, Load},
    plan::{
        block_ranges, key_bounds, pieces_by_size, plan, primary_key, version_and_block_size, Key,
        TableCopy,
    },
};

/// Rounds of lanes after which pieces still not done are an error.
pub const MAX_ROUNDS: i32 = 5;

/// How long after the stop lanes may still be loading: every lane ends within
/// one copy-piece invocation (15 minutes) and its retries' backoff; past
/// this a session outlived its Lambda, and restoring beside it would break
/// its load (`CopyStillRunning`, the keys stay saved).
pub const MAX_STOP_WAIT: Duration = Duration::from_secs(30 * 60);

/// The Lambda engine's configuration.
pub struct CopyEnv {
    /// Staging (`db`), production (`source`, required), the selection and rules.
    pub step: StepEnv,
    /// `COPY_PIECE_MB` in bytes.
    pub piece_bytes: i64,
    /// `COPY_CONCURRENCY`: lanes at once.
    pub concurrency: u32,
    /// Tests: the copy of this table (`schema.table`) fails mid-copy.
    pub fail_table: Option<String>,
}

impl CopyEnv {
    /// From the environment: [`StepEnv::from_env`] plus the engine's own variables.
    pub fn from_env(
        app: &str,
        secrets: Option<std::sync::Arc<dyn dbsync_workflow::ports::SecretReader>>,
    ) -> Result<Self, StepError> {
        let step = StepEnv::from_env(app, secrets)?;
        if step.source.is_none() {
            return Err(StepError::Configuration(format!(
                "set {} or {}: the copy reads production",
                vars::SOURCE_DATABASE_URL,
                vars::SOURCE_DB_SECRET_ARN
            )));
        }
        Ok(Self {
            step,
            piece_bytes: piece_mb_from_env()? as i64 * 1024 * 1024,
            concurrency: config::number(
                vars::COPY_CONCURRENCY,
                vars::default_u64(vars::COPY_CONCURRENCY),
                40,
            )? as u32,
            fail_table: None,
        })
    }

    fn source(&self) -> Result<&Db, StepError> {
        self.step.source.as_ref().ok_or_else(|| {
            StepError::Configuration("the copy needs production (the source) configured".into())
        })
    }
}

/// The settings of an in-process engine (local runs, tests, the benchmark):
/// [`CopyConfig::env`] gives each invocation its own sessions, as each
/// Lambda invocation has.
#[derive(Debug, Clone)]
pub struct CopyConfig {
    pub source: dbsync_db::DbConfig,
    pub target: dbsync_db::DbConfig,
    pub selection: dbsync_db::Selection,
    pub sync: dbsync_workflow::sync_config::SyncConfig,
    pub piece_bytes: i64,
    pub concurrency: u32,
    pub fail_table: Option<String>,
}

impl CopyConfig {
    pub fn env(&self) -> CopyEnv {
        CopyEnv {
            step: StepEnv {
                db: Db::new(self.target.clone()),
                source: Some(Db::new(self.source.clone())),
                lease_ttl: dbsync_db::lease::DEFAULT_TTL,
                refresh_views: false,
                selection: self.selection.clone(),
                timeouts: dbsync_db::Timeouts::default(),
                orphan_policy: Default::default(),
                margin: Duration::from_secs(15),
                sync: self.sync.clone(),
                masked_in_flight: true,
                index_drop: dbsync_db::indexes::IndexDrop::All,
                index_jobs: dbsync_db::indexes::DEFAULT_JOBS,
            },
            piece_bytes: self.piece_bytes,
            concurrency: self.concurrency,
            fail_table: self.fail_table.clone(),
        }
    }
}

/// `COPY_PIECE_MB`.
pub fn piece_mb_from_env() -> Result<u64, StepError> {
    config::number(
        vars::COPY_PIECE_MB,
        vars::default_u64(vars::COPY_PIECE_MB),
        64 * 1024,
    )
}

/// What `plan-copy` is asked to do.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CopyAction {
    #[default]
    Plan,
    Finish,
    Stop,
}

/// Input of `plan-copy` and `copy-piece`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyInput {
    #[serde(default)]
    pub execution_id: Option<String>,
    #[serde(default)]
    pub action: CopyAction,
    /// `copy-piece`: which lane (for the logs and the output).
    #[serde(default)]
    pub lane: Option<u32>,
}

impl CopyInput {
    fn run(&self) -> &str {
        self.execution_id.as_deref().unwrap_or("by-hand")
    }
}

/// `plan-copy`'s plan: the Map's items are the lanes.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanOutput {
    pub lanes: Vec<u32>,
    pub concurrency: u32,
    pub tables: u64,
    pub pieces: u64,
    pub bytes: i64,
    /// Tables cut by primary-key ranges, and by block ranges.
    pub key_ranged: u64,
    pub block_ranged: u64,
}

/// One `copy-piece` invocation's work.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaneOutput {
    pub lane: u32,
    pub pieces: u64,
    pub rows: u64,
    pub bytes: i64,
    /// Pieces remain that this lane may take: call again (its budget ran out).
    pub more: bool,
    /// Pieces not done when it ended (others may be loading them).
    pub left: u64,
}

/// `plan-copy` with `action: stop`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopOutput {
    /// No piece is being loaded and none will be taken: staging may be restored.
    pub stopped: bool,
}

const CREATE_QUEUE: &str = "
CREATE TABLE IF NOT EXISTS dbsync.copy_run (
    execution  text PRIMARY KEY,
    stopped    boolean NOT NULL DEFAULT false,
    -- When the stop was first asked for: the wait for loading lanes is bounded from it.
    stopped_at timestamptz,
    rounds     int4 NOT NULL DEFAULT 0,
    planned_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE TABLE IF NOT EXISTS dbsync.copy_piece (
    -- No foreign key to copy_run: dbsync's own tables keep out of staging's FK inventory.
    execution   text NOT NULL,
    id          int4 NOT NULL,
    schema_name text NOT NULL,
    table_name  text NOT NULL,
    -- whole | keys | blocks; low/high: key values as text, or a block number
    kind        text NOT NULL,
    low         text[],
    high        text[],
    bytes       int8 NOT NULL,
    done        boolean NOT NULL DEFAULT false,
    rows        int8,
    PRIMARY KEY (execution, id)
);
-- The claim's path: pieces still to do, in order, without walking the done ones.
CREATE INDEX IF NOT EXISTS copy_piece_todo ON dbsync.copy_piece (execution, id) WHERE NOT done";

const NEW_RUN: &str = "INSERT INTO dbsync.copy_run (execution) VALUES ($1)";

const ADD_PIECES: &str = "
INSERT INTO dbsync.copy_piece (execution, id, schema_name, table_name, kind, low, high, bytes)
SELECT $1, p.id, p.schema_name, p.table_name, p.kind, p.low, p.high, p.bytes
FROM pg_catalog.jsonb_to_recordset($2::text::jsonb)
     AS p(id int4, schema_name text, table_name text, kind text, low text[], high text[], bytes int8)";

/// The next piece nobody holds, unless the run was stopped. The run row is
/// held `FOR KEY SHARE` for the whole load: `stop` waits for it with `FOR
/// UPDATE`, while marking the run stopped (a plain UPDATE of a non-key
/// column) never waits, nor does finish's round count.
const CLAIM: &str = "
SELECT p.id, p.schema_name, p.table_name, p.kind, p.low, p.high, p.bytes
FROM dbsync.copy_piece p JOIN dbsync.copy_run r ON r.execution = p.execution
WHERE p.execution = $1 AND NOT p.done AND NOT r.stopped
ORDER BY p.id
LIMIT 1
FOR UPDATE OF p SKIP LOCKED FOR KEY SHARE OF r";

const MARK_DONE: &str =
    "UPDATE dbsync.copy_piece SET done = true, rows = $3 WHERE execution = $1 AND id = $2";

const LEFT: &str =
    "SELECT pg_catalog.count(*) FROM dbsync.copy_piece WHERE execution = $1 AND NOT done";

const HAS_QUEUE: &str = "SELECT pg_catalog.to_regclass('dbsync.copy_piece') IS NOT NULL";

/// Per-table rows of the done pieces, the pieces left, the run's start and rounds.
const TALLY: &str = "
SELECT p.schema_name || '.' || p.table_name, pg_catalog.sum(p.rows)::int8,
       pg_catalog.count(*) FILTER (WHERE NOT p.done)
FROM dbsync.copy_piece p WHERE p.execution = $1
GROUP BY 1 ORDER BY 1";

const RUN_ROW: &str = "
SELECT pg_catalog.date_part('epoch', planned_at)::int8, rounds FROM dbsync.copy_run WHERE execution = $1";

/// One row of the queue.
#[derive(Debug, Clone, Serialize)]
struct PieceRow {
    id: i32,
    schema_name: String,
    table_name: String,
    kind: &'static str,
    low: Option<Vec<String>>,
    high: Option<Vec<String>>,
    bytes: i64,
}

/// Copy sessions: no WAL flush wait (a refresh can be redone), and a client
/// that vanished (a Lambda timed out) is noticed within about a minute —
/// idle (keepalives) or with data unacknowledged (`tcp_user_timeout`, e.g.
/// production mid-COPY) — so its transaction, its piece's lock and its
/// snapshot end.
const SESSION: &str = "SET synchronous_commit = off; SET tcp_keepalives_idle = 20; \
     SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 4; SET tcp_user_timeout = 60000; \
     SET idle_in_transaction_session_timeout = '60s'";

/// `plan-copy`: plan, finish or stop, by the input's `action`.
pub async fn plan_copy(env: &CopyEnv, event: Value, budget: Budget) -> Result<Value, StepError> {
    let input: CopyInput = parse_input(event)?;
    fn json<T: Serialize>(v: Result<T, StepError>) -> Result<Value, StepError> {
        v.map(|o| serde_json::to_value(o).expect("outputs serialize"))
    }
    let result = env
        .step
        .run(async {
            match input.action {
                CopyAction::Plan => json(plan_pieces(env, &input, budget).await),
                CopyAction::Finish => json(finish(env, &input, budget).await),
                CopyAction::Stop => json(stop(env, &input, budget).await),
            }
        })
        .await;
    reset_source_after(env, result).await
}

/// A broken production session is forgotten too, so the retry reconnects.
async fn reset_source_after<T>(env: &CopyEnv, r: Result<T, StepError>) -> Result<T, StepError> {
    if matches!(r, Err(StepError::DatabaseUnavailable(_))) {
        if let Some(s) = &env.step.source {
            s.reset().await;
        }
    }
    r
}

async fn plan_pieces(
    env: &CopyEnv,
    input: &CopyInput,
    budget: Budget,
) -> Result<PlanOutput, StepError> {
    let ctx = "planning the copy";
    let mut staging = env.step.db.client().await?;
    let source = env
        .source()?
        .client()
        .await
        .map_err(|e| e.about("production"))?;
    // Refused before anything changes, like the local copy.
    let Sides { masks, tables, .. } = sides(env, input, &staging, &source).await?;
    let (version, block_size) = version_and_block_size(&source).await?;
    let mut rows = Vec::new();
    let mut split = Vec::new();
    let mut out = PlanOutput {
        tables: tables.len() as u64,
        bytes: tables.iter().map(|t| t.total_bytes).sum(),
        ..PlanOutput::default()
    };
    for t in &tables {
        // TOASTed values count: a small heap can hold gigabytes of jsonb.
        let n = pieces_by_size(t.total_bytes, env.piece_bytes);
        let piece = |kind, low, high, bytes| PieceRow {
            id: 0,
            schema_name: t.schema.clone(),
            table_name: t.name.clone(),
            kind,
            low,
            high,
            bytes,
        };
        // A table with user triggers on staging is loaded whole, its triggers
        // off inside its load (pieces would run them, or wait for each other).
        if n == 1
            || !triggers::user_triggers(&*staging, &t.qualified())
                .await
                .map_err(|e| classify(e, ctx))?
                .is_empty()
        {
            rows.push(piece("whole", None, None, t.total_bytes));
            continue;
        }
        // A masked key column is never a range bound: its raw values would sit in staging.
        let masked = masks.tables.get(&(t.schema.clone(), t.name.clone()));
        let key = primary_key(&source, t).await?.filter(|k| {
            !k.columns
                .iter()
                .any(|(c, _)| masked.is_some_and(|m| m.columns.iter().any(|x| &x.column == c)))
        });
        let bounds = match &key {
            Some(k) => key_bounds(&source, t, k, n).await?,
            None => Vec::new(),
        };
        if !bounds.is_empty() {
            let pieces = bounds.len() + 1;
            let mut low = None;
            for b in bounds {
                rows.push(piece(
                    "keys",
                    low.take(),
                    Some(b.clone()),
                    t.total_bytes / pieces as i64,
                ));
                low = Some(b);
            }
            rows.push(piece("keys", low, None, t.total_bytes / pieces as i64));
            out.key_ranged += 1;
        } else if version >= 140_000 {
            let blocks = (t.bytes / block_size).max(1);
            for (start, end) in block_ranges(blocks, n) {
                rows.push(piece(
                    "blocks",
                    Some(vec![start.to_string()]),
                    end.map(|e| vec![e.to_string()]),
                    t.total_bytes / n as i64,
                ));
            }
            out.block_ranged += 1;
        } else {
            // Before 14 every block range would scan the whole table.
            rows.push(piece("whole", None, None, t.total_bytes));
            continue;
        }
        split.push(t.qualified());
    }
    drop(source);
    // Largest first, so the long pieces start early and the small ones fill the end.
    rows.sort_by_key(|r| std::cmp::Reverse(r.bytes));
    for (i, r) in rows.iter_mut().enumerate() {
        r.id = i as i32 + 1;
    }
    out.pieces = rows.len() as u64;
    out.concurrency = env.concurrency.min(rows.len().max(1) as u32);
    out.lanes = (1..=out.concurrency).collect();
    dbsync_db::create_bookkeeping(&mut staging, CREATE_QUEUE, env.step.timeouts, ctx).await?;
    let tx =
        dbsync_db::step_transaction(&mut staging, env.step.timeouts, budget, true, ctx).await?;
    let err = |e| classify(e, ctx);
    let run = input.run();
    // One run at a time (the lease): an earlier run's queue goes.
    tx.batch_execute("DELETE FROM dbsync.copy_piece; DELETE FROM dbsync.copy_run")
        .await
        .map_err(err)?;
    tx.execute_typed(NEW_RUN, &[(&run, Type::TEXT)])
        .await
        .map_err(err)?;
    let json = serde_json::to_string(&rows).expect("pieces serialize");
    tx.execute_typed(ADD_PIECES, &[(&run, Type::TEXT), (&json, Type::TEXT)])
        .await
        .map_err(err)?;
    // A table copied in pieces is emptied once, here; a whole one in its own load.
    if !split.is_empty() {
        tx.batch_execute(&format!("TRUNCATE ONLY {}", split.join(", ")))
            .await
            .map_err(err)?;
    }
    tx.commit().await.map_err(err)?;
    Ok(out)
}

/// What production says the copy reads: the run's selection, the schemas
/// compared (refused on a difference the configuration does not allow), the
/// masks and the tables.
struct Sides {
    compat: schema::Compatibility,
    masks: mask::MaskPlan,
    tables: Vec<TableCopy>,
}

async fn sides(
    env: &CopyEnv,
    input: &CopyInput,
    staging: &Client,
    source: &Client,
) -> Result<Sides, StepError> {
    let selection =
        lease::selection_for(staging, input.execution_id.as_deref(), &env.step.selection).await?;
    let compat = schema::check(source, staging, &selection).await?;
    compat.require(env.step.sync.allow_lossless_casts)?;
    let masks = mask::plan(source, &selection, &env.step.sync).await?;
    // `strict: true`: a column added to production since the lease's check is refused here too.
    masks.require_classified(&env.step.sync.origin)?;
    Ok(Sides {
        compat,
        masks,
        tables: plan(source, &selection).await?,
    })
}

/// `copy-piece`: loads pieces until none is left to take or the budget ends.
pub async fn copy_lane(
    env: &CopyEnv,
    event: Value,
    budget: Budget,
) -> Result<LaneOutput, StepError> {
    let input: CopyInput = parse_input(event)?;
    let result = env.step.run(lane(env, &input, budget)).await;
    reset_source_after(env, result).await
}

async fn lane(env: &CopyEnv, input: &CopyInput, budget: Budget) -> Result<LaneOutput, StepError> {
    let ctx = "copying a piece";
    let err = |e| classify(e, ctx);
    let run = input.run().to_owned();
    let mut out = LaneOutput {
        lane: input.lane.unwrap_or(1),
        ..LaneOutput::default()
    };
    let staging = env.step.db.client().await?;
    // A session an earlier invocation left mid-transaction (an error) starts clean.
    staging.batch_execute("ROLLBACK").await.map_err(err)?;
    if !staging
        .query_one(HAS_QUEUE, &[])
        .await
        .map_err(err)?
        .get::<_, bool>(0)
    {
        return Err(StepError::InvalidInput(
            "no copy was planned on staging; run plan-copy first (the state machine does)".into(),
        ));
    }
    let source = env
        .source()?
        .client()
        .await
        .map_err(|e| e.about("production"))?;
    source.batch_execute("ROLLBACK").await.map_err(err)?;
    // Everything that decides what is read comes from production, not from the queue.
    let Sides {
        compat,
        masks,
        tables,
    } = sides(env, input, &staging, &source).await?;
    let tables: BTreeMap<(String, String), TableCopy> = tables
        .into_iter()
        .map(|t| ((t.schema.clone(), t.name.clone()), t))
        .collect();
    masks.set_salt(&source).await?;
    staging.batch_execute(SESSION).await.map_err(err)?;
    source.batch_execute(SESSION).await.map_err(err)?;
    let started = Instant::now();
    // Each key-ranged table's key, read from production once per invocation.
    let mut keys: BTreeMap<(String, String), Option<Key>> = BTreeMap::new();
    loop {
        let limit = budget.statement_timeout(env.step.timeouts.statement);
        staging
            .batch_execute(&format!(
                "BEGIN; SET LOCAL search_path = ''; SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {};\n{}",
                limit.as_millis().max(1),
                env.step.timeouts.lock.as_millis().max(1),
                sql::GUARD
            ))
            .await
            .map_err(err)?;
        let Some(row) = staging.query_opt(CLAIM, &[&run]).await.map_err(err)? else {
            staging.batch_execute("ROLLBACK").await.map_err(err)?;
            out.left = staging
                .query_one(LEFT, &[&run])
                .await
                .map_err(err)?
                .get::<_, i64>(0) as u64;
            return Ok(out);
        };
        let Claimed {
            id,
            schema_name,
            table_name,
            kind,
            low,
            high,
            bytes,
        } = Claimed::from(&row);
        // Would it fit what is left, at this invocation's pace so far?
        if out.bytes > 0 {
            let per_byte = started.elapsed().as_secs_f64() / out.bytes as f64;
            let needed = Duration::from_secs_f64(per_byte * bytes.max(1) as f64 * 1.5);
            if needed > budget.remaining() {
                staging.batch_execute("ROLLBACK").await.map_err(err)?;
                out.more = true;
                return Ok(out);
            }
        }
        let what = format!(
            "piece {id} of {schema_name}.{table_name} ({} MB)",
            bytes / (1024 * 1024)
        );
        let result = async {
            let t = tables.get(&(schema_name.clone(), table_name.clone())).ok_or_else(|| {
                StepError::SchemaMismatch(format!(
                    "{schema_name}.{table_name} is no longer a synced table of production"
                ))
            })?;
            let how = piece_load(&source, t, &mut keys, &kind, low.as_deref(), high.as_deref())
                .await?;
            let format = compat
                .formats
                .get(&(t.schema.clone(), t.name.clone()))
                .cloned()
                .unwrap_or_default();
            let select = masks.select_list(&t.schema, &t.name, &t.columns, &format.casts);
            source
                .batch_execute(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = {}",
                    limit.as_millis().max(1)
                ))
                .await
                .map_err(err)?;
            let loaded = load(
                &source,
                &staging,
                t,
                &select,
                &how,
                format.binary,
                env.fail_table.as_deref(),
            )
            .await
            .map_err(|e| name_mask_rules(e, &masks, t));
            let _ = source.batch_execute("COMMIT").await;
            let rows = loaded?;
            staging
                .execute(MARK_DONE, &[&run, &id, &(rows as i64)])
                .await
                .map_err(err)?;
            staging.batch_execute("COMMIT").await.map_err(err)?;
            Ok::<_, StepError>(rows)
        }
        .await;
        match result {
            Ok(rows) => {
                out.pieces += 1;
                out.rows += rows;
                out.bytes += bytes.max(1);
            }
            Err(e) => {
                // Nothing of this piece stays: its load and its mark roll back together.
                let _ = staging.batch_execute("ROLLBACK").await;
                return match e {
                    // Out of time after some work: the next invocation takes it whole.
                    StepError::StatementTimeout(_) if out.pieces > 0 => {
                        out.more = true;
                        Ok(out)
                    }
                    StepError::StatementTimeout(_) => Err(StepError::CopyPieceTooLarge(format!(
                        "{what} ({} s allowed)",
                        limit.as_secs()
                    ))),
                    other => Err(other),
                };
            }
        }
    }
}

/// A piece taken off the queue (the columns of [`CLAIM`]).
struct Claimed {
    id: i32,
    schema_name: String,
    table_name: String,
    kind: String,
    low: Option<Vec<String>>,
    high: Option<Vec<String>>,
    bytes: i64,
}

impl From<&tokio_postgres::Row> for Claimed {
    fn from(r: &tokio_postgres::Row) -> Self {
        Self {
            id: r.get(0),
            schema_name: r.get(1),
            table_name: r.get(2),
            kind: r.get(3),
            low: r.get(4),
            high: r.get(5),
            bytes: r.get(6),
        }
    }
}

/// How a queued piece is loaded, from the table's key as production has it now.
async fn piece_load(
    source: &Client,
    t: &TableCopy,
    keys: &mut BTreeMap<(String, String), Option<Key>>,
    kind: &str,
    low: Option<&[String]>,
    high: Option<&[String]>,
) -> Result<Load, StepError> {
    let changed = || {
        StepError::SchemaMismatch(format!(
            "the primary key of {} changed since the copy was planned; run the sync again",
            t.qualified()
        ))
    };
    match kind {
        "whole" => Ok(Load::Whole { freeze: true }),
        "keys" => {
            let table = (t.schema.clone(), t.name.clone());
            if !keys.contains_key(&table) {
                let key = primary_key(source, t).await?;
                keys.insert(table.clone(), key);
            }
            let key = keys[&table].as_ref().ok_or_else(changed)?;
            key.filter(low, high).map(Load::Part).ok_or_else(changed)
        }
        "blocks" => {
            let block = |b: Option<&[String]>| -> Result<Option<i64>, StepError> {
                b.map(|v| {
                    v.first()
                        .and_then(|x| x.parse::<i64>().ok())
                        .ok_or_else(|| {
                            StepError::InvalidInput(format!("bad block range of {}", t.qualified()))
                        })
                })
                .transpose()
            };
            let start = block(low)?.unwrap_or(0);
            Ok(Load::Part(block_filter(start, block(high)?)))
        }
        other => Err(StepError::InvalidInput(format!(
            "unknown piece kind {other:?} in dbsync.copy_piece"
        ))),
    }
}

/// After the lanes: every piece done, or another round.
async fn finish(
    env: &CopyEnv,
    input: &CopyInput,
    _budget: Budget,
) -> Result<ReplicationOutput, StepError> {
    let ctx = "checking the copy";
    let err = |e| classify(e, ctx);
    let run = input.run();
    let staging = env.step.db.client().await?;
    let Some(run_row) = staging.query_opt(RUN_ROW, &[&run]).await.map_err(err)? else {
        return Err(StepError::InvalidInput(
            "no copy was planned for this execution; run plan-copy first (the state machine does)"
                .into(),
        ));
    };
    let (planned_at, rounds): (i64, i32) = (run_row.get(0), run_row.get(1));
    let tally = staging.query(TALLY, &[&run]).await.map_err(err)?;
    let left: i64 = tally.iter().map(|r| r.get::<_, i64>(2)).sum();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let tables = tally.len() as i64;
    let errored = tally.iter().filter(|r| r.get::<_, i64>(2) > 0).count() as i64;
    if left > 0 {
        if rounds + 1 >= MAX_ROUNDS {
            return Err(StepError::CopyIncomplete(format!(
                "{left} piece(s) of {errored} table(s) still not copied after {MAX_ROUNDS} rounds"
            )));
        }
        staging
            .execute(
                "UPDATE dbsync.copy_run SET rounds = rounds + 1 WHERE execution = $1",
                &[&run],
            )
            .await
            .map_err(err)?;
    }
    let table_rows: BTreeMap<String, i64> = tally
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                r.get::<_, Option<i64>>(1).unwrap_or(0),
            )
        })
        .collect();
    let size: usize = table_rows.keys().map(|k| k.len() + 24).sum();
    let done = left == 0;
    Ok(ReplicationOutput {
        task_arn: "lambda".into(),
        status: if done {
            ReplicationStatus::Succeeded
        } else {
            ReplicationStatus::Running
        },
        start_kind: None,
        started_at: planned_at.max(0) as u64,
        elapsed_seconds: now.saturating_sub(planned_at.max(0) as u64),
        wait_seconds: if done { 0 } else { 30 },
        polls: rounds as u32 + 1,
        progress_percent: None,
        progress_elapsed_seconds: None,
        detail: (!done)
            .then(|| format!("{left} piece(s) held by a session that has not ended yet")),
        tables_loaded: tables - errored,
        tables_loading: errored,
        tables_queued: 0,
        tables_errored: 0,
        rows_loaded: Some(table_rows.values().sum()),
        table_rows: (done && size <= dbsync_workflow::io::MAX_TABLE_ROWS_BYTES)
            .then_some(table_rows),
        run_seen: true,
    })
}

/// The failure path: no piece is taken any more; `stopped` once none is being loaded.
async fn stop(env: &CopyEnv, input: &CopyInput, budget: Budget) -> Result<StopOutput, StepError> {
    let ctx = "stopping the copy";
    let err = |e| classify(e, ctx);
    let mut staging = env.step.db.client().await?;
    if !staging
        .query_one(HAS_QUEUE, &[])
        .await
        .map_err(err)?
        .get::<_, bool>(0)
    {
        return Ok(StopOutput { stopped: true });
    }
    let run = input.run();
    // First no lane takes another piece: committed at once (no lock is in
    // its way), and every claim after it sees it.
    let waited: Option<f64> = staging
        .query_opt(
            "UPDATE dbsync.copy_run SET stopped = true, stopped_at = coalesce(stopped_at, pg_catalog.now())
             WHERE execution = $1
             RETURNING pg_catalog.date_part('epoch', pg_catalog.now() - stopped_at)::float8",
            &[&run],
        )
        .await
        .map_err(err)?
        .map(|r| r.get(0));

    // Then wait for the lanes still loading (each holds the run row FOR KEY
    // SHARE), within this invocation and below the session's statement cap.
    let wait = budget
        .statement_timeout(env.step.timeouts.statement)
        .saturating_sub(Duration::from_secs(1))
        .max(Duration::from_millis(100));
    let tx = staging.transaction().await.map_err(err)?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {ms}; SET LOCAL statement_timeout = {ms}",
        ms = wait.as_millis()
    ))
    .await
    .map_err(err)?;
    match tx
        .query(
            "SELECT 1 FROM dbsync.copy_run WHERE execution = $1 FOR UPDATE",
            &[&run],
        )
        .await
    {
        Ok(_) => Ok(StopOutput { stopped: true }),
        // Still loading: the state machine waits and asks again, for a while.
        Err(e)
            if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE)
                || e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) =>
        {
            if waited.is_some_and(|w| w > MAX_STOP_WAIT.as_secs_f64()) {
                return Err(StepError::CopyStillRunning(format!(
                    "copy workers were still loading pieces {} minutes after the stop",
                    MAX_STOP_WAIT.as_secs() / 60
                )));
            }
            Ok(StopOutput { stopped: false })
        }
        Err(e) => Err(err(e)),
    }
}
