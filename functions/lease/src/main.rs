//! Lambda entry point of the `lease` step: wiring only. The handler is
//! [`dbsync_db::steps::lease`]; the configuration, [`StepEnv`].

use std::sync::Arc;

use dbsync_aws::secrets::SecretsManager;
use dbsync_db::{steps, StepEnv};
use dbsync_workflow::lambda::serve;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async {
            let secrets: Arc<SecretsManager> = Arc::new(SecretsManager::lazy());
            let mut env = StepEnv::from_env("dbsync-lease", Some(secrets.clone()))?;
            // deterministic: true reads its salt once per cold start.
            env.sync = dbsync_db::env::salted(env.sync, Some(secrets)).await?;
            Ok(env)
        },
        |env, event, deadline| steps::lease(env, event, env.budget(deadline.instant())),
    )
    .await
}
