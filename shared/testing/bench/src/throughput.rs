//! Row 1: sync throughput — the local replicator vs `pg_dump -Fd -j2 | pg_restore -j2`
//! vs plain `psql` COPY pipes, on the same generated dataset.

use std::{
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use dbsync_db::{DbConfig, Selection};
use dbsync_replicate::{replicate, Progress, ReplicateOptions};

use crate::{server, Args, Row};

const TABLES: usize = 8;
const PARALLEL: usize = 2;

fn schema(i: usize) -> String {
    format!(
        "CREATE TABLE bench.t{i} (id bigint PRIMARY KEY, customer int NOT NULL, amount numeric(12,2), \
         note text, created timestamptz NOT NULL, flags int);"
    )
}

async fn exec(url: &str, sql: &str) {
    let cfg = DbConfig::from_url(url).unwrap();
    let c = cfg.connect().await.unwrap_or_else(|e| panic!("{e}"));
    c.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn sh(script: &str) -> Duration {
    let t = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

pub async fn run(args: &Args, notes: &mut Vec<String>) -> Vec<Row> {
    let c = server();
    for db in ["src", "dst_dbsync", "dst_dump", "dst_pipe"] {
        c.admin_sql(&format!("CREATE DATABASE {db}")).unwrap();
        let ddl: String = (0..TABLES).map(schema).collect();
        exec(&c.url(db), &format!("CREATE SCHEMA bench; {ddl}")).await;
    }
    // ~104 bytes a row on disk (measured: 8.26 M rows took 861 MiB).
    let rows_per_table = args.size_mb * 1024 * 1024 / 104 / TABLES as u64;
    let t = Instant::now();
    let mut gen = Vec::new();
    for chunk in (0..TABLES).collect::<Vec<_>>().chunks(TABLES / PARALLEL) {
        let (url, chunk) = (c.url("src"), chunk.to_vec());
        gen.push(tokio::spawn(async move {
            for i in chunk {
                exec(
                    &url,
                    &format!(
                        "INSERT INTO bench.t{i} SELECT g, g % 100000, (g % 10000) / 7.0, md5(g::text) || ' order note', \
                         TIMESTAMPTZ '2024-01-01' + g * INTERVAL '1 second', g % 7 FROM generate_series(1, {rows_per_table}) g"
                    ),
                )
                .await;
                // VACUUM cannot share an (implicit) transaction with the INSERT.
                exec(&url, &format!("VACUUM ANALYZE bench.t{i}")).await;
            }
        }));
    }
    for g in gen {
        g.await.unwrap();
    }
    let src = DbConfig::from_url(&c.url("src"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bytes: i64 = src
        .query_one(
            "SELECT sum(pg_table_size(c.oid))::int8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'bench' AND c.relkind = 'r'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mb = bytes as f64 / 1024.0 / 1024.0;
    notes.push(format!(
        "Sync dataset: {TABLES} tables, {} rows, {mb:.0} MB of table data (generated in {:.0} s); every method runs {PARALLEL} tables at once (2 cores); targets have the primary keys in place.",
        rows_per_table * TABLES as u64,
        t.elapsed().as_secs_f64()
    ));

    // dbsync's replicator.
    let opts = ReplicateOptions {
        source: DbConfig::from_url(&c.url("src")).unwrap(),
        target: DbConfig::from_url(&c.url("dst_dbsync")).unwrap(),
        selection: Selection::all(),
        parallelism: PARALLEL,
        fail_table: None,
        sync: Default::default(),
        freeze: true,
    };
    let progress = Arc::new(Mutex::new(Progress::default()));
    let t = Instant::now();
    replicate(&opts, &progress).await.unwrap();
    let dbsync = t.elapsed();
    assert_eq!(progress.lock().unwrap().tables_errored(), 0);

    // pg_dump / pg_restore, directory format, two jobs each.
    let bin = c.bindir().display().to_string();
    let dir = std::env::temp_dir().join(format!("dbsync-bench-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let conn = format!("-h 127.0.0.1 -p {} -U postgres", c.port);
    let dump = sh(&format!(
        "{bin}/pg_dump {conn} -d src -Fd -j{PARALLEL} --data-only -f {d} && {bin}/pg_restore {conn} -d dst_dump -j{PARALLEL} --data-only {d}",
        d = dir.display()
    ));
    let _ = std::fs::remove_dir_all(&dir);

    // Plain COPY pipes through psql, two tables at a time.
    let pipes: Vec<String> = (0..TABLES)
        .map(|i| {
            format!(
                "{bin}/psql -X -q {conn} -d src -c 'COPY bench.t{i} TO STDOUT' | {bin}/psql -X -q {conn} -d dst_pipe -c 'COPY bench.t{i} FROM STDIN'"
            )
        })
        .collect();
    let script = pipes
        .chunks(TABLES / PARALLEL)
        .map(|chunk| format!("( {} ) &", chunk.join(" && ")))
        .collect::<Vec<_>>()
        .join("\n")
        + "\nwait";
    let pipe = sh(&script);

    let rate = |d: Duration| mb / d.as_secs_f64();
    let (r_dump, r_pipe) = (rate(dbsync) / rate(dump), rate(dbsync) / rate(pipe));
    vec![
        Row {
            section: "1",
            what: format!(
                "sync throughput, {mb:.0} MB: vs pg_dump -Fd -j2 + pg_restore -j2 --data-only"
            ),
            dbsync: format!("{:.1} MB/s ({:.1} s)", rate(dbsync), dbsync.as_secs_f64()),
            reference: format!("{:.1} MB/s ({:.1} s)", rate(dump), dump.as_secs_f64()),
            ratio: format!("{r_dump:.2}×"),
            goal: "≥ 1.5×".into(),
            met: Some(r_dump >= 1.5),
        },
        Row {
            section: "1",
            what: "sync throughput: vs psql COPY TO STDOUT piped into COPY FROM STDIN, per table"
                .into(),
            dbsync: format!("{:.1} MB/s", rate(dbsync)),
            reference: format!("{:.1} MB/s ({:.1} s)", rate(pipe), pipe.as_secs_f64()),
            ratio: format!("{r_pipe:.2}×"),
            goal: "≥ 0.9×".into(),
            met: Some(r_pipe >= 0.9),
        },
    ]
}
