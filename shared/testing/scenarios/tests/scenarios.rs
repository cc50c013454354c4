//! Scenarios of the deployed workflow: the real definition, the real handlers
//! with their real adapters, the DMS fake, moto, real PostgreSQL (see
//! `common/mod.rs`). Each asserts the end state of staging and what the
//! execution and its notifications said.

mod common;

use std::time::Duration;

use common::{Harness, StepFault, PROD_ORDERS};
use dbsync_dmsfake::{Fault, Op};
use dbsync_workflow::sync_config::SyncConfig;

const FAILURE_SUBJECT: &str = "dbsync: staging refresh failed";

#[tokio::test]
async fn a_sync_makes_staging_equal_to_prod_and_the_next_one_reloads() {
    let h = Harness::new().await;
    assert!(h.staging_rows("app.orders").await < PROD_ORDERS);

    let first = h.run().await;
    first.assert_succeeded();
    h.assert_synced().await;
    assert_eq!(h.staging_rows("app.orders").await, PROD_ORDERS);
    assert_eq!(h.staging_rows("qa.notes").await, 5, "staging's own table");
    let replication = &first.result.output.as_ref().unwrap()["replication"]["result"];
    assert_eq!(replication["status"], "succeeded");
    assert_eq!(replication["startKind"], "start-replication");
    assert_eq!(replication["tablesLoaded"], 7, "{replication}");

    // Production moves on; the next sync carries it over with reload-target.
    h.prod
        .client()
        .await
        .batch_execute(
            "INSERT INTO app.customers (email) VALUES ('new@example.com');
             INSERT INTO app.orders (customer_id) VALUES (1);
             DELETE FROM app.shipments WHERE id = 1;",
        )
        .await
        .unwrap();
    let second = h.run().await;
    second.assert_succeeded();
    h.assert_synced().await;
    assert_eq!(h.staging_rows("app.orders").await, PROD_ORDERS + 1);
    assert_eq!(h.dms.start_kinds(), ["start-replication", "reload-target"]);
    assert!(h.notifications(&second.name).await.is_empty());
    println!(
        "happy path: first run {:.2}s, second {:.2}s, {} state transitions",
        first.seconds, second.seconds, second.result.state_transitions
    );
}

#[tokio::test]
async fn a_table_failing_mid_load_fails_the_sync_after_restoring_the_foreign_keys() {
    let h = Harness::new().await;
    h.dms.inject(
        Op::StartReplicationTask,
        Fault::FailMidLoad("app.shipments".into()),
    );
    let ex = h.run().await;
    let cause = ex.assert_failed_with("ReplicationFailed");
    assert!(
        cause.contains("1 table(s) errored") && cause.contains("shipments"),
        "{cause}"
    );
    let states = ex.states();
    for state in [
        "CompensateRestoreForeignKeys",
        "NotifyFailure",
        "SyncFailed",
    ] {
        assert!(
            states.iter().any(|s| s == state),
            "{state} not in {states:?}"
        );
    }
    assert!(!states.iter().any(|s| s == "FixSequences"), "{states:?}");
    // The keys are back exactly; the other tables were loaded.
    h.assert_fks_intact().await;
    assert_eq!(h.staging_rows("app.orders").await, PROD_ORDERS);
    let notes = h.notifications(&ex.name).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    let (subject, message) = &notes[0];
    assert_eq!(subject, FAILURE_SUBJECT);
    assert!(
        message.contains(&format!(
            "dbsync execution {} failed with ReplicationFailed",
            ex.name
        )) && message.contains("shipments"),
        "{message}"
    );
}

#[tokio::test]
async fn a_throttled_describe_is_absorbed_by_the_sdk_retries() {
    let h = Harness::new().await;
    h.dms.inject(Op::DescribeReplicationTasks, Fault::Throttle);
    let ex = h.run().await;
    ex.assert_succeeded();
    h.assert_synced().await;
    let describes: Vec<_> = h
        .dms
        .calls()
        .into_iter()
        .filter(|c| c.operation == Op::DescribeReplicationTasks.as_str())
        .map(|c| c.fault)
        .collect();
    assert_eq!(
        describes[..2],
        [Some(Fault::Throttle), None],
        "{describes:?}"
    );
    // No step failed: the state machine never saw the throttling.
    assert!(
        h.invocations().iter().all(|(_, error)| error.is_none()),
        "{:?}",
        h.invocations()
    );
}

#[tokio::test]
async fn a_task_already_running_is_refused_before_any_change() {
    let h = Harness::with_task(|t| t.status("running")).await;
    let stale_orders = h.staging_rows("app.orders").await;
    let ex = h.run().await;
    let cause = ex.assert_failed_with("ReplicationAlreadyRunning");
    assert!(cause.contains("running"), "{cause}");
    assert!(h.dms.start_kinds().is_empty(), "nothing was started");
    assert!(
        !ex.states().iter().any(|s| s == "DropForeignKeys"),
        "refused before the first change: {:?}",
        ex.states()
    );
    h.assert_fks_intact().await;
    assert_eq!(h.staging_rows("app.orders").await, stale_orders);
    let notes = h.notifications(&ex.name).await;
    assert!(
        notes.len() == 1 && notes[0].1.contains("failed with ReplicationAlreadyRunning"),
        "{notes:?}"
    );
}

/// DMS keeps `LastFailureMessage` after a later successful run: a stale
/// message must not fail a good run.
#[tokio::test]
async fn a_sync_after_a_failed_one_succeeds() {
    let h = Harness::new().await;
    h.dms.inject(
        Op::StartReplicationTask,
        Fault::FailMidLoad("app.shipments".into()),
    );
    h.run().await.assert_failed_with("ReplicationFailed");
    h.assert_fks_intact().await;
    let again = h.run().await;
    again.assert_succeeded();
    h.assert_synced().await;
}

/// A `StartReplicationTask` that starts the task and then answers 500: the
/// SDK retries it, DMS refuses the retry (the task is starting); start-dms
/// recognises this execution's run and carries on.
#[tokio::test]
async fn an_ambiguous_start_is_not_mistaken_for_a_refusal() {
    let h = Harness::new().await;
    h.dms
        .inject(Op::StartReplicationTask, Fault::ServerErrorAfterApplying);
    let ex = h.run().await;
    // Whatever the outcome, let the load finish before looking at staging.
    assert!(h.dms.wait_idle(Duration::from_secs(60)).await);
    ex.assert_succeeded();
    h.assert_synced().await;
}

fn entered(ex: &common::Execution, state: &str) -> bool {
    ex.states().iter().any(|s| s == state)
}

/// A change to the fake DMS task.
type Adjust = Box<dyn FnOnce(dbsync_dmsfake::FakeTask) -> dbsync_dmsfake::FakeTask>;

#[tokio::test]
async fn a_misconfigured_task_is_refused_by_name_before_any_change() {
    use dbsync_dmsfake::MigrationType;
    let cases: Vec<(Adjust, &str)> = vec![
        (
            Box::new(|t| t.migration_type(MigrationType::FullLoadAndCdc)),
            "MigrationType to full-load",
        ),
        (
            Box::new(|t| {
                t.settings(r#"{"FullLoadSettings": {"TargetTablePrepMode": "DROP_AND_CREATE"}}"#)
            }),
            "DROP_AND_CREATE",
        ),
        (
            Box::new(|t| {
                t.settings(r#"{"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}}"#)
            }),
            "DO_NOTHING",
        ),
    ];
    for (adjust, want) in cases {
        let h = Harness::with_task(adjust).await;
        let stale = h.staging_rows("app.orders").await;
        let ex = h.run().await;
        let cause = ex.assert_failed_with("ReplicationTaskMisconfigured");
        assert!(cause.contains(want), "{cause}");
        assert!(!entered(&ex, "DropForeignKeys") && h.dms.start_kinds().is_empty());
        h.assert_fks_intact().await;
        assert_eq!(h.staging_rows("app.orders").await, stale);
        assert_eq!(h.notifications(&ex.name).await.len(), 1);
    }
}

#[tokio::test]
async fn a_task_loading_another_database_is_refused_before_any_change() {
    // The DMS target endpoint names another database than the staging secret.
    let h = Harness::with_task(|t| t.target_database("production")).await;
    let ex = h.run().await;
    let cause = ex.assert_failed_with("ReplicationTaskMisconfigured");
    assert!(
        cause.contains("production") && cause.contains("another database"),
        "{cause}"
    );
    assert!(!entered(&ex, "DropForeignKeys"));
    h.assert_fks_intact().await;
}

#[tokio::test]
async fn a_second_execution_started_by_hand_mid_run_changes_nothing() {
    let h = Harness::new().await;
    // The first execution holds the lease and takes its time dropping the keys;
    // the second, started by hand meanwhile, finds DMS idle but the target taken.
    h.fail_step("drop-fks", StepFault::Delay(Duration::from_millis(1500)));
    let first = h.register().await;
    let second = h.register().await;
    let (a, b) = tokio::join!(h.run_registered(&first), async {
        // Started from the console while the first is loading.
        tokio::time::sleep(Duration::from_millis(400)).await;
        h.run_registered(&second).await
    });
    h.end(&first).await;
    h.end(&second).await;
    a.assert_succeeded();
    let cause = b.assert_failed_with("SyncInProgress");
    assert!(cause.contains(&first), "{cause}");
    assert!(!entered(&b, "DropForeignKeys"), "{:?}", b.states());
    assert_eq!(h.dms.start_kinds(), ["start-replication"], "one load only");
    h.assert_synced().await;
}

#[tokio::test]
async fn the_lease_of_a_dead_execution_is_taken_over_at_once() {
    let h = Harness::new().await;
    // An execution took the lease and died (aborted) without releasing it.
    let dead = h.register().await;
    h.staging
        .client()
        .await
        .batch_execute(&format!(
            "INSERT INTO dbsync.lease (execution, expires_at) VALUES ('{}', now() + interval '1 day')",
            h.execution_arn(&dead)
        ))
        .await
        .unwrap();
    h.end(&dead).await;
    let ex = h.run().await;
    ex.assert_succeeded();
    assert!(
        entered(&ex, "DescribeLeaseHolder") && entered(&ex, "TakeOverLease"),
        "{:?}",
        ex.states()
    );
    h.assert_synced().await;
    let left: i64 = h
        .staging
        .client()
        .await
        .query_one("SELECT count(*) FROM dbsync.lease", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "released at the end");
}

#[tokio::test]
async fn a_stuck_load_is_stopped_and_compensation_waits_until_dms_has_stopped() {
    let h = Harness::with_task(|t| t.stopping_describes(3)).await;
    h.dms.inject(Op::StartReplicationTask, Fault::Stuck);
    // Waits run 1000 times faster than the wall clock the limit is measured on.
    h.set_max_replication(Duration::from_secs(1));
    let ex = h.run().await;
    ex.assert_failed_with("ReplicationTimedOut");
    let states = ex.states();
    let stop = states
        .iter()
        .position(|s| s == "StopReplication")
        .expect("stopped first");
    let compensate = states
        .iter()
        .position(|s| s == "CompensateRestoreForeignKeys")
        .expect("then compensated");
    assert!(stop < compensate, "{states:?}");
    assert!(
        states.iter().filter(|s| *s == "StopReplication").count() >= 2,
        "waited while DMS was stopping: {states:?}"
    );
    assert_eq!(h.dms.status().to_string(), "stopped");
    h.assert_fks_intact().await;
    assert!(entered(&ex, "FixSequencesAfterFailure"));
    let mut s = h.staging.client().await;
    assert!(
        dbsync_db::verify::sequences_accept_inserts(&mut s)
            .await
            .unwrap()
            >= 6,
        "sequences ahead after a failure too"
    );
}

#[tokio::test]
async fn a_lambda_timeout_and_throttled_secrets_are_retried_on_every_database_step() {
    let h = Harness::new().await;
    // A restore whose Lambda timed out after validating (Lambda.Unknown), a
    // drop whose secret read was throttled, a lease step that lost its connection.
    h.fail_step(
        "restore-fks",
        StepFault::After(
            "Lambda.Unknown".into(),
            "Task timed out after 900.00 seconds".into(),
        ),
    );
    h.fail_step(
        "drop-fks",
        StepFault::Instead(
            "AwsTransientError".into(),
            "GetSecretValue: ThrottlingException".into(),
        ),
    );
    h.fail_step(
        "lease",
        StepFault::Instead("DatabaseUnavailable".into(), "connection reset".into()),
    );
    let ex = h.run().await;
    ex.assert_succeeded();
    h.assert_synced().await;
    let failed: Vec<_> = h
        .invocations()
        .into_iter()
        .filter(|(_, e)| e.is_some())
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
}

#[tokio::test]
async fn the_failure_path_is_retried_too_and_ends_with_keys_and_sequences_right() {
    let h = Harness::new().await;
    h.dms.inject(
        Op::StartReplicationTask,
        Fault::FailMidLoad("app.shipments".into()),
    );
    h.fail_step(
        "restore-fks",
        StepFault::Instead("Lambda.Unknown".into(), "Task timed out".into()),
    );
    let ex = h.run().await;
    ex.assert_failed_with("ReplicationFailed");
    h.assert_fks_intact().await;
    assert!(entered(&ex, "FixSequencesAfterFailure") && entered(&ex, "ReleaseLeaseAfterFailure"));
}

/// A parent table failing mid-load leaves children referencing rows it does
/// not have: the failure path keeps those keys (NOT VALID, enforcing new
/// rows) and saved, deletes nothing, and the next good run validates them.
#[tokio::test]
async fn orphans_after_a_failed_load_keep_the_keys_saved_until_the_next_good_run() {
    let h = Harness::new().await;
    h.dms.inject(
        Op::StartReplicationTask,
        Fault::FailMidLoad("app.orders".into()),
    );
    let failed = h.run().await;
    failed.assert_failed_with("ReplicationFailed");
    let s = h.staging.client().await;
    let saved: i64 = s
        .query_one("SELECT count(*) FROM dbsync.saved_fk", &[])
        .await
        .unwrap()
        .get(0);
    assert!(saved > 0, "keys with orphans stay saved");
    let present: i64 = s
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'order_lines_order_id_fkey'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        present, 1,
        "the key is back (NOT VALID), enforcing new rows"
    );
    let again = h.run().await;
    again.assert_succeeded();
    h.assert_synced().await;
}

/// `NotifyOnSuccess`: a sync that worked says so, with what it did; off by
/// default (the first scenario checks that nothing is sent then).
#[tokio::test]
async fn a_successful_sync_is_reported_when_asked() {
    let h = Harness::new().await;
    h.set_notify_on_success(true);
    let ex = h.run().await;
    ex.assert_succeeded();
    h.assert_synced().await;
    let notes = h.notifications(&ex.name).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    let (subject, message) = &notes[0];
    assert_eq!(subject, "dbsync: staging refreshed");
    assert!(
        message.contains("the copy loaded 7 tables in ")
            && message.contains("sequences moved ahead"),
        "{message}"
    );
    assert!(
        ex.states().iter().any(|s| s == "NotifySuccess"),
        "{:?}",
        ex.states()
    );
}

const RULES: &str = r#"
data_rules:
  email: unique_email
  products.name: {statement: "'product #' || id"}
  app.events.kind: {value: redacted}
after_sync:
  - UPDATE app.products SET sku = sku || '-staging'
  - INSERT INTO app.products (sku, name) VALUES ('made-by-after-sync', 'x')
"#;

/// On AWS, DMS writes raw rows: the after-load step masks them right after
/// the load (partitions included), verifies the counts against DMS's table
/// statistics, and runs after_sync in order once the keys are back.
#[tokio::test]
async fn deployed_masking_rewrites_the_loaded_rows_and_after_sync_runs_last() {
    let sync = SyncConfig::parse("dbsync.yml", RULES).unwrap();
    let h = Harness::with_config(|t| t, sync).await;
    h.set_notify_on_success(true);
    let ex = h.run().await;
    ex.assert_succeeded();
    let s = h.staging.client().await;
    let raw: i64 = s
        .query_one(
            "SELECT count(*) FROM app.customers WHERE email NOT LIKE 'email%@example.org' \
             OR email <> 'email' || id || '@example.org'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(raw, 0, "every email masked from its key");
    let kinds: Vec<String> = s
        .query("SELECT DISTINCT kind FROM app.events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kinds, ["redacted"], "both partitions masked");
    let names: i64 = s
        .query_one(
            "SELECT count(*) FROM app.products WHERE name <> 'product #' || id AND sku <> 'made-by-after-sync'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(names, 0);
    // after_sync ran after masking, in order (the insert saw the fixed sequence).
    let skus: i64 = s
        .query_one(
            "SELECT count(*) FROM app.products WHERE sku LIKE 'SKU-%-staging'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(skus, PROD_ORDERS / 10);
    h.assert_fks_intact().await;
    let out = ex.result.output.as_ref().unwrap();
    let masking = &out["masking"]["result"];
    assert_eq!(masking["remaining"], 0, "{masking}");
    assert_eq!(masking["inFlight"], false);
    assert!(
        masking["rowsTotal"].as_i64().unwrap() > PROD_ORDERS,
        "{masking}"
    );
    let verification = &out["verification"]["result"];
    assert_eq!(verification["flaggedTotal"], 0, "{verification}");
    assert_eq!(verification["perTableUnavailable"], false, "{verification}");
    assert_eq!(verification["tables"], 7, "{verification}");
    let states = ex.states();
    let at = |name: &str| {
        states
            .iter()
            .position(|s| s == name)
            .unwrap_or_else(|| panic!("{name}: {states:?}"))
    };
    assert!(at("PollReplication") < at("MaskPersonalData"));
    assert!(at("MaskPersonalData") < at("VerifyCopy"));
    assert!(at("VerifyCopy") < at("RestoreForeignKeys"));
    assert!(at("FixSequences") < at("RunAfterSync"));
    let notes = h.notifications(&ex.name).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].1.contains("0 table(s) flagged"), "{}", notes[0].1);
}

/// A rule that fails on the loaded rows: the run fails by name, the keys come back.
#[tokio::test]
async fn masking_that_fails_on_the_rows_fails_the_sync_and_restores_the_keys() {
    // Parses and plans (LIMIT 0 finds nothing wrong), fails on the first row.
    let sync = SyncConfig::parse(
        "dbsync.yml",
        "data_rules:\n  products.name: {statement: \"(1 / (id - id))::text\"}\n",
    )
    .unwrap();
    let h = Harness::with_config(|t| t, sync).await;
    let ex = h.run().await;
    let cause = ex.assert_failed_with("MaskingFailed");
    assert!(
        cause.contains("products") && cause.contains("division by zero (SQLSTATE 22012)"),
        "{cause}"
    );
    assert!(
        !cause.contains("1 / (id - id)"),
        "no SQL in the cause: {cause}"
    );
    h.assert_fks_intact().await;
    assert!(ex
        .states()
        .iter()
        .any(|s| s == "CompensateRestoreForeignKeys"));
    assert_eq!(h.notifications(&ex.name).await.len(), 1);
}

/// A rule on a key column is refused by name at the lease, before any change.
#[tokio::test]
async fn a_rule_on_a_key_column_is_refused_before_any_change() {
    let sync =
        SyncConfig::parse("dbsync.yml", "data_rules:\n  orders.customer_id: null\n").unwrap();
    let h = Harness::with_config(|t| t, sync).await;
    let before = h.staging_rows("app.orders").await;
    let ex = h.run().await;
    let cause = ex.assert_failed_with("SyncConfigInvalid");
    assert!(cause.contains("data_rules.orders.customer_id"), "{cause}");
    assert!(!ex.states().iter().any(|s| s == "DropForeignKeys"));
    assert_eq!(h.staging_rows("app.orders").await, before);
    assert!(h.dms.start_kinds().is_empty());
}

// ------------------------------------------------------------ DMS Serverless

/// A serverless replication config that provisions for a while (0.4 s of
/// wall clock: a few hundred virtual seconds of polls) before each load.
fn serverless(t: dbsync_dmsfake::FakeTask) -> dbsync_dmsfake::FakeTask {
    t.serverless(Duration::from_millis(400))
}

/// The same workflow with a `ReplicationConfigArn`: provisioning waited out,
/// then the load, a first run and a reload, the same end state.
#[tokio::test]
async fn serverless_syncs_like_a_task_provisioning_included() {
    let h = Harness::with_task(serverless).await;
    let first = h.run().await;
    first.assert_succeeded();
    h.assert_synced().await;
    let replication = &first.result.output.as_ref().unwrap()["replication"]["result"];
    assert_eq!(replication["tablesLoaded"], 7, "{replication}");
    let polls = replication["polls"].as_u64().unwrap();
    assert!(polls >= 2, "provisioning was polled: {replication}");
    let second = h.run().await;
    second.assert_succeeded();
    assert_eq!(h.dms.start_kinds(), ["start-replication", "reload-target"]);
    let ops: Vec<String> = h.dms.calls().into_iter().map(|c| c.operation).collect();
    assert!(
        ops.iter()
            .all(|o| !o.ends_with("ReplicationTask") && o != "DescribeReplicationTasks"),
        "only the serverless API: {ops:?}"
    );
    println!(
        "serverless: {polls} polls in the first run, {} state transitions",
        first.result.state_transitions
    );
}

#[tokio::test]
async fn serverless_failure_mid_load_is_named_and_compensated() {
    let h = Harness::with_task(serverless).await;
    h.dms.inject(
        Op::StartReplication,
        Fault::FailMidLoad("app.shipments".into()),
    );
    let ex = h.run().await;
    let cause = ex.assert_failed_with("ReplicationFailed");
    assert!(cause.contains("shipments"), "{cause}");
    h.assert_fks_intact().await;
    assert_eq!(h.notifications(&ex.name).await.len(), 1);
}

#[tokio::test]
async fn serverless_already_provisioning_is_refused_before_any_change() {
    let h = Harness::with_task(|t| serverless(t).status("starting")).await;
    let before = h.staging_rows("app.orders").await;
    let ex = h.run().await;
    ex.assert_failed_with("ReplicationAlreadyRunning");
    assert!(h.dms.start_kinds().is_empty());
    assert!(!ex.states().iter().any(|s| s == "DropForeignKeys"));
    assert_eq!(h.staging_rows("app.orders").await, before);
}

/// Capacity that never comes: the time limit (provisioning counted) stops
/// the replication, waits until it has stopped, then compensates.
#[tokio::test]
async fn serverless_provisioning_that_never_ends_times_out_and_is_stopped() {
    let h = Harness::with_task(|t| t.serverless(Duration::from_secs(3600))).await;
    h.set_max_replication(Duration::from_secs(1));
    let ex = h.run().await;
    let cause = ex.assert_failed_with("ReplicationTimedOut");
    assert!(cause.contains("provisioning included"), "{cause}");
    let states = ex.states();
    let stop = states
        .iter()
        .position(|s| s == "StopReplication")
        .expect("stopped");
    let compensate = states
        .iter()
        .position(|s| s == "CompensateRestoreForeignKeys")
        .expect("compensated");
    assert!(stop < compensate, "{states:?}");
    assert_eq!(h.dms.status().to_string(), "stopped");
    assert!(!h.dms.calls_of(Op::StopReplication).is_empty());
    h.assert_fks_intact().await;
}

/// A second stack on the same staging: its execution holds the lease, and
/// this state machine may not describe it (its role covers its own
/// executions). Refused by name, saying how to release it; nothing changed.
#[tokio::test]
async fn a_lease_held_by_another_stacks_execution_is_named() {
    let h = Harness::new().await;
    let other = "arn:aws:states:us-east-1:123456789012:execution:other-stack-sync:scheduled-1";
    h.staging
        .client()
        .await
        .batch_execute(&format!(
            "INSERT INTO dbsync.lease (execution, expires_at) VALUES ('{other}', now() + interval '1 day')"
        ))
        .await
        .unwrap();
    let ex = h.run().await;
    let cause = ex.assert_failed_with("LeaseHeldElsewhere");
    assert!(
        cause.contains(other) && cause.contains("DELETE FROM dbsync.lease"),
        "{cause}"
    );
    assert!(!entered(&ex, "DropForeignKeys"), "{:?}", ex.states());
    let holder: String = h
        .staging
        .client()
        .await
        .query_one("SELECT execution FROM dbsync.lease", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(holder, other, "the other stack's lease is left alone");
}

/// AWS releases a finished serverless load's capacity, and with it the
/// replication's start dates and table statistics. A poll that lands after
/// that still recognizes its own finished load (remembered from an earlier
/// poll, or by the stop time), and the verification says the per-table
/// counts are unknown instead of flagging every table.
#[tokio::test]
async fn serverless_deprovisioned_before_the_poll_still_succeeds_with_counts_unknown() {
    let h = Harness::with_task(|t| serverless(t).deprovisions_after(Duration::ZERO)).await;
    let ex = h.run().await;
    ex.assert_succeeded();
    h.assert_synced().await;
    let out = ex.result.output.as_ref().unwrap();
    let replication = &out["replication"]["result"];
    // Released the moment the load stopped: the statistics are gone when read.
    assert_eq!(replication["runSeen"], true, "{replication}");
    assert!(replication["tableRows"].is_null(), "{replication}");
    let verification = &out["verification"]["result"];
    assert_eq!(verification["perTableUnavailable"], true, "{verification}");
    assert_eq!(verification["flaggedTotal"], 0, "{verification}");
    // The next run's start type follows the first: reload-target.
    h.run().await.assert_succeeded();
    assert_eq!(h.dms.start_kinds(), ["start-replication", "reload-target"]);
}

/// AWS documents the start type of a serverless config's first run only.
/// A config that refuses `reload-target` on a later run (and takes
/// `start-replication` again) still syncs: start-dms retries with the other
/// type, once.
#[tokio::test]
async fn serverless_refusing_reload_target_later_is_started_the_other_way() {
    let h = Harness::with_task(|t| serverless(t).later_runs_start_with("start-replication")).await;
    h.run().await.assert_succeeded();
    let ex = h.run().await;
    ex.assert_succeeded();
    h.assert_synced().await;
    assert_eq!(
        h.dms.start_kinds(),
        ["start-replication", "reload-target", "start-replication"],
        "the refused reload-target was tried, then start-replication"
    );
    let out = ex.result.output.as_ref().unwrap();
    let replication = &out["replication"]["result"];
    assert_eq!(
        replication["startKind"], "start-replication",
        "{replication}"
    );
}
