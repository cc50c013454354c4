//! Lambda entry point of the `trigger` step: wiring only. The handler is
//! [`dbsync_workflow::steps::trigger`]; the configuration, [`TriggerConfig`].

use std::time::SystemTime;

use dbsync_aws::{sdk_config, sfn::StateMachine};
use dbsync_workflow::{
    lambda::serve,
    steps::trigger::{self, TriggerConfig},
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async {
            let config = TriggerConfig::from_env()?;
            Ok(StateMachine::from_conf(
                &sdk_config().await,
                config.state_machine_arn,
            ))
        },
        |machine, event, _deadline| trigger::handle(machine, event, SystemTime::now()),
    )
    .await
}
