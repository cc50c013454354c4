//! Connection settings from a Secrets Manager secret (`DB_SECRET_ARN`), in the
//! JSON shape RDS-managed secrets use (`host`, `port`, `username`,
//! `password`, `dbname`).
//!
//! The secret is fetched when the first session opens (once per cold start)
//! and again after the server rejects the credentials (the secret may have
//! been rotated): [`Db`](crate::Db) calls the loader with `refresh = true`.
//! Neither the secret string nor the password ever reaches a log line or an
//! error message; errors name the secret by its ARN only.

use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use dbsync_workflow::StepError;
use tokio::sync::OnceCell;

use crate::{ConfigLoader, DbConfig};

/// Finishes a configuration read from the secret (TLS, timeouts, application name).
pub type Finish = Arc<dyn Fn(DbConfig) -> DbConfig + Send + Sync>;

/// Reads the secret `arn` and parses it.
pub async fn fetch(client: &Client, arn: &str) -> Result<DbConfig, StepError> {
    let out = match client.get_secret_value().secret_id(arn).send().await {
        Ok(out) => out,
        Err(e) => {
            return Err(match dbsync_aws::classify("GetSecretValue", &e) {
                transient @ StepError::AwsTransient(_) => transient,
                // Not found, access denied, KMS decryption, deleted: say which secret, and the code.
                _ => StepError::SecretUnavailable(format!(
                    "{arn} ({})",
                    dbsync_aws::error_code(&e).unwrap_or("no error code")
                )),
            });
        }
    };
    let text = out.secret_string().ok_or_else(|| {
        StepError::SecretInvalid(format!(
            "{arn}: it holds no SecretString (binary secrets are not supported)"
        ))
    })?;
    DbConfig::from_secret_json(text).map_err(|e| match e {
        // from_secret_json never quotes the secret; keep its explanation, name the secret.
        StepError::Configuration(m) => StepError::SecretInvalid(format!(
            "{arn}: {}",
            m.strip_prefix("the database secret ").unwrap_or(&m)
        )),
        other => other,
    })
}

/// A loader for [`Db::with_loader`](crate::Db::with_loader) that reads `arn`
/// with `client` (built lazily from the environment when `None`).
pub fn loader(arn: String, client: Option<Client>, finish: Finish) -> ConfigLoader {
    let client = Arc::new(match client {
        Some(c) => OnceCell::new_with(Some(c)),
        None => OnceCell::new(),
    });
    let arn = Arc::new(arn);
    Arc::new(move |refresh| {
        let (client, arn, finish) = (client.clone(), arn.clone(), finish.clone());
        Box::pin(async move {
            let client = client
                .get_or_init(|| async { Client::new(&dbsync_aws::sdk_config().await) })
                .await;
            tracing::info!(secret = %arn, refresh, "reading the database secret");
            Ok(finish(fetch(client, &arn).await?))
        })
    })
}
