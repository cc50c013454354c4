//! Lambda entry point of the `start-dms` step: wiring only. The handler is
//! [`dbsync_workflow::steps::start_dms`]; the configuration,
//! [`ReplicationConfig`] (shared with poll-dms).

use dbsync_aws::{dms::DmsTask, sdk_config};
use dbsync_workflow::{
    lambda::serve,
    steps::{replication::ReplicationConfig, start_dms},
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async {
            let config = ReplicationConfig::from_env()?;
            Ok((config, DmsTask::from_conf(&sdk_config().await)))
        },
        |(config, task), event, _deadline| {
            start_dms::handle(task, &config.task_arn, &config.poll, event)
        },
    )
    .await
}
