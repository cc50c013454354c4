//! Versions as S3 objects, one per environment (the seed's way).
//! IAM: `s3:GetObject` on the two keys.

use aws_sdk_s3::Client;
use dbsync_workflow::{
    ports::{BoxFuture, Side, VersionSource},
    StepError,
};

use dbsync_workflow::steps::version_check::parse_version;

/// Objects above this size cannot be a version; they are refused unread.
const MAX_OBJECT_BYTES: i64 = 4096;

#[derive(Debug, Clone)]
pub struct S3Source {
    client: Client,
    bucket: String,
    production_key: String,
    staging_key: String,
}

impl S3Source {
    pub fn new(
        client: Client,
        bucket: String,
        production_key: String,
        staging_key: String,
    ) -> Self {
        Self {
            client,
            bucket,
            production_key,
            staging_key,
        }
    }

    /// A client from the SDK configuration; `force_path_style` for S3
    /// emulators and endpoints that need path-style URLs.
    pub fn from_conf(
        sdk: &crate::SdkConfig,
        force_path_style: bool,
        bucket: String,
        production_key: String,
        staging_key: String,
    ) -> Self {
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(force_path_style)
            .build();
        Self::new(Client::from_conf(conf), bucket, production_key, staging_key)
    }
}

impl VersionSource for S3Source {
    fn read(&self, side: Side) -> BoxFuture<'_, Result<String, StepError>> {
        Box::pin(self.read_object(side))
    }
}

impl S3Source {
    async fn read_object(&self, side: Side) -> Result<String, StepError> {
        let key = match side {
            Side::Production => &self.production_key,
            Side::Staging => &self.staging_key,
        };
        let url = format!("s3://{}/{key}", self.bucket);
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return Err(match crate::error_code(&e) {
                    Some("NoSuchKey" | "NoSuchBucket" | "NotFound") => {
                        StepError::VersionUnavailable(format!("{}: no object {url}", side.as_str()))
                    }
                    _ => crate::classify(&format!("GetObject {url}"), &e),
                })
            }
        };
        if let Some(n) = out.content_length().filter(|n| *n > MAX_OBJECT_BYTES) {
            return Err(StepError::VersionInvalid(format!(
                "{}: {url} is {n} bytes",
                side.as_str()
            )));
        }
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StepError::AwsTransient(format!("reading {url}: {e}")))?
            .into_bytes();
        parse_version(side, &body)
    }
}
