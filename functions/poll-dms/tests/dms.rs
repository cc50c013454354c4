//! poll-dms against the real DMS adapter, with DMS's answers mocked at the
//! SDK's HTTP boundary (aws-smithy-mocks; moto's DMS invents statuses).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_databasemigration::{
    operation::{
        describe_replication_tasks::DescribeReplicationTasksError,
        describe_table_statistics::DescribeTableStatisticsOutput,
        stop_replication_task::StopReplicationTaskOutput,
    },
    types::TableStatistics,
    Client,
};
use aws_smithy_mocks::{mock, Rule};
use dbsync_aws::{
    dms::DmsTask,
    testing::{error, Task, TASK},
};
use dbsync_workflow::steps::{poll_dms, replication::PollConfig};
use dbsync_workflow::StepError;
use serde_json::{json, Value};

fn client(rules: &[&Rule]) -> DmsTask {
    dbsync_aws::testing::mocked_task(rules).with_table_statistics()
}

fn describe(task: Task) -> Rule {
    mock!(Client::describe_replication_tasks).then_output(move || task.output())
}

fn table_stats() -> Rule {
    mock!(Client::describe_table_statistics).then_output(|| {
        DescribeTableStatisticsOutput::builder()
            .table_statistics(
                TableStatistics::builder()
                    .table_name("a")
                    .full_load_rows(1000)
                    .build(),
            )
            .table_statistics(
                TableStatistics::builder()
                    .table_name("b")
                    .full_load_rows(234)
                    .build(),
            )
            .build()
    })
}

fn stop() -> Rule {
    mock!(Client::stop_replication_task)
        .match_requests(|r| r.replication_task_arn() == Some(TASK))
        .then_output(|| StopReplicationTaskOutput::builder().build())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The sample event, as if the run started `ago` seconds ago.
fn event(ago: u64) -> Value {
    let mut e: Value = serde_json::from_str(include_str!("../../../events/poll-dms.json")).unwrap();
    e["replication"]["startedAt"] = json!(now() - ago);
    e
}

async fn poll(task: &DmsTask, event: Value) -> Result<Value, StepError> {
    poll_dms::handle(task, TASK, &PollConfig::default(), event)
        .await
        .map(|o| serde_json::to_value(o).unwrap())
}

#[tokio::test]
async fn starting_then_running_then_finished() {
    let d = mock!(Client::describe_replication_tasks)
        .sequence()
        .output(|| {
            Task {
                started_secs_ago: Some(30),
                ..Task::new("starting")
            }
            .output()
        })
        .output(|| {
            Task {
                started_secs_ago: Some(60),
                percent: 40,
                loaded: 4,
                loading: 2,
                queued: 4,
                ..Task::new("running")
            }
            .output()
        })
        .output(|| {
            Task {
                stop_reason: Some("Stop Reason FULL_LOAD_ONLY_FINISHED"),
                started_secs_ago: Some(200),
                percent: 100,
                loaded: 10,
                ..Task::new("stopped")
            }
            .output()
        })
        .build();
    let (s, t) = (stop(), table_stats());
    let task = client(&[&d, &s, &t]);

    let first = poll(&task, event(30)).await.unwrap();
    assert_eq!(first["status"], "running");
    assert_eq!(first["polls"], 1);
    assert_eq!(
        first["startKind"], "reload-target",
        "carried over from start-dms"
    );
    assert!(
        first.get("progressPercent").is_none(),
        "no percentage while starting: {first}"
    );
    // Nothing known yet: wait about as long again as the run has taken (≥ the 30 s minimum).
    assert!(
        (30..=61).contains(&first["waitSeconds"].as_u64().unwrap()),
        "{first}"
    );

    // The state machine feeds the output back in.
    let second = poll(&task, json!({"execution": "x", "replication": first}))
        .await
        .unwrap();
    assert_eq!(second["status"], "running");
    assert_eq!(
        (second["polls"].clone(), second["progressPercent"].clone()),
        (json!(2), json!(40))
    );
    assert_eq!(
        (
            second["tablesLoaded"].clone(),
            second["tablesQueued"].clone()
        ),
        (json!(4), json!(4))
    );

    let third = poll(&task, json!({"replication": second})).await.unwrap();
    assert_eq!(third["status"], "succeeded");
    assert_eq!(third["waitSeconds"], 0);
    assert_eq!(third["polls"], 3);
    assert_eq!(third["tablesLoaded"], 10);
    assert_eq!(third["tablesErrored"], 0);
    assert_eq!(third["rowsLoaded"], 1234);
    assert_eq!(s.num_calls(), 0);
}

async fn failure(task: Task) -> StepError {
    let (d, s, t) = (describe(task), stop(), table_stats());
    let e = poll(&client(&[&d, &s, &t]), event(600)).await.unwrap_err();
    assert_eq!(s.num_calls(), 0, "a finished task is not stopped");
    e
}

#[tokio::test]
async fn stopped_with_errored_tables_fails() {
    let e = failure(Task {
        stop_reason: Some("Stop Reason FULL_LOAD_ONLY_FINISHED"),
        percent: 100,
        loaded: 8,
        errored: 2,
        ..Task::new("stopped")
    })
    .await;
    assert_eq!(e.name(), "ReplicationFailed");
    assert!(e.to_string().contains("2 table(s) errored"), "{e}");
}

#[tokio::test]
async fn stopped_for_another_reason_fails() {
    let e = failure(Task {
        stop_reason: Some("Stop Reason STOPPED_BY_USER"),
        percent: 35,
        ..Task::new("stopped")
    })
    .await;
    assert_eq!(e.name(), "ReplicationFailed");
    assert!(e.to_string().contains("STOPPED_BY_USER"), "{e}");
}

#[tokio::test]
async fn failed_with_a_message_fails_with_it() {
    let e = failure(Task {
        failure: Some("Error executing source loop; Stream component failed at subtask 0"),
        ..Task::new("failed")
    })
    .await;
    assert_eq!(e.name(), "ReplicationFailed");
    assert!(
        e.to_string().contains("Stream component failed") && e.to_string().contains("failed"),
        "{e}"
    );
}

#[tokio::test]
async fn a_failure_message_left_by_an_earlier_run_does_not_fail_a_good_one() {
    // DMS keeps LastFailureMessage after later runs succeed.
    let (d, t) = (
        describe(Task {
            stop_reason: Some("Stop Reason FULL_LOAD_ONLY_FINISHED"),
            failure: Some("Last Error Task 'X' was suspended after 9 successive recovery failures"),
            started_secs_ago: Some(300),
            percent: 100,
            loaded: 2,
            ..Task::new("stopped")
        }),
        table_stats(),
    );
    let out = poll(&client(&[&d, &t]), event(300)).await.unwrap();
    assert_eq!(out["status"], "succeeded");
}

fn table_in(state: &'static str, validation: &'static str) -> Rule {
    mock!(Client::describe_table_statistics).then_output(move || {
        DescribeTableStatisticsOutput::builder()
            .table_statistics(
                TableStatistics::builder()
                    .schema_name("app")
                    .table_name("good")
                    .table_state("Table completed")
                    .validation_state("Validated")
                    .full_load_rows(10)
                    .build(),
            )
            .table_statistics(
                TableStatistics::builder()
                    .schema_name("app")
                    .table_name("bad")
                    .table_state(state)
                    .validation_state(validation)
                    .full_load_rows(3)
                    .build(),
            )
            .build()
    })
}

#[tokio::test]
async fn tables_in_error_cancelled_or_failing_validation_fail_the_run_by_name() {
    for (state, validation, want) in [
        ("Table error", "Not enabled", "app.bad: Table error"),
        ("Table cancelled", "Not enabled", "app.bad: Table cancelled"),
        (
            "Table completed",
            "Mismatched records",
            "app.bad: validation: Mismatched records",
        ),
    ] {
        let (d, t) = (
            describe(Task {
                stop_reason: Some("Stop Reason FULL_LOAD_ONLY_FINISHED"),
                started_secs_ago: Some(300),
                percent: 100,
                ..Task::new("stopped")
            }),
            table_in(state, validation),
        );
        let e = poll(&client(&[&d, &t]), event(300)).await.unwrap_err();
        assert_eq!(e.name(), "ReplicationFailed");
        assert!(
            e.to_string().contains(want) && !e.to_string().contains("app.good"),
            "{e}"
        );
    }
}

async fn poll_in(
    task: &DmsTask,
    mode: &str,
    execution_started_ago: u64,
    replication: Value,
) -> Result<Value, StepError> {
    let event = json!({
        "execution": "sync-x",
        "executionStartTime": dbsync_aws::testing::execution_started(execution_started_ago),
        "mode": mode,
        "replication": replication,
    });
    poll_dms::handle(task, TASK, &PollConfig::default(), event)
        .await
        .map(|o| serde_json::to_value(o).unwrap())
}

#[tokio::test]
async fn only_a_run_of_this_execution_can_succeed() {
    // The task shows its previous (finished) run: this execution's start has not shown yet.
    let previous = || Task {
        stop_reason: Some("Stop Reason FULL_LOAD_ONLY_FINISHED"),
        started_secs_ago: Some(3600),
        percent: 100,
        ..Task::new("stopped")
    };
    let (d, t) = (describe(previous()), table_stats());
    let out = poll_in(&client(&[&d, &t]), "poll", 40, json!({}))
        .await
        .unwrap();
    assert_eq!(out["status"], "running", "within the start's grace: wait");
    let (d, t) = (describe(previous()), table_stats());
    let e = poll_in(&client(&[&d, &t]), "poll", 600, json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.name(), "ReplicationFailed");
    assert!(
        e.to_string().contains("before this execution started"),
        "{e}"
    );
}

#[tokio::test]
async fn stop_mode_stops_a_running_task_and_waits_until_it_has() {
    let d = mock!(Client::describe_replication_tasks)
        .sequence()
        .output(|| {
            Task {
                started_secs_ago: Some(100),
                percent: 30,
                ..Task::new("running")
            }
            .output()
        })
        .output(|| {
            Task {
                started_secs_ago: Some(130),
                ..Task::new("stopping")
            }
            .output()
        })
        .output(|| {
            Task {
                stop_reason: Some("Stop Reason STOPPED_BY_USER"),
                started_secs_ago: Some(160),
                ..Task::new("stopped")
            }
            .output()
        })
        .build();
    let (s, t) = (stop(), table_stats());
    let task = client(&[&d, &s, &t]);
    let first = poll_in(&task, "stop", 200, json!({"polls": 0}))
        .await
        .unwrap();
    assert_eq!(first["status"], "stopping");
    assert!(first["waitSeconds"].as_u64().unwrap() >= 5, "{first}");
    assert_eq!(s.num_calls(), 1, "asked to stop");
    let second = poll_in(&task, "stop", 230, first).await.unwrap();
    assert_eq!(second["status"], "stopping");
    assert_eq!(
        s.num_calls(),
        1,
        "asked once: a stopping task is left to stop"
    );
    let third = poll_in(&task, "stop", 260, second).await.unwrap();
    assert_eq!(third["status"], "stopped");
    assert_eq!(third["waitSeconds"], 0);

    // A task that never stops: bounded.
    let (d, s) = (
        describe(Task {
            started_secs_ago: Some(100),
            ..Task::new("stopping")
        }),
        stop(),
    );
    let e = poll_in(
        &client(&[&d, &s]),
        "stop",
        4000,
        json!({"polls": poll_dms::MAX_STOP_POLLS}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.name(), "ReplicationStillRunning");

    // Nothing running: stopped at once, nothing sent.
    let (d, s) = (describe(Task::new("ready")), stop());
    let out = poll_in(&client(&[&d, &s]), "stop", 10, json!({"polls": 0}))
        .await
        .unwrap();
    assert_eq!(out["status"], "stopped");
    assert_eq!(s.num_calls(), 0);
}

#[tokio::test]
async fn a_load_past_the_maximum_is_stopped() {
    let (d, s) = (
        describe(Task {
            started_secs_ago: Some(7200),
            percent: 20,
            ..Task::new("running")
        }),
        stop(),
    );
    let config = PollConfig {
        max_duration: Duration::from_secs(3600),
        ..PollConfig::default()
    };
    let e = poll_dms::handle(&client(&[&d, &s]), TASK, &config, event(7200))
        .await
        .unwrap_err();
    assert_eq!(e.name(), "ReplicationTimedOut");
    assert!(
        e.to_string().contains("limit 3600 s") && e.to_string().contains("20% loaded"),
        "{e}"
    );
    assert_eq!(s.num_calls(), 1, "the task was told to stop");

    // Just under the limit: keep polling, but not past the limit.
    let (d, s) = (
        describe(Task {
            started_secs_ago: Some(3500),
            percent: 20,
            ..Task::new("running")
        }),
        stop(),
    );
    let out = poll_dms::handle(&client(&[&d, &s]), TASK, &config, event(3500))
        .await
        .unwrap();
    assert!(out.wait_seconds <= 101, "{out:?}");
    assert_eq!(s.num_calls(), 0);
}

#[tokio::test]
async fn throttling_then_an_answer() {
    let d = mock!(Client::describe_replication_tasks)
        .sequence()
        .error(|| {
            DescribeReplicationTasksError::generic(error("ThrottlingException", "Rate exceeded"))
        })
        .output(|| {
            Task {
                started_secs_ago: Some(120),
                percent: 50,
                ..Task::new("running")
            }
            .output()
        })
        .build();
    let out = poll(&client(&[&d]), event(120)).await.unwrap();
    assert_eq!(out["status"], "running");
    assert_eq!(d.num_calls(), 2);
}

#[tokio::test]
async fn a_missing_task_and_bad_input_are_named() {
    let d = mock!(Client::describe_replication_tasks).then_error(|| {
        DescribeReplicationTasksError::generic(error("ResourceNotFoundFault", "No Tasks found"))
    });
    assert_eq!(
        poll(&client(&[&d]), json!({})).await.unwrap_err().name(),
        "ReplicationTaskNotFound"
    );
    let d = describe(Task::new("running"));
    let e = poll(
        &client(&[&d]),
        json!({"replication": {"startedAt": "noon"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.name(), "InvalidInput");
    assert_eq!(d.num_calls(), 0);
}
