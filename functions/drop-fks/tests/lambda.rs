//! The `drop-fks` binary driven through the Lambda Runtime API against a real server.

use std::path::Path;

use dbsync_lambda_test::{error_type, invoke_once, Outcome};
use dbsync_testpg::Cluster;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_drop-fks");

/// The sample event users find in `events/`.
fn sample() -> serde_json::Value {
    serde_json::from_str(include_str!("../../../events/drop-fks.json"))
        .expect("events/drop-fks.json is JSON")
}

#[tokio::test]
async fn answers_an_event_and_names_its_errors() {
    let db = Cluster::shared().create_db("drop").await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (p int REFERENCES p);")
        .await
        .unwrap();
    let env = [("DATABASE_URL", db.url.as_str())];

    // Not opted in: refused by name, nothing changed.
    let out = invoke_once(Path::new(BIN), &env, json!({}));
    assert_eq!(error_type(&out), "TargetNotOptedIn");

    let mut c = dbsync_db::DbConfig::from_url(&db.url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    dbsync_db::target::init_target(&mut c).await.unwrap();
    let out = invoke_once(Path::new(BIN), &env, sample());
    assert_eq!(
        out,
        Outcome::Response(
            json!({"tables": 2, "dropped": 1, "saved": 1, "checksDropped": 0, "triggersDisabled": 0, "indexesDropped": 0})
        )
    );

    assert_eq!(
        error_type(&invoke_once(Path::new(BIN), &env, json!([1, 2]))),
        "InvalidInput"
    );
    assert_eq!(
        error_type(&invoke_once(Path::new(BIN), &[], json!({}))),
        "ConfigurationError"
    );
    let bad_mappings = [
        ("DATABASE_URL", db.url.as_str()),
        ("TABLE_MAPPINGS", "{\"rules\": 3}"),
    ];
    assert_eq!(
        error_type(&invoke_once(Path::new(BIN), &bad_mappings, json!({}))),
        "InvalidTableMappings"
    );
}
