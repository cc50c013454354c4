//! Row 8: time to a fresh staging on an indexed schema with foreign keys —
//! a whole `dbsync run` refreshing a stale staging in place, against
//! `pgcopydb clone` and `pg_dump -Fd -j2` + `pg_restore -j2` into an empty
//! database, side by side in one run, CHECKPOINT before each leg; staging's
//! indexes and foreign keys checked identical to production's afterwards.

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use dbsync_db::DbConfig;

use crate::{
    server,
    throughput::{checkpoint, exec, median, shell},
    Args, Row,
};

/// Jobs on every side (the machine's 2 cores).
const JOBS: usize = 2;
/// Measured runs of each side; the median is reported.
const RUNS: usize = 3;

const SCHEMA: &str = "
CREATE SCHEMA shop;
CREATE TABLE shop.customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL,
    created timestamptz NOT NULL,
    profile jsonb);
CREATE INDEX customers_created ON shop.customers (created);
CREATE TABLE shop.products (id int PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL, price numeric(10,2));
CREATE TABLE shop.orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop.customers,
    created timestamptz NOT NULL,
    status text NOT NULL,
    total numeric(12,2));
CREATE INDEX orders_customer ON shop.orders (customer_id);
CREATE INDEX orders_created ON shop.orders (created);
CREATE TABLE shop.order_items (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES shop.orders,
    product_id int NOT NULL REFERENCES shop.products,
    qty int NOT NULL,
    price numeric(10,2));
CREATE INDEX order_items_order ON shop.order_items (order_id);
CREATE TABLE shop.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL, payload jsonb);
CREATE INDEX events_at ON shop.events (at);
";

/// Rows per table at 1024 MB (scaled by `--size-mb`).
fn data(scale: f64) -> String {
    let n = |rows: f64| (rows * scale) as i64;
    format!(
        "INSERT INTO shop.customers (email, name, created, profile)
           SELECT 'user' || g || '@example.com', 'name ' || md5(g::text), TIMESTAMPTZ '2020-01-01' + g * INTERVAL '1 minute',
                  jsonb_build_object('tier', g % 5, 'tags', jsonb_build_array('a' || g % 7, 'b' || g % 11))
           FROM generate_series(1, {c}) g;
         INSERT INTO shop.products SELECT g, 'SKU-' || g, 'product ' || g, (g % 1000) / 10.0 FROM generate_series(1, 50000) g;
         INSERT INTO shop.orders (customer_id, created, status, total)
           SELECT 1 + (g::int8 * 7919) % {c}, TIMESTAMPTZ '2021-01-01' + g * INTERVAL '10 seconds',
                  (ARRAY['new', 'paid', 'shipped', 'done'])[1 + g % 4], (g % 100000) / 100.0
           FROM generate_series(1, {o}) g;
         INSERT INTO shop.order_items (order_id, product_id, qty, price)
           SELECT 1 + g / 2 % {o}, 1 + (g * 31) % 50000, 1 + g % 5, (g % 5000) / 10.0 FROM generate_series(1, {i}) g;
         INSERT INTO shop.events (at, payload)
           SELECT TIMESTAMPTZ '2022-01-01' + g * INTERVAL '1 second',
                  jsonb_build_object('kind', 'click', 'page', '/p/' || g % 5000, 'session', md5(g::text), 'n', g)
           FROM generate_series(1, {e}) g;",
        c = n(500_000.0),
        o = n(2_000_000.0),
        i = n(4_000_000.0),
        e = n(500_000.0),
    )
}

/// pgcopydb from Debian, installed when missing and allowed (root).
fn pgcopydb() -> Option<PathBuf> {
    let find = || {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("pgcopydb"))
                .find(|b| b.exists())
        })
    };
    if let Some(b) = find() {
        return Some(b);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", "pgcopydb"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    find()
}

/// Per-phase seconds from the CLI's state lines (`  12.3s Name   1.23s …`):
/// the restore (index builds, then FK validation), the other printed states,
/// and the copy as what is left of the whole (its wait states are not printed).
fn phases(log: &str, total: Duration) -> Vec<(String, f64)> {
    let (mut restore, mut rest) = (0.0, 0.0);
    for line in log.lines() {
        let mut words = line.split_whitespace();
        let (Some(_at), Some(name), Some(took)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Some(secs) = took.strip_suffix('s').and_then(|t| t.parse::<f64>().ok()) else {
            continue;
        };
        match name {
            "StartReplication" | "PollReplication" => {}
            "RestoreForeignKeys" => restore += secs,
            _ => rest += secs,
        }
    }
    vec![
        (
            "copy".into(),
            (total.as_secs_f64() - restore - rest).max(0.0),
        ),
        ("indexes + FK validation".into(), restore),
        ("rest".into(), rest),
    ]
}

pub async fn run(args: &Args, notes: &mut Vec<String>) -> Vec<Row> {
    let c = server();
    let bin = c.bindir().display().to_string();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    let scale = args.size_mb as f64 / 1024.0;
    let t = Instant::now();
    c.admin_sql("CREATE DATABASE ix_src").unwrap();
    exec(&c.url("ix_src"), SCHEMA).await;
    exec(&c.url("ix_src"), &data(scale)).await;
    exec(&c.url("ix_src"), "VACUUM ANALYZE").await;
    let size: i64 = DbConfig::from_url(&c.url("ix_src"))
        .unwrap()
        .connect()
        .await
        .unwrap()
        .query_one(
            "SELECT sum(pg_total_relation_size(c.oid))::int8 FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'shop' AND c.relkind = 'r'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mb = size as f64 / 1024.0 / 1024.0;
    // Staging: the same schema, a stale copy holding 80% of the rows.
    c.admin_sql("CREATE DATABASE ix_staging TEMPLATE ix_src")
        .unwrap();
    exec(
        &c.url("ix_staging"),
        "DELETE FROM shop.order_items WHERE id % 5 = 0 OR order_id % 5 = 0;
         DELETE FROM shop.orders WHERE id % 5 = 0;
         DELETE FROM shop.events WHERE id % 5 = 0;",
    )
    .await;
    exec(&c.url("ix_staging"), "VACUUM ANALYZE").await;
    let init = Command::new(crate::throughput::dbsync_cli())
        .args(["init-target", "--target", &c.url("ix_staging")])
        .output()
        .expect("dbsync init-target");
    assert!(init.status.success(), "init-target: {init:?}");
    notes.push(format!(
        "Indexed dataset: 5 tables, 5 primary keys, 2 unique constraints, 5 secondary indexes, 3 FKs, identities, jsonb; {mb:.0} MB with indexes (generated in {:.0} s). Staging for dbsync: the same schema holding a stale 80% of the rows; pgcopydb and pg_restore go into an empty database each run.",
        t.elapsed().as_secs_f64()
    ));
    let versions = std::env::temp_dir().join(format!("dbsync-bench-ix-{}", std::process::id()));
    std::fs::create_dir_all(&versions).unwrap();
    std::fs::write(versions.join("production"), "1").unwrap();
    std::fs::write(versions.join("staging"), "1").unwrap();
    let dbsync_cmd = format!(
        "{} run --source {} --target {} --versions {} --parallelism {JOBS}",
        crate::throughput::dbsync_cli().display(),
        c.url("ix_src"),
        c.url("ix_staging"),
        versions.display()
    );
    let conn = format!("-h 127.0.0.1 -p {} -U postgres", c.port);
    let copydb = pgcopydb();
    let work = std::env::temp_dir().join(format!("dbsync-bench-ixw-{}", std::process::id()));
    let fresh = |name: &str| {
        let _ = c.admin_sql(&format!("DROP DATABASE IF EXISTS {name}"));
        c.admin_sql(&format!("CREATE DATABASE {name}")).unwrap();
    };
    let (mut ours, mut pgc, mut dump, mut kept) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut split: Vec<Vec<(String, f64)>> = Vec::new();
    for _ in 0..RUNS {
        checkpoint(&c).await;
        let (took, log) = shell(&dbsync_cmd, Some(&path));
        ours.push(took);
        split.push(phases(&log, took));

        // As before this release: loading into the indexed tables.
        checkpoint(&c).await;
        let (took, log) = shell(&format!("{dbsync_cmd} --keep-indexes"), Some(&path));
        kept.push((took, phases(&log, took)));

        if let Some(pgcopydb) = &copydb {
            fresh("ix_pgcopydb");
            let _ = std::fs::remove_dir_all(&work);
            checkpoint(&c).await;
            pgc.push(
                shell(
                    &format!(
                        "{} clone --source {} --target {} --table-jobs {JOBS} --index-jobs {JOBS} --skip-vacuum --dir {} --no-owner",
                        pgcopydb.display(),
                        c.url("ix_src"),
                        c.url("ix_pgcopydb"),
                        work.display()
                    ),
                    Some(&path),
                )
                .0,
            );
        }

        fresh("ix_dump");
        let _ = std::fs::remove_dir_all(&work);
        checkpoint(&c).await;
        dump.push(
            shell(
                &format!(
                    "pg_dump {conn} -d ix_src -Fd -j{JOBS} -f {w} && pg_restore {conn} -d ix_dump -j{JOBS} {w}",
                    w = work.display()
                ),
                Some(&path),
            )
            .0,
        );
    }
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&versions);

    // The end state: staging's indexes and FKs as production's.
    let src = DbConfig::from_url(&c.url("ix_src"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let stg = DbConfig::from_url(&c.url("ix_staging"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let same_indexes = dbsync_db::verify::indexes(&src).await.unwrap()
        == dbsync_db::verify::indexes(&stg).await.unwrap();
    let same_fks = dbsync_db::verify::foreign_keys(&src).await.unwrap()
        == dbsync_db::verify::foreign_keys(&stg).await.unwrap();
    assert!(
        same_indexes && same_fks,
        "staging's indexes or FKs differ from production's"
    );

    let ours = median(ours);
    let mut rows = Vec::new();
    let split_text = {
        // The median run's phases.
        let mut by_total: Vec<_> = split
            .iter()
            .map(|p| (p.iter().map(|x| x.1).sum::<f64>(), p))
            .collect();
        by_total.sort_by(|a, b| a.0.total_cmp(&b.0));
        by_total[by_total.len() / 2]
            .1
            .iter()
            .map(|(p, s)| format!("{p} {s:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if copydb.is_some() {
        let theirs = median(pgc);
        let r = theirs.as_secs_f64() / ours.as_secs_f64();
        rows.push(Row {
            section: "8",
            what: format!("time to a fresh staging, indexed schema with FKs, {mb:.0} MB: `dbsync run --parallelism {JOBS}` (refresh in place) vs `pgcopydb clone --table-jobs {JOBS} --index-jobs {JOBS} --skip-vacuum` into an empty database"),
            dbsync: format!("{:.1} s", ours.as_secs_f64()),
            reference: format!("{:.1} s", theirs.as_secs_f64()),
            ratio: format!("{r:.2}×"),
            goal: "≥ 1.0×".into(),
            met: Some(r >= 1.0),
        });
    } else {
        notes.push("pgcopydb: not installed and could not be (not root, or no package): its row is left out.".into());
    }
    let theirs = median(dump);
    let r = theirs.as_secs_f64() / ours.as_secs_f64();
    rows.push(Row {
        section: "8",
        what: format!("time to a fresh staging, indexed schema with FKs, {mb:.0} MB: `dbsync run` vs `pg_dump -Fd -j{JOBS}` + `pg_restore -j{JOBS}` into an empty database"),
        dbsync: format!("{:.1} s", ours.as_secs_f64()),
        reference: format!("{:.1} s", theirs.as_secs_f64()),
        ratio: format!("{r:.2}×"),
        goal: "≥ 1.3×".into(),
        met: Some(r >= 1.3),
    });
    kept.sort_by_key(|k| k.0);
    let (kept_t, kept_split) = &kept[kept.len() / 2];
    let text = |p: &[(String, f64)]| {
        p.iter()
            .map(|(p, s)| format!("{p} {s:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    rows.push(Row {
        section: "8",
        what: "where dbsync's time goes (median runs; restore = index builds, then FK validation): indexes dropped for the load vs `--keep-indexes` (loading into the indexed tables, as before)".into(),
        dbsync: format!("{:.1} s: {split_text}", ours.as_secs_f64()),
        reference: format!("{:.1} s: {}", kept_t.as_secs_f64(), text(kept_split)),
        ratio: format!("{:.2}×", kept_t.as_secs_f64() / ours.as_secs_f64()),
        goal: "faster than loading into indexes".into(),
        met: Some(ours < *kept_t),
    });
    notes.push(format!(
        "Indexed runs: median of {RUNS} each, CHECKPOINT before each leg; staging's indexes and FKs compared with production's after the last dbsync run (identical). pgcopydb 0.10 (Debian) with --skip-vacuum (dbsync does not VACUUM either)."
    ));
    rows
}
