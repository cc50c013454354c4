//! Lambda entry point of the `preflight` step: wiring only. The handler is
//! [`dbsync_workflow::steps::preflight`]; the configuration,
//! [`ReplicationConfig`] (only the task's ARN is used).

use dbsync_aws::{dms::DmsTask, sdk_config};
use dbsync_workflow::{
    lambda::serve,
    steps::{preflight, replication::ReplicationConfig},
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async {
            let config = ReplicationConfig::from_env()?;
            Ok((config, DmsTask::from_conf(&sdk_config().await)))
        },
        |(config, task), event, _deadline| preflight::handle(task, &config.task_arn, event),
    )
    .await
}
