//! Connection settings from a secret (`DB_SECRET_ARN`): the JSON shape of
//! secrets rotated by a Lambda function (`host`, `port`, `username`,
//! `password`, `dbname`), or an RDS-managed master secret's credentials
//! alone with the endpoint from the deployment, read through the [`SecretReader`] port (Secrets Manager in the
//! Lambdas: `dbsync-aws`).
//!
//! The secret is read when the first session opens (once per cold start) and
//! again after the server rejects the credentials (the secret may have been
//! rotated): [`Db`](crate::Db) calls the loader with `refresh = true`.
//! Neither the secret string nor the password ever reaches a log line or an
//! error message; errors name the secret by its ARN only.

use std::sync::Arc;

use dbsync_workflow::ports::SecretReader;

use crate::{connect::Endpoint, ConfigLoader, DbConfig};

/// Finishes a configuration read from the secret (TLS, timeouts, application name).
pub type Finish = Arc<dyn Fn(DbConfig) -> DbConfig + Send + Sync>;

/// A loader for [`Db::with_loader`](crate::Db::with_loader) that reads `arn` with `reader`.
pub fn loader(arn: String, reader: Arc<dyn SecretReader>, finish: Finish) -> ConfigLoader {
    loader_at(arn, reader, Endpoint::default(), finish)
}

/// [`loader`] for a secret that may hold only credentials: what it lacks
/// (host, port, database) comes from `endpoint`.
pub fn loader_at(
    arn: String,
    reader: Arc<dyn SecretReader>,
    endpoint: Endpoint,
    finish: Finish,
) -> ConfigLoader {
    let (arn, endpoint) = (Arc::new(arn), Arc::new(endpoint));
    Arc::new(move |refresh| {
        let (reader, arn, finish, endpoint) = (
            reader.clone(),
            arn.clone(),
            finish.clone(),
            endpoint.clone(),
        );
        Box::pin(async move {
            tracing::info!(secret = %arn, refresh, "reading the database secret");
            let text = reader.secret_string(&arn).await?;
            Ok(finish(DbConfig::from_secret_json_at(
                &arn, &text, &endpoint,
            )?))
        })
    })
}
