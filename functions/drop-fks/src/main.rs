//! Lambda entry point of the `drop-fks` step: wiring only. The handler is
//! [`dbsync_db::steps::drop_fks`]; the configuration, [`StepEnv`].

use std::sync::Arc;

use dbsync_aws::secrets::SecretsManager;
use dbsync_db::{steps, StepEnv};
use dbsync_workflow::lambda::serve;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async { StepEnv::from_env("dbsync-drop-fks", Some(Arc::new(SecretsManager::lazy()))) },
        |env, event, deadline| steps::drop_fks(env, event, env.budget(deadline.instant())),
    )
    .await
}
