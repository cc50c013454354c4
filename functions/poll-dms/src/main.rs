//! Lambda entry point of the `poll-dms` step: wiring only (see `lib.rs`).

use dbsync_aws::dms::DmsTask;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Configuration is read once; a bad one answers every invocation by name.
    let config = poll_dms::Config::from_env();
    let task = DmsTask::from_conf(&dbsync_aws::sdk_config().await).with_row_counts();
    let (config, task) = (&config, &task);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let config = config.as_ref().map_err(Clone::clone)?;
        poll_dms::handle(task, &config.task_arn, &config.poll, event.payload).await
    }))
    .await
}
