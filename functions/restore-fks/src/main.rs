//! Lambda entry point of the `restore-fks` step: wiring only. The handler is
//! [`dbsync_db::steps::restore_fks`]; the configuration, [`StepEnv`].

use std::sync::Arc;

use dbsync_aws::secrets::SecretsManager;
use dbsync_db::{steps, StepEnv};
use dbsync_workflow::lambda::serve;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async { StepEnv::from_env("dbsync-restore-fks", Some(Arc::new(SecretsManager::lazy()))) },
        |env, event, deadline| steps::restore_fks(env, event, env.budget(deadline.instant())),
    )
    .await
}
