//! Read-only checks that a sync left the target right, shared by `dbsync
//! demo` and the tests (one definition, so they cannot drift):
//!
//! - [`table_checksums`]: per table, the row count and an order-independent
//!   checksum of the rows — equal on both sides means the same rows.
//! - [`foreign_keys`]: every foreign key, partition clones included, with its
//!   exact definition, every flag and the comment a restore must bring back.
//! - [`check_constraints`]: every CHECK constraint, with validity and comment.
//! - [`indexes`]: every index, with everything a rebuild must bring back.
//! - [`sequences_ahead`]: every owned sequence's next value lies beyond its column's data.
//! - [`sequences_accept_inserts`]: a row of defaults goes into every table
//!   whose column takes a sequence (rolled back), proving each sequence is
//!   past the data.

use std::collections::BTreeMap;

use dbsync_workflow::StepError;
use tokio_postgres::{Client, GenericClient};

use crate::{classify, selected_tables, Selection};

/// Table (`schema.table`, quoted) → (rows, checksum).
pub type Checksums = BTreeMap<String, (i64, String)>;

/// (table, constraint) → definition and flags.
pub type ForeignKeys = BTreeMap<(String, String), String>;

/// Row count and checksum of every selected table holding rows (partitions,
/// not their partitioned parents).
pub async fn table_checksums(
    client: &impl GenericClient,
    selection: &Selection,
) -> Result<Checksums, StepError> {
    let e = |e| classify(e, "checksumming tables");
    let mut out = BTreeMap::new();
    for t in selected_tables(client, selection).await? {
        if t.partitioned {
            continue;
        }
        let q = format!(
            "SELECT pg_catalog.count(*), \
                    coalesce(pg_catalog.sum(pg_catalog.hashtextextended(x::text, 0)), 0)::text \
             FROM ONLY {} AS x",
            t.qualified()
        );
        let r = client.query_one(&q, &[]).await.map_err(e)?;
        out.insert(t.qualified(), (r.get(0), r.get(1)));
    }
    Ok(out)
}

/// Every foreign key of the database: its definition under an empty search
/// path (fully qualified) plus deferrability, validity, actions, match type,
/// whether it is a partition clone, and the referenced table.
pub async fn foreign_keys(client: &Client) -> Result<ForeignKeys, StepError> {
    inventory(
        client,
        "reading foreign keys",
        "SELECT c.conrelid::pg_catalog.regclass::text, c.conname::text,
                pg_catalog.pg_get_constraintdef(c.oid) || pg_catalog.format(
                    ' [deferrable=%s deferred=%s validated=%s upd=%s del=%s match=%s clone=%s ref=%s comment=%s]',
                    c.condeferrable, c.condeferred, c.convalidated, c.confupdtype, c.confdeltype,
                    c.confmatchtype, c.conparentid <> 0, c.confrelid::pg_catalog.regclass,
                    pg_catalog.obj_description(c.oid, 'pg_constraint'))
         FROM pg_catalog.pg_constraint c WHERE c.contype = 'f'",
    )
    .await
}

/// Every index of the database's own tables (not the catalogs' nor dbsync's):
/// its exact definition plus what a rebuild must bring back — the
/// constraint it backs (kind, deferrability, comment), its comment,
/// tablespace, per-column statistics targets, the `CLUSTER` mark, replica
/// identity and validity.
pub async fn indexes(client: &Client) -> Result<ForeignKeys, StepError> {
    inventory(
        client,
        "reading indexes",
        "SELECT i.indrelid::pg_catalog.regclass::text, ic.relname::text,
                pg_catalog.pg_get_indexdef(i.indexrelid) || pg_catalog.format(
                    ' [constraint=%s %s deferrable=%s deferred=%s comment=%s | comment=%s tablespace=%s stats=%s clustered=%s replident=%s valid=%s]',
                    con.conname, con.contype, con.condeferrable, con.condeferred,
                    pg_catalog.obj_description(con.oid, 'pg_constraint'),
                    pg_catalog.obj_description(i.indexrelid, 'pg_class'), ic.reltablespace,
                    (SELECT pg_catalog.array_agg(a.attnum || '=' || a.attstattarget ORDER BY a.attnum)
                     FROM pg_catalog.pg_attribute a
                     WHERE a.attrelid = i.indexrelid AND a.attstattarget >= 0),
                    i.indisclustered, i.indisreplident, i.indisvalid)
         FROM pg_catalog.pg_index i
         JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_catalog.pg_namespace n ON n.oid = ic.relnamespace
         LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                                              AND con.contype IN ('p', 'u', 'x')
         WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT IN ('information_schema', 'dbsync')",
    )
    .await
}

/// (table, constraint) → text, from a query run under an empty search path
/// (so definitions come out fully qualified) in a read-only transaction.
async fn inventory(client: &Client, ctx: &str, query: &str) -> Result<ForeignKeys, StepError> {
    let e = |e| classify(e, ctx);
    client
        .batch_execute("BEGIN READ ONLY; SET LOCAL search_path = ''")
        .await
        .map_err(e)?;
    let rows = client.query(query, &[]).await.map_err(e)?;
    client.batch_execute("COMMIT").await.map_err(e)?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}

/// Every CHECK constraint of the user tables: definition under an empty
/// search path, validity, whether it is inherited, and its comment.
pub async fn check_constraints(client: &Client) -> Result<ForeignKeys, StepError> {
    inventory(
        client,
        "reading check constraints",
        "SELECT c.conrelid::pg_catalog.regclass::text, c.conname::text,
                pg_catalog.pg_get_constraintdef(c.oid) || pg_catalog.format(
                    ' [validated=%s local=%s inherited=%s comment=%s]',
                    c.convalidated, c.conislocal, c.coninhcount,
                    pg_catalog.obj_description(c.oid, 'pg_constraint'))
         FROM pg_catalog.pg_constraint c
         JOIN pg_catalog.pg_class t ON t.oid = c.conrelid
         JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
         WHERE c.contype = 'c'
           AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbsync')",
    )
    .await
}

/// Checks that the next value of every sequence owned by a column (serial,
/// identity) lies beyond that column's data (below it, for descending
/// sequences). Returns how many columns were checked; a sequence behind its
/// data is an error naming it. Works whatever other columns require, unlike
/// inserting a row of defaults.
pub async fn sequences_ahead(client: &Client) -> Result<usize, StepError> {
    let e = |e| classify(e, "checking sequences");
    let columns = client
        .query(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS tbl,
                    pg_catalog.quote_ident(a.attname) AS col,
                    pg_catalog.pg_get_serial_sequence(pg_catalog.format('%I.%I', n.nspname, c.relname), a.attname) AS seq
             FROM pg_catalog.pg_attribute a
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
               AND n.nspname NOT IN ('pg_catalog', 'information_schema', $1)
               AND pg_catalog.pg_get_serial_sequence(pg_catalog.format('%I.%I', n.nspname, c.relname), a.attname) IS NOT NULL
             ORDER BY 1, 2",
            &[&crate::PROJECT_SCHEMA],
        )
        .await
        .map_err(e)?;
    for r in &columns {
        let (table, column, seq): (&str, &str, &str) = (r.get(0), r.get(1), r.get(2));
        // Numbers as text: identity and serial columns may be smallint … bigint.
        let row = client
            .query_one(
                &format!(
                    "SELECT (SELECT max({column})::text FROM {table}),
                            (SELECT min({column})::text FROM {table}),
                            s.last_value::text, s.is_called, q.seqincrement::text
                     FROM {seq} s, pg_catalog.pg_sequence q
                     WHERE q.seqrelid = $1::text::pg_catalog.regclass"
                ),
                &[&seq],
            )
            .await
            .map_err(e)?;
        let number = |i: usize| {
            row.get::<_, Option<String>>(i)
                .and_then(|v| v.parse::<i128>().ok())
        };
        let (max, min, last, inc) = (
            number(0),
            number(1),
            number(2).unwrap_or(0),
            number(4).unwrap_or(1),
        );
        let called: bool = row.get(3);
        let next = if called { last + inc } else { last };
        let behind = if inc > 0 {
            max.is_some_and(|m| next <= m)
        } else {
            min.is_some_and(|m| next >= m)
        };
        if behind {
            return Err(StepError::Database {
                code: String::new(),
                message: format!(
                    "sequence {seq} of {table}.{column} would hand out {next}, already in the data"
                ),
            });
        }
    }
    Ok(columns.len())
}

/// Inserts a row of defaults into every user table with a sequence-backed
/// column (identity or `nextval()` default), in one transaction that is
/// rolled back. Returns how many tables were tried; a failure names the table.
pub async fn sequences_accept_inserts(client: &mut Client) -> Result<usize, StepError> {
    let e = |e| classify(e, "testing sequences");
    let tables: Vec<String> = client
        .query(
            "SELECT DISTINCT pg_catalog.format('%I.%I', n.nspname, c.relname)
             FROM pg_catalog.pg_attribute a
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
               AND n.nspname NOT IN ('pg_catalog', 'information_schema', $1)
               AND (a.attidentity <> '' OR pg_catalog.pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%')
             ORDER BY 1",
            &[&crate::PROJECT_SCHEMA],
        )
        .await
        .map_err(e)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let tx = client.transaction().await.map_err(e)?;
    for t in &tables {
        tx.batch_execute(&format!("INSERT INTO {t} DEFAULT VALUES"))
            .await
            .map_err(|err| StepError::Database {
                code: err.code().map(|c| c.code().to_owned()).unwrap_or_default(),
                message: format!(
                    "INSERT … DEFAULT VALUES into {t} failed: {}",
                    err.as_db_error().map(|d| d.message()).unwrap_or("")
                ),
            })?;
    }
    tx.rollback().await.map_err(e)?;
    Ok(tables.len())
}
