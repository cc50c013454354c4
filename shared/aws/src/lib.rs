//! The AWS adapters of dbsync, and the SDK plumbing they share.
//!
//! - [`sdk_config`]: the one way to load the SDK configuration (standard
//!   retries, hyper + rustls on ring, `AWS_ENDPOINT_URL` honoured so tests
//!   can point every client at an emulator).
//! - [`classify`]: turns an SDK error into a stable [`StepError`] name:
//!   `AwsTransientError` for what can pass (throttling, 5xx, network,
//!   timeouts — after the SDK has already retried them), `AwsServiceError`
//!   for the rest. Steps check the specific codes they care about first.
//! - `dms` (feature `dms`): DMS behind the task ports (start-dms, poll-dms).
//! - `s3` (feature `s3`): schema versions as S3 objects (version-check).
//! - `sfn` (feature `sfn`): the state machine behind the `Executions` port (trigger).
//! - `secrets` (feature `secrets`): Secrets Manager behind the `SecretReader`
//!   port (every database connection given as a secret).
//!
//! Depends only on the core crate. The local CLI never links this crate:
//! handlers are generic over the ports.

pub use aws_config::SdkConfig;
use aws_config::{retry::RetryConfig, BehaviorVersion, ConfigLoader};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};
use aws_smithy_types::error::{display::DisplayErrorContext, metadata::ProvideErrorMetadata};
use dbsync_workflow::StepError;

#[cfg(feature = "dms")]
pub mod dms;
#[cfg(feature = "dms")]
pub mod dms_serverless;
#[cfg(feature = "dms")]
pub mod replication;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "secrets")]
pub mod secrets;
#[cfg(feature = "sfn")]
pub mod sfn;
#[cfg(feature = "test-util")]
pub mod testing;

/// Attempts per AWS call (first try included). Standard mode backs off
/// exponentially with jitter and only retries what the SDK classifies as
/// transient (throttling, 5xx, I/O, timeouts).
pub const MAX_ATTEMPTS: u32 = 4;

/// The retry policy of every client (also used by the mocked clients in tests).
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

/// Loads the SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`/`AWS_ENDPOINT_URL_<SERVICE>`), once per cold start.
pub async fn sdk_config() -> SdkConfig {
    config_loader().load().await
}

/// The loader behind [`sdk_config`], for callers that set more (tests).
pub fn config_loader() -> ConfigLoader {
    // ring, not the default aws-lc: one crypto provider across the workspace
    // (tokio-postgres-rustls uses ring) and a C-free cross-build for arm64.
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(retry_config())
}

/// Error codes AWS services use for throttling (the SDK retried them already).
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException",
];

/// The service's error code, when the service answered with one.
pub fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(ctx) => ctx.err().code(),
        _ => None,
    }
}

/// The service's error message, when the service answered with one.
pub fn error_message<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(ctx) => ctx.err().message(),
        _ => None,
    }
}

/// Names an SDK error. `action` says what was attempted (`"GetObject s3://b/k"`);
/// it lands in the execution's visible `Cause`, so it must never hold a secret.
pub fn classify<E>(action: &str, err: &SdkError<E, HttpResponse>) -> StepError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or("Unknown");
            let message = ctx.err().message().unwrap_or("no message");
            let status = ctx.raw().status().as_u16();
            let what = format!("{action}: {code}: {message}");
            if status >= 500 || THROTTLING.contains(&code) {
                StepError::AwsTransient(what)
            } else {
                StepError::AwsService(what)
            }
        }
        SdkError::TimeoutError(_) => StepError::AwsTransient(format!("{action}: timed out")),
        SdkError::DispatchFailure(d) if d.is_user() => {
            // e.g. a bad endpoint URL or missing credentials: retrying will not help.
            StepError::AwsService(format!("{action}: {}", DisplayErrorContext(err)))
        }
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StepError::AwsTransient(format!("{action}: {}", DisplayErrorContext(err)))
        }
        _ => StepError::AwsService(format!(
            "{action}: {}; check the function's region, credentials and endpoint settings",
            DisplayErrorContext(err)
        )),
    }
}
