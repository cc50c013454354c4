//! Lambda entry point of the `version-check` step: wiring only. The handler
//! is [`dbsync_workflow::steps::version_check`]; the configuration,
//! [`VersionConfig`], picks the source adapter once per cold start.

use std::sync::Arc;

use dbsync_aws::{s3::S3Source, sdk_config, secrets::SecretsManager};
use dbsync_db::{env, version::SqlVersionSource};
use dbsync_workflow::{
    lambda::serve,
    ports::{SecretReader, VersionSource},
    steps::version_check::{self, DirSource, VersionConfig},
    vars, StepError,
};

const APP: &str = "dbsync-version-check";

async fn source() -> Result<Box<dyn VersionSource>, StepError> {
    Ok(match VersionConfig::from_env()? {
        VersionConfig::S3 {
            bucket,
            production_key,
            staging_key,
            force_path_style,
        } => Box::new(S3Source::from_conf(
            &sdk_config().await,
            force_path_style,
            bucket,
            production_key,
            staging_key,
        )),
        VersionConfig::Sql { query } => {
            let timeouts = env::timeouts_from_env()?;
            let secrets: Arc<dyn SecretReader> = Arc::new(SecretsManager::lazy());
            let db = |url, secret| {
                env::connection_from_env(url, secret, APP, timeouts, Some(secrets.clone()))
            };
            Box::new(SqlVersionSource::new(
                db(vars::SOURCE_DATABASE_URL, vars::SOURCE_DB_SECRET_ARN)?,
                db(vars::DATABASE_URL, vars::DB_SECRET_ARN)?,
                query,
            ))
        }
        VersionConfig::File { dir } => Box::new(DirSource::new(dir)),
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(source(), |source, event, _deadline| {
        version_check::handle(source.as_ref(), event)
    })
    .await
}
