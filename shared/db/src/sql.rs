//! Every SQL statement dbsync sends, in one place.
//!
//! All of it runs with `search_path = ''` (see [`prelude`]), so catalog names
//! resolve to `pg_catalog` only, user objects are always schema-qualified, and
//! `pg_get_constraintdef` writes fully qualified references that cannot re-bind
//! to another table later. Identifiers are quoted by PostgreSQL (`%I`,
//! `quote_ident`) or by [`ident`]; values travel as parameters or through
//! [`literal`]. (Multi-array `unnest(a, b, …)` is parser syntax and cannot be
//! schema-qualified; it still resolves to `pg_catalog`.)

use std::time::Duration;

/// The project's own schema in the target (marker, saved constraints); never
/// synced, never touched. The SQL below spells it out for readability; a test
/// checks every spelling against this constant.
pub const PROJECT_SCHEMA: &str = "dbsync";

/// Key of the transaction-level advisory lock every changing step takes on
/// the target, so two runs never interleave their FK bookkeeping.
pub const ADVISORY_LOCK_KEY: i64 = 0x6462_7379_6e63; // "dbsync"

/// Opens a step's transaction body: empty search path, time limits, the
/// dbsync lock, and (for changing steps) the target guard.
pub fn prelude(statement_timeout: Duration, lock_timeout: Duration, guard: bool) -> String {
    let mut s = format!(
        "SET LOCAL search_path = '';\n\
         SET LOCAL statement_timeout = {};\n\
         SET LOCAL lock_timeout = {};\n\
         SELECT pg_catalog.pg_advisory_xact_lock({ADVISORY_LOCK_KEY});\n",
        statement_timeout.as_millis().max(1),
        lock_timeout.as_millis().max(1),
    );
    if guard {
        s.push_str(GUARD);
    }
    s
}

/// Refuses (SQLSTATE DS001, message = database name) unless the operator has
/// opted this database in. Two IFs: PL/pgSQL plans the second only when the
/// marker table exists.
pub const GUARD: &str = "DO $dbsync_guard$
BEGIN
  IF pg_catalog.to_regclass('dbsync.target') IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'DS001', MESSAGE = pg_catalog.current_database();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM dbsync.target WHERE database = pg_catalog.current_database()) THEN
    -- A marker for another name: the database was copied (createdb -T); DETAIL names the original.
    RAISE EXCEPTION USING ERRCODE = 'DS001', MESSAGE = pg_catalog.current_database(),
      DETAIL = coalesce((SELECT database FROM dbsync.target LIMIT 1), '');
  END IF;
END
$dbsync_guard$;\n";

/// Opens a transaction that runs the team's own SQL (masking expressions,
/// `after_sync`): time limits, the dbsync lock and the guard, but the
/// session's own search path, so their unqualified names resolve as they
/// would in psql.
pub fn prelude_user_sql(statement_timeout: Duration, lock_timeout: Duration) -> String {
    format!(
        "SET LOCAL statement_timeout = {};\n\
         SET LOCAL lock_timeout = {};\n\
         SELECT pg_catalog.pg_advisory_xact_lock({ADVISORY_LOCK_KEY});\n{GUARD}",
        statement_timeout.as_millis().max(1),
        lock_timeout.as_millis().max(1),
    )
}

/// Creates the project's schema and marks the database as a sync target.
/// Idempotent; run once per staging database by an operator.
pub const INIT_TARGET: &str = "
SET LOCAL search_path = '';
CREATE SCHEMA IF NOT EXISTS dbsync;
COMMENT ON SCHEMA dbsync IS 'dbsync bookkeeping: sync-target marker and saved foreign keys. Do not edit by hand.';
CREATE TABLE IF NOT EXISTS dbsync.target (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    database    text NOT NULL,
    opted_in_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    opted_in_by text NOT NULL DEFAULT CURRENT_USER
);
CREATE TABLE IF NOT EXISTS dbsync.saved_fk (
    table_schema     text NOT NULL,
    table_name       text NOT NULL,
    constraint_name  text NOT NULL,
    -- pg_get_constraintdef() under an empty search_path: exact and fully qualified
    definition       text NOT NULL,
    was_validated    boolean NOT NULL,
    -- what orphan checks need, captured with the definition
    child_table      text NOT NULL,
    child_only       boolean NOT NULL,
    parent_table     text NOT NULL,
    parent_only      boolean NOT NULL,
    child_columns    text[] NOT NULL,
    parent_columns   text[] NOT NULL,
    match_full       boolean NOT NULL,
    on_partitioned   boolean NOT NULL,
    state            text NOT NULL DEFAULT 'dropped'
                     CHECK (state IN ('dropped', 'added', 'kept_not_valid')),
    -- COMMENT ON CONSTRAINT, re-applied with the constraint
    comment          text,
    saved_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (table_schema, table_name, constraint_name)
);
INSERT INTO dbsync.target (database) VALUES (pg_catalog.current_database())
ON CONFLICT (id) DO UPDATE SET database = EXCLUDED.database, opted_in_at = pg_catalog.now();
";

/// Brings the bookkeeping of a target opted in by an older dbsync up to date
/// (run in the steps' transactions before they touch it): constraint comments,
/// and the saved `CHECK … NOT VALID` constraints.
pub const UPGRADE_SAVED: &str = "
ALTER TABLE dbsync.saved_fk ADD COLUMN IF NOT EXISTS comment text;
CREATE TABLE IF NOT EXISTS dbsync.saved_fk_clone (
    -- the saved top-level FK the clone belongs to
    table_schema    text NOT NULL,
    table_name      text NOT NULL,
    constraint_name text NOT NULL,
    -- where the clone lives and what it references (regclass text, empty search_path)
    clone_table     text NOT NULL,
    clone_ref       text NOT NULL,
    clone_name      text NOT NULL,
    PRIMARY KEY (table_schema, table_name, constraint_name, clone_table, clone_ref)
);
CREATE TABLE IF NOT EXISTS dbsync.saved_check (
    table_schema    text NOT NULL,
    table_name      text NOT NULL,
    constraint_name text NOT NULL,
    -- pg_get_constraintdef() under an empty search_path, NOT VALID included
    definition      text NOT NULL,
    comment         text,
    saved_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (table_schema, table_name, constraint_name)
);
-- Statements that may outlive an invocation (VALIDATE on a big table): how
-- often each was started, so one that keeps failing while detached ends the run.
CREATE TABLE IF NOT EXISTS dbsync.long_statement (
    key        text PRIMARY KEY,
    starts     int NOT NULL,
    started_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
-- User triggers switched off for the load, with how each fired (pg_trigger.tgenabled:
-- O origin, R replica, A always), saved in the transaction that switches them off.
CREATE TABLE IF NOT EXISTS dbsync.saved_trigger (
    table_schema text NOT NULL,
    table_name   text NOT NULL,
    trigger_name text NOT NULL,
    mode         \"char\" NOT NULL,
    saved_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (table_schema, table_name, trigger_name)
);
-- Indexes dropped for the load (see `indexes`), saved in the transaction that drops them.
CREATE TABLE IF NOT EXISTS dbsync.saved_index (
    table_schema       text NOT NULL,
    table_name         text NOT NULL,
    index_name         text NOT NULL,
    -- pg_get_indexdef() under an empty search_path: exact and fully qualified
    definition         text NOT NULL,
    -- '' for the database's default
    tablespace         text NOT NULL,
    -- a primary key ('p') or unique constraint ('u') the index backs
    constraint_kind    \"char\",
    constraint_name    text,
    is_deferrable      boolean NOT NULL DEFAULT false,
    is_deferred        boolean NOT NULL DEFAULT false,
    index_comment      text,
    constraint_comment text,
    -- ALTER INDEX … ALTER COLUMN n SET STATISTICS m: n, m, n, m, …
    statistics         int4[] NOT NULL DEFAULT '{}',
    clustered          boolean NOT NULL DEFAULT false,
    replica_identity   boolean NOT NULL DEFAULT false,
    -- the index exists again (set in the transaction that built it)
    built              boolean NOT NULL DEFAULT false,
    saved_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (table_schema, table_name, index_name)
)";

/// The enabled user triggers of the synced tables and of their partitions
/// (a partition's clone of a parent's trigger is its own row, switched on
/// its own: `ONLY` behaves alike on every version). Constraint and internal
/// triggers are left alone. `$1` = the selected oids.
const TRIGGERS_IN_SCOPE: &str = "
WITH rels AS (
    SELECT s.oid FROM pg_catalog.unnest($1::pg_catalog.oid[]) AS s(oid)
    UNION
    SELECT t.relid FROM pg_catalog.unnest($1::pg_catalog.oid[]) AS s(oid),
           pg_catalog.pg_partition_tree(s.oid) AS t
),
trg AS (
    SELECT n.nspname::text AS table_schema, c.relname::text AS table_name,
           t.tgname::text AS trigger_name, t.tgenabled AS mode
    FROM pg_catalog.pg_trigger t
    JOIN rels ON rels.oid = t.tgrelid
    JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE NOT t.tgisinternal AND t.tgconstraint = 0 AND t.tgenabled <> 'D'
)";

/// Saves the triggers in scope and plans switching them off.
pub fn capture_and_plan_triggers_off() -> String {
    format!(
        "{TRIGGERS_IN_SCOPE},
saved AS (
    INSERT INTO dbsync.saved_trigger (table_schema, table_name, trigger_name, mode)
    SELECT table_schema, table_name, trigger_name, mode FROM trg
    ON CONFLICT DO NOTHING
)
SELECT pg_catalog.format('ALTER TABLE ONLY %I.%I DISABLE TRIGGER %I',
                         table_schema, table_name, trigger_name)
FROM trg ORDER BY 1"
    )
}

/// The triggers in scope, `schema.table.trigger` (for `plan`; changes nothing).
pub fn triggers_in_scope() -> String {
    format!(
        "{TRIGGERS_IN_SCOPE}
SELECT pg_catalog.format('%I.%I.%I', table_schema, table_name, trigger_name) FROM trg ORDER BY 1"
    )
}

/// Plans switching every saved trigger back on in its own mode (those that
/// still exist), and forgets them all: run in one transaction, exactly once.
pub const PLAN_TRIGGERS_ON: &str = "
WITH gone AS (
    DELETE FROM dbsync.saved_trigger RETURNING table_schema, table_name, trigger_name, mode
)
SELECT pg_catalog.format('ALTER TABLE ONLY %I.%I %s TRIGGER %I', g.table_schema, g.table_name,
                         CASE g.mode WHEN 'R' THEN 'ENABLE REPLICA' WHEN 'A' THEN 'ENABLE ALWAYS'
                                     ELSE 'ENABLE' END,
                         g.trigger_name)
FROM gone g
JOIN pg_catalog.pg_namespace n ON n.nspname = g.table_schema
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = g.table_name
JOIN pg_catalog.pg_trigger t ON t.tgrelid = c.oid AND t.tgname = g.trigger_name
ORDER BY 1";

/// The run lease: one row while a sync holds the target. Created by
/// `init-target`, and by the first acquire on targets opted in before it existed.
pub const CREATE_LEASE: &str = "
CREATE TABLE IF NOT EXISTS dbsync.lease (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    -- the execution (Step Functions ARN) that holds the target
    execution      text NOT NULL,
    acquired_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- a holder past this is dead, whatever else is known about it
    expires_at     timestamptz NOT NULL,
    -- the DMS task's table mappings for this run: the synced tables
    table_mappings text
)";

/// The lease, if any: holder, whether it has expired, the run's mappings.
pub const READ_LEASE: &str = "
SELECT l.execution, l.expires_at < pg_catalog.now() AS expired, l.table_mappings
FROM dbsync.lease l";

/// Takes (or renews) the lease for `$1` until `$2` seconds from now, with mappings `$3`.
pub const TAKE_LEASE: &str = "
INSERT INTO dbsync.lease AS l (id, execution, expires_at, table_mappings)
VALUES (true, $1, pg_catalog.now() + pg_catalog.make_interval(secs => $2), $3)
ON CONFLICT (id) DO UPDATE SET execution = EXCLUDED.execution,
    acquired_at = pg_catalog.now(), expires_at = EXCLUDED.expires_at,
    table_mappings = EXCLUDED.table_mappings";

/// Releases the lease if `$1` holds it.
pub const RELEASE_LEASE: &str = "DELETE FROM dbsync.lease WHERE execution = $1";

/// Whether the lease table exists (targets opted in by an older dbsync lack it).
pub const HAS_LEASE_TABLE: &str = "SELECT pg_catalog.to_regclass('dbsync.lease') IS NOT NULL";

/// Where this session is connected (for the check against the DMS target endpoint).
pub const WHERE_AM_I: &str = "
SELECT pg_catalog.current_database()::text AS database,
       pg_catalog.host(pg_catalog.inet_server_addr()) AS address,
       pg_catalog.inet_server_port() AS port";

/// Candidate tables (selection rules are applied by the caller).
pub const LIST_TABLES: &str = "
SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, c.relkind::text AS kind,
       c.relispartition AS is_partition
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'dbsync')
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
ORDER BY n.nspname, c.relname";

/// The foreign keys a sync must lift: those on the selected tables and those
/// referencing them (from any table, synced or not). Partitions count as their
/// whole tree; only top-level constraints (`conparentid = 0`) are taken, the
/// per-partition clones come back with their parent. `$1` = selected oids.
const FKS_IN_SCOPE: &str = "
sel AS (
    SELECT DISTINCT r.relid
    FROM pg_catalog.unnest($1::pg_catalog.oid[]) AS s(oid)
    CROSS JOIN LATERAL (
        SELECT s.oid AS relid
        UNION SELECT a.relid FROM pg_catalog.pg_partition_ancestors(s.oid) AS a
        UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(s.oid) AS t
    ) AS r
),
fk AS (
    SELECT c.oid, c.conname::text AS conname, c.convalidated, c.confmatchtype,
           cn.nspname::text AS table_schema, ct.relname::text AS table_name, ct.relkind AS child_kind,
           pg_catalog.format('%I.%I', cn.nspname, ct.relname) AS child_table,
           pg_catalog.format('%I.%I', rn.nspname, rt.relname) AS parent_table,
           rt.relkind AS parent_kind,
           ARRAY(SELECT pg_catalog.quote_ident(a.attname) FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY AS k(n, i)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS child_columns,
           ARRAY(SELECT pg_catalog.quote_ident(a.attname) FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY AS k(n, i)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS parent_columns
    FROM pg_catalog.pg_constraint c
    JOIN pg_catalog.pg_class ct ON ct.oid = c.conrelid
    JOIN pg_catalog.pg_namespace cn ON cn.oid = ct.relnamespace
    JOIN pg_catalog.pg_class rt ON rt.oid = c.confrelid
    JOIN pg_catalog.pg_namespace rn ON rn.oid = rt.relnamespace
    WHERE c.contype = 'f' AND c.conparentid = 0
      AND (c.conrelid IN (SELECT relid FROM sel) OR c.confrelid IN (SELECT relid FROM sel))
      AND cn.nspname <> 'dbsync'
)";

/// Saves every in-scope FK (merging with what is already saved) and returns
/// the `ALTER TABLE … DROP CONSTRAINT …` statements, one per table. Run in the
/// same transaction as the drops, so a crash loses nothing.
///
/// Merge rule: an existing saved definition wins unless the live constraint is
/// a genuinely different one (someone changed the schema since): a live copy
/// that differs only by `NOT VALID` is dbsync's own half-restored state.
pub fn capture_and_plan_drop() -> String {
    format!(
        "WITH RECURSIVE {FKS_IN_SCOPE},
tree AS (
    SELECT fk.oid AS root, fk.oid, fk.table_schema, fk.table_name, fk.conname FROM fk
    UNION ALL
    SELECT tree.root, c.oid, tree.table_schema, tree.table_name, tree.conname
    FROM pg_catalog.pg_constraint c JOIN tree ON c.conparentid = tree.oid
),
clones AS (
    INSERT INTO dbsync.saved_fk_clone
        (table_schema, table_name, constraint_name, clone_table, clone_ref, clone_name)
    SELECT tree.table_schema, tree.table_name, tree.conname,
           c.conrelid::pg_catalog.regclass::text, c.confrelid::pg_catalog.regclass::text, c.conname::text
    FROM tree JOIN pg_catalog.pg_constraint c ON c.oid = tree.oid
    WHERE tree.oid <> tree.root
    ON CONFLICT DO NOTHING
    RETURNING 1
),
saved AS (
    INSERT INTO dbsync.saved_fk AS s
        (table_schema, table_name, constraint_name, definition, was_validated,
         child_table, child_only, parent_table, parent_only, child_columns, parent_columns,
         match_full, on_partitioned, comment)
    SELECT table_schema, table_name, conname, pg_catalog.pg_get_constraintdef(oid), convalidated,
           child_table, child_kind = 'r', parent_table, parent_kind = 'r', child_columns, parent_columns,
           confmatchtype = 'f', child_kind = 'p', pg_catalog.obj_description(oid, 'pg_constraint')
    FROM fk
    ON CONFLICT (table_schema, table_name, constraint_name) DO UPDATE SET
        state = 'dropped',
        comment = coalesce(EXCLUDED.comment, s.comment),
        definition = CASE WHEN {same} THEN s.definition ELSE EXCLUDED.definition END,
        was_validated = CASE WHEN {same} THEN s.was_validated ELSE EXCLUDED.was_validated END
    RETURNING 1
)
SELECT pg_catalog.format('ALTER TABLE %I.%I ', table_schema, table_name)
       || pg_catalog.string_agg(pg_catalog.format('DROP CONSTRAINT %I', conname), ', ' ORDER BY conname),
       pg_catalog.count(*)
FROM fk
GROUP BY table_schema, table_name
ORDER BY table_schema, table_name",
        same = "pg_catalog.regexp_replace(s.definition, ' NOT VALID$', '') \
                = pg_catalog.regexp_replace(EXCLUDED.definition, ' NOT VALID$', '')"
    )
}

/// `CHECK … NOT VALID` constraints on the synced tables (`$1` oids, partitions
/// and ancestors included) — top-level ones only (`coninhcount = 0`): an
/// inherited copy goes and comes back with its parent's. A load would refuse
/// rows that break one (a copy checks every CHECK, valid or not), and the
/// source may hold such rows: that is what NOT VALID allowed there.
const CHECKS_IN_SCOPE: &str = "
ck AS (
    SELECT c.oid, c.conname::text AS conname,
           n.nspname::text AS table_schema, t.relname::text AS table_name
    FROM pg_catalog.pg_constraint c
    JOIN pg_catalog.pg_class t ON t.oid = c.conrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    WHERE c.contype = 'c' AND NOT c.convalidated AND c.coninhcount = 0
      AND c.conrelid IN (SELECT relid FROM sel)
      AND n.nspname <> 'dbsync'
)";

/// Saves (keeping an earlier saved copy) and lists the drops of the in-scope
/// NOT VALID checks, like [`capture_and_plan_drop`] for FKs.
pub fn capture_and_plan_check_drop() -> String {
    format!(
        "WITH {FKS_IN_SCOPE}, {CHECKS_IN_SCOPE},
saved AS (
    INSERT INTO dbsync.saved_check (table_schema, table_name, constraint_name, definition, comment)
    SELECT table_schema, table_name, conname, pg_catalog.pg_get_constraintdef(oid),
           pg_catalog.obj_description(oid, 'pg_constraint')
    FROM ck
    ON CONFLICT (table_schema, table_name, constraint_name) DO NOTHING
    RETURNING 1
)
SELECT pg_catalog.format('ALTER TABLE %I.%I ', table_schema, table_name)
       || pg_catalog.string_agg(pg_catalog.format('DROP CONSTRAINT %I', conname), ', ' ORDER BY conname),
       pg_catalog.count(*)
FROM ck
GROUP BY table_schema, table_name
ORDER BY table_schema, table_name"
    )
}

/// The in-scope NOT VALID checks without changing anything (for `plan`).
pub fn plan_checks() -> String {
    format!(
        "WITH {FKS_IN_SCOPE}, {CHECKS_IN_SCOPE}
SELECT pg_catalog.format('%I.%I', table_schema, table_name), conname,
       pg_catalog.pg_get_constraintdef(oid)
FROM ck ORDER BY 1, 2"
    )
}

/// Gives the partition clones of every re-added FK their saved names
/// (PostgreSQL names new clones after the parent, or numbers them; the
/// originals may have been adopted at ATTACH under their own names), through
/// temporary names so two clones can swap names; then forgets those clones.
/// Clones whose FK is not back yet stay saved.
pub const RENAME_SAVED_CLONES: &str = "
DO $dbsync_clones$
DECLARE r record;
BEGIN
  CREATE TEMP TABLE dbsync_clone_renames ON COMMIT DROP AS
  WITH RECURSIVE parents AS (
      SELECT DISTINCT s.table_schema, s.table_name, s.constraint_name, c.oid
      FROM dbsync.saved_fk_clone s
      JOIN pg_catalog.pg_namespace n ON n.nspname = s.table_schema
      JOIN pg_catalog.pg_class t ON t.relnamespace = n.oid AND t.relname = s.table_name
      JOIN pg_catalog.pg_constraint c ON c.conrelid = t.oid AND c.conname = s.constraint_name
           AND c.contype = 'f' AND c.conparentid = 0
  ), tree AS (
      SELECT p.table_schema, p.table_name, p.constraint_name, p.oid, p.oid AS root FROM parents p
      UNION ALL
      SELECT tree.table_schema, tree.table_name, tree.constraint_name, c.oid, tree.root
      FROM pg_catalog.pg_constraint c JOIN tree ON c.conparentid = tree.oid
  )
  SELECT c.oid, c.conrelid::pg_catalog.regclass::text AS tbl, c.conname::text AS live, s.clone_name AS want,
         s.table_schema, s.table_name, s.constraint_name, s.clone_table, s.clone_ref
  FROM tree
  JOIN pg_catalog.pg_constraint c ON c.oid = tree.oid AND tree.oid <> tree.root
  JOIN dbsync.saved_fk_clone s ON s.table_schema = tree.table_schema AND s.table_name = tree.table_name
       AND s.constraint_name = tree.constraint_name
       AND s.clone_table = c.conrelid::pg_catalog.regclass::text
       AND s.clone_ref = c.confrelid::pg_catalog.regclass::text;
  FOR r IN SELECT * FROM dbsync_clone_renames WHERE live <> want LOOP
    EXECUTE pg_catalog.format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', r.tbl, r.live, 'dbsync_clone_' || r.oid);
  END LOOP;
  FOR r IN SELECT * FROM dbsync_clone_renames WHERE live <> want LOOP
    EXECUTE pg_catalog.format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', r.tbl, 'dbsync_clone_' || r.oid, r.want);
  END LOOP;
  DELETE FROM dbsync.saved_fk_clone s USING dbsync_clone_renames d
  WHERE s.table_schema = d.table_schema AND s.table_name = d.table_name AND s.constraint_name = d.constraint_name
    AND s.clone_table = d.clone_table AND s.clone_ref = d.clone_ref;
  DROP TABLE dbsync_clone_renames;
END
$dbsync_clones$";

/// Every saved check with its live counterpart, if any.
pub const CHECK_RESTORE_STATUS: &str = "
SELECT s.table_schema, s.table_name, s.constraint_name, s.definition, s.comment,
       pg_catalog.format('%I.%I', s.table_schema, s.table_name) AS qualified,
       t.oid IS NOT NULL AS table_exists,
       pg_catalog.pg_get_constraintdef(c.oid) AS live_definition
FROM dbsync.saved_check s
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = s.table_schema
LEFT JOIN pg_catalog.pg_class t ON t.relnamespace = n.oid AND t.relname = s.table_name
LEFT JOIN pg_catalog.pg_constraint c ON c.conrelid = t.oid AND c.conname = s.constraint_name
ORDER BY 1, 2, 3";

pub fn forget_saved_check(schema: &str, table: &str, constraint: &str) -> String {
    format!(
        "DELETE FROM dbsync.saved_check WHERE {}",
        saved_key(schema, table, constraint)
    )
}

/// Materialized views depending on the selected tables (`$1` oids), directly
/// or through views and other materialized views, deepest dependency last;
/// `concurrently` when the view is populated and has a unique index on plain
/// columns (what `REFRESH … CONCURRENTLY` needs).
pub const DEPENDENT_VIEWS: &str = "
WITH RECURSIVE rel AS (
    SELECT r.relid
    FROM pg_catalog.unnest($1::pg_catalog.oid[]) AS s(oid)
    CROSS JOIN LATERAL (
        SELECT s.oid AS relid
        UNION SELECT a.relid FROM pg_catalog.pg_partition_ancestors(s.oid) AS a
        UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(s.oid) AS t
    ) AS r
), deps AS (
    SELECT DISTINCT w.ev_class AS view, 1 AS depth
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid
    WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.refobjid IN (SELECT relid FROM rel) AND w.ev_class <> d.refobjid
    UNION
    SELECT w.ev_class, deps.depth + 1
    FROM deps
    JOIN pg_catalog.pg_depend d ON d.refobjid = deps.view
         AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
         AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
    JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid
    WHERE w.ev_class <> deps.view AND deps.depth < 50
)
SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS name,
       c.relispopulated AND EXISTS (
           SELECT 1 FROM pg_catalog.pg_index i
           WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid
             AND i.indexprs IS NULL AND i.indpred IS NULL) AS concurrently
FROM (SELECT view, pg_catalog.max(depth) AS depth FROM deps GROUP BY view) v
JOIN pg_catalog.pg_class c ON c.oid = v.view AND c.relkind = 'm'
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname <> 'dbsync'
ORDER BY v.depth, 1";

/// Which views an execution has refreshed (resumable refresh).
pub const CREATE_VIEW_REFRESH: &str = "
CREATE TABLE IF NOT EXISTS dbsync.view_refresh (
    execution    text NOT NULL,
    view_name    text NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (execution, view_name)
)";

pub const VIEWS_REFRESHED: &str = "SELECT view_name FROM dbsync.view_refresh WHERE execution = $1";

/// Done: forget this execution's records (and any left by older ones).
pub const FORGET_VIEW_REFRESHES: &str = "DELETE FROM dbsync.view_refresh WHERE execution = $1 OR refreshed_at < pg_catalog.now() - interval '2 days'";

pub fn record_view_refresh(execution: &str, view: &str) -> String {
    format!(
        "INSERT INTO dbsync.view_refresh (execution, view_name) VALUES ({}, {}) ON CONFLICT DO NOTHING",
        literal(execution),
        literal(view)
    )
}

pub fn refresh_view(view: &str, concurrently: bool) -> String {
    format!(
        "REFRESH MATERIALIZED VIEW {}{view}",
        if concurrently { "CONCURRENTLY " } else { "" }
    )
}

/// The in-scope FKs without changing anything (for `plan`).
pub fn plan_fks() -> String {
    format!(
        "WITH {FKS_IN_SCOPE}
SELECT child_table, conname, parent_table FROM fk ORDER BY child_table, conname"
    )
}

pub const COUNT_SAVED: &str = "SELECT pg_catalog.count(*) FROM dbsync.saved_fk";

/// Every saved FK with the state of its live counterpart.
pub const RESTORE_STATUS: &str = "
SELECT s.table_schema, s.table_name, s.constraint_name, s.definition, s.was_validated,
       s.on_partitioned, s.state, t.oid IS NOT NULL AS table_exists,
       c.contype::text AS live_type, pg_catalog.pg_get_constraintdef(c.oid) AS live_definition,
       c.convalidated AS live_validated,
       pg_catalog.current_setting('server_version_num')::int4 AS server_version,
       s.child_table, s.child_only, s.parent_table, s.parent_only, s.child_columns,
       s.parent_columns, s.match_full, s.comment
FROM dbsync.saved_fk s
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = s.table_schema
LEFT JOIN pg_catalog.pg_class t ON t.relnamespace = n.oid AND t.relname = s.table_name
LEFT JOIN pg_catalog.pg_constraint c ON c.conrelid = t.oid AND c.conname = s.constraint_name
ORDER BY s.table_schema, s.table_name, s.constraint_name";

/// Marks re-added FKs (`$1..$3`) as waiting for validation and forgets
/// finished ones (`$4..$6`), in one statement.
pub const RECORD_RESTORE_PROGRESS: &str = "
WITH added AS (
    UPDATE dbsync.saved_fk s SET state = 'added'
    FROM unnest($1::text[], $2::text[], $3::text[]) AS u(sch, tab, con)
    WHERE s.table_schema = u.sch AND s.table_name = u.tab AND s.constraint_name = u.con
    RETURNING 1
), done AS (
    DELETE FROM dbsync.saved_fk s
    USING unnest($4::text[], $5::text[], $6::text[]) AS u(sch, tab, con)
    WHERE s.table_schema = u.sch AND s.table_name = u.tab AND s.constraint_name = u.con
    RETURNING 1
)
SELECT (SELECT pg_catalog.count(*) FROM added), (SELECT pg_catalog.count(*) FROM done)";

/// Identifies one saved FK in a WHERE clause.
pub fn saved_key(table_schema: &str, table_name: &str, constraint: &str) -> String {
    format!(
        "table_schema = {} AND table_name = {} AND constraint_name = {}",
        literal(table_schema),
        literal(table_name),
        literal(constraint)
    )
}

/// Whether a live constraint (`$1` its table as regclass text, `$2` its name) is validated.
pub const CONSTRAINT_VALIDATED: &str =
    "SELECT (SELECT c.convalidated FROM pg_catalog.pg_constraint c \
     WHERE c.conrelid = $1::text::pg_catalog.regclass AND c.conname = $2)";

/// Counts one more start of a long statement (`$1` its key); returns the count.
pub const COUNT_LONG_START: &str = "INSERT INTO dbsync.long_statement (key, starts) VALUES ($1, 1) \
     ON CONFLICT (key) DO UPDATE SET starts = dbsync.long_statement.starts + 1, started_at = pg_catalog.now() \
     RETURNING starts";

pub const FORGET_LONG: &str = "DELETE FROM dbsync.long_statement WHERE key = $1";

/// This execution's refreshes' start counts (`$1`), once every view is refreshed.
pub const FORGET_LONG_REFRESHES: &str =
    "DELETE FROM dbsync.long_statement WHERE key LIKE 'refresh ' || $1 || ' %'";

/// This execution's `after_sync` start counts (`$1`), once every statement has run.
pub const FORGET_LONG_AFTER_SYNC: &str =
    "DELETE FROM dbsync.long_statement WHERE pg_catalog.starts_with(key, 'after_sync ' || $1 || ' ')";

/// Every validation's start count, once nothing is left to validate.
pub const FORGET_LONG_VALIDATIONS: &str =
    "DELETE FROM dbsync.long_statement WHERE key LIKE 'validate %'";

pub fn forget_saved(key: &str) -> String {
    format!("DELETE FROM dbsync.saved_fk WHERE {key}")
}

pub fn keep_not_valid(key: &str) -> String {
    format!("UPDATE dbsync.saved_fk SET state = 'kept_not_valid' WHERE {key}")
}

pub fn add_constraint(table: &str, constraint: &str, definition: &str) -> String {
    format!(
        "ALTER TABLE {table} ADD CONSTRAINT {} {definition}",
        ident(constraint)
    )
}

pub fn comment_on_constraint(table: &str, constraint: &str, comment: &str) -> String {
    format!(
        "COMMENT ON CONSTRAINT {} ON {table} IS {}",
        ident(constraint),
        literal(comment)
    )
}

pub fn validate_constraint(table: &str, constraint: &str) -> String {
    format!(
        "ALTER TABLE {table} VALIDATE CONSTRAINT {}",
        ident(constraint)
    )
}

/// Rows of the child that violate the FK. `MATCH SIMPLE` ignores a row with
/// any NULL key column; `MATCH FULL` also rejects a partly-NULL key. `ONLY`
/// mirrors how PostgreSQL checks plain tables (inheritance children are not covered).
pub fn orphan_predicate(
    parent: &str,
    parent_only: bool,
    child_columns: &[String],
    parent_columns: &[String],
    match_full: bool,
) -> String {
    let join = child_columns
        .iter()
        .zip(parent_columns)
        .map(|(c, p)| format!("p.{p} = c.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let missing = format!(
        "NOT EXISTS (SELECT 1 FROM {}{parent} AS p WHERE {join})",
        if parent_only { "ONLY " } else { "" }
    );
    let all = |op: &str, sep: &str| {
        child_columns
            .iter()
            .map(|c| format!("c.{c} {op}"))
            .collect::<Vec<_>>()
            .join(sep)
    };
    if match_full {
        format!(
            "({}) AND ({} OR {missing})",
            all("IS NOT NULL", " OR "),
            all("IS NULL", " OR ")
        )
    } else {
        format!("{} AND {missing}", all("IS NOT NULL", " AND "))
    }
}

pub fn count_orphans(child: &str, child_only: bool, predicate: &str) -> String {
    format!(
        "SELECT pg_catalog.count(*) FROM {}{child} AS c WHERE {predicate}",
        if child_only { "ONLY " } else { "" }
    )
}

pub fn delete_orphans(child: &str, child_only: bool, predicate: &str) -> String {
    format!(
        "DELETE FROM {}{child} AS c WHERE {predicate}",
        if child_only { "ONLY " } else { "" }
    )
}

/// Orphans of a self-referencing FK together with every row hanging below
/// them, in one statement (deleting level by level would trip the NOT VALID
/// constraint, which still guards deletes).
pub fn delete_orphan_trees(
    table: &str,
    only: bool,
    predicate: &str,
    child_columns: &[String],
    parent_columns: &[String],
) -> String {
    let only = if only { "ONLY " } else { "" };
    let keys = parent_columns
        .iter()
        .enumerate()
        .map(|(i, p)| format!("c.{p} AS k{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let join = child_columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("c.{c} = d.k{i}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "WITH RECURSIVE doomed AS (
    SELECT c.tableoid AS t, c.ctid AS id, {keys} FROM {only}{table} AS c WHERE {predicate}
    UNION
    SELECT c.tableoid, c.ctid, {keys} FROM {only}{table} AS c JOIN doomed AS d ON {join}
)
DELETE FROM {only}{table} AS c WHERE (c.tableoid, c.ctid) IN (SELECT t, id FROM doomed)"
    )
}

/// Sequences behind the columns of the selected tables (`$1` oids): owned
/// (serial, `'a'`), identity (`'i'`), and any used by a column default's
/// `nextval()` (found through the default's dependency, which also covers
/// sequences in other schemas and sequences shared between tables). Returns
/// one row per (sequence, column) using it, on any table, so a shared
/// sequence is moved past every user's data. Partitions are skipped where an
/// ancestor uses the same sequence: scanning the parent covers them.
pub const SEQUENCE_USES: &str = "
WITH uses AS (
    SELECT d.objid AS seq, d.refobjid AS rel, d.refobjsubid AS att
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
    UNION
    SELECT d.refobjid, ad.adrelid, ad.adnum
    FROM pg_catalog.pg_attrdef ad
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
         AND d.objid = ad.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
    JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
),
wanted AS (SELECT DISTINCT seq FROM uses WHERE rel = ANY ($1::pg_catalog.oid[]))
SELECT u.seq, pg_catalog.format('%I.%I', sn.nspname, s.relname) AS seq_name,
       ps.seqstart, ps.seqincrement, ps.seqmin, ps.seqmax,
       pg_catalog.format('%I.%I', tn.nspname, t.relname) AS table_name,
       pg_catalog.quote_ident(a.attname) AS column_name
FROM uses u
JOIN wanted w ON w.seq = u.seq
JOIN pg_catalog.pg_class s ON s.oid = u.seq
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_catalog.pg_sequence ps ON ps.seqrelid = u.seq
JOIN pg_catalog.pg_class t ON t.oid = u.rel
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = u.rel AND a.attnum = u.att AND NOT a.attisdropped
WHERE t.relkind IN ('r', 'p')
  AND NOT (t.relispartition AND EXISTS (
        SELECT 1 FROM uses u2
        WHERE u2.seq = u.seq AND u2.rel <> u.rel
          AND u2.rel IN (SELECT relid FROM pg_catalog.pg_partition_ancestors(u.rel))))
ORDER BY seq_name, table_name, column_name";

/// For every sequence: its position and the extreme value of the data behind
/// it, in one statement whatever the number of sequences. `$1..$4` list one
/// (sequence, quoted table, quoted column, descending) per use. Each table is
/// read by a tiny dynamic query through `query_to_xml`, planned on its own:
/// one big `UNION ALL` instead takes the planner seconds at 2,000 branches.
pub const SEQUENCE_EXTREMES: &str = "
WITH uses AS (
    SELECT * FROM unnest($1::pg_catalog.oid[], $2::text[], $3::text[], $4::bool[]) AS u(seq, tbl, col, descending)
), extremes AS (
    SELECT seq, descending,
           (pg_catalog.xpath('/row/v/text()', pg_catalog.query_to_xml(
               pg_catalog.format('SELECT %s(%s)::numeric AS v FROM %s',
                                 CASE WHEN descending THEN 'min' ELSE 'max' END, col, tbl),
               false, true, '')))[1]::text::numeric AS v
    FROM uses
), per_seq AS (
    SELECT seq, CASE WHEN pg_catalog.bool_or(descending) THEN pg_catalog.min(v) ELSE pg_catalog.max(v) END AS v
    FROM extremes GROUP BY seq
), state AS (
    SELECT seq, v, pg_catalog.query_to_xml(
               pg_catalog.format('SELECT last_value, is_called FROM %s', seq::pg_catalog.regclass),
               false, true, '') AS x
    FROM per_seq
)
SELECT seq,
       ((pg_catalog.xpath('/row/last_value/text()', x))[1]::text)::int8,
       ((pg_catalog.xpath('/row/is_called/text()', x))[1]::text)::bool,
       v::text
FROM state";

/// Moves sequences (`$1` oids, `$2` values, `$3` is_called) in one statement.
pub const SET_SEQUENCES: &str = "
SELECT pg_catalog.setval(u.seq::pg_catalog.regclass, u.val, u.called)
FROM unnest($1::pg_catalog.oid[], $2::int8[], $3::bool[]) AS u(seq, val, called)";

/// Quotes an identifier the way `quote_ident` does (always quoting is as safe and simpler).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal that means the same whatever `standard_conforming_strings` says.
pub fn literal(value: &str) -> String {
    format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

// ------------------------------------------------------------ after the load

/// Masking progress: per execution and table, the next block range to mask.
pub const CREATE_MASK_PROGRESS: &str = "
CREATE TABLE IF NOT EXISTS dbsync.mask_progress (
    execution  text NOT NULL,
    table_name text NOT NULL,
    next_block int8 NOT NULL,
    end_block  int8 NOT NULL,
    rows       int8 NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (execution, table_name)
);
-- The transactions that masked each table: an update may move a row into a
-- block range not masked yet, and a row written by one of these must not be
-- masked twice (a deterministic rule would mask the masked value).
CREATE TABLE IF NOT EXISTS dbsync.mask_xids (
    execution  text NOT NULL,
    table_name text NOT NULL,
    xid        xid NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
)";

/// The transactions that masked a table so far in this execution.
pub const MASK_XIDS: &str = "SELECT coalesce(pg_catalog.array_agg(xid::text), '{}') \
     FROM dbsync.mask_xids WHERE execution = $1 AND table_name = $2";

/// Records the masking transaction itself (the 32-bit xid rows carry as `xmin`).
pub const RECORD_MASK_XID: &str = "INSERT INTO dbsync.mask_xids (execution, table_name, xid) \
     VALUES ($1, $2, (pg_catalog.txid_current() % 4294967296)::text::xid) RETURNING xid::text";

pub const MASK_PROGRESS: &str =
    "SELECT next_block, end_block FROM dbsync.mask_progress WHERE execution = $1 AND table_name = $2";

/// A table's size in blocks, when its masking starts.
pub const TABLE_BLOCKS: &str = "SELECT pg_catalog.pg_relation_size($1::text::pg_catalog.regclass) \
     / pg_catalog.current_setting('block_size')::int8";

pub const START_MASK_PROGRESS: &str =
    "INSERT INTO dbsync.mask_progress (execution, table_name, next_block, end_block) \
     VALUES ($1, $2, 0, $3) ON CONFLICT DO NOTHING";

pub const ADVANCE_MASK_PROGRESS: &str = "UPDATE dbsync.mask_progress \
     SET next_block = $3, rows = rows + $4, updated_at = pg_catalog.now() \
     WHERE execution = $1 AND table_name = $2";

pub const MASK_REMAINING: &str = "SELECT pg_catalog.count(*) FILTER (WHERE next_block >= end_block) AS done, \
     COALESCE(pg_catalog.sum(rows), 0)::int8 AS rows FROM dbsync.mask_progress WHERE execution = $1";

/// Done: forget this execution's progress (and any an abandoned one left).
pub const FORGET_MASK_PROGRESS: &str = "WITH progress AS (DELETE FROM dbsync.mask_progress \
     WHERE execution = $1 OR updated_at < pg_catalog.now() - interval '2 days') \
     DELETE FROM dbsync.mask_xids \
     WHERE execution = $1 OR updated_at < pg_catalog.now() - interval '2 days'";

/// `after_sync` progress: the statements this execution has run.
pub const CREATE_AFTER_SYNC_DONE: &str = "
CREATE TABLE IF NOT EXISTS dbsync.after_sync_done (
    execution text NOT NULL,
    position  int4 NOT NULL,
    done_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (execution, position)
)";

pub const AFTER_SYNC_DONE: &str =
    "SELECT position FROM dbsync.after_sync_done WHERE execution = $1";

pub const RECORD_AFTER_SYNC: &str =
    "INSERT INTO dbsync.after_sync_done (execution, position) VALUES ($1, $2) ON CONFLICT DO NOTHING";

/// One `after_sync` statement that may outlive its invocation, with its
/// record, in one message (see `crate::long`): the guard, the statement, the
/// record, committed together. The team's statement is closed off by a line
/// of its own, so a trailing `--` comment cannot swallow the record. No
/// dbsync lock: the run's own next invocations take it while this runs.
pub fn detached_after_sync(statement: &str, execution: &str, position: i32) -> String {
    format!(
        "BEGIN;\n{GUARD}SELECT pg_catalog.set_config('dbsync.after_sync_item', 'open', true);\n\
         {statement}\n;\n{ITEM_STILL_OPEN}\
         INSERT INTO dbsync.after_sync_done (execution, position) VALUES ({}, {position}) ON CONFLICT DO NOTHING;\n\
         COMMIT;",
        literal(execution)
    )
}

/// Refuses (SQLSTATE DS002) to record an `after_sync` item that ended its own
/// transaction: the marker set before it (transaction-local) is gone.
const ITEM_STILL_OPEN: &str = "DO $dbsync_item$
BEGIN
  IF pg_catalog.current_setting('dbsync.after_sync_item', true) IS DISTINCT FROM 'open' THEN
    RAISE EXCEPTION USING ERRCODE = 'DS002',
      MESSAGE = 'the item ended its own transaction (COMMIT or ROLLBACK inside an after_sync item): what it did before that is committed; remove the COMMIT';
  END IF;
END
$dbsync_item$;\n";

pub const FORGET_AFTER_SYNC: &str = "DELETE FROM dbsync.after_sync_done \
     WHERE execution = $1 OR done_at < pg_catalog.now() - interval '2 days'";

/// Verification: the rows counted in each table, per execution.
pub const CREATE_ROW_COUNTS: &str = "
CREATE TABLE IF NOT EXISTS dbsync.row_count (
    execution  text NOT NULL,
    table_name text NOT NULL,
    rows       int8,
    counted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (execution, table_name)
)";

pub const ROW_COUNTS: &str = "SELECT table_name, rows FROM dbsync.row_count WHERE execution = $1";

pub const RECORD_ROW_COUNT: &str = "INSERT INTO dbsync.row_count (execution, table_name, rows) \
     VALUES ($1, $2, $3) ON CONFLICT (execution, table_name) DO UPDATE SET rows = EXCLUDED.rows";

pub const FORGET_ROW_COUNTS: &str = "DELETE FROM dbsync.row_count \
     WHERE execution = $1 OR counted_at < pg_catalog.now() - interval '2 days'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(literal(r"it's a \ path"), r"E'it''s a \\ path'");
    }

    #[test]
    fn orphan_predicates_follow_match_type() {
        let c = vec!["a".to_owned(), "\"B\"".to_owned()];
        let p = vec!["x".to_owned(), "y".to_owned()];
        let simple = orphan_predicate("s.t", true, &c, &p, false);
        assert_eq!(
            simple,
            "c.a IS NOT NULL AND c.\"B\" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ONLY s.t AS p WHERE p.x = c.a AND p.y = c.\"B\")"
        );
        let full = orphan_predicate("s.t", false, &c, &p, true);
        assert!(full.starts_with("(c.a IS NOT NULL OR c.\"B\" IS NOT NULL) AND (c.a IS NULL OR c.\"B\" IS NULL OR NOT EXISTS (SELECT 1 FROM s.t AS p"));
    }

    #[test]
    fn the_sql_names_the_project_schema_only_by_its_constant() {
        let texts = [
            GUARD.to_owned(),
            INIT_TARGET.to_owned(),
            LIST_TABLES.to_owned(),
            capture_and_plan_drop(),
            COUNT_SAVED.to_owned(),
            RESTORE_STATUS.to_owned(),
            RECORD_RESTORE_PROGRESS.to_owned(),
            CREATE_LEASE.to_owned(),
            UPGRADE_SAVED.to_owned(),
            capture_and_plan_check_drop(),
            CHECK_RESTORE_STATUS.to_owned(),
            CREATE_VIEW_REFRESH.to_owned(),
            RENAME_SAVED_CLONES.to_owned(),
            VIEWS_REFRESHED.to_owned(),
            record_view_refresh("x", "v"),
            forget_saved_check("a", "b", "c"),
            READ_LEASE.to_owned(),
            TAKE_LEASE.to_owned(),
            RELEASE_LEASE.to_owned(),
            forget_saved("k"),
            keep_not_valid("k"),
        ];
        let all = texts.concat();
        // Every schema-qualified project table and every mention as a schema name.
        for (i, _) in all
            .match_indices(".saved_fk")
            .chain(all.match_indices(".saved_check"))
            .chain(all.match_indices(".saved_fk_clone"))
            .chain(all.match_indices(".view_refresh"))
            .chain(all.match_indices(".target "))
        {
            let before = &all[..i];
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |j| j + 1);
            assert_eq!(
                &before[start..],
                PROJECT_SCHEMA,
                "near {:?}",
                &all[start..i + 10]
            );
        }
        assert!(all.contains(&format!("CREATE SCHEMA IF NOT EXISTS {PROJECT_SCHEMA};")));
        assert!(
            all.contains(&format!("'{PROJECT_SCHEMA}')")),
            "LIST_TABLES excludes it"
        );
        assert!(
            all.contains(&format!("<> '{PROJECT_SCHEMA}'")),
            "FKS_IN_SCOPE excludes it"
        );
    }

    #[test]
    fn prelude_never_disables_timeouts() {
        let p = prelude(Duration::ZERO, Duration::ZERO, false);
        assert!(p.contains("statement_timeout = 1;"), "{p}");
        assert!(!p.contains("dbsync_guard"));
        assert!(prelude(Duration::from_secs(1), Duration::from_secs(1), true).contains("DS001"));
    }
}
