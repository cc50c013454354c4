//! Materialized views over the synced tables, refreshed after the load.

mod common;

use std::time::Duration;

use common::{budget, count, select, setup, LIMITS};
use dbsync_db::{views, Budget};

const SCHEMA: &str = "
CREATE SCHEMA app;
CREATE TABLE app.orders (id int PRIMARY KEY, total int);
CREATE SCHEMA other;
CREATE TABLE other.t (id int);
INSERT INTO app.orders SELECT g, g FROM generate_series(1, 10) g;
INSERT INTO other.t VALUES (1);
-- a unique index: refreshed CONCURRENTLY
CREATE MATERIALIZED VIEW app.totals AS SELECT count(*) AS n, sum(total) AS s FROM app.orders;
CREATE UNIQUE INDEX ON app.totals (n);
-- through a plain view, no unique index
CREATE VIEW app.big AS SELECT * FROM app.orders WHERE total > 5;
CREATE MATERIALIZED VIEW app.big_count AS SELECT count(*) AS n FROM app.big;
-- over another materialized view: refreshed after it
CREATE MATERIALIZED VIEW app.totals_twice AS SELECT n * 2 AS n2 FROM app.totals;
-- not over a synced table: left alone
CREATE MATERIALIZED VIEW other.mv AS SELECT count(*) AS n FROM other.t;
";

async fn value(client: &tokio_postgres::Client, sql: &str) -> i64 {
    count(client, sql).await
}

#[tokio::test]
async fn views_over_synced_tables_are_refreshed_in_order_and_only_once_per_run() {
    let (_db, mut client) = setup(SCHEMA, true).await;
    let order = views::dependent_views(&client, &select(&["app"]))
        .await
        .unwrap();
    let names: Vec<_> = order
        .iter()
        .map(|v| (v.name.as_str(), v.concurrently))
        .collect();
    assert_eq!(
        names,
        // Depth first (app.big_count reads through the plain view app.big), then by name.
        [
            ("app.totals", true),
            ("app.big_count", false),
            ("app.totals_twice", false)
        ]
    );
    // The load changed the data.
    client
        .batch_execute("INSERT INTO app.orders SELECT g, g FROM generate_series(11, 20) g; INSERT INTO other.t VALUES (2);")
        .await
        .unwrap();
    let out = views::refresh(
        &mut client,
        &select(&["app"]),
        Some("run-1"),
        LIMITS,
        budget(),
        Duration::from_millis(10),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (out.views, out.refreshed, out.concurrently, out.remaining),
        (3, 3, 1, 0)
    );
    assert_eq!(value(&client, "SELECT n FROM app.totals").await, 20);
    assert_eq!(value(&client, "SELECT n FROM app.big_count").await, 15);
    assert_eq!(
        value(&client, "SELECT n2 FROM app.totals_twice").await,
        40,
        "after app.totals"
    );
    assert_eq!(
        value(&client, "SELECT n FROM other.mv").await,
        1,
        "not over a synced table"
    );
}

#[tokio::test]
async fn an_invocation_out_of_time_leaves_the_rest_to_the_next() {
    let (_db, mut client) = setup(SCHEMA, true).await;
    client
        .batch_execute("INSERT INTO app.orders SELECT g, g FROM generate_series(11, 20) g")
        .await
        .unwrap();
    // No time at all: nothing done, everything remaining.
    let out = views::refresh(
        &mut client,
        &select(&["app"]),
        Some("run-2"),
        LIMITS,
        Budget::from_now(Duration::ZERO),
        Duration::from_millis(10),
        None,
    )
    .await
    .unwrap();
    assert_eq!((out.refreshed, out.remaining), (0, 3));
    let out = views::refresh(
        &mut client,
        &select(&["app"]),
        Some("run-2"),
        LIMITS,
        budget(),
        Duration::from_millis(10),
        None,
    )
    .await
    .unwrap();
    assert_eq!((out.refreshed, out.remaining), (3, 0));
    assert_eq!(value(&client, "SELECT n2 FROM app.totals_twice").await, 40);
}

#[tokio::test]
async fn a_database_never_opted_in_is_refused_before_anything_is_created() {
    let (_db, mut client) = setup(SCHEMA, false).await;
    let e = views::refresh(
        &mut client,
        &select(&["app"]),
        Some("run-3"),
        LIMITS,
        budget(),
        Duration::from_millis(10),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.name(), "TargetNotOptedIn");
    assert_eq!(
        value(
            &client,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'dbsync'"
        )
        .await,
        0
    );
}

/// A refresh longer than an invocation: it goes on on a session of its own,
/// the next invocations wait for it, and it counts once when done.
#[tokio::test]
async fn a_refresh_longer_than_an_invocation_takes_several() {
    let (db, mut client) = setup(
        "CREATE SCHEMA app;
         CREATE TABLE app.orders (id int PRIMARY KEY, total int);
         INSERT INTO app.orders SELECT g, g FROM generate_series(1, 10) g;
         CREATE MATERIALIZED VIEW app.slow AS SELECT count(*) AS n FROM app.orders, pg_sleep(1.5);",
        true,
    )
    .await;
    client
        .batch_execute("INSERT INTO app.orders VALUES (11, 11)")
        .await
        .unwrap();
    let session = dbsync_db::DbConfig::from_url(&db.url).unwrap();
    let mut invocations = 0;
    let mut refreshed = 0;
    loop {
        invocations += 1;
        assert!(invocations < 200, "never finished");
        let out = views::refresh(
            &mut client,
            &select(&["app"]),
            Some("run-long"),
            LIMITS,
            Budget::from_now(Duration::from_millis(200)),
            Duration::from_millis(10),
            Some(&session),
        )
        .await
        .unwrap();
        refreshed += out.refreshed;
        if out.remaining == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        invocations >= 2,
        "the refresh fit one invocation: not a test"
    );
    // Counted by the invocation that saw it finish (if one did), never twice.
    assert!(refreshed <= 1, "{refreshed}");
    assert_eq!(value(&client, "SELECT n FROM app.slow").await, 11);
    assert_eq!(
        value(&client, "SELECT count(*) FROM dbsync.long_statement").await,
        0
    );
}
