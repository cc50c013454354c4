//! The `restore-fks` binary driven through the Lambda Runtime API against a real server.

use std::path::Path;

use dbsync_lambda_test::{error_type, invoke_once, Outcome};
use dbsync_testpg::Cluster;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_restore-fks");

/// The sample event users find in `events/`.
fn sample() -> serde_json::Value {
    serde_json::from_str(include_str!("../../../events/restore-fks.json"))
        .expect("events/restore-fks.json is JSON")
}

#[tokio::test]
async fn restores_and_applies_the_orphan_policy_from_the_environment() {
    let db = Cluster::shared().create_db("restore").await;
    let mut c = dbsync_db::DbConfig::from_url(&db.url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    c.batch_execute("CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (p int CONSTRAINT c_p REFERENCES p); INSERT INTO p VALUES (1);")
        .await
        .unwrap();
    dbsync_db::target::init_target(&mut c).await.unwrap();
    let limits = dbsync_db::Timeouts {
        statement: std::time::Duration::from_secs(30),
        lock: std::time::Duration::from_secs(5),
    };
    let budget = dbsync_db::Budget::from_now(std::time::Duration::from_secs(60));
    dbsync_db::fks::drop_fks(&mut c, &dbsync_db::Selection::all(), limits, budget)
        .await
        .unwrap();
    c.batch_execute("INSERT INTO c VALUES (1), (2)")
        .await
        .unwrap();

    let env = [("DATABASE_URL", db.url.as_str())];
    let out = invoke_once(Path::new(BIN), &env, json!({}));
    assert_eq!(error_type(&out), "OrphanRowsFound");

    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("ORPHAN_POLICY", "delete"),
    ];
    match invoke_once(Path::new(BIN), &env, sample()) {
        Outcome::Response(v) => {
            assert_eq!(v["remaining"], 0);
            assert_eq!(v["deletedOrphanRows"], 1);
            assert_eq!(v["validated"], 1);
        }
        other => panic!("{other:?}"),
    }
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("ORPHAN_POLICY", "sometimes"),
    ];
    assert_eq!(
        error_type(&invoke_once(Path::new(BIN), &env, json!({}))),
        "ConfigurationError"
    );
}
