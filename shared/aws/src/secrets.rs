//! The Secrets Manager adapter behind the [`SecretReader`] port.
//! IAM: `secretsmanager:GetSecretValue` on the secret (and `kms:Decrypt` on a
//! customer-managed key).

use aws_sdk_secretsmanager::Client;
use dbsync_workflow::{
    ports::{BoxFuture, SecretReader},
    StepError,
};
use tokio::sync::OnceCell;

use crate::{classify, error_code, sdk_config};

/// Secrets Manager, with a client built on first use (a function whose
/// database comes from a URL never loads the SDK configuration for it).
#[derive(Debug, Default)]
pub struct SecretsManager {
    client: OnceCell<Client>,
}

impl SecretsManager {
    /// A reader whose client is built from the environment on first use.
    pub fn lazy() -> Self {
        Self::default()
    }

    pub fn new(client: Client) -> Self {
        Self {
            client: OnceCell::new_with(Some(client)),
        }
    }

    async fn read(&self, arn: &str) -> Result<String, StepError> {
        let client = self
            .client
            .get_or_init(|| async { Client::new(&sdk_config().await) })
            .await;
        let out = match client.get_secret_value().secret_id(arn).send().await {
            Ok(out) => out,
            Err(e) => {
                return Err(match classify("GetSecretValue", &e) {
                    transient @ StepError::AwsTransient(_) => transient,
                    // Not found, access denied, KMS decryption, deleted: say which secret, and the code.
                    _ => StepError::SecretUnavailable(format!(
                        "{arn} ({})",
                        error_code(&e).unwrap_or("no error code")
                    )),
                });
            }
        };
        out.secret_string().map(str::to_owned).ok_or_else(|| {
            StepError::SecretInvalid(format!(
                "{arn}: it holds no SecretString (binary secrets are not supported)"
            ))
        })
    }
}

impl SecretReader for SecretsManager {
    fn secret_string<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<String, StepError>> {
        Box::pin(self.read(id))
    }
}
