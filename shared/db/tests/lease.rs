//! The run lease and the database steps working through it, on real PostgreSQL:
//! one sync at a time however started, a dead holder taken over, the DMS
//! task's target checked, the run's own table mappings, and a failure path
//! that never deletes rows.

mod common;

use std::time::Duration;

use common::{budget, fk_snapshot, saved_count, setup, LIMITS};
use dbsync_db::{fks::OrphanPolicy, steps, Db, DbConfig, Selection, StepEnv};
use dbsync_testpg::TestDb;
use serde_json::{json, Value};

const SCHEMA: &str = "
CREATE SCHEMA app;
CREATE TABLE app.parent (id int PRIMARY KEY);
CREATE TABLE app.child (id int PRIMARY KEY, parent_id int CONSTRAINT child_parent REFERENCES app.parent);
CREATE SCHEMA other;
CREATE TABLE other.t (id int PRIMARY KEY, parent_id int CONSTRAINT t_parent REFERENCES other.t);
CREATE SCHEMA staging_only;
CREATE TABLE staging_only.notes (id int PRIMARY KEY, parent_id int CONSTRAINT notes_parent REFERENCES app.parent);
INSERT INTO app.parent VALUES (1), (2);
INSERT INTO app.child VALUES (1, 1), (2, 2);
INSERT INTO staging_only.notes VALUES (1, 2);
";

const APP_ONLY: &str = r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "app", "object-locator": {"schema-name": "app", "table-name": "%"}, "rule-action": "include"}]}"#;

const RUN_A: &str = "arn:aws:states:us-east-1:123456789012:execution:dbsync-sync:a";
const RUN_B: &str = "arn:aws:states:us-east-1:123456789012:execution:dbsync-sync:b";

fn env(db: &TestDb, policy: OrphanPolicy) -> StepEnv {
    StepEnv {
        db: Db::new(DbConfig::from_url(&db.url).unwrap().with_timeouts(LIMITS)),
        source: None,
        lease_ttl: Duration::from_secs(3600),
        refresh_views: true,
        selection: Selection::all(),
        timeouts: LIMITS,
        orphan_policy: policy,
        margin: Duration::from_secs(1),
        sync: Default::default(),
        masked_in_flight: false,
        index_drop: dbsync_db::indexes::IndexDrop::AllButPrimaryKeys,
        index_jobs: 2,
    }
}

fn here(db: &TestDb) -> Value {
    let c = DbConfig::from_url(&db.url).unwrap();
    json!({"server": c.host().unwrap(), "port": c.port().unwrap(), "database": c.database().unwrap()})
}

async fn acquire(
    env: &StepEnv,
    db: &TestDb,
    run: &str,
    take_over: Option<&str>,
) -> Result<Value, dbsync_workflow::StepError> {
    steps::lease(
        env,
        json!({"action": "acquire", "executionId": run, "target": here(db), "tableMappings": APP_ONLY, "takeOver": take_over}),
        budget(),
    )
    .await
    .map(|o| serde_json::to_value(o).unwrap())
}

#[tokio::test]
async fn one_run_at_a_time_and_a_dead_holder_is_taken_over() {
    let (db, _client) = setup(SCHEMA, true).await;
    let env = env(&db, OrphanPolicy::Fail);

    let a = acquire(&env, &db, RUN_A, None).await.unwrap();
    assert_eq!(a["done"], true);
    assert_eq!(a["tables"], 2, "app.parent and app.child");
    // Idempotent for the holder (a retried invocation).
    assert_eq!(acquire(&env, &db, RUN_A, None).await.unwrap()["done"], true);

    // A second execution is told who holds the target, and changes nothing.
    let b = acquire(&env, &db, RUN_B, None).await.unwrap();
    assert_eq!(
        (b["done"].clone(), b["holder"].clone()),
        (json!(false), json!(RUN_A))
    );
    let before = fk_snapshot(&db.client().await).await;
    let e = steps::drop_fks(&env, json!({"executionId": RUN_B}), budget())
        .await
        .unwrap_err();
    assert_eq!(e.name(), "SyncInProgress");
    assert!(e.to_string().contains(RUN_A), "{e}");
    let e = steps::drop_fks(&env, json!({}), budget())
        .await
        .unwrap_err();
    assert_eq!(
        e.name(),
        "SyncInProgress",
        "a step started by hand waits for the run too"
    );
    assert_eq!(fk_snapshot(&db.client().await).await, before);

    // Releasing someone else's lease does nothing; the state machine found A dead: take over.
    let r = steps::lease(
        &env,
        json!({"action": "release", "executionId": RUN_B}),
        budget(),
    )
    .await
    .unwrap();
    assert!(!r.done);
    let b = acquire(&env, &db, RUN_B, Some(RUN_A)).await.unwrap();
    assert_eq!(b["done"], true);
    let r = steps::lease(
        &env,
        json!({"action": "release", "executionId": RUN_B}),
        budget(),
    )
    .await
    .unwrap();
    assert!(r.done);
    assert!(
        acquire(&env, &db, RUN_A, None).await.unwrap()["done"] == true,
        "free again"
    );
}

#[tokio::test]
async fn an_expired_lease_is_free() {
    let (db, client) = setup(SCHEMA, true).await;
    let env = env(&db, OrphanPolicy::Fail);
    acquire(&env, &db, RUN_A, None).await.unwrap();
    client
        .batch_execute("UPDATE dbsync.lease SET expires_at = now() - interval '1 second'")
        .await
        .unwrap();
    assert_eq!(acquire(&env, &db, RUN_B, None).await.unwrap()["done"], true);
}

#[tokio::test]
async fn the_run_works_on_its_own_mappings() {
    let (db, mut client) = setup(SCHEMA, true).await;
    let env = env(&db, OrphanPolicy::Fail);
    acquire(&env, &db, RUN_A, None).await.unwrap();
    let out = steps::drop_fks(&env, json!({"executionId": RUN_A}), budget())
        .await
        .unwrap();
    // app's FK and the staging-only one referencing app; other.t is not synced.
    assert_eq!((out.tables, out.dropped), (2, 2));
    assert_eq!(saved_count(&client).await, 2);
    let left = fk_snapshot(&client).await;
    assert!(
        left.keys().any(|(_, n)| n == "t_parent") && left.len() == 1,
        "{left:?}"
    );
    steps::restore_fks(&env, json!({"executionId": RUN_A}), budget())
        .await
        .unwrap();
    assert_eq!(saved_count(&client).await, 0);
    let _ = &mut client;
}

#[tokio::test]
async fn a_target_other_than_the_dms_endpoint_is_refused_before_any_change() {
    let (db, _client) = setup(SCHEMA, true).await;
    let env = env(&db, OrphanPolicy::Fail);
    let mut elsewhere = here(&db);
    elsewhere["database"] = json!("production");
    let e = steps::lease(
        &env,
        json!({"action": "acquire", "executionId": RUN_A, "target": elsewhere, "tableMappings": APP_ONLY}),
        budget(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.name(), "ReplicationTaskMisconfigured");
    assert!(e.to_string().contains("production"), "{e}");
    let mut elsewhere = here(&db);
    elsewhere["server"] = json!("prod.example.invalid");
    let e = steps::lease(
        &env,
        json!({"action": "acquire", "executionId": RUN_A, "target": elsewhere, "tableMappings": APP_ONLY}),
        budget(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.name(), "ReplicationTaskMisconfigured");
    // The same host written differently still matches (localhost vs 127.0.0.1).
    let mut same = here(&db);
    same["server"] = json!("localhost");
    let out = steps::lease(
        &env,
        json!({"action": "acquire", "executionId": RUN_A, "target": same, "tableMappings": APP_ONLY}),
        budget(),
    )
    .await
    .unwrap();
    assert!(out.done);
}

#[tokio::test]
async fn not_opted_in_unreachable_source_and_bad_mappings_are_named() {
    let (db, _client) = setup(SCHEMA, false).await;
    let e = acquire(&env(&db, OrphanPolicy::Fail), &db, RUN_A, None)
        .await
        .unwrap_err();
    assert_eq!(e.name(), "TargetNotOptedIn");

    let (db, _client) = setup(SCHEMA, true).await;
    let mut env = env(&db, OrphanPolicy::Fail);
    let e = steps::lease(
        &env,
        json!({"action": "acquire", "executionId": RUN_A, "target": here(&db), "tableMappings": "{\"rules\": 3}"}),
        budget(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.name(), "InvalidTableMappings");

    // Production down: found before the first FK is dropped.
    env.source = Some(Db::new(
        DbConfig::from_url(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            free_port()
        ))
        .unwrap(),
    ));
    let e = acquire(&env, &db, RUN_A, None).await.unwrap_err();
    assert_eq!(e.name(), "DatabaseUnavailable");
    assert!(e.to_string().contains("production (source)"), "{e}");
    // Production with another type for one column: refused by name before the lease.
    let (prod, prod_client) = setup(SCHEMA, false).await;
    prod_client
        .batch_execute("ALTER TABLE app.child ALTER parent_id TYPE bigint")
        .await
        .unwrap();
    env.source = Some(Db::new(DbConfig::from_url(&prod.url).unwrap()));
    let e = acquire(&env, &db, RUN_A, None).await.unwrap_err();
    assert_eq!(e.name(), "SchemaMismatch");
    assert!(
        e.to_string()
            .contains("app.child.parent_id: production bigint / staging integer"),
        "{e}"
    );
    assert_eq!(
        dbsync_db::lease::holder(&db.client().await).await.unwrap(),
        None,
        "no lease taken"
    );
    prod_client
        .batch_execute("ALTER TABLE app.child ALTER parent_id TYPE int")
        .await
        .unwrap();
    let out = acquire(&env, &db, RUN_A, None).await.unwrap();
    assert_eq!(
        (out["done"].clone(), out["sourceChecked"].clone()),
        (json!(true), json!(true))
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn delete_never_touches_staging_only_rows_and_compensation_never_deletes() {
    let (db, client) = setup(SCHEMA, true).await;
    let env = env(&db, OrphanPolicy::Delete);
    acquire(&env, &db, RUN_A, None).await.unwrap();
    steps::drop_fks(&env, json!({"executionId": RUN_A}), budget())
        .await
        .unwrap();
    // The load brought parents without id 2: a synced child and a staging-only note are orphaned.
    client
        .batch_execute("DELETE FROM app.parent WHERE id = 2")
        .await
        .unwrap();

    // The failure path keeps every row and leaves the keys NOT VALID, saved.
    let out = steps::restore_fks(
        &env,
        json!({"executionId": RUN_A, "compensation": true}),
        budget(),
    )
    .await
    .unwrap();
    assert_eq!(out.deleted_orphan_rows, 0);
    assert_eq!(out.kept_not_valid_total, 2);
    assert_eq!(
        common::count(&client, "SELECT count(*) FROM app.child").await,
        2
    );
    assert_eq!(
        common::count(&client, "SELECT count(*) FROM staging_only.notes").await,
        1
    );

    // A normal restore deletes the synced orphan, never the staging-only one.
    client
        .batch_execute("UPDATE dbsync.saved_fk SET state = 'added'")
        .await
        .unwrap();
    let e = steps::restore_fks(&env, json!({"executionId": RUN_A}), budget())
        .await
        .unwrap_err();
    assert_eq!(e.name(), "OrphanRowsFound");
    assert!(e.to_string().contains("notes_parent"), "{e}");
    assert_eq!(
        common::count(&client, "SELECT count(*) FROM app.child").await,
        1,
        "synced orphan deleted"
    );
    assert_eq!(
        common::count(&client, "SELECT count(*) FROM staging_only.notes").await,
        1,
        "staging's own row kept"
    );
}

/// What a Lambda timeout in the middle of a VALIDATE looks like to the
/// database: the client vanishes mid-statement. The next attempt (Step
/// Functions retries `Lambda.Unknown`) must finish the job, whatever the
/// abandoned backend did meanwhile.
#[tokio::test]
async fn a_restore_killed_in_the_middle_of_a_validate_is_finished_by_the_next_attempt() {
    let (db, client) = setup(
        "CREATE SCHEMA big;
         CREATE TABLE big.parent (id int PRIMARY KEY);
         CREATE TABLE big.child (id int PRIMARY KEY, parent_id int CONSTRAINT child_parent REFERENCES big.parent);
         INSERT INTO big.parent SELECT g FROM generate_series(1, 1500000) g;
         INSERT INTO big.child SELECT g, g FROM generate_series(1, 1500000) g;",
        true,
    )
    .await;
    let env = env(&db, OrphanPolicy::Fail);
    let before = fk_snapshot(&client).await;
    steps::drop_fks(&env, json!({}), budget()).await.unwrap();

    // First attempt: killed while validating (its session dies with it).
    let doomed = env_for(&db);
    let attempt =
        tokio::spawn(async move { steps::restore_fks(&doomed, json!({}), budget()).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let validating = common::count(
            &client,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%VALIDATE CONSTRAINT%' AND state = 'active' AND pid <> pg_backend_pid()",
        )
        .await;
        if validating > 0 || attempt.is_finished() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the validation never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    attempt.abort();
    let _ = attempt.await;

    // The retries: whatever the abandoned statement still holds, they end with every key back.
    let mut done = false;
    for _ in 0..40 {
        match steps::restore_fks(&env, json!({}), budget()).await {
            Ok(out) if out.remaining == 0 => {
                done = true;
                break;
            }
            Ok(_) => {}
            Err(e) if e.is_transient() => tokio::time::sleep(Duration::from_millis(250)).await,
            Err(e) => panic!("the retry failed: {e}"),
        }
    }
    assert!(done, "restore never finished");
    assert_eq!(
        fk_snapshot(&client).await,
        before,
        "every key back, validated, as before"
    );
    assert_eq!(saved_count(&client).await, 0);
}

fn env_for(db: &TestDb) -> StepEnv {
    env(db, OrphanPolicy::Fail)
}

/// Strict masking on the AWS path: a column added to production that no
/// rule classifies refuses the lease (before any change), naming it; once
/// classified, the lease is taken.
#[tokio::test]
async fn a_strict_config_refuses_an_unclassified_production_column() {
    let (db, _client) = setup(SCHEMA, true).await;
    let (prod, prod_client) = setup(SCHEMA, false).await;
    prod_client
        .batch_execute("ALTER TABLE app.child ADD COLUMN tax_id text")
        .await
        .unwrap();
    let mut env = env(&db, OrphanPolicy::Fail);
    env.source = Some(Db::new(DbConfig::from_url(&prod.url).unwrap()));
    let strict = |rules: &str| {
        dbsync_workflow::sync_config::SyncConfig::parse(
            "dbsync.yml",
            &format!("strict: true\ndata_rules:\n{rules}"),
        )
        .unwrap()
    };
    env.sync = strict("  \"app.*.*\": untouched\n");
    // The wildcard classifies everything: the schema check then names the drift.
    let e = acquire(&env, &db, RUN_A, None).await.unwrap_err();
    assert_eq!(e.name(), "SchemaMismatch", "{e}");
    env.sync = strict("  \"app.parent.*\": untouched\n  \"app.child.parent_id\": untouched\n");
    let e = acquire(&env, &db, RUN_A, None).await.unwrap_err();
    assert_eq!(e.name(), "UnclassifiedColumns", "{e}");
    assert!(e.to_string().contains("app.child.tax_id"), "{e}");
    assert_eq!(
        dbsync_db::lease::holder(&db.client().await).await.unwrap(),
        None,
        "nothing taken"
    );
    // Staging migrated and the column classified: the lease is taken.
    db.client()
        .await
        .batch_execute("ALTER TABLE app.child ADD COLUMN tax_id text")
        .await
        .unwrap();
    env.sync = strict("  tax_id: random_string\n  \"app.*.*\": untouched\n");
    assert_eq!(acquire(&env, &db, RUN_A, None).await.unwrap()["done"], true);
}
