//! preflight against the real DMS adapter, with DMS's answers mocked at the
//! SDK's HTTP boundary (aws-smithy-mocks).

use aws_sdk_databasemigration::{
    operation::{
        describe_endpoints::DescribeEndpointsOutput,
        describe_replication_tasks::DescribeReplicationTasksOutput,
    },
    types::{Endpoint, MigrationTypeValue, PostgreSqlSettings, ReplicationTask},
    Client,
};
use aws_smithy_mocks::{mock, Rule};
use dbsync_aws::{dms::DmsTask, testing::TASK};
use dbsync_workflow::{steps::preflight, StepError};
use serde_json::json;

const TARGET: &str = "arn:aws:dms:us-east-1:123456789012:endpoint:STAGING";
const MAPPINGS: &str = r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "app", "object-locator": {"schema-name": "app", "table-name": "%"}, "rule-action": "include"}]}"#;

fn client(rules: &[&Rule]) -> DmsTask {
    dbsync_aws::testing::mocked_task(rules)
}

fn task(status: &'static str, kind: MigrationTypeValue, settings: serde_json::Value) -> Rule {
    mock!(Client::describe_replication_tasks)
        // Preflight is the one reader of the settings and mappings.
        .match_requests(|r| r.without_settings() == Some(false))
        .then_output(move || {
            DescribeReplicationTasksOutput::builder()
                .replication_tasks(
                    ReplicationTask::builder()
                        .replication_task_arn(TASK)
                        .status(status)
                        .migration_type(kind.clone())
                        .replication_task_settings(settings.to_string())
                        .table_mappings(MAPPINGS)
                        .target_endpoint_arn(TARGET)
                        .build(),
                )
                .build()
        })
}

fn endpoint(engine: &'static str, script: Option<&'static str>) -> Rule {
    mock!(Client::describe_endpoints).then_output(move || {
        let mut pg = PostgreSqlSettings::builder();
        if let Some(s) = script {
            pg = pg.after_connect_script(s);
        }
        DescribeEndpointsOutput::builder()
            .endpoints(
                Endpoint::builder()
                    .endpoint_arn(TARGET)
                    .engine_name(engine)
                    .server_name("staging.abc.eu-west-1.rds.amazonaws.com")
                    .port(5432)
                    .database_name("app")
                    .postgre_sql_settings(pg.build())
                    .build(),
            )
            .build()
    })
}

fn good_settings() -> serde_json::Value {
    json!({"FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD"},
           "TargetMetadata": {"SupportLobs": true, "FullLobMode": true}})
}

async fn run(rules: &[&Rule]) -> Result<serde_json::Value, StepError> {
    let config = preflight::PreflightConfig {
        task_arn: TASK.into(),
        kind: dbsync_workflow::steps::replication::ReplicationKind::Task,
        notify_on_success: false,
        engine: dbsync_workflow::config::CopyEngine::Dms,
        table_mappings: None,
    };
    preflight::handle(&client(rules), &config, json!({"execution": "sync-x"}))
        .await
        .map(|o| serde_json::to_value(o).unwrap())
}

#[tokio::test]
async fn a_full_load_task_passes_with_its_endpoint_and_mappings() {
    let (t, e) = (
        task("stopped", MigrationTypeValue::FullLoad, good_settings()),
        endpoint("postgres", Some("SET session_replication_role = 'replica'")),
    );
    let out = run(&[&t, &e]).await.unwrap();
    assert_eq!(
        out["target"],
        json!({"server": "staging.abc.eu-west-1.rds.amazonaws.com", "port": 5432, "database": "app"})
    );
    assert_eq!(out["tableMappings"], MAPPINGS);
    assert_eq!(out["warnings"], json!([]));

    // Reported, not refused: limited LOBs, a logging error policy. No endpoint
    // setting for triggers is asked for (drop-fks switches them off itself).
    let settings = json!({"FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD"},
                          "TargetMetadata": {"SupportLobs": true, "LimitedSizeLobMode": true, "LobMaxSize": 64},
                          "ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR"}});
    let (t, e) = (
        task("ready", MigrationTypeValue::FullLoad, settings),
        endpoint("postgres", None),
    );
    let out = run(&[&t, &e]).await.unwrap();
    let w = out["warnings"].to_string();
    assert!(
        w.contains("64 KB") && w.contains("LOG_ERROR") && !w.contains("session_replication_role"),
        "{w}"
    );
}

#[tokio::test]
async fn a_task_that_would_break_staging_is_refused_saying_what_to_change() {
    for (kind, settings, want) in [
        (
            MigrationTypeValue::FullLoadAndCdc,
            good_settings(),
            "MigrationType to full-load",
        ),
        (
            MigrationTypeValue::Cdc,
            good_settings(),
            "MigrationType to full-load",
        ),
        (
            MigrationTypeValue::FullLoad,
            json!({"FullLoadSettings": {"TargetTablePrepMode": "DROP_AND_CREATE"}}),
            "TRUNCATE_BEFORE_LOAD",
        ),
        (
            MigrationTypeValue::FullLoad,
            json!({"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}}),
            "duplicates",
        ),
    ] {
        let (t, e) = (task("stopped", kind, settings), endpoint("postgres", None));
        let err = run(&[&t, &e]).await.unwrap_err();
        assert_eq!(err.name(), "ReplicationTaskMisconfigured");
        assert!(
            err.to_string().contains(want) && err.to_string().contains("nothing was changed"),
            "{err}"
        );
    }
    let (t, e) = (
        task("stopped", MigrationTypeValue::FullLoad, good_settings()),
        endpoint("mysql", None),
    );
    let err = run(&[&t, &e]).await.unwrap_err();
    assert_eq!(err.name(), "ReplicationTaskMisconfigured");
    assert!(err.to_string().contains("mysql"), "{err}");
}

#[tokio::test]
async fn a_busy_task_is_refused_before_anything_changes() {
    let (t, e) = (
        task("running", MigrationTypeValue::FullLoad, good_settings()),
        endpoint("postgres", None),
    );
    assert_eq!(
        run(&[&t, &e]).await.unwrap_err().name(),
        "ReplicationAlreadyRunning"
    );
    let (t, e) = (
        task("modifying", MigrationTypeValue::FullLoad, good_settings()),
        endpoint("postgres", None),
    );
    assert_eq!(
        run(&[&t, &e]).await.unwrap_err().name(),
        "ReplicationTaskNotReady"
    );
}
