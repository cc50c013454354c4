//! The Lambda glue (feature `lambda`): how a [`StepError`] reaches Step
//! Functions, and the one [`serve`] every function's `main.rs` calls.

use std::{
    future::Future,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;

use crate::StepError;

impl From<StepError> for Diagnostic {
    fn from(e: StepError) -> Self {
        Diagnostic {
            error_type: e.name().to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// When the current invocation must have answered (Lambda's deadline).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    epoch_ms: u64,
}

impl Deadline {
    pub fn from_epoch_ms(epoch_ms: u64) -> Self {
        Self { epoch_ms }
    }

    /// The deadline as a local instant.
    pub fn instant(&self) -> Instant {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Instant::now() + Duration::from_millis(self.epoch_ms.saturating_sub(now_ms))
    }
}

/// Runs a step under the Lambda runtime until the runtime stops it.
///
/// `init` builds the step's dependencies (configuration, clients, the
/// database handle) once per cold start. A failure there does not crash the
/// cold start: every invocation answers with it by name (usually
/// `ConfigurationError`), so Step Functions sees a name, not `Lambda.Unknown`.
/// The runtime logs every returned error itself; handlers do not log and
/// return the same error.
pub async fn serve<D, H, F, O>(
    init: impl Future<Output = Result<D, StepError>>,
    handler: H,
) -> Result<(), lambda_runtime::Error>
where
    D: Sync + 'static,
    H: Fn(&'static D, Value, Deadline) -> F,
    F: Future<Output = Result<O, StepError>>,
    O: Serialize,
{
    lambda_runtime::tracing::init_default_subscriber();
    // Lives for the whole process: leaking it lets handlers borrow it across awaits.
    let deps: &'static Result<D, StepError> = Box::leak(Box::new(init.await));
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deps = deps.as_ref().map_err(Clone::clone)?;
        handler(
            deps,
            event.payload,
            Deadline::from_epoch_ms(event.context.deadline),
        )
        .await
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::tests::samples;

    #[test]
    fn diagnostics_are_pinned() {
        // The serialized form is what Step Functions sees; pin it exactly.
        let d: Diagnostic = StepError::TargetNotOptedIn {
            database: "staging".into(),
            marker: None,
        }
        .into();
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({
                "errorType": "TargetNotOptedIn",
                "errorMessage": "database \"staging\" is not opted in as a sync target; run `dbsync init-target` (or the SQL in the README) against the staging database once, and never against production"
            })
        );
        let d: Diagnostic = StepError::LockTimeout("dropping foreign keys".into()).into();
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({
                "errorType": "LockTimeout",
                "errorMessage": "timed out waiting for a lock (dropping foreign keys); another session holds it — retry, or find the blocker in pg_stat_activity"
            })
        );
        for e in samples() {
            let name = e.name();
            let msg = e.to_string();
            let d: Diagnostic = e.into();
            assert_eq!(d.error_type, name);
            assert_eq!(d.error_message, msg);
        }
    }

    #[test]
    fn aws_step_diagnostics_are_pinned() {
        // One exact serialized Diagnostic per name the AWS-facing steps raise.
        let pinned = [
            (
                StepError::AwsTransient("ThrottlingException: Rate exceeded".into()),
                "AwsTransientError",
                "AWS is temporarily unavailable (ThrottlingException: Rate exceeded); the call was retried already — retry later",
            ),
            (
                StepError::AwsService("GetObject: AccessDenied: Access Denied".into()),
                "AwsServiceError",
                "AWS call failed: GetObject: AccessDenied: Access Denied",
            ),
            (
                StepError::SecretUnavailable("arn:aws:secretsmanager:us-east-1:123456789012:secret:db".into()),
                "SecretUnavailable",
                "cannot read the database secret arn:aws:secretsmanager:us-east-1:123456789012:secret:db; check the ARN and that the function may call secretsmanager:GetSecretValue (and kms:Decrypt)",
            ),
            (
                StepError::SecretInvalid("arn:aws:secretsmanager:us-east-1:123456789012:secret:db: missing field `host`".into()),
                "SecretInvalid",
                "unusable database secret arn:aws:secretsmanager:us-east-1:123456789012:secret:db: missing field `host`; fix the secret's JSON (RDS format: host, port, username, password, dbname)",
            ),
            (
                StepError::VersionUnavailable("production: no object s3://b/prod".into()),
                "VersionUnavailable",
                "schema version unavailable: production: no object s3://b/prod; nothing was changed — publish the version (or fix the source) and run again",
            ),
            (
                StepError::VersionInvalid("staging: empty".into()),
                "VersionInvalid",
                "schema version invalid: staging: empty; a version is one non-empty line of at most 200 characters",
            ),
            (
                StepError::ReplicationTaskNotFound("arn:aws:dms:us-east-1:123456789012:task:T".into()),
                "ReplicationTaskNotFound",
                "replication task not found: arn:aws:dms:us-east-1:123456789012:task:T; check REPLICATION_TASK_ARN",
            ),
            (
                StepError::ReplicationAlreadyRunning("running".into()),
                "ReplicationAlreadyRunning",
                "replication task is already running; another load is in progress — let it finish (or stop it) and run again",
            ),
            (
                StepError::ReplicationTaskNotReady("modifying".into()),
                "ReplicationTaskNotReady",
                "replication task cannot start now: modifying; wait until it is ready or stopped and run again",
            ),
            (
                StepError::ReplicationFailed("Stop Reason FATAL_ERROR".into()),
                "ReplicationFailed",
                "replication failed: Stop Reason FATAL_ERROR",
            ),
            (
                StepError::ReplicationTimedOut("running for 43260 s".into()),
                "ReplicationTimedOut",
                "replication timed out: running for 43260 s; the task was stopped — find out why the load is slow (task logs, instance size) or raise MAX_REPLICATION_SECONDS",
            ),
        ];
        for (e, name, message) in pinned {
            let d: Diagnostic = e.into();
            assert_eq!(
                serde_json::to_value(&d).unwrap(),
                serde_json::json!({"errorType": name, "errorMessage": message})
            );
        }
    }
}
