//! Shared setup for the real-PostgreSQL tests.
#![allow(dead_code)]

use std::time::Duration;

use dbsync_db::{fks::OrphanPolicy, fks::RestoreOptions, Budget, DbConfig, Selection, Timeouts};
use dbsync_testpg::{Cluster, TestDb};
use tokio_postgres::Client;

pub const LIMITS: Timeouts = Timeouts {
    statement: Duration::from_secs(60),
    lock: Duration::from_secs(5),
};

pub fn budget() -> Budget {
    Budget::from_now(Duration::from_secs(120))
}

pub fn restore_opts(policy: OrphanPolicy) -> RestoreOptions {
    RestoreOptions {
        synced: dbsync_db::Selection::all(),
        policy,
        timeouts: LIMITS,
        min_slice: Duration::from_millis(100),
        detach: None,
        index_jobs: 2,
    }
}

/// A new database with `schema` applied; opted in as a target when `opt_in`.
pub async fn setup(schema: &str, opt_in: bool) -> (TestDb, Client) {
    let db = Cluster::shared().create_db("t").await;
    let setup = db.client().await;
    setup
        .batch_execute(schema)
        .await
        .unwrap_or_else(|e| panic!("schema: {e:?}"));
    let mut client = dbsync_client(&db).await;
    if opt_in {
        dbsync_db::target::init_target(&mut client).await.unwrap();
    }
    (db, client)
}

/// A client opened the way the steps open theirs.
pub async fn dbsync_client(db: &TestDb) -> Client {
    DbConfig::from_url(&db.url)
        .unwrap()
        .with_timeouts(Timeouts {
            statement: Duration::from_secs(60),
            lock: Duration::from_secs(5),
        })
        .connect()
        .await
        .unwrap()
}

pub fn select(schemas: &[&str]) -> Selection {
    let rules: Vec<String> = schemas
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                r#"{{"rule-type":"selection","rule-id":"{i}","rule-name":"{i}","object-locator":{{"schema-name":{},"table-name":"%"}},"rule-action":"include"}}"#,
                serde_json::to_string(s).unwrap()
            )
        })
        .collect();
    Selection::from_json(&format!(r#"{{"rules":[{}]}}"#, rules.join(","))).unwrap()
}

/// Every foreign key (partition clones included), keyed by table and name:
/// definition under an empty search_path plus every flag that matters.
pub type FkSnapshot = dbsync_db::verify::ForeignKeys;

pub async fn fk_snapshot(client: &Client) -> FkSnapshot {
    dbsync_db::verify::foreign_keys(client).await.unwrap()
}

pub async fn count(client: &Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

pub async fn saved_count(client: &Client) -> i64 {
    count(client, "SELECT count(*) FROM dbsync.saved_fk").await
}

/// Runs `step` on a fresh session of `db` and returns how many statements
/// (round trips) it sent, from the server's own log.
pub async fn statements_sent<F, Fut, T>(db: &TestDb, step: F) -> (T, usize)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let admin = db.client().await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET log_statement = 'all'",
            db.name
        ))
        .await
        .unwrap();
    let client = dbsync_client(db).await;
    let before = Cluster::shared().statements_logged(&db.name);
    let out = step(client).await;
    // The log is written by the server process; give it a moment to flush.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = Cluster::shared().statements_logged(&db.name) - before;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" RESET log_statement",
            db.name
        ))
        .await
        .unwrap();
    (out, sent)
}

/// Calls restore (with `opts()`, `slice` of budget each) until nothing
/// remains, as the state machine loops; returns the invocations it took and
/// the indexes they rebuilt.
#[allow(dead_code)] // not every test file restores
pub async fn restore_until_done(
    c: &mut Client,
    opts: impl Fn() -> dbsync_db::fks::RestoreOptions,
    slice: Duration,
) -> (usize, u64) {
    let (mut invocations, mut rebuilt) = (0, 0);
    loop {
        invocations += 1;
        assert!(invocations < 500, "never finished");
        let out = dbsync_db::fks::restore_fks(c, opts(), dbsync_db::Budget::from_now(slice))
            .await
            .unwrap();
        rebuilt += out.indexes_rebuilt;
        if out.remaining == 0 {
            return (invocations, rebuilt);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
