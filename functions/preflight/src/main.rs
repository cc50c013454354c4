//! Lambda entry point of the `preflight` step: wiring only. The handler is
//! [`dbsync_workflow::steps::preflight`]; the configuration,
//! [`PreflightConfig`].

// Serving a future that dispatches between the task and the serverless
// adapter nests deeper than the compiler's default layout limit.
#![recursion_limit = "256"]

use dbsync_aws::{replication::Replication, sdk_config};
use dbsync_workflow::{
    lambda::serve,
    steps::preflight::{self, PreflightConfig},
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async {
            let config = PreflightConfig::from_env()?;
            let dms = Replication::from_conf(config.kind, &sdk_config().await);
            Ok((config, dms))
        },
        |(config, task), event, _deadline| preflight::handle(task, config, event),
    )
    .await
}
