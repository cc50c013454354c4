//! DMS Serverless through the same steps: preflight, start-dms and poll-dms
//! against the real serverless adapter, each API outcome mocked at the SDK's
//! HTTP boundary (aws-smithy-mocks).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_databasemigration::{
    operation::{
        describe_replication_configs::DescribeReplicationConfigsOutput,
        describe_replication_table_statistics::DescribeReplicationTableStatisticsOutput,
        describe_replications::DescribeReplicationsError,
        start_replication::{StartReplicationError, StartReplicationOutput},
        stop_replication::StopReplicationOutput,
    },
    types::{MigrationTypeValue, ReplicationConfig, TableStatistics},
    Client,
};
use aws_smithy_mocks::{mock, Rule};
use dbsync_aws::{
    dms_serverless::DmsServerless,
    testing::{error, mocked_serverless, Serverless, CONFIG},
};
use dbsync_workflow::{
    steps::{
        poll_dms::{self, PROVISIONING_MAX_WAIT},
        preflight::{self, PreflightConfig},
        replication::{PollConfig, ReplicationKind},
        start_dms,
    },
    StepError,
};
use serde_json::{json, Value};

fn describe(r: Serverless) -> Rule {
    mock!(Client::describe_replications)
        .match_requests(|q| {
            q.filters()
                .iter()
                .any(|f| f.name() == "replication-config-arn" && f.values() == [CONFIG])
        })
        .then_output(move || r.output())
}

fn table_stats() -> Rule {
    mock!(Client::describe_replication_table_statistics)
        .match_requests(|q| q.replication_config_arn() == Some(CONFIG))
        .then_output(|| {
            DescribeReplicationTableStatisticsOutput::builder()
                .replication_table_statistics(
                    TableStatistics::builder()
                        .schema_name("app")
                        .table_name("a")
                        .full_load_rows(1000)
                        .table_state("Table completed")
                        .build(),
                )
                .replication_table_statistics(
                    TableStatistics::builder()
                        .schema_name("app")
                        .table_name("b")
                        .full_load_rows(234)
                        .table_state("Table completed")
                        .build(),
                )
                .build()
        })
}

fn stop() -> Rule {
    mock!(Client::stop_replication)
        .match_requests(|r| r.replication_config_arn() == Some(CONFIG))
        .then_output(|| StopReplicationOutput::builder().build())
}

fn client(rules: &[&Rule]) -> DmsServerless {
    mocked_serverless(rules).with_table_statistics()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn poll(dms: &DmsServerless, replication: Value) -> Result<Value, StepError> {
    poll_dms::handle(
        dms,
        CONFIG,
        &PollConfig::default(),
        json!({"replication": replication}),
    )
    .await
    .map(|o| serde_json::to_value(o).unwrap())
}

#[tokio::test]
async fn provisioning_is_waited_out_then_the_load_is_timed_on_its_own_clock() {
    // 10 minutes of provisioning so far: wait half that again, at most 5 minutes.
    let d = describe(Serverless {
        started_secs_ago: Some(600),
        ..Serverless::new("provisioning_capacity")
    });
    let out = poll(&client(&[&d]), json!({"startedAt": now() - 600}))
        .await
        .unwrap();
    assert_eq!(out["status"], "running");
    assert_eq!(out["detail"], "provisioning_capacity");
    assert_eq!(out["waitSeconds"], 300, "{out}");
    assert!(out.get("progressPercent").is_none());
    // Early on, the minimum wait.
    let d = describe(Serverless {
        started_secs_ago: Some(20),
        ..Serverless::new("initializing")
    });
    let out = poll(&client(&[&d]), json!({"startedAt": now() - 20}))
        .await
        .unwrap();
    assert_eq!(out["waitSeconds"], 30, "{out}");
    assert_eq!(
        poll_dms::provisioning_wait(Duration::from_secs(7200), &PollConfig::default()),
        PROVISIONING_MAX_WAIT
    );

    // Loading for 100 s after 20 minutes of provisioning, 10% done: the
    // rate comes from the load's 100 s, not the run's 1,300 s.
    let d = describe(Serverless {
        started_secs_ago: Some(1300),
        load_started_secs_ago: Some(100),
        percent: 10,
        ..Serverless::new("running")
    });
    let dms = client(&[&d]);
    let first = poll(&dms, json!({"startedAt": now() - 1300}))
        .await
        .unwrap();
    assert_eq!(first["progressElapsedSeconds"], 100, "{first}");
    // No earlier reading: at most the load's own time so far (not the run's 1,300 s).
    assert!(first["waitSeconds"].as_u64().unwrap() <= 101, "{first}");
    let second = poll(&dms, first).await.unwrap();
    assert_eq!(second["polls"], 2);
}

#[tokio::test]
async fn a_finished_full_load_succeeds_with_its_table_counts() {
    let (d, t, s) = (
        describe(Serverless {
            stop_reason: Some("Stop Reason FULL_LOAD_ONLY_FINISHED"),
            started_secs_ago: Some(900),
            load_started_secs_ago: Some(300),
            percent: 100,
            loaded: 2,
            ..Serverless::new("stopped")
        }),
        table_stats(),
        stop(),
    );
    let out = poll(&client(&[&d, &t, &s]), json!({"startedAt": now() - 900}))
        .await
        .unwrap();
    assert_eq!(out["status"], "succeeded");
    assert_eq!(out["rowsLoaded"], 1234);
    assert_eq!(out["tableRows"], json!({"app.a": 1000, "app.b": 234}));
    assert_eq!(s.num_calls(), 0);
}

#[tokio::test]
async fn failures_are_named_like_a_tasks() {
    for (r, says) in [
        (
            Serverless {
                failure: Some("Failed to connect to the source endpoint"),
                started_secs_ago: Some(300),
                ..Serverless::new("failed")
            },
            "Failed to connect to the source endpoint",
        ),
        (
            Serverless {
                stop_reason: Some("Stop Reason FULL_LOAD_ONLY_FINISHED"),
                started_secs_ago: Some(300),
                errored: 1,
                ..Serverless::new("stopped")
            },
            "1 table(s) errored",
        ),
    ] {
        let (d, t) = (describe(r), table_stats());
        let e = poll(&client(&[&d, &t]), json!({"startedAt": now() - 300}))
            .await
            .unwrap_err();
        assert_eq!(e.name(), "ReplicationFailed");
        assert!(e.to_string().contains(says), "{e}");
    }
    // DescribeReplications refused for good: named, not retried as transient.
    let d = mock!(Client::describe_replications).then_error(|| {
        DescribeReplicationsError::generic(error("AccessDeniedFault", "not authorized"))
    });
    let e = poll(&client(&[&d]), json!({})).await.unwrap_err();
    assert_eq!(e.name(), "AwsServiceError", "{e}");
}

#[tokio::test]
async fn provisioning_past_the_time_limit_is_stopped_and_named() {
    let (d, s) = (
        describe(Serverless {
            started_secs_ago: Some(50_000),
            ..Serverless::new("provisioning_capacity")
        }),
        stop(),
    );
    let e = poll(&client(&[&d, &s]), json!({"startedAt": now() - 50_000}))
        .await
        .unwrap_err();
    assert_eq!(e.name(), "ReplicationTimedOut");
    assert!(
        e.to_string().contains("provisioning_capacity")
            && e.to_string().contains("provisioning included"),
        "{e}"
    );
    assert_eq!(s.num_calls(), 1, "told to stop");
    // Stop mode while provisioning: ask once, then wait for `stopped`.
    let (d, s) = (
        describe(Serverless {
            started_secs_ago: Some(100),
            ..Serverless::new("calculating_capacity")
        }),
        stop(),
    );
    let out = poll_dms::handle(
        &client(&[&d, &s]),
        CONFIG,
        &PollConfig::default(),
        json!({"mode": "stop", "replication": {"startedAt": now() - 100}}),
    )
    .await
    .unwrap();
    assert_eq!(serde_json::to_value(out).unwrap()["status"], "stopping");
    assert_eq!(s.num_calls(), 1);
}

fn start_ok(kind: &'static str) -> Rule {
    mock!(Client::start_replication)
        .match_requests(move |r| {
            r.start_replication_type() == Some(kind) && r.replication_config_arn() == Some(CONFIG)
        })
        .then_output(|| StartReplicationOutput::builder().build())
}

#[tokio::test]
async fn starts_pick_the_kind_from_the_history_and_refuse_a_running_replication() {
    let start = |dms: DmsServerless| async move {
        start_dms::handle(&dms, CONFIG, &PollConfig::default(), json!({}))
            .await
            .map(|o| serde_json::to_value(o).unwrap())
    };
    // Never run: `created`, start-replication.
    let (d, s, r) = (
        describe(Serverless::new("created")),
        start_ok("start-replication"),
        start_ok("reload-target"),
    );
    let out = start(mocked_serverless(&[&d, &s, &r])).await.unwrap();
    assert_eq!(out["startKind"], "start-replication");
    assert_eq!((s.num_calls(), r.num_calls()), (1, 0));
    // Ran before: reload-target.
    let (d, s, r) = (
        describe(Serverless {
            stop_reason: Some("Stop Reason FULL_LOAD_ONLY_FINISHED"),
            started_secs_ago: Some(86_400),
            ..Serverless::new("stopped")
        }),
        start_ok("start-replication"),
        start_ok("reload-target"),
    );
    let out = start(mocked_serverless(&[&d, &s, &r])).await.unwrap();
    assert_eq!(out["startKind"], "reload-target");
    assert_eq!((s.num_calls(), r.num_calls()), (0, 1));
    // Someone else's run is provisioning: nothing started, named.
    let (d, s) = (
        describe(Serverless {
            started_secs_ago: Some(60),
            ..Serverless::new("fetching_metadata")
        }),
        start_ok("reload-target"),
    );
    let e = start(mocked_serverless(&[&d, &s])).await.unwrap_err();
    assert_eq!(e.name(), "ReplicationAlreadyRunning", "{e}");
    assert_eq!(s.num_calls(), 0);
    // A refusal DMS explains: named with its message.
    let d = describe(Serverless::new("created"));
    let refuse = mock!(Client::start_replication).then_error(|| {
        StartReplicationError::generic(error(
            "InvalidResourceStateFault",
            "replication is being modified",
        ))
    });
    let e = start(mocked_serverless(&[&d, &refuse])).await.unwrap_err();
    assert_eq!(e.name(), "ReplicationTaskNotReady", "{e}");
}

fn config(kind: MigrationTypeValue, settings: &str) -> Rule {
    let settings = settings.to_owned();
    mock!(Client::describe_replication_configs).then_output(move || {
        DescribeReplicationConfigsOutput::builder()
            .replication_configs(
                ReplicationConfig::builder()
                    .replication_config_arn(CONFIG)
                    .replication_type(kind.clone())
                    .replication_settings(settings.clone())
                    .table_mappings(r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "1", "object-locator": {"schema-name": "app", "table-name": "%"}, "rule-action": "include"}]}"#)
                    .target_endpoint_arn("arn:aws:dms:us-east-1:123456789012:endpoint:TARGET")
                    .build(),
            )
            .build()
    })
}

fn endpoint() -> Rule {
    use aws_sdk_databasemigration::{
        operation::describe_endpoints::DescribeEndpointsOutput, types::Endpoint,
    };
    mock!(Client::describe_endpoints).then_output(|| {
        DescribeEndpointsOutput::builder()
            .endpoints(
                Endpoint::builder()
                    .endpoint_arn("arn:aws:dms:us-east-1:123456789012:endpoint:TARGET")
                    .engine_name("postgres")
                    .server_name("staging.example")
                    .port(5432)
                    .database_name("app")
                    .build(),
            )
            .build()
    })
}

#[tokio::test]
async fn preflight_reads_the_config_and_refuses_what_a_task_would_be_refused_for() {
    let settings = r#"{"FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD"}, "TargetMetadata": {"SupportLobs": true, "FullLobMode": true}}"#;
    let cfg = PreflightConfig {
        task_arn: CONFIG.into(),
        kind: ReplicationKind::Serverless,
        notify_on_success: false,
        engine: dbsync_workflow::config::CopyEngine::Dms,
        table_mappings: None,
    };
    let (c, d, e) = (
        config(MigrationTypeValue::FullLoad, settings),
        describe(Serverless::new("created")),
        endpoint(),
    );
    let out = preflight::handle(&mocked_serverless(&[&c, &d, &e]), &cfg, json!({}))
        .await
        .unwrap();
    assert_eq!(out.target.expect("a target endpoint").database, "app");
    assert!(out.table_mappings.contains("\"app\""));
    // CDC and a running replication: refused by name before any change.
    let (c, d, e) = (
        config(MigrationTypeValue::FullLoadAndCdc, settings),
        describe(Serverless::new("created")),
        endpoint(),
    );
    let err = preflight::handle(&mocked_serverless(&[&c, &d, &e]), &cfg, json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "ReplicationTaskMisconfigured", "{err}");
    let (c, d, e) = (
        config(MigrationTypeValue::FullLoad, settings),
        describe(Serverless {
            started_secs_ago: Some(60),
            ..Serverless::new("running")
        }),
        endpoint(),
    );
    let err = preflight::handle(&mocked_serverless(&[&c, &d, &e]), &cfg, json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "ReplicationAlreadyRunning", "{err}");
}
