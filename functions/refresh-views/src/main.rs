//! Lambda entry point of the `refresh-views` step: wiring only. The handler is
//! [`dbsync_db::steps::refresh_views`]; the configuration, [`StepEnv`].

use std::sync::Arc;

use dbsync_aws::secrets::SecretsManager;
use dbsync_db::{steps, StepEnv};
use dbsync_workflow::lambda::serve;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(
        async {
            StepEnv::from_env(
                "dbsync-refresh-views",
                Some(Arc::new(SecretsManager::lazy())),
            )
        },
        |env, event, deadline| steps::refresh_views(env, event, env.budget(deadline.instant())),
    )
    .await
}
