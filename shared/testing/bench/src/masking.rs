//! Row 7: masking a loaded table on AWS (DMS wrote raw rows) — dbsync's
//! set-based step (one UPDATE per block range, user triggers quiet, progress
//! committed with each range) against the row-by-row loop a team writes by
//! hand, on two identical copies of the same table, in one run.

use std::time::{Duration, Instant};

use dbsync_db::{mask, target, Budget, DbConfig, Selection, Timeouts};
use dbsync_workflow::sync_config::SyncConfig;
use tokio_postgres::Client;

use crate::{secs, server, Row};

const ROWS: i64 = 1_000_000;

/// Four rules of the usual kinds: two unique ones, a random one, a null.
const RULES: &str = "data_rules:
  email: unique_email
  phone: unique_phone
  born: random_date
  note: null
";

/// The same four rules, deterministic: each masked value a keyed digest of
/// the original (the price of determinism is one sha256 per masked value).
const DETERMINISTIC: &str = "deterministic: true
data_rules:
  email: unique_email
  phone: unique_phone
  born: random_date
  note: null
";

/// What the hand-written loop does for the same four rules, row by row.
const ROW_BY_ROW: &str = "DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT id FROM app.people LOOP
    UPDATE app.people
       SET email = 'email' || r.id || '@example.org',
           phone = (r.id + 1000000000)::text,
           born  = date '1970-01-01' + (random() * 10000)::int,
           note  = NULL
     WHERE id = r.id;
  END LOOP;
END $$";

async fn connect(port: u16, db: &str) -> Client {
    DbConfig::from_url(&format!("postgres://postgres@127.0.0.1:{port}/{db}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The after-load step over the whole table in one go; how long it took.
async fn mask_all(client: &mut Client, config: &SyncConfig) -> Duration {
    let t = Instant::now();
    let plan = mask::plan(&*client, &Selection::all(), config)
        .await
        .unwrap();
    let out = mask::mask(
        client,
        &plan,
        Some("bench"),
        Timeouts {
            statement: Duration::from_secs(3600),
            lock: Duration::from_secs(60),
        },
        Budget::from_now(Duration::from_secs(3600)),
        Duration::from_secs(1),
        mask::CHUNK_BLOCKS,
    )
    .await
    .unwrap();
    assert_eq!(out.remaining, 0);
    t.elapsed()
}

pub async fn run(notes: &mut Vec<String>) -> Vec<Row> {
    let c = server();
    let admin = connect(c.port, "postgres").await;
    admin.batch_execute("CREATE DATABASE mask_a").await.unwrap();
    let mut a = connect(c.port, "mask_a").await;
    a.batch_execute(&format!(
        "CREATE SCHEMA app;
         CREATE TABLE app.people (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, phone text,
                                  name text, born date, note text, created_at timestamptz DEFAULT now());
         INSERT INTO app.people (id, email, phone, name, born, note)
           SELECT g, 'person' || g || '@corp.example', '+31 6 ' || g, 'Person ' || g,
                  DATE '1980-01-01' + g % 9000, 'a note about person ' || g
           FROM generate_series(1, {ROWS}) g;"
    ))
    .await
    .unwrap();
    a.batch_execute("VACUUM ANALYZE app.people").await.unwrap();
    target::init_target(&mut a).await.unwrap();
    drop(a);
    admin
        .batch_execute("CREATE DATABASE mask_b TEMPLATE mask_a")
        .await
        .unwrap();
    admin
        .batch_execute("CREATE DATABASE mask_c TEMPLATE mask_a")
        .await
        .unwrap();
    let mut a = connect(c.port, "mask_a").await;
    let b = connect(c.port, "mask_b").await;
    let size: String = b
        .query_one(
            "SELECT pg_size_pretty(pg_total_relation_size('app.people'))",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let blocks: i64 = a
        .query_one(
            "SELECT pg_relation_size('app.people') / current_setting('block_size')::int8",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let config = SyncConfig::parse("bench.yml", RULES).unwrap();
    let ours = mask_all(&mut a, &config).await;

    let t = Instant::now();
    b.batch_execute(ROW_BY_ROW).await.unwrap();
    let loop_time = t.elapsed();

    // The deterministic rules on a third copy (opted in on its own: a
    // template copy's marker names mask_a).
    let mut cc = connect(c.port, "mask_c").await;
    target::init_target(&mut cc).await.unwrap();
    let det = SyncConfig::parse("bench.yml", DETERMINISTIC)
        .unwrap()
        .with_salt(Some("a bench salt of some length"), "bench")
        .unwrap();
    let deterministic = mask_all(&mut cc, &det).await;
    let distinct: i64 = cc
        .query_one(
            "SELECT count(DISTINCT email) FROM app.people WHERE email LIKE 'u%@example.org'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(distinct, ROWS, "every row masked once, unique");

    // Same result on both sides (the random date aside).
    for db in [&a, &b] {
        let wrong: i64 = db
            .query_one(
                "SELECT count(*) FROM app.people WHERE email <> 'email' || id || '@example.org' \
                 OR phone <> (id + 1000000000)::text OR note IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(wrong, 0);
    }
    notes.push(format!(
        "Masking: one table of {ROWS} rows ({size} with its indexes: a primary key and a unique email), 4 rules \
         (unique_email, unique_phone, random_date, null) on two copies of the same database. dbsync: the AWS-side \
         after-load step (one UPDATE per {} MB block range, {} ranges, each committed with its progress). \
         Reference: a PL/pgSQL loop updating row by row by primary key, run inside the server (no round trips) — \
         the fastest form of the hand-written loop.",
        mask::CHUNK_BLOCKS * 8 / 1024,
        (blocks as u64).div_ceil(mask::CHUNK_BLOCKS as u64),
    ));
    let ratio = loop_time.as_secs_f64() / ours.as_secs_f64();
    let price = deterministic.as_secs_f64() / ours.as_secs_f64();
    notes.push(format!(
        "Deterministic masking: the same table and rules with `deterministic: true` (each masked value a \
         sha256 keyed by the salt, the rule and the original) on a third copy, in the same run: {} against {} \
         for the random rules.",
        secs(deterministic),
        secs(ours)
    ));
    vec![
        Row {
            section: "7",
            what: format!("masking {ROWS} rows with the same 4 rules, deterministic"),
            dbsync: secs(deterministic),
            reference: format!("{} (random rules)", secs(ours)),
            ratio: format!("{price:.2}× the time"),
            // A price to report, not a race: determinism costs one keyed
            // digest per masked value and index entries in hash order.
            goal: "the price of determinism, reported".into(),
            met: None,
        },
        Row {
            section: "7",
            what: format!("masking {ROWS} rows with 4 rules after the load"),
            dbsync: secs(ours),
            reference: format!("{} (row-by-row loop)", secs(loop_time)),
            ratio: format!("{ratio:.1}×"),
            goal: "faster than the loop".into(),
            met: Some(ratio > 1.0),
        },
    ]
}
