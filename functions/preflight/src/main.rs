//! Lambda entry point of the `preflight` step: wiring only. The handler is
//! [`dbsync_workflow::steps::preflight`]; the configuration,
//! [`PreflightConfig`].

use dbsync_aws::{dms::DmsTask, sdk_config};
use dbsync_workflow::{
    lambda::serve,
    steps::preflight::{self, PreflightConfig},
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async {
            let config = PreflightConfig::from_env()?;
            Ok((config, DmsTask::from_conf(&sdk_config().await)))
        },
        |(config, task), event, _deadline| preflight::handle(task, config, event),
    )
    .await
}
