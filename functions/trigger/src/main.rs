//! Lambda entry point of the `trigger` step: wiring only (see `lib.rs`).

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use trigger::sfn::StateMachine;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Configuration is read once; a bad one answers every invocation by name.
    let sdk = dbsync_aws::sdk_config().await;
    let machine = StateMachine::from_env(&sdk);
    let machine = &machine;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let machine = machine.as_ref().map_err(Clone::clone)?;
        trigger::handle(machine, event.payload, std::time::SystemTime::now()).await
    }))
    .await
}
