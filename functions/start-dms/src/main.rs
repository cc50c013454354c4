//! Lambda entry point of the `start-dms` step: wiring only. The handler is
//! [`dbsync_workflow::steps::start_dms`]; the configuration,
//! [`ReplicationConfig`] (shared with poll-dms).

// Serving a future that dispatches between the task and the serverless
// adapter nests deeper than the compiler's default layout limit.
#![recursion_limit = "256"]

use dbsync_aws::{replication::Replication, sdk_config};
use dbsync_workflow::{
    lambda::serve,
    steps::{replication::ReplicationConfig, start_dms},
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async {
            let config = ReplicationConfig::from_env()?;
            // A task or a serverless replication config, by the ARN's kind.
            let dms = Replication::from_conf(config.kind, &sdk_config().await);
            Ok((config, dms))
        },
        |(config, task), event, _deadline| {
            start_dms::handle(task, &config.task_arn, &config.poll, event)
        },
    )
    .await
}
