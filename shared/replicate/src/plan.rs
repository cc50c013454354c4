//! The plan: which tables, how big, and the pieces they are copied in
//! (whole, or block ranges when one table would keep a worker busy alone).

use std::sync::{Arc, Mutex};

use dbsync_db::{classify, sql::ident, Selection};
use dbsync_workflow::StepError;
use tokio_postgres::{types::Type, Client};

use crate::{
    copy::{Piece, TableJob},
    Progress, ReplicateOptions,
};

/// The source tables to copy, leaf tables only, with their sizes and columns.
const SOURCE_TABLES: &str = "
WITH sel AS (SELECT unnest($1::pg_catalog.oid[]) AS oid),
leaves AS (
    -- pg_partition_tree() is empty for a plain table: take those as they are.
    SELECT oid FROM sel
    UNION
    SELECT t.relid FROM sel, pg_catalog.pg_partition_tree(sel.oid) AS t WHERE t.isleaf
)
SELECT n.nspname::text, c.relname::text, pg_catalog.pg_relation_size(c.oid), pg_catalog.pg_table_size(c.oid),
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
             ORDER BY a.attnum)
FROM (SELECT DISTINCT oid FROM leaves) AS l
JOIN pg_catalog.pg_class c ON c.oid = l.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
ORDER BY pg_catalog.pg_relation_size(c.oid) DESC, 1, 2";

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

/// Pieces a table of `bytes` is copied in by the Lambda engine: one per
/// `piece_bytes` started, so each copies well within one invocation.
pub fn pieces_by_size(bytes: i64, piece_bytes: i64) -> usize {
    let piece = piece_bytes.max(1);
    (bytes.max(0) + piece - 1).div_euclid(piece).max(1) as usize
}

/// A table's primary key: its columns and their types, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub columns: Vec<(String, String)>,
}

const PRIMARY_KEY: &str = "
SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_index i
CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1::text::pg_catalog.regclass AND i.indisprimary AND k.ord <= i.indnkeyatts
ORDER BY k.ord";

impl Key {
    /// `ROW(k1, k2)`.
    fn row(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|(c, _)| ident(c)).collect();
        format!("ROW({})", cols.join(", "))
    }

    /// `ROW('v1'::t1, 'v2'::t2)`: values as text, each read back by its column's type.
    fn values(&self, values: &[String]) -> String {
        let vals: Vec<String> = self
            .columns
            .iter()
            .zip(values)
            .map(|((_, ty), v)| format!("{}::{ty}", dbsync_db::sql::literal(v)))
            .collect();
        format!("ROW({})", vals.join(", "))
    }

    /// The rows whose key is in `[low, high)` (an open side: no bound).
    /// `None` when a bound does not have one value per key column.
    pub fn filter(&self, low: Option<&[String]>, high: Option<&[String]>) -> Option<String> {
        let n = self.columns.len();
        if low.is_some_and(|v| v.len() != n) || high.is_some_and(|v| v.len() != n) {
            return None;
        }
        let mut parts = Vec::new();
        if let Some(v) = low {
            parts.push(format!("{} >= {}", self.row(), self.values(v)));
        }
        if let Some(v) = high {
            parts.push(format!("{} < {}", self.row(), self.values(v)));
        }
        Some(if parts.is_empty() {
            "true".into()
        } else {
            parts.join(" AND ")
        })
    }
}

/// The primary key of `t` (a leaf table), if it has one.
pub async fn primary_key(source: &Client, t: &TableCopy) -> Result<Option<Key>, StepError> {
    let rows = source
        .query_typed(PRIMARY_KEY, &[(&t.qualified(), Type::TEXT)])
        .await
        .map_err(|e| classify(e, &format!("reading the key of {}", t.qualified())))?;
    Ok((!rows.is_empty()).then(|| Key {
        columns: rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
    }))
}

/// Up to `n - 1` key values cutting `t` into `n` ranges of about equal rows,
/// from a block sample of the table (a few thousand keys), as text. Keys,
/// unlike block ranges, do not move when a row is updated between pieces
/// copied at different moments. Fewer (even none) when the sample is small.
pub async fn key_bounds(
    source: &Client,
    t: &TableCopy,
    key: &Key,
    n: usize,
) -> Result<Vec<Vec<String>>, StepError> {
    let ctx = format!("sampling the keys of {}", t.qualified());
    let err = |e| classify(e, &ctx);
    if n < 2 {
        return Ok(Vec::new());
    }
    let estimate: f64 = source
        .query_one(
            "SELECT greatest(reltuples, 0)::float8 FROM pg_catalog.pg_class WHERE oid = $1::text::pg_catalog.regclass",
            &[&t.qualified()],
        )
        .await
        .map_err(err)?
        .get(0);
    // Never analyzed: guess from the size (about 100 bytes a row).
    let rows = if estimate > 0.0 {
        estimate
    } else {
        (t.bytes / 100).max(1) as f64
    };
    let wanted = (200 * n).max(2000) as f64;
    let percent = (100.0 * wanted / rows).clamp(0.01, 100.0);
    let cols: Vec<String> = key.columns.iter().map(|(c, _)| ident(c)).collect();
    let texts: Vec<String> = cols.iter().map(|c| format!("{c}::text")).collect();
    // ISO dates and exact floats: the text reads back as the same value anywhere.
    source
        .batch_execute("SET DateStyle = ISO; SET extra_float_digits = 3")
        .await
        .map_err(err)?;
    let sample = source
        .query(
            &format!(
                "SELECT ARRAY[{}] FROM ONLY {} TABLESAMPLE SYSTEM ({percent}) ORDER BY {}",
                texts.join(", "),
                t.qualified(),
                cols.join(", ")
            ),
            &[],
        )
        .await
        .map_err(err)?;
    source
        .batch_execute("RESET DateStyle; RESET extra_float_digits")
        .await
        .map_err(err)?;
    let keys: Vec<Vec<String>> = sample.iter().map(|r| r.get(0)).collect();
    let mut bounds: Vec<Vec<String>> = Vec::new();
    for k in 1..n {
        let Some(b) = keys.get(k * keys.len() / n) else {
            break;
        };
        if k * keys.len() / n > 0 && bounds.last() != Some(b) {
            bounds.push(b.clone());
        }
    }
    Ok(bounds)
}

/// The source's `server_version_num` and block size (what block ranges need).
pub(crate) async fn version_and_block_size(source: &Client) -> Result<(i32, i64), StepError> {
    let row = source
        .query_one(
            "SELECT current_setting('server_version_num')::int4, current_setting('block_size')::int8",
            &[],
        )
        .await
        .map_err(|e| classify(e, "reading the source's version"))?;
    Ok((row.get(0), row.get(1)))
}

/// One table to copy.
#[derive(Debug, Clone)]
pub struct TableCopy {
    pub schema: String,
    pub name: String,
    pub bytes: i64,
    /// With TOAST (the Lambda engine sizes its pieces by it).
    pub total_bytes: i64,
    pub columns: Vec<String>,
}

impl TableCopy {
    pub fn qualified(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }

    pub(crate) fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ")
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
            total_bytes: r.get(3),
            columns: r.get(4),
        })
        .collect())
}

/// The work queue: every table whole, or in block ranges when it is larger
/// than one worker's share and can be split; largest piece first. Split
/// tables are truncated here, before any of their ranges is loaded.
pub(crate) async fn split(
    opts: &ReplicateOptions,
    source: &Client,
    tables: Vec<TableCopy>,
    workers: usize,
    progress: &Mutex<Progress>,
) -> Result<Vec<Piece>, StepError> {
    {
        let mut p = progress.lock().expect("progress lock");
        p.tables_total = tables.len();
        p.bytes_total = tables.iter().map(|t| t.bytes.max(1)).sum();
    }
    // DBSYNC_SPLIT=off copies every table whole (the benchmark's comparison).
    let split_workers = if dbsync_workflow::config::var(dbsync_workflow::vars::DBSYNC_SPLIT)
        .as_deref()
        == Some("off")
    {
        1
    } else {
        workers
    };
    let counts = piece_counts(
        &tables.iter().map(|t| t.bytes).collect::<Vec<_>>(),
        split_workers,
    );
    // TID range scans arrived in PostgreSQL 14; before, every range would scan the whole table.
    let (version, block_size) = version_and_block_size(source).await?;
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
    fn pieces_follow_the_size_rule() {
        assert_eq!(pieces_by_size(0, 512 * MB), 1);
        assert_eq!(pieces_by_size(512 * MB, 512 * MB), 1);
        assert_eq!(pieces_by_size(512 * MB + 1, 512 * MB), 2);
        assert_eq!(pieces_by_size(10 * 1024 * MB, 512 * MB), 20);
    }

    #[test]
    fn key_filters_bound_every_key_column_and_quote_values() {
        let key = Key {
            columns: vec![("id".into(), "bigint".into()), ("at".into(), "text".into())],
        };
        let low = vec!["10".to_string(), "it's".to_string()];
        assert_eq!(
            key.filter(Some(&low), None).unwrap(),
            "ROW(\"id\", \"at\") >= ROW(E'10'::bigint, E'it''s'::text)"
        );
        assert_eq!(
            key.filter(None, Some(&low)).unwrap(),
            "ROW(\"id\", \"at\") < ROW(E'10'::bigint, E'it''s'::text)"
        );
        assert_eq!(key.filter(None, None).unwrap(), "true");
        // A bound that does not fit the key (it changed since the plan): refused.
        assert_eq!(key.filter(Some(&low[..1]), None), None);
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
