//! Rows 2 and 3: the database steps on a large schema against a
//! one-statement-per-object baseline (the seed's approach), and FK validation
//! on a big table against PostgreSQL's own `ADD FOREIGN KEY`.

use std::time::{Duration, Instant};

use dbsync_db::{fks, sequences, Budget, DbConfig, Selection, Timeouts};
use dbsync_testpg::Cluster;
use tokio_postgres::Client;

use crate::{secs, server, Row};

const TABLES: usize = 2000;
const EXTRA_FKS: usize = 1000;

const LIMITS: Timeouts = Timeouts {
    statement: Duration::from_secs(3600),
    lock: Duration::from_secs(60),
};

fn budget() -> Budget {
    Budget::from_now(Duration::from_secs(3600))
}

/// 2,000 tables with a serial each (2,000 sequences) and 3,000 FKs
/// (a chain, plus 1,000 cross links), ten rows a table.
fn schema() -> String {
    let mut s = String::from("CREATE SCHEMA big;\n");
    for i in 0..TABLES {
        s.push_str(&format!(
            "CREATE TABLE big.t{i} (id serial PRIMARY KEY, prev int, other int);\n"
        ));
    }
    for i in 0..TABLES {
        s.push_str(&format!(
            "INSERT INTO big.t{i} (prev, other) SELECT g, g FROM generate_series(1, 10) g;\n"
        ));
    }
    for i in 1..TABLES {
        s.push_str(&format!(
            "ALTER TABLE big.t{i} ADD FOREIGN KEY (prev) REFERENCES big.t{};\n",
            i - 1
        ));
    }
    for i in 0..=EXTRA_FKS {
        s.push_str(&format!(
            "ALTER TABLE big.t{i} ADD FOREIGN KEY (other) REFERENCES big.t{};\n",
            (i + 500) % TABLES
        ));
    }
    s
}

async fn client(c: &Cluster, db: &str) -> Client {
    connect(c.port, db).await
}

async fn connect(port: u16, db: &str) -> Client {
    DbConfig::from_url(&format!("postgres://postgres@127.0.0.1:{port}/{db}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn logged<F, Fut, T>(c: &Cluster, db: &str, f: F) -> (T, Duration, usize)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let before = c.statements_logged(db);
    let t = Instant::now();
    let out = f().await;
    let took = t.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    (out, took, c.statements_logged(db) - before)
}

/// The straightforward version: one statement per constraint or sequence.
mod baseline {
    use super::*;

    pub async fn drop(c: &Client) -> Vec<(String, String, String)> {
        let fks: Vec<(String, String, String)> = c
            .query(
                "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        for (t, n, _) in &fks {
            c.batch_execute(&format!("ALTER TABLE {t} DROP CONSTRAINT {n}"))
                .await
                .unwrap();
        }
        fks
    }

    pub async fn restore(c: &Client, fks: &[(String, String, String)]) {
        for (t, n, d) in fks {
            c.batch_execute(&format!("ALTER TABLE {t} ADD CONSTRAINT {n} {d}"))
                .await
                .unwrap();
        }
    }

    pub async fn sequences(c: &Client) {
        let seqs: Vec<(String, String, String)> = c
            .query(
                "SELECT s.oid::regclass::text, t.oid::regclass::text, a.attname::text FROM pg_depend d
                 JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                 JOIN pg_class t ON t.oid = d.refobjid JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
                 WHERE d.deptype IN ('a', 'i')",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        for (s, t, col) in &seqs {
            c.batch_execute(&format!(
                "SELECT setval('{s}', coalesce((SELECT max({col}) FROM {t}), 1))"
            ))
            .await
            .unwrap();
        }
    }
}

/// One-way delay of the simulated network (0.25 ms each way ≈ a same-AZ round trip).
const ONE_WAY: Duration = Duration::from_micros(250);

pub async fn steps(notes: &mut Vec<String>) -> Vec<Row> {
    let c = server();
    let relay = crate::latency::relay(c.port, ONE_WAY);
    let mut rows = Vec::new();
    for (label, port) in [("localhost", c.port), ("0.5 ms RTT", relay)] {
        rows.extend(steps_via(&c, port, label).await);
    }
    notes.push(format!(
        "DB steps schema: {TABLES} tables, {} FKs, {TABLES} sequences, 10 rows a table; run once on localhost and once through a relay adding 0.25 ms each way (a same-AZ Lambda → RDS round trip). Statements are counted from the server's own log (log_statement = all): one per simple query or extended-protocol execute, i.e. round trips.",
        TABLES + EXTRA_FKS
    ));
    rows
}

async fn steps_via(c: &Cluster, port: u16, label: &str) -> Vec<Row> {
    let db = format!("steps_{}", port);
    c.admin_sql(&format!("CREATE DATABASE {db}")).unwrap();
    let mut setup = client(c, &db).await;
    setup.batch_execute(&schema()).await.unwrap();
    dbsync_db::target::init_target(&mut setup).await.unwrap();
    c.admin_sql(&format!("ALTER DATABASE {db} SET log_statement = 'all'"))
        .unwrap();
    let sel = Selection::all();

    let mut cl = connect(port, &db).await;
    let (d, drop_t, drop_n) =
        logged(c, &db, || fks::drop_fks(&mut cl, &sel, LIMITS, budget())).await;
    let d = d.unwrap();
    assert_eq!(d.dropped as usize, TABLES + EXTRA_FKS);
    let opts = fks::RestoreOptions {
        synced: dbsync_db::Selection::all(),
        policy: fks::OrphanPolicy::Fail,
        timeouts: LIMITS,
        min_slice: Duration::from_secs(1),
        detach: None,
        index_jobs: 2,
    };
    let (r, restore_t, restore_n) =
        logged(c, &db, || fks::restore_fks(&mut cl, opts, budget())).await;
    assert_eq!(r.unwrap().remaining, 0);
    let (s, seq_t, seq_n) = logged(c, &db, || {
        sequences::fix_sequences(&mut cl, &sel, LIMITS, budget())
    })
    .await;
    assert_eq!(s.unwrap().sequences as usize, TABLES);

    let cl = connect(port, &db).await;
    let (saved, bdrop_t, bdrop_n) = logged(c, &db, || baseline::drop(&cl)).await;
    let ((), brestore_t, brestore_n) = logged(c, &db, || baseline::restore(&cl, &saved)).await;
    let ((), bseq_t, bseq_n) = logged(c, &db, || baseline::sequences(&cl)).await;
    let row = |what: &str,
               ours: Duration,
               on: usize,
               base: Duration,
               bn: usize,
               goal: &str,
               min: Option<f64>| {
        let ratio = base.as_secs_f64() / ours.as_secs_f64();
        Row {
            section: "2",
            what: format!("{what} ({label})"),
            dbsync: format!("{} / {on} statements", secs(ours)),
            reference: format!("{} / {bn} statements", secs(base)),
            ratio: format!("{ratio:.1}× faster"),
            goal: goal.into(),
            met: min.map(|m| ratio >= m && on <= 10),
        }
    };
    vec![
        row(
            "drop FKs (capture + drop)",
            drop_t,
            drop_n,
            bdrop_t,
            bdrop_n,
            "constant round trips, ≥ 10×",
            Some(10.0),
        ),
        row(
            "restore FKs (NOT VALID, then VALIDATE each)",
            restore_t,
            restore_n,
            brestore_t,
            brestore_n,
            "—",
            None,
        ),
        row(
            "fix sequences",
            seq_t,
            seq_n,
            bseq_t,
            bseq_n,
            "constant round trips, ≥ 10×",
            Some(10.0),
        ),
    ]
}

pub async fn validation(notes: &mut Vec<String>) -> Vec<Row> {
    let c = server();
    c.admin_sql("CREATE DATABASE val").unwrap();
    let mut cl = client(&c, "val").await;
    cl.batch_execute(
        "CREATE TABLE parent (id int PRIMARY KEY, v text);
         INSERT INTO parent SELECT g, 'p' FROM generate_series(1, 1000000) g;
         CREATE TABLE child (id bigint PRIMARY KEY, parent_id int NOT NULL, v int);
         INSERT INTO child SELECT g, 1 + (g::int8 * 7919) % 1000000, g FROM generate_series(1, 10000000) g;
         ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent;",
    )
    .await
    .unwrap();
    cl.batch_execute("VACUUM ANALYZE parent").await.unwrap();
    cl.batch_execute("VACUUM ANALYZE child").await.unwrap();
    dbsync_db::target::init_target(&mut cl).await.unwrap();
    let opts = fks::RestoreOptions {
        synced: dbsync_db::Selection::all(),
        policy: fks::OrphanPolicy::Fail,
        timeouts: LIMITS,
        min_slice: Duration::from_secs(1),
        detach: None,
        index_jobs: 2,
    };
    // Warm the caches the same way for both: one full pass first.
    let mut ours = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..2 {
        fks::drop_fks(&mut cl, &Selection::all(), LIMITS, budget())
            .await
            .unwrap();
        let t = Instant::now();
        fks::restore_fks(&mut cl, opts.clone(), budget())
            .await
            .unwrap();
        ours.push(t.elapsed());
        cl.batch_execute("ALTER TABLE child DROP CONSTRAINT child_parent_fk")
            .await
            .unwrap();
        let t = Instant::now();
        cl.batch_execute("ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent")
            .await
            .unwrap();
        floor.push(t.elapsed());
    }
    let (o, f) = (ours.iter().min().unwrap(), floor.iter().min().unwrap());
    let ratio = o.as_secs_f64() / f.as_secs_f64();
    notes.push(
        "FK validation: 10M-row child, 1M-row parent; best of 2 runs each, alternating.".into(),
    );
    vec![Row {
        section: "3",
        what: "FK validation, 10M-row child: restore-fks vs bare ALTER TABLE … ADD FOREIGN KEY"
            .into(),
        dbsync: secs(*o),
        reference: secs(*f),
        ratio: format!("{ratio:.2}×"),
        goal: "≤ 1.15×".into(),
        met: Some(ratio <= 1.15),
    }]
}
