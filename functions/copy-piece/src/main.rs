//! Lambda entry point of the `copy-piece` step (one lane of the Lambda
//! engine's copy): wiring only. The handler is
//! [`dbsync_replicate::pieces::copy_lane`]; the configuration, [`CopyEnv`].

use std::sync::Arc;

use dbsync_aws::secrets::SecretsManager;
use dbsync_replicate::pieces::{copy_lane, CopyEnv};
use dbsync_workflow::lambda::serve;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async { CopyEnv::from_env("dbsync-copy-piece", Some(Arc::new(SecretsManager::lazy()))) },
        |env, event, deadline| copy_lane(env, event, env.step.budget(deadline.instant())),
    )
    .await
}
