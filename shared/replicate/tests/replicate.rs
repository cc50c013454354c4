//! The local replicator against real PostgreSQL databases.

use std::{sync::Arc, time::Duration};

use dbsync_db::{DbConfig, Selection};
use dbsync_replicate::{LocalReplicator, ReplicateOptions};
use dbsync_testpg::{Cluster, TestDb};
use dbsync_workflow::ports::{
    DescribeTask, StartKind, StartRefusal, StartTask, StopTask, TaskStatus,
};

const SCHEMA: &str = r#"
CREATE SCHEMA app;
CREATE TABLE app.customers (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL,
                            name_upper text GENERATED ALWAYS AS (upper(name)) STORED, tags jsonb, at timestamptz);
CREATE TABLE app.orders (id bigserial PRIMARY KEY, customer_id int REFERENCES app.customers, total numeric(12,2));
CREATE TABLE app.events (id int, at date, payload bytea, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE app.events_a PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.events_b PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app."Odd ""Name""" ("Key" text PRIMARY KEY);
CREATE TABLE app.awsdms_status (x int);
"#;

const DATA: &str = r#"
INSERT INTO app.customers (name, tags, at) SELECT 'c' || g, jsonb_build_object('n', g), now() FROM generate_series(1, 500) g;
INSERT INTO app.orders (customer_id, total) SELECT 1 + g % 500, g / 3.0 FROM generate_series(1, 3000) g;
INSERT INTO app.events SELECT g, DATE '2024-06-01' + (g % 400), decode(md5(g::text), 'hex') FROM generate_series(1, 2000) g;
INSERT INTO app."Odd ""Name""" VALUES ('x'), ('ü');
INSERT INTO app.awsdms_status VALUES (1);
"#;

async fn pair() -> (TestDb, TestDb) {
    let c = Cluster::shared();
    let (src, dst) = (c.create_db("src").await, c.create_db("dst").await);
    src.client()
        .await
        .batch_execute(&format!("{SCHEMA}{DATA}"))
        .await
        .unwrap();
    // The target: same schema without its FKs (drop-fks has run), stale rows to be replaced.
    let t = dst.client().await;
    t.batch_execute(SCHEMA).await.unwrap();
    t.batch_execute("ALTER TABLE app.orders DROP CONSTRAINT orders_customer_id_fkey; INSERT INTO app.\"Odd \"\"Name\"\"\" VALUES ('stale');")
        .await
        .unwrap();
    (src, dst)
}

async fn checksums(db: &TestDb) -> Vec<(String, i64, String)> {
    let c = db.client().await;
    let mut out = Vec::new();
    for t in [
        "app.customers",
        "app.orders",
        "app.events",
        "app.\"Odd \"\"Name\"\"\"",
    ] {
        let r = c
            .query_one(&format!("SELECT count(*), coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM {t} x"), &[])
            .await
            .unwrap();
        out.push((t.to_owned(), r.get(0), r.get(1)));
    }
    out
}

fn options(src: &TestDb, dst: &TestDb) -> ReplicateOptions {
    ReplicateOptions {
        source: DbConfig::from_url(&src.url).unwrap(),
        target: DbConfig::from_url(&dst.url).unwrap(),
        selection: Selection::from_json(
            r#"{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"app","table-name":"%"},"rule-action":"include"}]}"#,
        )
        .unwrap(),
        parallelism: 2,
        fail_table: None,
        sync: Default::default(),
        freeze: true,
    }
}

async fn run_to_end(r: &LocalReplicator, kind: StartKind) -> dbsync_workflow::ports::TaskState {
    r.start("local", kind).await.unwrap();
    for _ in 0..600 {
        let s = r.describe("local").await.unwrap();
        if s.status != TaskStatus::Running {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the copy did not finish");
}

#[tokio::test]
async fn copies_every_selected_table_exactly() {
    let (src, dst) = pair().await;
    let r = Arc::new(LocalReplicator::new(options(&src, &dst)));
    // First run must be start-replication, like DMS.
    assert_eq!(
        r.start("local", StartKind::ReloadTarget).await,
        Err(StartRefusal::WrongStartKind)
    );
    let state = run_to_end(&r, StartKind::StartReplication).await;
    assert_eq!(state.status, TaskStatus::Stopped);
    assert_eq!(
        state.stop_reason.as_deref(),
        Some("Stop Reason FULL_LOAD_ONLY_FINISHED")
    );
    assert_eq!(
        (state.tables_loaded, state.tables_errored),
        (5, 0),
        "{state:?}"
    );
    assert_eq!(state.rows_loaded, Some(500 + 3000 + 2000 + 2));
    assert_eq!(state.full_load_progress_percent, Some(100));
    assert_eq!(checksums(&src).await, checksums(&dst).await);
    let dms: i64 = dst
        .client()
        .await
        .query_one("SELECT count(*) FROM app.awsdms_status", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(dms, 0, "DMS control tables are never copied");

    // A later run reloads (and a second start-replication is refused).
    assert_eq!(
        r.start("local", StartKind::StartReplication).await,
        Err(StartRefusal::WrongStartKind)
    );
    src.client()
        .await
        .batch_execute("DELETE FROM app.orders WHERE id > 100")
        .await
        .unwrap();
    let state = run_to_end(&r, StartKind::ReloadTarget).await;
    assert_eq!(state.tables_errored, 0);
    assert_eq!(checksums(&src).await, checksums(&dst).await);
}

#[tokio::test]
async fn a_failing_table_is_reported_like_dms_does() {
    let (src, dst) = pair().await;
    let mut opts = options(&src, &dst);
    opts.fail_table = Some("app.orders".into());
    let r = LocalReplicator::new(opts);
    let state = run_to_end(&r, StartKind::StartReplication).await;
    assert_eq!(state.status, TaskStatus::Stopped);
    assert_eq!((state.tables_loaded, state.tables_errored), (4, 1));
    let msg = state.last_failure_message.unwrap();
    assert!(
        msg.starts_with("\"app\".\"orders\": ") && msg.contains("injected failure"),
        "{msg}"
    );
    // The failed table's transaction rolled back: its old rows are still there.
    let n: i64 = dst
        .client()
        .await
        .query_one("SELECT count(*) FROM app.orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn an_unreachable_source_fails_the_run() {
    let (src, dst) = pair().await;
    let mut opts = options(&src, &dst);
    opts.source = DbConfig::from_url("postgres://nobody@127.0.0.1:1/x").unwrap();
    let r = LocalReplicator::new(opts);
    let state = run_to_end(&r, StartKind::StartReplication).await;
    assert_eq!(state.status, TaskStatus::Failed);
    assert!(state
        .last_failure_message
        .unwrap()
        .contains("database unavailable"));
}

/// User triggers do not fire for copied rows, come back in the mode each had
/// (a trigger the user disabled stays disabled), and constraint triggers are
/// left alone.
#[tokio::test]
async fn user_triggers_are_quiet_during_the_load_and_exactly_as_before_after() {
    let (src, dst) = pair().await;
    let t = dst.client().await;
    t.batch_execute(
        "CREATE TABLE app.audit (n int);
         CREATE FUNCTION app.rewrite() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN NEW.name := 'rewritten'; RETURN NEW; END $$;
         CREATE FUNCTION app.audit() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO app.audit VALUES (1); RETURN NULL; END $$;
         CREATE TRIGGER a_rewrite BEFORE INSERT ON app.customers FOR EACH ROW EXECUTE FUNCTION app.rewrite();
         CREATE TRIGGER b_audit AFTER INSERT ON app.orders FOR EACH ROW EXECUTE FUNCTION app.audit();
         CREATE TRIGGER c_always AFTER INSERT ON app.orders FOR EACH ROW EXECUTE FUNCTION app.audit();
         ALTER TABLE app.orders ENABLE ALWAYS TRIGGER c_always;
         CREATE TRIGGER d_replica AFTER TRUNCATE ON app.orders FOR EACH STATEMENT EXECUTE FUNCTION app.audit();
         ALTER TABLE app.orders ENABLE REPLICA TRIGGER d_replica;
         CREATE TRIGGER e_off AFTER INSERT ON app.orders FOR EACH ROW EXECUTE FUNCTION app.audit();
         ALTER TABLE app.orders DISABLE TRIGGER e_off;
         CREATE TRIGGER f_partition BEFORE INSERT ON app.events_a FOR EACH ROW EXECUTE FUNCTION app.rewrite();
         CREATE CONSTRAINT TRIGGER g_constraint AFTER INSERT ON app.\"Odd \"\"Name\"\"\" FOR EACH ROW EXECUTE FUNCTION app.audit();",
    )
    .await
    .unwrap();
    let modes = || async {
        dst.client()
            .await
            .query(
                "SELECT tgname::text, tgenabled::text FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect::<Vec<_>>()
    };
    let before = modes().await;
    let r = LocalReplicator::new(options(&src, &dst));
    let state = run_to_end(&r, StartKind::StartReplication).await;
    assert_eq!(state.tables_errored, 0, "{state:?}");
    assert_eq!(
        checksums(&src).await,
        checksums(&dst).await,
        "no row rewritten"
    );
    assert_eq!(modes().await, before, "every trigger exactly as before");
    let audited: i64 = t
        .query_one("SELECT count(*) FROM app.audit", &[])
        .await
        .unwrap()
        .get(0);
    // Only the constraint trigger (left alone on purpose) saw the two copied rows.
    assert_eq!(audited, 2);
}

/// A stop ends the copy: no worker writes after the task reports `stopped`
/// (restoring FKs then is safe), and the tables keep their old rows.
#[tokio::test]
async fn a_stop_ends_every_copy_before_the_task_reports_stopped() {
    let (src, dst) = pair().await;
    src.client()
        .await
        .batch_execute("INSERT INTO app.orders (customer_id, total) SELECT 1 + g % 500, g FROM generate_series(1, 400000) g")
        .await
        .unwrap();
    let mut opts = options(&src, &dst);
    opts.parallelism = 1;
    let r = LocalReplicator::new(opts);
    r.start("local", StartKind::StartReplication).await.unwrap();
    // Let the copy begin, then stop it.
    tokio::time::sleep(Duration::from_millis(150)).await;
    r.stop("local").await.unwrap();
    let mut stopped = false;
    for _ in 0..500 {
        let s = r.describe("local").await.unwrap();
        assert_ne!(s.status, TaskStatus::Running, "a stop is not undone");
        if s.status == TaskStatus::Stopped {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stopped, "the stop finished");
    let before = checksums(&dst).await;
    // The aborted sessions' backends go away (their open transactions roll back).
    let admin = dst.client().await;
    let mut writing = -1i64;
    for _ in 0..100 {
        writing = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'COPY%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if writing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(writing, 0, "no copy session left after `stopped`");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        checksums(&dst).await,
        before,
        "nothing changes after the stop"
    );
}

/// [`pair`] plus `app.big` with `rows` rows (about 100 bytes each) in the
/// source and empty in the target: large enough to be split.
async fn pair_with_big_table(rows: i64) -> (TestDb, TestDb) {
    let (src, dst) = pair().await;
    let big = "CREATE TABLE app.big (id bigint PRIMARY KEY, note text, at timestamptz);";
    src.client()
        .await
        .batch_execute(&format!(
            "{big} INSERT INTO app.big SELECT g, md5(g::text) || repeat('x', 60), now() FROM generate_series(1, {rows}) g;"
        ))
        .await
        .unwrap();
    dst.client().await.batch_execute(big).await.unwrap();
    (src, dst)
}

/// A big table among small ones: with 4 workers it is copied in block
/// ranges, all from the one snapshot, and arrives exact; a table with user
/// triggers on the target is copied whole (its triggers off in its transaction).
#[tokio::test]
async fn a_table_larger_than_a_workers_share_is_copied_in_ranges() {
    let (src, dst) = pair_with_big_table(250_000).await;
    let t = dst.client().await;
    t.batch_execute("INSERT INTO app.big VALUES (-1, 'stale', now());")
        .await
        .unwrap();
    let mut opts = options(&src, &dst);
    opts.parallelism = 4;
    let r = LocalReplicator::new(opts);
    let state = run_to_end(&r, StartKind::StartReplication).await;
    assert_eq!(
        (state.tables_loaded, state.tables_errored),
        (6, 0),
        "{state:?}"
    );
    let p = r.progress();
    let pieces = |table: &str| p.results.iter().find(|r| r.key == table).unwrap().pieces;
    assert!(pieces("app.big") >= 4, "{:?}", p.results);
    assert_eq!(pieces("app.orders"), 1);
    assert!(
        state.table_rows.contains(&("app.big".to_owned(), 250_000)),
        "{:?}",
        state.table_rows
    );
    assert_eq!(p.rows, 250_000 + 500 + 3000 + 2000 + 2);
    let sum = |db: &TestDb| {
        let url = db.url.clone();
        async move {
            let c = DbConfig::from_url(&url).unwrap().connect().await.unwrap();
            let r = c
                .query_one(
                    "SELECT count(*), md5(string_agg(x::text, ',' ORDER BY id)) FROM app.big x",
                    &[],
                )
                .await
                .unwrap();
            (r.get::<_, i64>(0), r.get::<_, String>(1))
        }
    };
    assert_eq!(
        sum(&src).await,
        sum(&dst).await,
        "every row once, stale ones gone"
    );
    assert_eq!(checksums(&src).await, checksums(&dst).await);

    // With a user trigger on the target, the same table is copied whole.
    t.batch_execute(
        "CREATE FUNCTION app.shout() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.note := 'rewritten'; RETURN NEW; END $$;
         CREATE TRIGGER shout BEFORE INSERT ON app.big FOR EACH ROW EXECUTE FUNCTION app.shout();",
    )
    .await
    .unwrap();
    let state = run_to_end(&r, StartKind::ReloadTarget).await;
    assert_eq!(state.tables_errored, 0, "{state:?}");
    let p = r.progress();
    assert_eq!(
        p.results
            .iter()
            .find(|r| r.key == "app.big")
            .unwrap()
            .pieces,
        1
    );
    assert_eq!(sum(&src).await, sum(&dst).await, "no row rewritten");
}

/// A range that fails errors its table (no rows counted for it); the others load.
#[tokio::test]
async fn a_failing_range_errors_its_table_only() {
    let (src, dst) = pair_with_big_table(200_000).await;
    let mut opts = options(&src, &dst);
    opts.parallelism = 3;
    opts.fail_table = Some("app.big".into());
    let r = LocalReplicator::new(opts);
    let state = run_to_end(&r, StartKind::StartReplication).await;
    assert_eq!(
        (state.tables_loaded, state.tables_errored),
        (5, 1),
        "{state:?}"
    );
    assert!(
        state
            .failed_tables
            .iter()
            .any(|t| t.starts_with("\"app\".\"big\"")),
        "{state:?}"
    );
    assert_eq!(state.rows_loaded, Some(500 + 3000 + 2000 + 2));
    assert!(r
        .progress()
        .results
        .iter()
        .any(|r| r.key == "app.big" && r.pieces > 1));
}
