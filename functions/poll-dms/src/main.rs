//! Lambda entry point of the `poll-dms` step: wiring only. The handler is
//! [`dbsync_workflow::steps::poll_dms`]; the configuration,
//! [`ReplicationConfig`] (shared with start-dms).

// Serving a future that dispatches between the task and the serverless
// adapter nests deeper than the compiler's default layout limit.
#![recursion_limit = "256"]

use dbsync_aws::{replication::Replication, sdk_config};
use dbsync_workflow::{
    lambda::serve,
    steps::{poll_dms, replication::ReplicationConfig},
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async {
            let config = ReplicationConfig::from_env()?;
            // A task or a serverless replication config, by the ARN's kind.
            let task =
                Replication::from_conf(config.kind, &sdk_config().await).with_table_statistics();
            Ok((config, task))
        },
        |(config, task), event, _deadline| {
            poll_dms::handle(task, &config.task_arn, &config.poll, event)
        },
    )
    .await
}
