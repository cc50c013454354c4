//! The `fix-sequences` binary driven through the Lambda Runtime API against a real server.

use std::path::Path;

use dbsync_lambda_test::{error_type, invoke_once, Outcome};
use dbsync_testpg::Cluster;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_fix-sequences");

/// The sample event users find in `events/`.
fn sample() -> serde_json::Value {
    serde_json::from_str(include_str!("../../../events/fix-sequences.json"))
        .expect("events/fix-sequences.json is JSON")
}

#[tokio::test]
async fn fixes_sequences_and_runs_twice_without_change() {
    let db = Cluster::shared().create_db("seq").await;
    let mut c = dbsync_db::DbConfig::from_url(&db.url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    c.batch_execute("CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t VALUES (41);")
        .await
        .unwrap();
    let env = [("DATABASE_URL", db.url.as_str())];
    assert_eq!(
        error_type(&invoke_once(Path::new(BIN), &env, json!({}))),
        "TargetNotOptedIn"
    );
    dbsync_db::target::init_target(&mut c).await.unwrap();
    let out = invoke_once(Path::new(BIN), &env, sample());
    assert_eq!(
        out,
        Outcome::Response(json!({"sequences": 1, "changed": 1}))
    );
    let out = invoke_once(Path::new(BIN), &env, json!({}));
    assert_eq!(
        out,
        Outcome::Response(json!({"sequences": 1, "changed": 0}))
    );
    let next: i32 = c
        .query_one("INSERT INTO t DEFAULT VALUES RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, 42);
    let bad = [("DATABASE_URL", "postgres://nobody@127.0.0.1:1/x")];
    assert_eq!(
        error_type(&invoke_once(Path::new(BIN), &bad, json!({}))),
        "DatabaseUnavailable"
    );
}
