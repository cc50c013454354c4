//! The `after-load` binary driven through the Lambda Runtime API against a
//! real server, configured as the template does: the packaged `SYNC_CONFIG`.

use std::path::Path;

use dbsync_lambda_test::{error_type, invoke_once, Outcome};
use dbsync_testpg::Cluster;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_after-load");

/// The sample event users find in `events/`.
fn sample() -> serde_json::Value {
    serde_json::from_str(include_str!("../../../events/after-load.json"))
        .expect("events/after-load.json is JSON")
}

#[tokio::test]
async fn masks_with_the_packaged_rules_and_refuses_a_missing_file_by_name() {
    let db = Cluster::shared().create_db("after_load").await;
    let mut c = dbsync_db::DbConfig::from_url(&db.url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    c.batch_execute(
        "CREATE TABLE members (id int PRIMARY KEY, email text UNIQUE, note text);
         INSERT INTO members SELECT g, 'm' || g || '@corp.example', 'private' FROM generate_series(1, 50) g;",
    )
    .await
    .unwrap();
    dbsync_db::target::init_target(&mut c).await.unwrap();
    let dir = std::env::temp_dir().join(format!("dbsync-after-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("dbsync.yml");
    std::fs::write(
        &config,
        "data_rules:\n  email: unique_email\n  members.note: null\nafter_sync:\n  - UPDATE members SET note = 'staging'\n",
    )
    .unwrap();

    // The build packaged no file where the template says: named, before any change.
    let missing = dir.join("absent.yml");
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("SYNC_CONFIG", missing.to_str().unwrap()),
    ];
    let out = invoke_once(Path::new(BIN), &env, sample());
    assert_eq!(error_type(&out), "SyncConfigInvalid", "{out:?}");

    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("SYNC_CONFIG", config.to_str().unwrap()),
    ];
    match invoke_once(Path::new(BIN), &env, sample()) {
        Outcome::Response(v) => {
            assert_eq!(v["remaining"], 0, "{v}");
            assert_eq!(v["rowsTotal"], 50, "{v}");
            assert_eq!(v["inFlight"], false);
        }
        other => panic!("{other:?}"),
    }
    let wrong: i64 = c
        .query_one(
            "SELECT count(*) FROM members WHERE email <> 'email' || id || '@example.org' OR note IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(wrong, 0);
    match invoke_once(Path::new(BIN), &env, json!({"action": "after-sync"})) {
        Outcome::Response(v) => assert_eq!(
            (v["ran"].as_i64(), v["remaining"].as_i64()),
            (Some(1), Some(0)),
            "{v}"
        ),
        other => panic!("{other:?}"),
    }
    match invoke_once(
        Path::new(BIN),
        &env,
        json!({"action": "verify", "copied": {"public.members": 50}}),
    ) {
        Outcome::Response(v) => assert_eq!(v["flaggedTotal"], 0, "{v}"),
        other => panic!("{other:?}"),
    }
    let out = invoke_once(Path::new(BIN), &env, json!({"action": "shred"}));
    assert_eq!(error_type(&out), "InvalidInput", "{out:?}");
    std::fs::remove_dir_all(&dir).ok();
}
