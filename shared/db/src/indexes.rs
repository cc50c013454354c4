//! Indexes off for the load, rebuilt after it, several at a time.
//!
//! A load into indexed tables maintains every index row by row; building an
//! index once over the loaded table is several times cheaper (it sorts once
//! and writes each page once), and DMS's own best practices say the same.
//! So the step that drops the foreign keys also saves and drops, in the same
//! transaction, the indexes of the tables the load empties:
//!
//! - **dropped:** plain indexes, and primary keys and unique constraints
//!   (their foreign keys are down already) where the engine allows — DMS's
//!   full LOB mode looks rows up by primary key on the target, so the AWS
//!   path keeps primary keys ([`IndexDrop::AllButPrimaryKeys`]);
//! - **kept:** exclusion constraints (no `USING INDEX` form), indexes of
//!   partitioned tables and partitions (a partition's index is attached to
//!   its parent's, and rebuilding that tree by name is not worth the load it
//!   saves), invalid indexes, indexes something else depends on (a foreign
//!   key from a table the run does not touch, a view grouping by a primary
//!   key), unique indexes over a masked column (a rule that maps two values
//!   to one must fail while the load names the rule, not hours later), and
//!   the primary key of a masked table (unique rules derive values from it).
//!
//! The definition is saved exactly (`dbsync.saved_index`): `pg_get_indexdef`
//! (method, columns and expressions, opclasses, collations, `INCLUDE`,
//! `WHERE`, `NULLS NOT DISTINCT`, storage parameters), the tablespace, the
//! constraint (kind, deferrability), both comments, per-column statistics
//! targets, the `CLUSTER` mark and the replica identity.
//!
//! The rebuild comes first in `restore-fks` (the foreign keys need their
//! unique indexes): each index in a message of its own — `CREATE INDEX` and
//! the saved row marked built, committed together — on up to `jobs`
//! sessions at once, each running on in the database when the invocation
//! ends ([`crate::long`]); then one short transaction attaches the
//! constraints (`ADD CONSTRAINT … USING INDEX`), puts back comments,
//! statistics targets, `CLUSTER` and replica identity, and forgets the saved
//! rows. A kill at any moment leaves each index either saved or built, never
//! neither.

use std::collections::BTreeSet;

use dbsync_workflow::StepError;
use futures_util::{stream::FuturesUnordered, StreamExt};
use tokio_postgres::{error::SqlState, types::Type, Client, Row};

use crate::{classify, sql, step_transaction, Budget, DbConfig, Timeouts};

/// Which indexes a load goes without.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IndexDrop {
    /// Load into the indexed tables (nothing dropped).
    None,
    /// Everything in scope but primary keys (DMS: full LOB mode needs them).
    AllButPrimaryKeys,
    /// Everything in scope (the local copy: plain COPY needs no index).
    #[default]
    All,
}

/// Index builds at once unless told otherwise: two sessions keep a small
/// server's cores busy without starving the rest of it.
pub const DEFAULT_JOBS: usize = 2;

/// The columns masking rules rewrite, `(schema, table, column)`: unique
/// indexes over them stay for the load.
pub type MaskedColumns = BTreeSet<(String, String, String)>;

/// Saves the indexes in scope and lists their drops. `$1` the selected
/// oids, `$2`/`$3`/`$4` the masked columns (schema, table, column), `$5`
/// whether primary keys stay. A row saved earlier and not finished is
/// marked unbuilt again (its index is about to go).
const CAPTURE_AND_PLAN_DROP: &str = "
WITH masked AS (
    SELECT a.attrelid, a.attnum
    FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]),
                    pg_catalog.unnest($4::text[])) AS m(s, t, c)
    JOIN pg_catalog.pg_namespace n ON n.nspname = m.s
    JOIN pg_catalog.pg_class r ON r.relnamespace = n.oid AND r.relname = m.t
    JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attname = m.c
),
idx AS (
    SELECT i.indexrelid, n.nspname::text AS table_schema, t.relname::text AS table_name,
           ic.relname::text AS index_name, coalesce(ts.spcname::text, '') AS tablespace,
           con.oid AS con_oid, con.contype, con.conname::text AS constraint_name,
           coalesce(con.condeferrable, false) AS is_deferrable, coalesce(con.condeferred, false) AS is_deferred,
           i.indisclustered, i.indisreplident
    FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = ic.reltablespace
    LEFT JOIN pg_catalog.pg_constraint con
           ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
    WHERE i.indrelid = ANY ($1::pg_catalog.oid[])
      AND t.relkind = 'r' AND NOT t.relispartition
      AND i.indisvalid AND i.indisready AND i.indislive
      AND (con.oid IS NULL OR con.contype IN ('p', 'u'))
      AND NOT (con.contype IS NOT DISTINCT FROM 'p' AND $5::bool)
      -- nothing leans on the index (an FK left in place, a partition's index) ...
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                      WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                        AND d.refobjid = i.indexrelid)
      -- ... or on its constraint (a view grouping by the primary key); its own
      -- parts (the index, a deferrable one's recheck triggers) go and come with it
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                      WHERE d.refclassid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
                        AND d.refobjid = con.oid AND d.deptype <> 'i')
      -- a masked table keeps its primary key (unique rules derive values from it)
      AND NOT (con.contype IS NOT DISTINCT FROM 'p'
               AND EXISTS (SELECT 1 FROM masked m WHERE m.attrelid = i.indrelid))
      -- a unique index over a masked column stays: a colliding rule fails the load by name
      AND NOT (i.indisunique AND EXISTS (
            SELECT 1 FROM masked m
            WHERE m.attrelid = i.indrelid
              AND (m.attnum = ANY (i.indkey::int2[])
                   OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                              WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                AND d.objid = i.indexrelid AND d.refobjid = i.indrelid
                                AND d.refobjsubid = m.attnum))))
),
saved AS (
    INSERT INTO dbsync.saved_index AS s
        (table_schema, table_name, index_name, definition, tablespace, constraint_kind,
         constraint_name, is_deferrable, is_deferred, index_comment, constraint_comment, statistics,
         clustered, replica_identity)
    SELECT idx.table_schema, idx.table_name, idx.index_name,
           pg_catalog.pg_get_indexdef(idx.indexrelid), idx.tablespace, idx.contype,
           idx.constraint_name, idx.is_deferrable, idx.is_deferred,
           pg_catalog.obj_description(idx.indexrelid, 'pg_class'),
           pg_catalog.obj_description(idx.con_oid, 'pg_constraint'),
           coalesce((SELECT pg_catalog.array_agg(v.x ORDER BY a.attnum, v.k)
                     FROM pg_catalog.pg_attribute a
                     CROSS JOIN LATERAL (VALUES (1, a.attnum::int4), (2, a.attstattarget::int4)) AS v(k, x)
                     WHERE a.attrelid = idx.indexrelid AND a.attstattarget >= 0), '{}'),
           idx.indisclustered, idx.indisreplident
    FROM idx
    -- Saved before and not finished: the saved row wins when the live index is
    -- the same one (dbsync's own rebuild, its constraint not attached yet);
    -- a genuinely different live index replaces it (someone changed the schema).
    ON CONFLICT (table_schema, table_name, index_name) DO UPDATE SET
        built = false,
        definition = EXCLUDED.definition,
        tablespace = EXCLUDED.tablespace,
        constraint_kind = CASE WHEN s.definition = EXCLUDED.definition
                               THEN s.constraint_kind ELSE EXCLUDED.constraint_kind END,
        constraint_name = CASE WHEN s.definition = EXCLUDED.definition
                               THEN s.constraint_name ELSE EXCLUDED.constraint_name END,
        is_deferrable = CASE WHEN s.definition = EXCLUDED.definition
                             THEN s.is_deferrable ELSE EXCLUDED.is_deferrable END,
        is_deferred = CASE WHEN s.definition = EXCLUDED.definition
                           THEN s.is_deferred ELSE EXCLUDED.is_deferred END,
        index_comment = coalesce(EXCLUDED.index_comment, s.index_comment),
        constraint_comment = coalesce(EXCLUDED.constraint_comment, s.constraint_comment),
        statistics = EXCLUDED.statistics,
        clustered = EXCLUDED.clustered OR (s.definition = EXCLUDED.definition AND s.clustered),
        replica_identity = EXCLUDED.replica_identity
                           OR (s.definition = EXCLUDED.definition AND s.replica_identity)
    RETURNING 1
)
SELECT CASE WHEN idx.contype IS NULL
            THEN pg_catalog.format('DROP INDEX %I.%I', idx.table_schema, idx.index_name)
            ELSE pg_catalog.format('ALTER TABLE %I.%I DROP CONSTRAINT %I',
                                   idx.table_schema, idx.table_name, idx.constraint_name)
       END
FROM idx
ORDER BY idx.table_schema, idx.table_name, idx.index_name";

/// The saved indexes with their live counterparts, largest table first (so
/// the longest build starts first). `running` tags are matched by the caller.
const SAVED: &str = "
SELECT s.table_schema, s.table_name, s.index_name, s.definition, s.tablespace,
       s.constraint_kind::text AS constraint_kind, s.constraint_name, s.is_deferrable, s.is_deferred,
       s.index_comment, s.constraint_comment, s.statistics, s.clustered, s.replica_identity, s.built,
       t.oid IS NOT NULL AS table_exists,
       pg_catalog.pg_get_indexdef(li.oid) AS live_definition,
       coalesce(lx.indisvalid, false) AS live_valid,
       coalesce(pg_catalog.pg_relation_size(t.oid), 0) AS table_bytes
FROM dbsync.saved_index s
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = s.table_schema
LEFT JOIN pg_catalog.pg_class t ON t.relnamespace = n.oid AND t.relname = s.table_name AND t.relkind = 'r'
LEFT JOIN pg_catalog.pg_class li ON li.relnamespace = n.oid AND li.relname = s.index_name AND li.relkind = 'i'
LEFT JOIN pg_catalog.pg_index lx ON lx.indexrelid = li.oid
ORDER BY table_bytes DESC, s.table_schema, s.table_name, s.index_name";

/// One saved index.
#[derive(Debug, Clone)]
struct Saved {
    schema: String,
    table: String,
    name: String,
    definition: String,
    tablespace: String,
    constraint_kind: Option<String>,
    constraint_name: Option<String>,
    deferrable: bool,
    deferred: bool,
    index_comment: Option<String>,
    constraint_comment: Option<String>,
    statistics: Vec<Vec<i32>>,
    clustered: bool,
    replica_identity: bool,
    built: bool,
    table_exists: bool,
    live_definition: Option<String>,
    live_valid: bool,
}

impl Saved {
    fn from_row(r: &Row) -> Self {
        let statistics: Vec<i32> = r.get("statistics");
        Self {
            schema: r.get("table_schema"),
            table: r.get("table_name"),
            name: r.get("index_name"),
            definition: r.get("definition"),
            tablespace: r.get("tablespace"),
            constraint_kind: r.get("constraint_kind"),
            constraint_name: r.get("constraint_name"),
            deferrable: r.get("is_deferrable"),
            deferred: r.get("is_deferred"),
            index_comment: r.get("index_comment"),
            constraint_comment: r.get("constraint_comment"),
            statistics: statistics.chunks(2).map(<[i32]>::to_vec).collect(),
            clustered: r.get("clustered"),
            replica_identity: r.get("replica_identity"),
            built: r.get("built"),
            table_exists: r.get("table_exists"),
            live_definition: r.get("live_definition"),
            live_valid: r.get("live_valid"),
        }
    }

    fn label(&self) -> String {
        format!("{}.{}", sql::ident(&self.schema), sql::ident(&self.name))
    }

    fn table(&self) -> String {
        format!("{}.{}", sql::ident(&self.schema), sql::ident(&self.table))
    }

    fn key_predicate(&self) -> String {
        format!(
            "table_schema = {} AND table_name = {} AND index_name = {}",
            sql::literal(&self.schema),
            sql::literal(&self.table),
            sql::literal(&self.name)
        )
    }

    /// The build and its record, one transaction in one message.
    fn build_statement(&self) -> String {
        format!(
            "BEGIN;\nSET LOCAL search_path = '';\nSET LOCAL default_tablespace = {};\n{};\n\
             UPDATE dbsync.saved_index SET built = true WHERE {};\nCOMMIT;",
            sql::literal(&self.tablespace),
            self.definition,
            self.key_predicate()
        )
    }

    /// What follows the build: the constraint, comments, statistics targets,
    /// `CLUSTER` and replica identity.
    fn finish_statements(&self) -> String {
        let mut s = String::new();
        let table = self.table();
        let mut index = self.name.clone();
        if let (Some(kind), Some(name)) = (&self.constraint_kind, &self.constraint_name) {
            let what = if kind == "p" { "PRIMARY KEY" } else { "UNIQUE" };
            let timing = match (self.deferrable, self.deferred) {
                (true, true) => " DEFERRABLE INITIALLY DEFERRED",
                (true, false) => " DEFERRABLE",
                _ => "",
            };
            s.push_str(&format!(
                "ALTER TABLE {table} ADD CONSTRAINT {} {what} USING INDEX {}{timing};\n",
                sql::ident(name),
                sql::ident(&self.name)
            ));
            // USING INDEX names the index after the constraint.
            index = name.clone();
            if let Some(c) = &self.constraint_comment {
                s.push_str(&sql::comment_on_constraint(&table, name, c));
                s.push_str(";\n");
            }
        }
        let index_q = format!("{}.{}", sql::ident(&self.schema), sql::ident(&index));
        if let Some(c) = &self.index_comment {
            s.push_str(&format!(
                "COMMENT ON INDEX {index_q} IS {};\n",
                sql::literal(c)
            ));
        }
        for pair in &self.statistics {
            if let [attnum, target] = pair[..] {
                s.push_str(&format!(
                    "ALTER INDEX {index_q} ALTER COLUMN {attnum} SET STATISTICS {target};\n"
                ));
            }
        }
        if self.clustered {
            s.push_str(&format!(
                "ALTER TABLE {table} CLUSTER ON {};\n",
                sql::ident(&index)
            ));
        }
        if self.replica_identity {
            s.push_str(&format!(
                "ALTER TABLE {table} REPLICA IDENTITY USING INDEX {};\n",
                sql::ident(&index)
            ));
        }
        s.push_str(&format!(
            "DELETE FROM dbsync.saved_index WHERE {};\n",
            self.key_predicate()
        ));
        s
    }
}

/// Saves and drops the indexes a load goes without (see the module), in the
/// caller's transaction — the one that drops the foreign keys, after them.
/// Returns how many were dropped.
pub async fn capture_and_drop(
    tx: &tokio_postgres::Transaction<'_>,
    oids: &[u32],
    policy: IndexDrop,
    masked: &MaskedColumns,
) -> Result<u64, StepError> {
    let err = |e| classify(e, "dropping indexes for the load");
    if policy == IndexDrop::None {
        return Ok(0);
    }
    let (mut schemas, mut tables, mut columns) = (Vec::new(), Vec::new(), Vec::new());
    for (s, t, c) in masked {
        schemas.push(s.as_str());
        tables.push(t.as_str());
        columns.push(c.as_str());
    }
    let keep_primary_keys = policy == IndexDrop::AllButPrimaryKeys;
    let drops = tx
        .query_typed(
            CAPTURE_AND_PLAN_DROP,
            &[
                (&oids, Type::OID_ARRAY),
                (&schemas, Type::TEXT_ARRAY),
                (&tables, Type::TEXT_ARRAY),
                (&columns, Type::TEXT_ARRAY),
                (&keep_primary_keys, Type::BOOL),
            ],
        )
        .await
        .map_err(err)?;
    let statements: String = drops
        .iter()
        .map(|r| format!("{};\n", r.get::<_, &str>(0)))
        .collect();
    if !statements.is_empty() {
        tx.batch_execute(&statements).await.map_err(err)?;
    }
    Ok(drops.len() as u64)
}

/// What the rebuild came to in one invocation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Indexes built (and finished) by this invocation.
    pub built: u64,
    /// Saved indexes still to build or finish: call again.
    pub remaining: u64,
}

/// Settings of the rebuild.
#[derive(Debug, Clone)]
pub struct RebuildOptions<'a> {
    pub timeouts: Timeouts,
    /// Builds at once.
    pub jobs: usize,
    /// Where builds run on sessions of their own and outlive the invocation;
    /// `None`: one at a time within it.
    pub detach: Option<&'a DbConfig>,
    /// Below this much budget no build starts.
    pub min_slice: std::time::Duration,
}

/// Builds every saved index again, `jobs` at a time, then finishes them all
/// in one transaction. `remaining > 0`: call again.
pub async fn rebuild(
    client: &mut Client,
    opts: &RebuildOptions<'_>,
    budget: Budget,
) -> Result<Rebuilt, StepError> {
    let ctx = "rebuilding indexes";
    let err = |e| classify(e, ctx);
    let saved: Vec<Saved> = {
        let tx = step_transaction(client, opts.timeouts, budget, true, ctx).await?;
        tx.batch_execute(sql::UPGRADE_SAVED).await.map_err(err)?;
        let rows = tx.query_typed(SAVED, &[]).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        rows.iter().map(Saved::from_row).collect()
    };
    if saved.is_empty() {
        return Ok(Rebuilt::default());
    }
    let mut conflicts = Vec::new();
    let mut todo = Vec::new();
    let mut relabel = Vec::new();
    for s in &saved {
        match &s.live_definition {
            _ if !s.table_exists => {
                conflicts.push(format!("{} (table no longer exists)", s.label()));
            }
            // Built (by dbsync, by hand, or by a run whose record was lost):
            // the same valid index counts.
            Some(live) if *live == s.definition && s.live_valid => {
                if !s.built {
                    relabel.push(s.key_predicate());
                }
            }
            Some(live) if *live == s.definition => conflicts.push(format!(
                "{} (an invalid index of that name: drop it)",
                s.label()
            )),
            Some(_) => conflicts.push(s.label()),
            // Not there (never built, or gone since it was): build it.
            None => todo.push(s.clone()),
        }
    }
    if !conflicts.is_empty() {
        return Err(StepError::ConstraintConflict(format!(
            "saved indexes whose names are taken by different definitions: {}; \
             drop or rename those, or delete their rows from dbsync.saved_index",
            conflicts.join(", ")
        )));
    }
    if !relabel.is_empty() {
        let statements: String = relabel
            .iter()
            .map(|key| format!("UPDATE dbsync.saved_index SET built = true WHERE {key};\n"))
            .collect();
        client.batch_execute(&statements).await.map_err(err)?;
    }
    let mut out = Rebuilt::default();
    // One index that cannot be built does not hold back the others: they
    // are built and finished, then its failure is the step's.
    let (unbuilt, failed) = build(client, opts, budget, todo).await?;
    if unbuilt > 0 && failed.is_empty() {
        out.remaining = unbuilt;
        return Ok(out);
    }
    // The finishing touches, one short transaction per index.
    let rows: Vec<Saved> = client
        .query(SAVED, &[])
        .await
        .map_err(err)?
        .iter()
        .map(Saved::from_row)
        .filter(|s| s.built || s.live_definition.as_deref() == Some(s.definition.as_str()))
        .collect();
    let mut failures: Vec<String> = failed;
    for s in &rows {
        let tx = step_transaction(client, opts.timeouts, budget, true, ctx).await?;
        match tx.batch_execute(&s.finish_statements()).await {
            Ok(()) => {
                tx.commit().await.map_err(err)?;
                out.built += 1;
            }
            Err(e) => match e.as_db_error() {
                Some(db) => failures.push(format!(
                    "could not attach {}'s constraint or settings: {}",
                    s.label(),
                    db.message()
                )),
                None => return Err(err(e)),
            },
        }
    }
    if !failures.is_empty() {
        return Err(StepError::IndexRebuildFailed(failures.join("; ")));
    }
    out.remaining = unbuilt;
    Ok(out)
}

/// Builds `todo` (largest table first); returns how many are still not
/// built, and the builds that failed (their messages).
async fn build(
    client: &mut Client,
    opts: &RebuildOptions<'_>,
    budget: Budget,
    todo: Vec<Saved>,
) -> Result<(u64, Vec<String>), StepError> {
    let Some(session) = opts.detach else {
        // Within the invocation, one at a time.
        let mut left = todo.len() as u64;
        let mut failed = Vec::new();
        for s in &todo {
            if budget.remaining() < opts.min_slice {
                break;
            }
            let statement = format!(
                "SET statement_timeout = {};\n{}",
                budget
                    .statement_timeout(opts.timeouts.statement)
                    .as_millis()
                    .max(1),
                s.build_statement()
            );
            match client.batch_execute(&statement).await {
                Ok(()) => left -= 1,
                Err(e) => {
                    let _ = client
                        .batch_execute("ROLLBACK; RESET statement_timeout")
                        .await;
                    if e.code() == Some(&SqlState::QUERY_CANCELED) && left < todo.len() as u64 {
                        break;
                    }
                    match build_failed(s, e) {
                        StepError::IndexRebuildFailed(m) => {
                            failed.push(m);
                            left -= 1;
                        }
                        other => return Err(other),
                    }
                }
            }
        }
        let _ = client.batch_execute("RESET statement_timeout").await;
        return Ok((left, failed));
    };
    // Builds an earlier invocation left running go first, so no more than
    // `jobs` run at once.
    let checker: &Client = client;
    let keys: Vec<String> = todo.iter().map(build_key).collect();
    let running = crate::long::running_keys(
        checker,
        &keys.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await?;
    let mut order: Vec<usize> = (0..todo.len()).collect();
    order.sort_by_key(|&i| !running[i]);
    let todo: Vec<(Saved, bool)> = order
        .into_iter()
        .map(|i| (todo[i].clone(), running[i]))
        .collect();
    // At most `jobs` at once; the next starts when one is built. A build
    // still running when the invocation ends keeps its slot.
    let mut free = opts.jobs.max(1);
    let mut pending = todo.iter();
    let mut in_flight = FuturesUnordered::new();
    let mut results = Vec::with_capacity(todo.len());
    loop {
        while free > 0 {
            match pending.next() {
                Some((s, was_running)) => {
                    free -= 1;
                    in_flight.push(build_one(checker, session, s, *was_running, opts, budget));
                }
                None => break,
            }
        }
        match in_flight.next().await {
            Some(r) => {
                if matches!(r, Ok(true)) {
                    free += 1;
                }
                results.push(r);
            }
            None => break,
        }
    }
    results.extend(pending.map(|_| Ok(false)));
    let (mut left, mut failed) = (0, Vec::new());
    for r in results {
        match r {
            Ok(true) => {}
            Ok(false) => left += 1,
            Err(StepError::IndexRebuildFailed(m)) => failed.push(m),
            Err(e) => return Err(e),
        }
    }
    if left == 0 && failed.is_empty() {
        checker
            .batch_execute("DELETE FROM dbsync.long_statement WHERE key LIKE 'index %'")
            .await
            .map_err(|e| classify(e, "forgetting finished index builds"))?;
    }
    Ok((left, failed))
}

/// One build on a session of its own (see `crate::long`): `true` once built.
async fn build_one(
    checker: &Client,
    session: &DbConfig,
    s: &Saved,
    was_running: bool,
    opts: &RebuildOptions<'_>,
    budget: Budget,
) -> Result<bool, StepError> {
    let key = build_key(s);
    let statement = s.build_statement();
    let what = format!("building {}", s.label());
    let job = crate::long::Job::new(&what, &key, &statement, opts.timeouts);
    if !was_running && budget.remaining() < opts.min_slice {
        return Ok(false);
    }
    let built = || async {
        let row = checker
            .query_one(
                &format!(
                    "SELECT built FROM dbsync.saved_index WHERE {}",
                    s.key_predicate()
                ),
                &[],
            )
            .await
            .map_err(|e| classify(e, "checking a rebuilt index"))?;
        Ok(row.get::<_, bool>(0))
    };
    match crate::long::drive(checker, session, &job, budget, built).await? {
        crate::long::Outcome::Done => Ok(true),
        crate::long::Outcome::Running => Ok(false),
        crate::long::Outcome::Failed(e) => Err(build_failed(s, e)),
    }
}

fn build_failed(s: &Saved, e: tokio_postgres::Error) -> StepError {
    match e.as_db_error() {
        Some(db) => StepError::IndexRebuildFailed(format!(
            "could not build {} again: {}",
            s.label(),
            db.message()
        )),
        None => classify(e, &format!("building {}", s.label())),
    }
}

fn build_key(s: &Saved) -> String {
    format!("index {}.{}.{}", s.schema, s.table, s.name)
}

/// How many indexes wait in `dbsync.saved_index` (for `plan`).
pub async fn saved_count(client: &Client) -> Result<i64, StepError> {
    Ok(client
        .query_one(
            "SELECT CASE WHEN pg_catalog.to_regclass('dbsync.saved_index') IS NULL THEN 0::int8 \
             ELSE (SELECT pg_catalog.count(*) FROM dbsync.saved_index) END",
            &[],
        )
        .await
        .map_err(|e| classify(e, "counting saved indexes"))?
        .get(0))
}
