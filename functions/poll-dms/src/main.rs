//! Lambda entry point of the `poll-dms` step: wiring only. The handler is
//! [`dbsync_workflow::steps::poll_dms`]; the configuration,
//! [`ReplicationConfig`] (shared with start-dms).

use dbsync_aws::{dms::DmsTask, sdk_config};
use dbsync_workflow::{
    lambda::serve,
    steps::{poll_dms, replication::ReplicationConfig},
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async {
            let config = ReplicationConfig::from_env()?;
            let task = DmsTask::from_conf(&sdk_config().await).with_table_statistics();
            Ok((config, task))
        },
        |(config, task), event, _deadline| {
            poll_dms::handle(task, &config.task_arn, &config.poll, event)
        },
    )
    .await
}
