//! Lambda entry point of the `version-check` step: wiring only (see `lib.rs`).

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use version_check::lambda::Source;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Configuration is read once; a bad one answers every invocation by name.
    let source = Source::from_env(&dbsync_aws::sdk_config().await).await;
    let source = &source;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let source = source.as_ref().map_err(Clone::clone)?;
        version_check::handle(source, event.payload).await
    }))
    .await
}
