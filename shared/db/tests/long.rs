//! Statements longer than an invocation, on real PostgreSQL: one alone in
//! its message commits even when its client has gone; a run left going is
//! found by the next invocation, which waits for it; a restore whose
//! `VALIDATE` takes several invocations finishes; one that keeps failing
//! while nobody waits ends the run by name.

mod common;

use std::time::Duration;

use common::{budget, setup, LIMITS};
use dbsync_db::{
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
    let mut invocations = 0;
    loop {
        invocations += 1;
        assert!(invocations < 400, "never finished");
        let out = fks::restore_fks(
            &mut c,
            detached(&db),
            Budget::from_now(Duration::from_millis(150)),
        )
        .await
        .unwrap();
        if out.remaining == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
