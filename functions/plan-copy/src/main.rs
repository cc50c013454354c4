//! Lambda entry point of the `plan-copy` step (the Lambda engine's plan,
//! finish and stop): wiring only. The handler is
//! [`dbsync_replicate::pieces::plan_copy`]; the configuration, [`CopyEnv`].

use std::sync::Arc;

use dbsync_aws::secrets::SecretsManager;
use dbsync_replicate::pieces::{plan_copy, CopyEnv};
use dbsync_workflow::lambda::serve;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async {
            let secrets: Arc<SecretsManager> = Arc::new(SecretsManager::lazy());
            let mut env = CopyEnv::from_env("dbsync-plan-copy", Some(secrets.clone()))?;
            // deterministic: true reads its salt once per cold start.
            env.step.sync = dbsync_db::env::salted(env.step.sync, Some(secrets)).await?;
            Ok(env)
        },
        |env, event, deadline| plan_copy(env, event, env.step.budget(deadline.instant())),
    )
    .await
}
