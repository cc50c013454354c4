//! Statements longer than an invocation, on real PostgreSQL: one alone in
//! its message commits even when its client has gone; a run left going is
//! found by the next invocation, which waits for it; a restore whose
//! `VALIDATE` takes several invocations finishes; one that keeps failing
//! while nobody waits ends the run by name; an `after_sync` statement takes
//! several invocations the same way.

mod common;

use std::time::Duration;

use common::{budget, setup, LIMITS};
use dbsync_db::{
    after_load,
    fks::{self, OrphanPolicy, RestoreOptions},
    long, Budget, DbConfig, Selection,
};
use tokio::time::Instant;

async fn exists(c: &tokio_postgres::Client, table: &str) -> bool {
    c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .unwrap()
        .get(0)
}

/// PostgreSQL commits a single-statement message before it answers: the
/// client going away mid-statement loses nothing (PostgreSQL 15 here).
#[tokio::test]
async fn a_statement_commits_after_its_client_is_gone() {
    let (db, c) = setup("SELECT 1", false).await;
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let job = tokio::spawn(async move {
        client
            .batch_execute("CREATE TABLE outlived AS SELECT 1 AS x FROM pg_sleep(1.5)")
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The client and its socket are gone while the statement runs.
    job.abort();
    conn.abort();
    assert!(!exists(&c, "outlived").await, "not committed yet");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(exists(&c, "outlived").await, "committed without its client");
}

/// A notice is flushed to the client at once, and a write to a client that
/// is gone ends the session: a detached session is set up so that nothing
/// is written before the commit. The same statement, on a session without
/// that setup, is lost — which is what the setup is for.
#[tokio::test]
async fn a_statement_that_raises_notices_commits_after_its_client_is_gone_once_set_up() {
    let (db, c) = setup("SELECT 1", false).await;
    let statement = |table: &str| {
        format!(
            "BEGIN; DO $$ BEGIN FOR i IN 1..6 LOOP PERFORM pg_sleep(0.25); RAISE NOTICE 'step %', i; END LOOP; END $$; \
             CREATE TABLE {table} (x int); COMMIT;"
        )
    };
    let job = long::Job {
        what: "noisy",
        key: "noisy",
        statement: "",
        limit: Duration::from_secs(60),
        timeouts: LIMITS,
    };
    for (table, set_up) in [("quiet_kept", true), ("noisy_lost", false)] {
        let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        if set_up {
            client
                .batch_execute(&long::session_setup(&job, 150_000))
                .await
                .unwrap();
        }
        let sql = statement(table);
        let run = tokio::spawn(async move { client.batch_execute(&sql).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        run.abort();
        conn.abort();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(exists(&c, table).await, set_up, "{table}");
    }
}

#[tokio::test]
async fn the_next_invocation_finds_a_running_statement_and_waits_for_it() {
    let (db, c) = setup("SELECT 1", true).await;
    let session = DbConfig::from_url(&db.url).unwrap();
    let job = long::Job {
        what: "a slow table",
        key: "slow",
        statement: "CREATE TABLE slow AS SELECT 1 AS x FROM pg_sleep(2)",
        limit: Duration::from_secs(60),
        timeouts: LIMITS,
    };
    // This invocation's budget ends long before the statement.
    let until = Instant::now() + Duration::from_millis(300);
    let outcome = long::start(&c, &session, &job, until).await.unwrap();
    assert!(matches!(outcome, long::Outcome::Running), "{outcome:?}");
    // The next one sees it running (by its tag) and waits instead of starting another.
    assert!(long::running(&c, &job).await.unwrap());
    let still = long::wait_while_running(&c, &job, Instant::now() + Duration::from_millis(200))
        .await
        .unwrap();
    assert!(still, "still running after a short wait");
    let still = long::wait_while_running(&c, &job, Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();
    assert!(!still);
    assert!(exists(&c, "slow").await, "its effect committed");
}

const BIG: &str = "
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent SELECT g FROM generate_series(1, 1000) g;
CREATE TABLE child (id int, parent_id int CONSTRAINT child_parent REFERENCES parent);
INSERT INTO child SELECT g, 1 + g % 1000 FROM generate_series(1, 1500000) g;
";

fn detached(db: &dbsync_testpg::TestDb) -> RestoreOptions {
    RestoreOptions {
        synced: Selection::all(),
        policy: OrphanPolicy::Fail,
        timeouts: LIMITS,
        min_slice: Duration::from_millis(10),
        detach: Some(DbConfig::from_url(&db.url).unwrap()),
        index_jobs: 2,
    }
}

/// A restore whose `VALIDATE` does not fit in one invocation: invocation
/// after invocation finds it running, until it is done.
#[tokio::test]
async fn a_validate_longer_than_an_invocation_takes_several() {
    let (db, mut c) = setup(BIG, true).await;
    fks::drop_fks(&mut c, &Selection::all(), LIMITS, budget())
        .await
        .unwrap();
    let (invocations, _) =
        common::restore_until_done(&mut c, || detached(&db), Duration::from_millis(150)).await;
    assert!(
        invocations >= 2,
        "the validate fit one invocation: not a test"
    );
    let validated: bool = c
        .query_one(
            "SELECT convalidated FROM pg_constraint WHERE conname = 'child_parent'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(validated);
    for table in ["dbsync.saved_fk", "dbsync.long_statement"] {
        assert_eq!(
            common::count(&c, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
}

/// Orphans found only after the invocation has gone: each start fails
/// unseen; after the last allowed start the run ends by name.
#[tokio::test]
async fn a_validate_that_keeps_failing_unseen_ends_by_name() {
    let (db, mut c) = setup(BIG, true).await;
    fks::drop_fks(&mut c, &Selection::all(), LIMITS, budget())
        .await
        .unwrap();
    // One orphan, at the very end of the table.
    c.batch_execute("INSERT INTO child VALUES (0, 99999)")
        .await
        .unwrap();
    let mut outcome = None;
    for _ in 0..600 {
        match fks::restore_fks(
            &mut c,
            detached(&db),
            Budget::from_now(Duration::from_millis(100)),
        )
        .await
        {
            Ok(out) if out.remaining > 0 => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => {
                outcome = Some(other);
                break;
            }
        }
    }
    let e = outcome.expect("an end").unwrap_err();
    // Either a start was watched failing (orphans, by name) or every start failed unseen.
    assert!(
        ["DetachedStatementFailed", "OrphanRowsFound"].contains(&e.name()),
        "{e}"
    );
    // Nothing lost: the definition stays saved for the next run.
    assert_eq!(common::saved_count(&c).await, 1);
}

/// An `after_sync` statement (here several in one item) longer than an
/// invocation: started once, found running by the next invocations, its
/// record committed with it, and the items after it run in turn.
#[tokio::test]
async fn an_after_sync_statement_longer_than_an_invocation_takes_several() {
    let (db, mut c) = setup("CREATE TABLE marker (step int)", true).await;
    let statements = vec![
        "INSERT INTO marker VALUES (1)".to_owned(),
        "SELECT pg_sleep(1.5); INSERT INTO marker VALUES (2) -- a trailing comment".to_owned(),
        "INSERT INTO marker VALUES (3)".to_owned(),
    ];
    let session = DbConfig::from_url(&db.url).unwrap();
    let mut invocations = 0;
    loop {
        invocations += 1;
        assert!(invocations < 200, "never finished");
        let out = after_load::after_sync(
            &mut c,
            &statements,
            Some("run-long"),
            LIMITS,
            Budget::from_now(Duration::from_millis(200)),
            Duration::from_millis(10),
            Some(&session),
        )
        .await
        .unwrap();
        if out.remaining == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(invocations >= 3, "it fit one invocation: not a test");
    let steps: Vec<i32> = c
        .query("SELECT step FROM marker ORDER BY step", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(steps, [1, 2, 3], "each ran once, in order");
    for table in ["dbsync.after_sync_done", "dbsync.long_statement"] {
        assert_eq!(
            common::count(&c, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
}

/// One detached `after_sync` invocation of `item` on a fresh target with a
/// `marker` table, watched to its end: the error it fails with (and the
/// database, kept alive, with a client on it).
async fn failing_detached_item(
    item: &str,
) -> (
    dbsync_workflow::StepError,
    dbsync_testpg::TestDb,
    tokio_postgres::Client,
) {
    let (db, mut c) = setup("CREATE TABLE marker (step int)", true).await;
    let session = DbConfig::from_url(&db.url).unwrap();
    let e = after_load::after_sync(
        &mut c,
        &[item.to_owned()],
        Some("run-failing"),
        LIMITS,
        budget(),
        Duration::from_millis(10),
        Some(&session),
    )
    .await
    .unwrap_err();
    (e, db, c)
}

/// A detached `after_sync` statement that fails while its invocation waits
/// is named by position, and its effect is rolled back.
#[tokio::test]
async fn a_detached_after_sync_statement_that_fails_is_named_by_position() {
    let (e, _db, c) = failing_detached_item(
        "INSERT INTO marker VALUES (1); SELECT 1 / (SELECT count(*) - 1 FROM marker)",
    )
    .await;
    assert_eq!(e.name(), "AfterSyncFailed", "{e}");
    assert!(e.to_string().contains("statement 1 of 1"), "{e}");
    assert!(
        !e.to_string().contains("INSERT"),
        "no SQL in the message: {e}"
    );
    assert_eq!(common::count(&c, "SELECT count(*) FROM marker").await, 0);
}

const TWO_CHILDREN: &str = "
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent SELECT g FROM generate_series(1, 1000) g;
CREATE TABLE other (id int PRIMARY KEY);
INSERT INTO other SELECT g FROM generate_series(1, 1000) g;
CREATE TABLE child_a (id int, parent_id int CONSTRAINT a_parent REFERENCES parent);
INSERT INTO child_a SELECT g, 1 + g % 1000 FROM generate_series(1, 1500000) g;
CREATE TABLE child_b (id int, parent_id int CONSTRAINT b_parent REFERENCES parent,
                      other_id int CONSTRAINT b_other REFERENCES other);
INSERT INTO child_b SELECT g, 1 + g % 1000, 1 + g % 1000 FROM generate_series(1, 1500000) g;
";

/// Detached validations run `index_jobs` at a time, never two on one table
/// (each holds its table's SHARE UPDATE EXCLUSIVE lock), and all finish.
#[tokio::test]
async fn validations_run_two_at_a_time_on_different_tables() {
    let (db, mut c) = setup(TWO_CHILDREN, true).await;
    fks::drop_fks(&mut c, &Selection::all(), LIMITS, budget())
        .await
        .unwrap();
    let out = fks::restore_fks(
        &mut c,
        detached(&db),
        Budget::from_now(Duration::from_millis(150)),
    )
    .await
    .unwrap();
    assert!(out.remaining > 0, "{out:?}");
    let tables: Vec<String> = c
        .query(
            "SELECT substring(query from 'ALTER TABLE (\\S+)') FROM pg_stat_activity \
             WHERE application_name LIKE 'dbsync-long:%' AND state = 'active' \
               AND backend_type = 'client backend' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables.len(), 2, "two at a time: {tables:?}");
    assert_ne!(tables[0], tables[1], "never two on one table");
    common::restore_until_done(&mut c, || detached(&db), Duration::from_millis(200)).await;
    let validated: i64 = common::count(
        &c,
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated",
    )
    .await;
    assert_eq!(validated, 3);
    assert_eq!(common::saved_count(&c).await, 0);
}

/// An item that ends its own transaction is not recorded as done: the run
/// fails by name, saying what happened.
#[tokio::test]
async fn a_detached_after_sync_item_that_commits_itself_is_named() {
    let (e, _db, c) = failing_detached_item("INSERT INTO marker VALUES (1); COMMIT").await;
    assert_eq!(e.name(), "AfterSyncFailed", "{e}");
    assert!(e.to_string().contains("ended its own transaction"), "{e}");
    assert_eq!(
        common::count(&c, "SELECT count(*) FROM dbsync.after_sync_done").await,
        0,
        "not recorded as done"
    );
}
