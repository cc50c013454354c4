//! Data rules (pgsync's `data_rules`) turned into SQL against a real catalog.
//!
//! - [`plan`] matches every column of the synced tables against the rules and
//!   refuses, by the rule's key, what would break the copy: a key matching no
//!   column, a rule on a primary- or foreign-key column (or one a foreign key
//!   references), a `unique_*` rule on a table without a single-column
//!   primary key, a generated column. [`check`] then has PostgreSQL parse every
//!   expression (`LIMIT 0`), so a bad `statement` or `value` is found before
//!   anything changes.
//! - Locally the replicator selects [`select_list`] from the source: raw values
//!   never reach staging.
//! - On AWS, where DMS writes raw rows, [`mask`] updates them right after the
//!   load: one statement per block range of a table (a TID range scan), its
//!   progress committed with it (`dbsync.mask_progress`), so a run resumes
//!   where the last invocation stopped.
//!
//! Every expression is cast to the column's own type, so a rule fits any
//! column (and binary `COPY` gets exactly the type it expects).

use std::{collections::BTreeMap, time::Duration};

use dbsync_workflow::{
    io::MaskOutput,
    sync_config::{MaskSalt, Rule, SyncConfig},
    StepError,
};
use tokio_postgres::{error::SqlState, types::Type, Client, GenericClient};

use crate::{classify, selected_tables, sql, triggers, Budget, Selection, Timeouts};

/// Blocks per masking statement (8 KB each: 32 MB of table).
pub const CHUNK_BLOCKS: i64 = 4096;

/// The columns of the selected tables (partition roots and plain tables),
/// with what the rules need to know about each.
const COLUMNS: &str = "
SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, a.attname::text AS col,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       a.attgenerated <> '' AS generated,
       EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
               WHERE (k.conrelid = c.oid AND k.contype IN ('p', 'f') AND a.attnum = ANY (k.conkey))
                  OR (k.confrelid = c.oid AND k.contype = 'f' AND a.attnum = ANY (k.confkey))) AS is_key,
       (SELECT pg_catalog.array_agg(pa.attname::text ORDER BY pa.attnum)
          FROM pg_catalog.pg_constraint p
          JOIN pg_catalog.pg_attribute pa ON pa.attrelid = c.oid AND pa.attnum = ANY (p.conkey)
         WHERE p.conrelid = c.oid AND p.contype = 'p') AS pk,
       (SELECT pg_catalog.format_type(pa.atttypid, pa.atttypmod)
          FROM pg_catalog.pg_constraint p
          JOIN pg_catalog.pg_attribute pa ON pa.attrelid = c.oid AND pa.attnum = p.conkey[1]
         WHERE p.conrelid = c.oid AND p.contype = 'p') AS pk_type
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.oid = ANY ($1::pg_catalog.oid[])
ORDER BY n.nspname, c.relname, a.attnum";

/// The leaf tables (the table itself, or its partitions) that hold a root's rows.
const LEAVES: &str = "
SELECT n.nspname::text, c.relname::text
FROM pg_catalog.pg_partition_tree($1::pg_catalog.oid) t
JOIN pg_catalog.pg_class c ON c.oid = t.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE t.isleaf AND c.relkind = 'r'
UNION ALL
SELECT n.nspname::text, c.relname::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1::pg_catalog.oid AND c.relkind = 'r' AND NOT c.relispartition
ORDER BY 1, 2";

/// What to write into one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMask {
    pub column: String,
    /// The rule's key, for messages.
    pub key: String,
    /// The rule's name (`random_int`, …), for messages and `plan`.
    pub rule: &'static str,
    /// SQL expression, cast to the column's type.
    pub expr: String,
}

/// The masked columns of one leaf table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMask {
    pub schema: String,
    pub name: String,
    /// The table the rules matched (the partitioned root for a partition).
    pub root: String,
    pub columns: Vec<ColumnMask>,
}

impl TableMask {
    pub fn qualified(&self) -> String {
        format!("{}.{}", sql::ident(&self.schema), sql::ident(&self.name))
    }

    /// `SET a = …, b = …`.
    fn assignments(&self) -> String {
        self.columns
            .iter()
            .map(|c| format!("{} = {}", sql::ident(&c.column), c.expr))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The masks of every leaf table that has any, by `(schema, table)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskPlan {
    pub tables: BTreeMap<(String, String), TableMask>,
    /// `strict: true`: the columns no rule classifies (`schema.table.column`).
    pub unclassified: Vec<String>,
    /// The deterministic rules' key, set on every session that evaluates them.
    pub salt: Option<MaskSalt>,
}

impl MaskPlan {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// `UnclassifiedColumns` naming every column no rule classifies (strict mode).
    pub fn require_classified(&self, origin: &str) -> Result<(), StepError> {
        if self.unclassified.is_empty() {
            return Ok(());
        }
        const LISTED: usize = 50;
        let mut list = self.unclassified[..self.unclassified.len().min(LISTED)].join(", ");
        if self.unclassified.len() > LISTED {
            list.push_str(&format!(" and {} more", self.unclassified.len() - LISTED));
        }
        Err(StepError::UnclassifiedColumns(format!(
            "{origin} is strict and {} column(s) have no data rule: {list}",
            self.unclassified.len()
        )))
    }

    /// Hands the salt to a session (a bind parameter, never SQL text), for
    /// the deterministic rules' `current_setting('dbsync.mask_salt')`.
    pub async fn set_salt(&self, client: &Client) -> Result<(), StepError> {
        if let Some(salt) = &self.salt {
            client
                .execute(
                    "SELECT pg_catalog.set_config('dbsync.mask_salt', $1, false)",
                    &[&salt.expose()],
                )
                .await
                .map_err(|e| classify(e, "setting the masking salt"))?;
        }
        Ok(())
    }

    pub fn columns(&self) -> usize {
        self.tables.values().map(|t| t.columns.len()).sum()
    }

    /// The rules that mask `schema.table`, for messages: "data rule `age` on column age".
    pub fn rules_on(&self, schema: &str, table: &str) -> Option<String> {
        let t = self.tables.get(&(schema.to_owned(), table.to_owned()))?;
        Some(
            t.columns
                .iter()
                .map(|c| format!("data rule `{}` ({}) on column {}", c.key, c.rule, c.column))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    /// The select list for copying `schema.table`'s `columns` with the rules
    /// applied (each masked column keeps its name).
    ///
    /// `casts` (column → staging's type) wraps a column in `CAST(… AS type)`,
    /// for the lossless casts the schema check allowed.
    pub fn select_list(
        &self,
        schema: &str,
        table: &str,
        columns: &[String],
        casts: &std::collections::BTreeMap<String, String>,
    ) -> String {
        let mask = self.tables.get(&(schema.to_owned(), table.to_owned()));
        columns
            .iter()
            .map(|c| {
                let quoted = sql::ident(c);
                let value = match mask.and_then(|m| m.columns.iter().find(|x| &x.column == c)) {
                    Some(m) => m.expr.clone(),
                    None => quoted.clone(),
                };
                match casts.get(c) {
                    Some(to) => format!("CAST({value} AS {to}) AS {quoted}"),
                    None if value != quoted => format!("{value} AS {quoted}"),
                    None => quoted,
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The rule's SQL before the cast; `None` leaves the column as it is.
fn expression(rule: &Rule, pk: Option<&str>) -> Option<String> {
    let pk = pk.unwrap_or("NULL");
    Some(match rule {
        Rule::UniqueEmail => format!("'email' || {pk}::text || '@example.org'"),
        Rule::UniquePhone => format!("({pk}::bigint + 1000000000)::text"),
        Rule::UniqueSecret => format!("'secret' || {pk}::text"),
        // A..Z (pgsync's `* 26` can round up to '[').
        Rule::RandomLetter => "pg_catalog.chr(65 + (pg_catalog.random() * 25)::int)".into(),
        Rule::RandomInt => "(pg_catalog.random() * 100)::int".into(),
        Rule::RandomDate => "date '1970-01-01' + (pg_catalog.random() * 10000)::int".into(),
        Rule::RandomTime => {
            "pg_catalog.now() - (pg_catalog.random() * 100000000)::int * interval '1 second'".into()
        }
        Rule::RandomIp => "(1 + pg_catalog.random() * 254)::int::text || '.0.0.1'".into(),
        Rule::RandomString => {
            "pg_catalog.right(pg_catalog.md5(pg_catalog.random()::text), 10)".into()
        }
        Rule::Null | Rule::Value(None) => "NULL".into(),
        Rule::Value(Some(v)) => sql::literal(v),
        Rule::Statement(s) => format!("({s})"),
        Rule::Untouched => return None,
    })
}

/// What the rules need to know about one column of a synced table.
#[derive(Debug, Clone)]
pub struct ColumnFacts {
    /// The table (a partition root or a plain table).
    pub oid: u32,
    pub schema: String,
    pub table: String,
    pub column: String,
    pub type_name: String,
    pub generated: bool,
    /// Part of a primary or foreign key, or referenced by one.
    pub is_key: bool,
    /// The table's primary key columns.
    pub pk: Option<Vec<String>>,
    /// The type of the primary key's first column.
    pub pk_type: Option<String>,
}

/// The columns of the tables `roots` (their oids), in table and column order.
pub async fn columns(
    client: &impl GenericClient,
    roots: &[u32],
) -> Result<Vec<ColumnFacts>, StepError> {
    let rows = client
        .query_typed(COLUMNS, &[(&roots, Type::OID_ARRAY)])
        .await
        .map_err(|e| classify(e, "reading the columns the data rules cover"))?;
    Ok(rows
        .iter()
        .map(|r| ColumnFacts {
            oid: r.get("oid"),
            schema: r.get("schema"),
            table: r.get("name"),
            column: r.get("col"),
            type_name: r.get("type"),
            generated: r.get("generated"),
            is_key: r.get("is_key"),
            pk: r.get("pk"),
            pk_type: r.get("pk_type"),
        })
        .collect())
}

/// The keyed digest of `col` under `rule` as 64 hex digits: sha256 over
/// the salt, the rule's name and the value's text. The salt comes from the
/// session (`set_salt`), never from the SQL text.
fn digest_hex(rule: &str, col: &str) -> String {
    format!(
        "pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(\
         pg_catalog.current_setting('dbsync.mask_salt') || E'\\x1f{rule}\\x1f' || ({col})::text, 'UTF8')), 'hex')"
    )
}

/// The digest, computed once per row and column, as `k.d` (see [`keyed`]).
const DIGEST: &str = "k.d";

/// 60 bits of the digest from hex digit `from` (1-based), as an int8.
fn digest_bits(from: u32) -> String {
    format!("('x' || pg_catalog.substr({DIGEST}, {from}, 15))::bit(60)::int8")
}

/// The deterministic form of a rule: two candidates that always differ
/// (`r1`, and `r2` for when `r1` would equal the original). `None`: the rule
/// is not random (null, value, statement, untouched).
fn keyed(rule: &Rule) -> Option<(String, String)> {
    let h = digest_bits(1);
    let hex = DIGEST;
    Some(match rule {
        // 128 bits of digest: a collision among a billion distinct values has
        // a probability below 10^-20.
        Rule::UniqueEmail => (
            format!("'u' || pg_catalog.substr({hex}, 1, 32) || '@example.org'"),
            format!("'v' || pg_catalog.substr({hex}, 33, 32) || '@example.org'"),
        ),
        Rule::UniqueSecret => (
            format!("'secret' || pg_catalog.substr({hex}, 1, 32)"),
            format!("'secret_' || pg_catalog.substr({hex}, 33, 32)"),
        ),
        // 18 digits (about 60 bits): see the README on collisions.
        Rule::UniquePhone => (
            format!("(100000000000000000 + {h} % 900000000000000000)::text"),
            format!("(100000000000000000 + ({h} + 1) % 900000000000000000)::text"),
        ),
        Rule::RandomLetter => (
            format!("pg_catalog.chr(65 + ({h} % 26)::int)"),
            format!("pg_catalog.chr(65 + (({h} + 1) % 26)::int)"),
        ),
        Rule::RandomInt => (format!("({h} % 101)::int"), format!("(({h} + 1) % 101)::int")),
        Rule::RandomDate => (
            format!("date '1970-01-01' + ({h} % 10000)::int"),
            format!("date '1970-01-01' + (({h} + 1) % 10000)::int"),
        ),
        // A fixed anchor, not now(): the same value on every run.
        Rule::RandomTime => (
            format!("timestamptz '2026-01-01 00:00:00+00' - ({h} % 100000000) * interval '1 second'"),
            format!("timestamptz '2026-01-01 00:00:00+00' - ({h} % 100000000) * interval '1 second' - interval '1 day 1 second'"),
        ),
        Rule::RandomIp => (
            format!("(1 + {h} % 254)::text || '.0.0.1'"),
            format!("(1 + ({h} + 1) % 254)::text || '.0.0.1'"),
        ),
        Rule::RandomString => (
            format!("pg_catalog.substr({hex}, 1, 10)"),
            format!("'z' || pg_catalog.substr({hex}, 1, 9)"),
        ),
        Rule::Null | Rule::Value(_) | Rule::Statement(_) | Rule::Untouched => return None,
    })
}

const INTEGER_TYPES: [&str; 3] = ["smallint", "integer", "bigint"];

/// Matches the rules against the synced tables' columns and refuses what
/// would break the copy (see the module's documentation).
pub async fn plan(
    client: &impl GenericClient,
    selection: &Selection,
    config: &SyncConfig,
) -> Result<MaskPlan, StepError> {
    let mut out = MaskPlan {
        salt: config.mask_salt.clone(),
        ..MaskPlan::default()
    };
    if config.data_rules.is_empty() && !config.strict {
        return Ok(out);
    }
    let ctx = "reading the columns the data rules cover";
    let bad = |m: String| StepError::SyncConfigInvalid(format!("{}: {m}", config.origin));
    let roots: Vec<u32> = selected_tables(client, selection)
        .await?
        .iter()
        .filter(|t| !t.is_partition)
        .map(|t| t.oid)
        .collect();
    let rows = columns(client, &roots).await?;
    let mut used = vec![false; config.data_rules.len()];
    let mut by_root: BTreeMap<u32, (String, String, Vec<ColumnMask>)> = BTreeMap::new();
    for r in rows {
        let (oid, schema, table, col) = (r.oid, r.schema, r.table, r.column);
        let Some(i) = config
            .data_rules
            .iter()
            .position(|d| d.matches(&schema, &table, &col))
        else {
            // Key columns are classified by what they are; generated ones are
            // computed by staging from the (masked) others.
            if config.strict && !r.is_key && !r.generated {
                out.unclassified.push(format!("{schema}.{table}.{col}"));
            }
            continue;
        };
        used[i] = true;
        let rule = &config.data_rules[i];
        if rule.rule == Rule::Untouched {
            continue;
        }
        let at = format!("{schema}.{table}.{col}");
        let key = &rule.key;
        if r.generated {
            return Err(bad(format!(
                "data_rules.{key} covers {at}, a generated column (the target computes it); narrow the key"
            )));
        }
        if r.is_key {
            return Err(bad(format!(
                "data_rules.{key} covers {at}, a primary- or foreign-key column: masking it would break joins; \
                 narrow the key or mark the column untouched before it"
            )));
        }
        let pk = r.pk;
        let needs_pk = rule.rule.needs_primary_key() && !config.deterministic;
        let pk = match (needs_pk, pk.as_deref()) {
            (false, _) => None,
            (true, Some([one])) => {
                let pk_type = r.pk_type.unwrap_or_default();
                if rule.rule == Rule::UniquePhone && !INTEGER_TYPES.contains(&pk_type.as_str()) {
                    return Err(bad(format!(
                        "data_rules.{key}: unique_phone needs an integer primary key, and {schema}.{table}'s is {pk_type}"
                    )));
                }
                Some(sql::ident(one))
            }
            (true, _) => {
                return Err(bad(format!(
                    "data_rules.{key}: {schema}.{table} has no single-column primary key, which unique rules derive their values from"
                )))
            }
        };
        let ty = r.type_name;
        let quoted = sql::ident(&col);
        let expr = match (config.deterministic, keyed(&rule.rule)) {
            // Never the original value: r1 unless it casts to the original,
            // then r2 (r1 ≠ r2). The digest is computed once, in `k`.
            (true, Some((r1, r2))) => format!(
                "CASE WHEN {quoted} IS NULL THEN NULL ELSE (SELECT \
                 CASE WHEN CAST(({r1}) AS {ty})::text = {quoted}::text THEN ({r2}) ELSE ({r1}) END \
                 FROM (SELECT {} AS d) AS k) END",
                digest_hex(rule.rule.name(), &quoted)
            ),
            _ => match expression(&rule.rule, pk.as_deref()) {
                Some(e) => e,
                None => continue,
            },
        };
        by_root
            .entry(oid)
            .or_insert_with(|| (schema.clone(), table.clone(), Vec::new()))
            .2
            .push(ColumnMask {
                column: col,
                key: key.clone(),
                rule: rule.rule.name(),
                expr: format!("CAST(({expr}) AS {ty})"),
            });
    }
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(bad(format!(
            "data_rules.{} matches no column of the synced tables; check its spelling (column, table.column or schema.table.column)",
            config.data_rules[i].key
        )));
    }
    for (oid, (schema, table, columns)) in by_root {
        let root = format!("{}.{}", sql::ident(&schema), sql::ident(&table));
        for leaf in client
            .query_typed(LEAVES, &[(&oid, Type::OID)])
            .await
            .map_err(|e| classify(e, ctx))?
        {
            let (s, n): (String, String) = (leaf.get(0), leaf.get(1));
            out.tables.insert(
                (s.clone(), n.clone()),
                TableMask {
                    schema: s,
                    name: n,
                    root: root.clone(),
                    columns: columns.clone(),
                },
            );
        }
    }
    Ok(out)
}

/// Has PostgreSQL parse and plan every table's masked select (`LIMIT 0`, in a
/// read-only transaction): a bad statement, value or cast is refused by its
/// key before anything changes.
pub async fn check(client: &mut Client, plan: &MaskPlan, origin: &str) -> Result<(), StepError> {
    let ctx = "checking the data rules";
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(|e| classify(e, ctx))?;
    for t in plan.tables.values() {
        for c in &t.columns {
            let probe = format!("SELECT {} FROM ONLY {} LIMIT 0", c.expr, t.qualified());
            tx.batch_execute("SAVEPOINT probe")
                .await
                .map_err(|e| classify(e, ctx))?;
            if let Err(e) = tx.batch_execute(&probe).await {
                let Some(db) = e.as_db_error() else {
                    return Err(classify(e, ctx));
                };
                return Err(StepError::SyncConfigInvalid(format!(
                    "{origin}: data_rules.{} does not work on {}.{}: {}",
                    c.key,
                    t.root,
                    c.column,
                    db.message()
                )));
            }
            tx.batch_execute("RELEASE probe")
                .await
                .map_err(|e| classify(e, ctx))?;
        }
    }
    tx.rollback().await.map_err(|e| classify(e, ctx))
}

/// `mask`: updates what this execution has not masked yet, block range by
/// block range, while the budget lasts.
pub async fn mask(
    client: &mut Client,
    plan: &MaskPlan,
    execution: Option<&str>,
    timeouts: Timeouts,
    budget: Budget,
    min_slice: Duration,
    chunk_blocks: i64,
) -> Result<MaskOutput, StepError> {
    let ctx = "masking";
    let err = |e| classify(e, ctx);
    let run = execution.unwrap_or("by-hand");
    let mut out = MaskOutput {
        tables: plan.tables.len() as u64,
        columns: plan.columns() as u64,
        ..Default::default()
    };
    if plan.is_empty() {
        return Ok(out);
    }
    crate::create_bookkeeping(client, sql::CREATE_MASK_PROGRESS, timeouts, ctx).await?;
    plan.set_salt(client).await?;
    let mut chunks_now = 0u32;
    let mut out_of_time = false;
    'tables: for t in plan.tables.values() {
        let name = t.qualified();
        let (mut next, end) = match client
            .query_opt(sql::MASK_PROGRESS, &[&run, &name])
            .await
            .map_err(err)?
        {
            Some(r) => (r.get::<_, i64>(0), r.get::<_, i64>(1)),
            None => {
                // The table's size now: rows that updates move past it are masked already.
                let end: i64 = client
                    .query_one(sql::TABLE_BLOCKS, &[&name])
                    .await
                    .map_err(err)?
                    .get(0);
                client
                    .execute(sql::START_MASK_PROGRESS, &[&run, &name, &end])
                    .await
                    .map_err(err)?;
                (0, end)
            }
        };
        let mut ours: Vec<String> = client
            .query_one(sql::MASK_XIDS, &[&run, &name])
            .await
            .map_err(err)?
            .get(0);
        while next < end {
            if out_of_time || budget.remaining() < min_slice {
                out_of_time = true;
                break 'tables;
            }
            let hi = (next + chunk_blocks.max(1)).min(end);
            let chunk = Chunk {
                run,
                range: (next, hi),
                ours: &ours,
            };
            match mask_chunk(client, t, &name, chunk, timeouts, budget).await {
                Ok((rows, xid)) => {
                    ours.push(xid);
                    out.rows += rows;
                    chunks_now += 1;
                    next = hi;
                }
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    if e.code() == Some(&SqlState::QUERY_CANCELED) && chunks_now > 0 {
                        // Out of time: the next invocation goes on from here.
                        out_of_time = true;
                        break 'tables;
                    }
                    return Err(crate::error::classify_user_sql(
                        e,
                        &format!("masking {name}"),
                        |m| StepError::MaskingFailed(format!("{name}: {m}")),
                    ));
                }
            }
        }
    }
    let left = client
        .query_one(sql::MASK_REMAINING, &[&run])
        .await
        .map_err(err)?;
    out.remaining = if out_of_time {
        plan.tables.len() as u64 - left.get::<_, i64>("done") as u64
    } else {
        0
    };
    out.rows_total = left.get::<_, i64>("rows") as u64;
    if out.remaining == 0 {
        client
            .execute(sql::FORGET_MASK_PROGRESS, &[&run])
            .await
            .map_err(err)?;
    }
    Ok(out)
}

/// One block range of one table, its progress committed with it; user
/// triggers stay quiet (as for the load itself).
/// One masking statement's range, and the transactions whose rows are masked already.
struct Chunk<'a> {
    run: &'a str,
    range: (i64, i64),
    ours: &'a [String],
}

async fn mask_chunk(
    client: &mut Client,
    t: &TableMask,
    name: &str,
    chunk: Chunk<'_>,
    timeouts: Timeouts,
    budget: Budget,
) -> Result<(u64, String), tokio_postgres::Error> {
    let (run, (lo, hi)) = (chunk.run, chunk.range);
    // Rows an earlier chunk wrote (moved here by its update) are skipped: a
    // constant list, which PostgreSQL 14+ matches with a hash table.
    let skip = if chunk.ours.is_empty() {
        String::new()
    } else {
        format!(
            " AND NOT (xmin = ANY ('{{{}}}'::pg_catalog.xid[]))",
            chunk.ours.join(",")
        )
    };
    let tx = client.transaction().await?;
    tx.batch_execute(&sql::prelude_user_sql(
        budget.statement_timeout(timeouts.statement),
        timeouts.lock,
    ))
    .await?;
    let quiet = triggers::user_triggers(&tx, name).await?;
    if let Some(off) = triggers::triggers_statement(name, &quiet, false) {
        tx.batch_execute(&off).await?;
    }
    let rows = tx
        .execute(
            &format!(
                "UPDATE ONLY {name} SET {} WHERE ctid >= '({lo},0)'::pg_catalog.tid AND ctid < '({hi},0)'::pg_catalog.tid{skip}",
                t.assignments()
            ),
            &[],
        )
        .await?;
    let xid: String = tx
        .query_one(sql::RECORD_MASK_XID, &[&run, &name])
        .await?
        .get(0);
    if let Some(on) = triggers::triggers_statement(name, &quiet, true) {
        tx.batch_execute(&on).await?;
    }
    tx.execute(
        sql::ADVANCE_MASK_PROGRESS,
        &[&run, &name, &hi, &(rows as i64)],
    )
    .await?;
    tx.commit().await?;
    Ok((rows, xid))
}
