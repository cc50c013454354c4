//! Lambda entry point of the `fix-sequences` step: wiring only. The handler is
//! [`dbsync_db::steps::fix_sequences`]; the configuration, [`StepEnv`].

use std::sync::Arc;

use dbsync_aws::secrets::SecretsManager;
use dbsync_db::{steps, StepEnv};
use dbsync_workflow::lambda::serve;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async {
            StepEnv::from_env(
                "dbsync-fix-sequences",
                Some(Arc::new(SecretsManager::lazy())),
            )
        },
        |env, event, deadline| steps::fix_sequences(env, event, env.budget(deadline.instant())),
    )
    .await
}
