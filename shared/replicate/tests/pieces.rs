//! The Lambda engine's handlers (plan, lanes, finish) against real
//! PostgreSQL: awkward keys cut into ranges, a table without a key cut into
//! block ranges, lanes running at once, every row exactly once.

use dbsync_db::{DbConfig, Selection};
use dbsync_replicate::pieces::{copy_lane, plan_copy, CopyConfig, LaneOutput, PlanOutput};
use dbsync_testpg::{Cluster, TestDb};
use serde_json::json;

const SCHEMA: &str = r#"
CREATE SCHEMA app;
-- A composite key of text (quotes, backslashes, non-ASCII), timestamptz and numeric.
CREATE TABLE app.keyed (t text, at timestamptz, n numeric, payload text, PRIMARY KEY (t, at, n));
-- No key at all: block ranges.
CREATE TABLE app.heap (a int, b text);
CREATE TABLE app.small (id int PRIMARY KEY, v text);
-- A small heap holding megabytes in TOAST: sized with it, so cut into key ranges.
CREATE TABLE app.toasty (id int PRIMARY KEY, doc text);
-- Large, but with a user trigger on staging: copied whole, the trigger off inside its load.
CREATE TABLE app.audited (id int PRIMARY KEY, v text);
"#;

const DATA: &str = r#"
INSERT INTO app.keyed
  SELECT CASE g % 4 WHEN 0 THEN 'o''brien ' WHEN 1 THEN 'back\slash ' WHEN 2 THEN 'żółw ' ELSE 'plain ' END || (g % 97),
         TIMESTAMPTZ '2026-01-01 00:00:00.123456+05:30' + g * INTERVAL '1.5 second',
         g / 7.0, repeat('p', 60)
  FROM generate_series(1, 20000) g;
INSERT INTO app.heap SELECT g, repeat('h', 80) FROM generate_series(1, 15000) g;
INSERT INTO app.small VALUES (1, 'a'), (2, 'b');
INSERT INTO app.toasty
  SELECT g, (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 2000) i) FROM generate_series(1, 120) g;
INSERT INTO app.audited SELECT g, repeat('a', 100) FROM generate_series(1, 8000) g;
ANALYZE;
"#;

/// The first column of every row `sql` returns.
async fn column<T: for<'a> tokio_postgres::types::FromSql<'a>>(
    c: &tokio_postgres::Client,
    sql: &str,
) -> Vec<T> {
    c.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn checksum(db: &TestDb, table: &str) -> (i64, String) {
    let r = db
        .client()
        .await
        .query_one(
            &format!("SELECT count(*), coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM {table} x"),
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

/// The engine's settings for copying `src` into `dst`.
fn copy_config(
    src: &TestDb,
    dst: &TestDb,
    selection: Selection,
    piece_bytes: i64,
    concurrency: u32,
) -> CopyConfig {
    CopyConfig {
        source: DbConfig::from_url(&src.url).unwrap(),
        target: DbConfig::from_url(&dst.url).unwrap(),
        selection,
        sync: Default::default(),
        piece_bytes,
        concurrency,
        fail_table: None,
    }
}

/// Production with the schema and data, staging with the schema and
/// `staging_sql`, opted in; the engine's settings for the pair.
async fn pair(
    name: &str,
    staging_sql: &str,
    selection: Selection,
    concurrency: u32,
) -> (TestDb, TestDb, CopyConfig) {
    pair_of(
        name,
        &format!("{SCHEMA}{DATA}"),
        &format!("{SCHEMA}{staging_sql}"),
        selection,
        256 * 1024,
        concurrency,
    )
    .await
}

/// Production from `source_sql`, staging from `staging_sql` and opted in.
async fn pair_of(
    name: &str,
    source_sql: &str,
    staging_sql: &str,
    selection: Selection,
    piece_bytes: i64,
    concurrency: u32,
) -> (TestDb, TestDb, CopyConfig) {
    let c = Cluster::shared();
    let (src, dst) = (
        c.create_db(&format!("{name}_src")).await,
        c.create_db(&format!("{name}_dst")).await,
    );
    src.client().await.batch_execute(source_sql).await.unwrap();
    let mut t = dst.client().await;
    t.batch_execute(staging_sql).await.unwrap();
    dbsync_db::target::init_target(&mut t).await.unwrap();
    let config = copy_config(&src, &dst, selection, piece_bytes, concurrency);
    (src, dst, config)
}

#[tokio::test]
async fn key_and_block_ranges_copy_every_row_exactly_once_with_lanes_at_once() {
    let (src, dst, config) = pair(
        "pc",
        "INSERT INTO app.small VALUES (9, 'stale'); INSERT INTO app.heap VALUES (-1, 'stale');
         CREATE TABLE app.audit (n int);
         CREATE FUNCTION app.audit() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO app.audit VALUES (1); RETURN NEW; END$$;
         CREATE TRIGGER audit AFTER INSERT ON app.audited FOR EACH ROW EXECUTE FUNCTION app.audit();",
        Selection::from_json(
            r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "app", "object-locator": {"schema-name": "app", "table-name": "%"}, "rule-action": "include"},
                          {"rule-type": "selection", "rule-id": "2", "rule-name": "not-audit", "object-locator": {"schema-name": "app", "table-name": "audit"}, "rule-action": "exclude"}]}"#,
        )
        .unwrap(),
        3,
    )
    .await;
    let t = dst.client().await;
    let budget = || dbsync_db::Budget::from_now(std::time::Duration::from_secs(120));
    let plan: PlanOutput = serde_json::from_value(
        plan_copy(&config.env(), json!({"action": "plan"}), budget())
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(plan.tables, 5);
    assert_eq!((plan.key_ranged, plan.block_ranged), (2, 1), "{plan:?}");
    let whole: Vec<String> = column(
        &t,
        "SELECT table_name FROM dbsync.copy_piece WHERE kind = 'whole' ORDER BY 1",
    )
    .await;
    assert_eq!(
        whole,
        ["audited", "small"],
        "a table with user triggers is copied whole"
    );
    assert!(plan.pieces >= 6, "{plan:?}");
    assert_eq!(plan.lanes, vec![1, 2, 3]);
    // The key bounds are production's values, read back exactly.
    let bounds: Vec<Vec<String>> = column(
        &t,
        "SELECT low FROM dbsync.copy_piece WHERE table_name = 'keyed' AND low IS NOT NULL",
    )
    .await;
    assert!(bounds.iter().all(|b| b.len() == 3), "{bounds:?}");
    // Three lanes at once, each with its own sessions, as three Lambdas.
    let lanes = plan.lanes.iter().map(|lane| {
        let env = config.env();
        async move {
            let out: LaneOutput = copy_lane(&env, json!({"lane": lane}), budget())
                .await
                .unwrap();
            out
        }
    });
    let outs = futures_util::future::join_all(lanes).await;
    assert_eq!(outs.iter().map(|o| o.pieces).sum::<u64>(), plan.pieces);
    // A lane that found nothing free may still have seen others' pieces in flight (`left`).
    assert!(outs.iter().all(|o| !o.more), "{outs:?}");
    for table in [
        "app.keyed",
        "app.heap",
        "app.small",
        "app.toasty",
        "app.audited",
    ] {
        assert_eq!(
            checksum(&dst, table).await,
            checksum(&src, table).await,
            "{table}"
        );
    }
    let finished = plan_copy(&config.env(), json!({"action": "finish"}), budget())
        .await
        .unwrap();
    assert_eq!(finished["status"], "succeeded");
    assert_eq!(finished["tableRows"]["app.keyed"], 20000);
    assert_eq!(finished["tableRows"]["app.heap"], 15000);
    let audited: i64 = t
        .query_one("SELECT count(*) FROM app.audit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 0, "the trigger stayed quiet for copied rows");
    // A lane called again finds nothing left and copies nothing twice.
    let again = copy_lane(&config.env(), json!({"lane": 1}), budget())
        .await
        .unwrap();
    assert_eq!((again.pieces, again.left, again.more), (0, 0, false));
    assert_eq!(
        checksum(&dst, "app.keyed").await,
        checksum(&src, "app.keyed").await
    );
}

#[tokio::test]
async fn stop_waits_for_a_piece_being_loaded_and_no_piece_is_taken_after_it() {
    let (_src, dst, config) = pair("ps", "", Selection::all(), 2).await;
    let budget = |s| dbsync_db::Budget::from_now(std::time::Duration::from_secs(s));
    plan_copy(&config.env(), json!({"action": "plan"}), budget(60))
        .await
        .unwrap();
    // A lane mid-load: its claim (piece and run row locked) in an open transaction.
    let lane = dst.client().await;
    lane.batch_execute(
        "BEGIN;
         SELECT p.id FROM dbsync.copy_piece p JOIN dbsync.copy_run r ON r.execution = p.execution
         WHERE NOT p.done AND NOT r.stopped ORDER BY p.id LIMIT 1
         FOR UPDATE OF p SKIP LOCKED FOR KEY SHARE OF r;",
    )
    .await
    .unwrap();
    // Finish's round count is not held up by it (another round is due).
    let finished = plan_copy(&config.env(), json!({"action": "finish"}), budget(60))
        .await
        .unwrap();
    assert_eq!(finished["status"], "running", "{finished}");
    // The stop marks the run at once, then waits for the load within its budget.
    let stop = plan_copy(&config.env(), json!({"action": "stop"}), budget(3))
        .await
        .unwrap();
    assert_eq!(stop["stopped"], false, "{stop}");
    let after: LaneOutput = copy_lane(&config.env(), json!({"lane": 2}), budget(60))
        .await
        .unwrap();
    assert_eq!(
        (after.pieces, after.more),
        (0, false),
        "no piece taken after the stop"
    );
    // A session that outlives every Lambda's life: the stop gives up by name.
    dst.client()
        .await
        .batch_execute("UPDATE dbsync.copy_run SET stopped_at = now() - interval '31 minutes'")
        .await
        .unwrap();
    let e = plan_copy(&config.env(), json!({"action": "stop"}), budget(2))
        .await
        .unwrap_err();
    assert_eq!(e.name(), "CopyStillRunning", "{e}");
    lane.batch_execute("ROLLBACK").await.unwrap();
    let stop = plan_copy(&config.env(), json!({"action": "stop"}), budget(60))
        .await
        .unwrap();
    assert_eq!(stop["stopped"], true, "{stop}");
}

/// Thousands of tables stay within Step Functions' limits: the plan's output
/// (the Map's items) does not grow with them, each lane needs one invocation,
/// and the finish's document drops the per-table counts past 64 KB.
#[tokio::test]
async fn five_thousand_tables_keep_the_state_small() {
    const TABLES: usize = 5000;
    let ddl = format!(
        "CREATE SCHEMA many;
         DO $$BEGIN FOR i IN 1..{TABLES} LOOP
           EXECUTE format('CREATE TABLE many.t%s (id int PRIMARY KEY, v text)', i);
         END LOOP; END$$;"
    );
    let rows = format!(
        "DO $$BEGIN FOR i IN 1..{TABLES} LOOP
           EXECUTE format('INSERT INTO many.t%s VALUES (1, ''x''), (2, ''y'')', i);
         END LOOP; END$$;"
    );
    let (_src, _dst, config) = pair_of(
        "many",
        &format!("{ddl}{rows}"),
        &ddl,
        Selection::all(),
        512 * 1024 * 1024,
        4,
    )
    .await;
    let budget = || dbsync_db::Budget::from_now(std::time::Duration::from_secs(300));
    let plan = plan_copy(&config.env(), json!({"action": "plan"}), budget())
        .await
        .unwrap();
    assert_eq!(plan["pieces"], TABLES);
    let plan_bytes = plan.to_string().len();
    assert!(
        plan_bytes < 512,
        "the plan's output is {plan_bytes} bytes: {plan}"
    );
    let lanes = (1..=4).map(|lane| {
        let env = config.env();
        async move {
            let out: LaneOutput = copy_lane(&env, json!({"lane": lane}), budget())
                .await
                .unwrap();
            out
        }
    });
    let copying = std::time::Instant::now();
    let outs = futures_util::future::join_all(lanes).await;
    let copy_seconds = copying.elapsed().as_secs_f64();
    assert!(
        outs.iter().all(|o| !o.more),
        "one invocation per lane: {outs:?}"
    );
    assert_eq!(outs.iter().map(|o| o.pieces).sum::<u64>(), TABLES as u64);
    let finished = plan_copy(&config.env(), json!({"action": "finish"}), budget())
        .await
        .unwrap();
    assert_eq!(finished["status"], "succeeded");
    assert_eq!(finished["rowsLoaded"], 2 * TABLES);
    // 5,000 `schema.table` counts would be ~140 KB: dropped, verification counts totals.
    assert!(
        finished["tableRows"].is_null(),
        "{}",
        &finished.to_string()[..200]
    );
    let finish_bytes = finished.to_string().len();
    assert!(
        finish_bytes < 1024,
        "the finish's output is {finish_bytes} bytes"
    );
    println!(
        "{TABLES} tables: plan output {plan_bytes} B, finish output {finish_bytes} B, lanes {:?}",
        outs.iter().map(|o| o.pieces).collect::<Vec<_>>()
    );
    println!("{TABLES} tables copied by 4 lanes in {copy_seconds:.1} s");
}
