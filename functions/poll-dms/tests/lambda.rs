//! The `poll-dms` binary driven through the Lambda Runtime API: its wiring,
//! configuration errors, and a real (moto) DMS endpoint that does not know the task.

use std::path::Path;

use dbsync_awstest::Moto;
use dbsync_lambda_test::{error_type, invoke_once};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_poll-dms");

fn sample() -> Value {
    serde_json::from_str(include_str!("../../../events/poll-dms.json")).unwrap()
}

#[test]
fn answers_with_names() {
    let moto = Moto::shared().env();
    let mut env: Vec<(&str, &str)> = moto.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push((
        "REPLICATION_TASK_ARN",
        "arn:aws:dms:us-east-1:123456789012:task:NOSUCHTASK",
    ));
    let out = invoke_once(Path::new(BIN), &env, sample());
    assert_eq!(error_type(&out), "ReplicationTaskNotFound", "{out:?}");

    env.push(("POLL_MIN_SECONDS", "600"));
    env.push(("POLL_MAX_SECONDS", "60"));
    assert_eq!(
        error_type(&invoke_once(Path::new(BIN), &env, sample())),
        "ConfigurationError"
    );
    assert_eq!(
        error_type(&invoke_once(Path::new(BIN), &[], sample())),
        "ConfigurationError"
    );
    let bad_arn = [("REPLICATION_TASK_ARN", "my-task")];
    assert_eq!(
        error_type(&invoke_once(Path::new(BIN), &bad_arn, sample())),
        "ConfigurationError"
    );
}
