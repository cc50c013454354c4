//! start-dms against the real DMS adapter, with DMS's answers mocked at the
//! SDK's HTTP boundary (aws-smithy-mocks; moto's DMS invents statuses).

use aws_sdk_databasemigration::{
    operation::{
        describe_replication_tasks::DescribeReplicationTasksError,
        start_replication_task::{StartReplicationTaskError, StartReplicationTaskOutput},
    },
    types::StartReplicationTaskTypeValue as Kind,
    Client,
};
use aws_smithy_mocks::{mock, Rule};
use dbsync_aws::{
    dms::DmsTask,
    testing::{error, Task, NOT_FIRST_RUN, TASK},
};
use dbsync_workflow::steps::{replication::PollConfig, start_dms};

fn client(rules: &[&Rule]) -> DmsTask {
    dbsync_aws::testing::mocked_task(rules)
}

fn describe(task: Task) -> Rule {
    mock!(Client::describe_replication_tasks)
        .match_requests(|r| r.without_settings() == Some(true))
        .then_output(move || task.output())
}

fn start_ok(kind: Kind) -> Rule {
    mock!(Client::start_replication_task)
        .match_requests(move |r| {
            r.start_replication_task_type() == Some(&kind) && r.replication_task_arn() == Some(TASK)
        })
        .then_output(|| StartReplicationTaskOutput::builder().build())
}

fn start_refused(kind: Kind, code: &'static str, message: &'static str) -> Rule {
    mock!(Client::start_replication_task)
        .match_requests(move |r| r.start_replication_task_type() == Some(&kind))
        .then_error(move || StartReplicationTaskError::generic(error(code, message)))
}

async fn run(task: &DmsTask) -> Result<serde_json::Value, dbsync_workflow::StepError> {
    let event: serde_json::Value =
        serde_json::from_str(include_str!("../../../events/start-dms.json")).unwrap();
    start_dms::handle(task, TASK, &PollConfig::default(), event)
        .await
        .map(|o| serde_json::to_value(o).unwrap())
}

#[tokio::test]
async fn first_run_uses_start_replication() {
    let (d, s, r) = (
        describe(Task::new("ready")),
        start_ok(Kind::StartReplication),
        start_ok(Kind::ReloadTarget),
    );
    let out = run(&client(&[&d, &s, &r])).await.unwrap();
    assert_eq!((s.num_calls(), r.num_calls()), (1, 0));
    assert_eq!(out["status"], "starting");
    assert_eq!(out["startKind"], "start-replication");
    assert_eq!(out["taskArn"], TASK);
    assert_eq!(out["waitSeconds"], 30);
    assert_eq!(out["polls"], 0);
    assert!(out["startedAt"].as_u64().unwrap() > 1_700_000_000);
}

#[tokio::test]
async fn later_runs_reload_the_target() {
    let stopped = Task {
        stop_reason: Some("Stop Reason FULL_LOAD_ONLY_FINISHED"),
        started_secs_ago: Some(86_400),
        percent: 100,
        loaded: 12,
        ..Task::new("stopped")
    };
    let (d, s, r) = (
        describe(stopped),
        start_ok(Kind::StartReplication),
        start_ok(Kind::ReloadTarget),
    );
    let out = run(&client(&[&d, &s, &r])).await.unwrap();
    assert_eq!((s.num_calls(), r.num_calls()), (0, 1));
    assert_eq!(out["startKind"], "reload-target");
    // The previous run's counts are not reported as this run's.
    assert_eq!(out["tablesLoaded"], 0);
}

#[tokio::test]
async fn the_not_first_run_answer_switches_to_reload_target() {
    // The task looks fresh (no start date) but DMS knows better.
    let d = describe(Task::new("ready"));
    let s = start_refused(
        Kind::StartReplication,
        "InvalidParameterCombinationException",
        NOT_FIRST_RUN,
    );
    let r = start_ok(Kind::ReloadTarget);
    let out = run(&client(&[&d, &s, &r])).await.unwrap();
    assert_eq!((s.num_calls(), r.num_calls()), (1, 1));
    assert_eq!(out["startKind"], "reload-target");
}

#[tokio::test]
async fn other_start_errors_are_not_swallowed() {
    let d = describe(Task::new("ready"));
    let s = start_refused(
        Kind::StartReplication,
        "AccessDeniedFault",
        "not authorized to perform dms:StartReplicationTask",
    );
    let r = start_ok(Kind::ReloadTarget);
    let e = run(&client(&[&d, &s, &r])).await.unwrap_err();
    assert_eq!(e.name(), "AwsServiceError");
    assert!(e.to_string().contains("AccessDeniedFault"), "{e}");
    assert_eq!(r.num_calls(), 0, "no retry with the other kind");

    let s = start_refused(
        Kind::StartReplication,
        "InvalidResourceStateFault",
        "Replication instance is not available",
    );
    let e = run(&client(&[&d, &s, &r])).await.unwrap_err();
    assert_eq!(e.name(), "ReplicationTaskNotReady");
    assert_eq!(r.num_calls(), 0);
}

#[tokio::test]
async fn a_running_task_is_refused_and_nothing_starts() {
    for status in ["starting", "running"] {
        let d = describe(Task {
            started_secs_ago: Some(60),
            ..Task::new(status)
        });
        let (s, r) = (
            start_ok(Kind::StartReplication),
            start_ok(Kind::ReloadTarget),
        );
        let e = run(&client(&[&d, &s, &r])).await.unwrap_err();
        assert_eq!(e.name(), "ReplicationAlreadyRunning");
        assert!(e.to_string().contains(status), "{e}");
        assert_eq!(s.num_calls() + r.num_calls(), 0);
    }
    let d = describe(Task::new("modifying"));
    let s = start_ok(Kind::StartReplication);
    assert_eq!(
        run(&client(&[&d, &s])).await.unwrap_err().name(),
        "ReplicationTaskNotReady"
    );
    assert_eq!(s.num_calls(), 0);
}

#[tokio::test]
async fn a_missing_task_is_named() {
    let d = mock!(Client::describe_replication_tasks).then_error(|| {
        DescribeReplicationTasksError::generic(error(
            "ResourceNotFoundFault",
            "No Tasks found matching the provided filters",
        ))
    });
    let e = run(&client(&[&d])).await.unwrap_err();
    assert_eq!(e.name(), "ReplicationTaskNotFound");
    assert!(e.to_string().contains(TASK), "{e}");

    // An empty answer means the same.
    let d = mock!(Client::describe_replication_tasks).then_output(|| {
        aws_sdk_databasemigration::operation::describe_replication_tasks::DescribeReplicationTasksOutput::builder().build()
    });
    assert_eq!(
        run(&client(&[&d])).await.unwrap_err().name(),
        "ReplicationTaskNotFound"
    );
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk() {
    let d = mock!(Client::describe_replication_tasks)
        .sequence()
        .error(|| {
            DescribeReplicationTasksError::generic(error("ThrottlingException", "Rate exceeded"))
        })
        .times(2)
        .output(|| Task::new("ready").output())
        .build();
    let s = start_ok(Kind::StartReplication);
    run(&client(&[&d, &s])).await.unwrap();
    assert_eq!(d.num_calls(), 3);

    // Still throttled after every attempt: a transient name the state machine retries.
    let d = mock!(Client::describe_replication_tasks)
        .sequence()
        .error(|| {
            DescribeReplicationTasksError::generic(error("ThrottlingException", "Rate exceeded"))
        })
        .repeatedly()
        .build();
    let e = run(&client(&[&d])).await.unwrap_err();
    assert_eq!(e.name(), "AwsTransientError");
    assert_eq!(d.num_calls(), dbsync_aws::MAX_ATTEMPTS as usize);
}

async fn run_in(
    task: &DmsTask,
    execution_started_ago: u64,
) -> Result<serde_json::Value, dbsync_workflow::StepError> {
    let event = serde_json::json!({
        "execution": "sync-x",
        "executionStartTime": dbsync_aws::testing::execution_started(execution_started_ago),
    });
    start_dms::handle(task, TASK, &PollConfig::default(), event)
        .await
        .map(|o| serde_json::to_value(o).unwrap())
}

#[tokio::test]
async fn a_run_this_execution_started_counts_as_started() {
    // A retry after the first attempt's answer was lost: the task already runs this execution's load.
    let (d, s, r) = (
        describe(Task {
            started_secs_ago: Some(10),
            ..Task::new("running")
        }),
        start_ok(Kind::StartReplication),
        start_ok(Kind::ReloadTarget),
    );
    let out = run_in(&client(&[&d, &s, &r]), 60).await.unwrap();
    assert_eq!((s.num_calls(), r.num_calls()), (0, 0), "not started twice");
    assert_eq!(out["status"], "starting");
    let started = out["startedAt"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now - 12..=now - 8).contains(&started),
        "the run's own start time: {out}"
    );

    // The same task running since before this execution is someone else's load.
    let d = describe(Task {
        started_secs_ago: Some(600),
        ..Task::new("running")
    });
    let e = run_in(&client(&[&d]), 60).await.unwrap_err();
    assert_eq!(e.name(), "ReplicationAlreadyRunning");
}

#[tokio::test]
async fn an_ambiguous_start_that_took_effect_is_a_start() {
    // DMS accepted the start, the answer was a 5xx, the SDK's retries were refused
    // ("already starting"): look again instead of failing into compensation.
    let d = mock!(Client::describe_replication_tasks)
        .sequence()
        .output(|| {
            Task {
                stop_reason: Some("Stop Reason FULL_LOAD_ONLY_FINISHED"),
                started_secs_ago: Some(86_400),
                ..Task::new("stopped")
            }
            .output()
        })
        .output(|| {
            Task {
                started_secs_ago: Some(1),
                ..Task::new("starting")
            }
            .output()
        })
        .build();
    let r = start_refused(
        Kind::ReloadTarget,
        "InvalidResourceStateFault",
        "Replication task is currently starting",
    );
    let out = run_in(&client(&[&d, &r]), 30).await.unwrap();
    assert_eq!(out["status"], "starting");
    assert_eq!(d.num_calls(), 2);

    // Refused, and the task did not start: the refusal stands.
    let d = describe(Task {
        stop_reason: Some("Stop Reason FULL_LOAD_ONLY_FINISHED"),
        started_secs_ago: Some(86_400),
        ..Task::new("stopped")
    });
    let r = start_refused(Kind::ReloadTarget, "InvalidResourceStateFault", "modifying");
    let e = run_in(&client(&[&d, &r]), 30).await.unwrap_err();
    assert_eq!(e.name(), "ReplicationTaskNotReady");
}
