//! The Lambda's configuration, read once per cold start.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `VERSION_SOURCE` | `s3`, `sql` or `file` | `s3` |
//! | `VERSION_BUCKET` | bucket of the version objects (`s3`) | required for `s3` |
//! | `PRODUCTION_VERSION_KEY` / `STAGING_VERSION_KEY` | the objects' keys (`s3`) | `schema-version/production` / `schema-version/staging` |
//! | `S3_FORCE_PATH_STYLE` | `true`: path-style S3 URLs (S3 emulators, some endpoints) | `false` |
//! | `VERSION_QUERY` | query run on each database; first column of its one row (`sql`) | `select max(version)::text from schema_migrations` |
//! | `SOURCE_DATABASE_URL` / `SOURCE_DB_SECRET_ARN` | production (`sql`): URL or Secrets Manager secret | one required for `sql` |
//! | `DATABASE_URL` / `DB_SECRET_ARN` | staging (`sql`): URL or Secrets Manager secret | one required for `sql` |
//! | `DB_SSLMODE`, `DB_SSLROOTCERT`, `DB_STATEMENT_TIMEOUT_MS`, `DB_LOCK_TIMEOUT_MS` | as for the database steps, both connections | see `dbsync_db::env` |
//! | `VERSION_DIR` | directory with `production` and `staging` files (`file`) | required for `file` |
//!
//! Plus the SDK's own variables (`AWS_REGION`, `AWS_ENDPOINT_URL`, …).

use dbsync_db::env::{connection_from_env, timeouts_from_env};
use dbsync_workflow::{
    ports::{Side, VersionSource},
    StepError,
};

use crate::{s3::S3Source, DirSource, SqlSource};

/// The default query (also the template's default).
pub const DEFAULT_QUERY: &str = "select max(version)::text from schema_migrations";

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The source the environment selects.
pub enum Source {
    S3(S3Source),
    Sql(SqlSource<'static>),
    Dir(DirSource),
}

impl Source {
    /// Reads the configuration; `sdk` is loaded only when S3 needs it.
    pub async fn from_env(sdk: &dbsync_aws::SdkConfig) -> Result<Self, StepError> {
        match var("VERSION_SOURCE").as_deref().unwrap_or("s3") {
            "s3" => {
                let bucket = var("VERSION_BUCKET").ok_or_else(|| {
                    StepError::Configuration(
                        "set VERSION_BUCKET to the bucket holding the schema version objects"
                            .into(),
                    )
                })?;
                let path_style = match var("S3_FORCE_PATH_STYLE").as_deref() {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(_) => {
                        return Err(StepError::Configuration(
                            "S3_FORCE_PATH_STYLE must be true or false".into(),
                        ))
                    }
                };
                let conf = aws_sdk_s3::config::Builder::from(sdk)
                    .force_path_style(path_style)
                    .build();
                Ok(Source::S3(S3Source::new(
                    aws_sdk_s3::Client::from_conf(conf),
                    bucket,
                    var("PRODUCTION_VERSION_KEY")
                        .unwrap_or_else(|| "schema-version/production".into()),
                    var("STAGING_VERSION_KEY").unwrap_or_else(|| "schema-version/staging".into()),
                )))
            }
            "sql" => {
                let timeouts = timeouts_from_env()?;
                let app = "dbsync-version-check";
                Ok(Source::Sql(SqlSource::new(
                    connection_from_env(
                        "SOURCE_DATABASE_URL",
                        "SOURCE_DB_SECRET_ARN",
                        app,
                        timeouts,
                    )?,
                    connection_from_env("DATABASE_URL", "DB_SECRET_ARN", app, timeouts)?,
                    var("VERSION_QUERY").unwrap_or_else(|| DEFAULT_QUERY.into()),
                )))
            }
            "file" => Ok(Source::Dir(DirSource::new(var("VERSION_DIR").ok_or_else(
                || {
                    StepError::Configuration(
                        "set VERSION_DIR to the directory holding the production and staging files"
                            .into(),
                    )
                },
            )?))),
            other => Err(StepError::Configuration(format!(
                "VERSION_SOURCE {other:?} is not one of s3, sql, file"
            ))),
        }
    }
}

impl VersionSource for Source {
    async fn read(&self, side: Side) -> Result<String, StepError> {
        match self {
            Source::S3(s) => s.read(side).await,
            Source::Sql(s) => s.read(side).await,
            Source::Dir(s) => s.read(side).await,
        }
    }
}
