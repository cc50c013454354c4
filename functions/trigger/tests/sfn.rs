//! trigger against real StartExecution/ListExecutions calls (moto), in
//! process and through the binary.

use std::{path::Path, time::SystemTime};

use aws_sdk_sfn::Client;
use dbsync_aws::sfn::StateMachine;
use dbsync_awstest::{unique, Moto, ACCOUNT};
use dbsync_lambda_test::{error_type, invoke_once, Outcome};
use dbsync_workflow::steps::trigger::{self, Outcome as Did};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_trigger");

fn scheduled() -> Value {
    serde_json::from_str(include_str!("../../../events/trigger.json")).unwrap()
}

async fn machine() -> (Client, String) {
    let client = Client::new(&Moto::shared().sdk_config().await);
    let out = client
        .create_state_machine()
        .name(unique("dbsync"))
        .definition(r#"{"StartAt":"Done","States":{"Done":{"Type":"Succeed"}}}"#)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/dbsync-sfn"))
        .send()
        .await
        .unwrap();
    (client, out.state_machine_arn().to_owned())
}

async fn stop_all(client: &Client, arn: &str) {
    let running = client
        .list_executions()
        .state_machine_arn(arn)
        .send()
        .await
        .unwrap();
    for e in running.executions() {
        client
            .stop_execution()
            .execution_arn(e.execution_arn())
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn starts_once_per_event() {
    let (client, arn) = machine().await;
    let sm = StateMachine::new(client.clone(), arn.clone());

    let first = trigger::handle(&sm, scheduled(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(first.outcome, Did::Started);
    assert!(first.started);
    assert_eq!(first.execution_name, "sync-20260101T080000Z");
    let exec_arn = first.execution_arn.clone().unwrap();
    let described = client
        .describe_execution()
        .execution_arn(&exec_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(described.input().unwrap()).unwrap(),
        json!({"source": "aws.events", "time": "2026-01-01T08:00:00Z"})
    );

    // Delivered again while its execution runs: nothing new.
    let again = trigger::handle(&sm, scheduled(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(again.outcome, Did::DuplicateDelivery);
    assert!(!again.started && again.execution_arn.is_none());
    assert!(
        again.message.contains("duplicate delivery"),
        "{}",
        again.message
    );

    // Delivered again after it finished (same name and input): ExecutionAlreadyExists.
    stop_all(&client, &arn).await;
    let late = trigger::handle(&sm, scheduled(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(late.outcome, Did::DuplicateDelivery);
    assert!(late.message.contains("exists already"), "{}", late.message);

    // Same time, different input (started by hand): the name is still taken.
    let by_hand = trigger::handle(
        &sm,
        json!({"time": "2026-01-01T08:00:00Z"}),
        SystemTime::now(),
    )
    .await
    .unwrap();
    assert_eq!(by_hand.outcome, Did::DuplicateDelivery);

    let all = client
        .list_executions()
        .state_machine_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        all.executions().len(),
        1,
        "exactly one execution was ever started"
    );
}

#[tokio::test]
async fn skips_while_another_sync_runs() {
    let (client, arn) = machine().await;
    let sm = StateMachine::new(client.clone(), arn.clone());
    let first = trigger::handle(&sm, scheduled(), SystemTime::now())
        .await
        .unwrap();
    assert!(first.started);

    // The next schedule (8 hours later) while the first still runs.
    let mut next = scheduled();
    next["time"] = json!("2026-01-01T16:00:00Z");
    let skipped = trigger::handle(&sm, next.clone(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(skipped.outcome, Did::AlreadyRunning);
    assert_eq!(skipped.running, vec!["sync-20260101T080000Z".to_owned()]);
    assert!(
        skipped
            .message
            .contains("sync-20260101T080000Z is still running"),
        "{}",
        skipped.message
    );

    // Once it has finished, the next one starts.
    stop_all(&client, &arn).await;
    let started = trigger::handle(&sm, next, SystemTime::now()).await.unwrap();
    assert_eq!(started.outcome, Did::Started);
    assert_eq!(started.execution_name, "sync-20260101T160000Z");
}

#[tokio::test]
async fn a_manual_start_uses_the_current_second() {
    let (client, arn) = machine().await;
    let sm = StateMachine::new(client, arn);
    let out = trigger::handle(
        &sm,
        json!({}),
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_601),
    )
    .await
    .unwrap();
    assert_eq!(out.execution_name, "sync-20260101T000001Z");
    assert!(out.started);
    assert_eq!(
        trigger::handle(&sm, json!({"time": "yesterday"}), SystemTime::now())
            .await
            .unwrap_err()
            .name(),
        "InvalidInput"
    );
}

#[tokio::test]
async fn the_binary_starts_a_sync_and_names_its_errors() {
    let (_, arn) = machine().await;
    let moto = Moto::shared().env();
    let mut env: Vec<(&str, &str)> = moto.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("STATE_MACHINE_ARN", &arn));
    match invoke_once(Path::new(BIN), &env, scheduled()) {
        Outcome::Response(v) => {
            assert_eq!(v["outcome"], "started");
            assert_eq!(v["executionName"], "sync-20260101T080000Z");
        }
        other => panic!("{other:?}"),
    }
    env.pop();
    assert_eq!(
        error_type(&invoke_once(Path::new(BIN), &env, scheduled())),
        "ConfigurationError"
    );
    let missing = format!("arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:nope");
    env.push(("STATE_MACHINE_ARN", &missing));
    assert_eq!(
        error_type(&invoke_once(Path::new(BIN), &env, scheduled())),
        "AwsServiceError"
    );
}
