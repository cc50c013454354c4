//! Scenarios of the deployed workflow: the real definition, the real handlers
//! with their real adapters, the DMS fake, moto, real PostgreSQL (see
//! `common/mod.rs`). Each asserts the end state of staging and what the
//! execution and its notifications said.

mod common;

use std::time::Duration;

use common::{Harness, PROD_ORDERS};
use dbsync_dmsfake::{Fault, Op};

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
async fn a_task_already_running_fails_the_sync_and_leaves_the_keys_as_they_were() {
    let h = Harness::with_task(|t| t.status("running")).await;
    let stale_orders = h.staging_rows("app.orders").await;
    let ex = h.run().await;
    let cause = ex.assert_failed_with("ReplicationAlreadyRunning");
    assert!(cause.contains("running"), "{cause}");
    assert!(h.dms.start_kinds().is_empty(), "nothing was started");
    h.assert_fks_intact().await;
    assert_eq!(h.staging_rows("app.orders").await, stale_orders);
    let notes = h.notifications(&ex.name).await;
    assert!(
        notes.len() == 1 && notes[0].1.contains("failed with ReplicationAlreadyRunning"),
        "{notes:?}"
    );
}

/// DMS keeps `LastFailureMessage` after a later successful run; poll-dms
/// counts any failure message as a failure of the current run.
#[tokio::test]
#[ignore = "known: poll-dms fails a clean run with ReplicationFailed when DMS still shows the LastFailureMessage of an earlier failed run"]
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
/// SDK retries it, DMS refuses the retry (the task is starting), and
/// start-dms reports the task as not ready — so the execution compensates
/// while DMS loads.
#[tokio::test]
#[ignore = "known: start-dms takes the SDK's retry of an ambiguous StartReplicationTask (5xx after the task started) for a refusal, and the execution compensates while DMS loads"]
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
