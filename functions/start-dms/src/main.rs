//! Lambda entry point of the `start-dms` step: wiring only (see `lib.rs`).

use dbsync_aws::dms::DmsTask;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Same variables as poll-dms; a bad configuration answers every invocation by name.
    let config = poll_dms::Config::from_env();
    let task = DmsTask::from_conf(&dbsync_aws::sdk_config().await);
    let (config, task) = (&config, &task);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let config = config.as_ref().map_err(Clone::clone)?;
        start_dms::handle(task, &config.task_arn, &config.poll, event.payload).await
    }))
    .await
}
