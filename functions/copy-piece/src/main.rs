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
        async {
            let secrets: Arc<SecretsManager> = Arc::new(SecretsManager::lazy());
            let mut env = CopyEnv::from_env("dbsync-copy-piece", Some(secrets.clone()))?;
            // deterministic: true reads its salt once per cold start.
            env.step.sync = dbsync_db::env::salted(env.step.sync, Some(secrets)).await?;
            Ok(env)
        },
        |env, event, deadline| copy_lane(env, event, env.step.budget(deadline.instant())),
    )
    .await
}
