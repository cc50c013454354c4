//! `version-check`: reads production's and staging's schema versions and
//! compares them. Nothing changes anywhere; a version that cannot be read or
//! is not a plausible value fails closed (`VersionUnavailable`,
//! `VersionInvalid`, or the database's own error names).
//!
//! Input: any object. Output: [`VersionCheckOutput`]
//! `{inSync, prodVersion, stagingVersion}`; the state machine's Choice sends a
//! mismatch to its `SchemaVersionMismatch` Fail state.
//!
//! Sources, each a [`VersionSource`]:
//! - [`DirSource`]: files `<dir>/production` and `<dir>/staging` (local mode).
//! - `SqlVersionSource` (`dbsync-db`): one query run on each database, e.g.
//!   `select max(version)::text from schema_migrations` (first column of the
//!   single row, any type, as text).
//! - `S3Source` (`dbsync-aws`): one object per environment.
//!
//! A version is one line: surrounding whitespace is trimmed; empty, multi-line,
//! non-UTF-8 or longer than [`MAX_LEN`] characters is rejected. The Lambda's
//! configuration: [`VersionConfig`].

use std::path::PathBuf;

use serde_json::Value;

use crate::{
    config,
    io::{parse_input, VersionCheckOutput},
    ports::{BoxFuture, Side, VersionSource},
    vars, StepError,
};

/// The longest version accepted (a migration id, a date, a semver, a hash…).
pub const MAX_LEN: usize = 200;

/// Checks and trims one side's raw version. Errors describe the value's shape,
/// never repeat it whole (it may be anything).
pub fn parse_version(side: Side, raw: &[u8]) -> Result<String, StepError> {
    let side = side.as_str();
    let text = std::str::from_utf8(raw)
        .map_err(|_| StepError::VersionInvalid(format!("{side}: the value is not UTF-8 text")))?;
    let v = text.trim();
    if v.is_empty() {
        return Err(StepError::VersionInvalid(format!(
            "{side}: the value is empty"
        )));
    }
    if v.lines().nth(1).is_some() {
        return Err(StepError::VersionInvalid(format!(
            "{side}: the value has more than one line"
        )));
    }
    let len = v.chars().count();
    if len > MAX_LEN {
        return Err(StepError::VersionInvalid(format!(
            "{side}: the value is {len} characters long"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(StepError::VersionInvalid(format!(
            "{side}: the value contains control characters"
        )));
    }
    Ok(v.to_owned())
}

/// Reads both versions (concurrently) and compares them.
pub async fn handle(
    source: &dyn VersionSource,
    event: Value,
) -> Result<VersionCheckOutput, StepError> {
    let _: serde::de::IgnoredAny = parse_input(event)?;
    let (prod, staging) = tokio::join!(source.read(Side::Production), source.read(Side::Staging));
    let (prod_version, staging_version) = (prod?, staging?);
    let in_sync = prod_version == staging_version;
    tracing::info!(production = %prod_version, staging = %staging_version, in_sync, "schema versions");
    Ok(VersionCheckOutput {
        in_sync,
        prod_version,
        staging_version,
    })
}

/// Versions in two files of one directory: `<dir>/production`, `<dir>/staging`.
#[derive(Debug, Clone)]
pub struct DirSource {
    dir: PathBuf,
}

impl DirSource {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self, side: Side) -> PathBuf {
        self.dir.join(side.as_str())
    }
}

impl VersionSource for DirSource {
    fn read(&self, side: Side) -> BoxFuture<'_, Result<String, StepError>> {
        Box::pin(self.read_file(side))
    }
}

impl DirSource {
    async fn read_file(&self, side: Side) -> Result<String, StepError> {
        let path = self.path(side);
        // A version file is one short line; refuse to slurp anything big.
        let meta = tokio::fs::metadata(&path).await.map_err(|e| {
            StepError::VersionUnavailable(format!(
                "{}: cannot read {}: {e}",
                side.as_str(),
                path.display()
            ))
        })?;
        if meta.len() > 4096 {
            return Err(StepError::VersionInvalid(format!(
                "{}: {} is {} bytes",
                side.as_str(),
                path.display(),
                meta.len()
            )));
        }
        let raw = tokio::fs::read(&path).await.map_err(|e| {
            StepError::VersionUnavailable(format!(
                "{}: cannot read {}: {e}",
                side.as_str(),
                path.display()
            ))
        })?;
        parse_version(side, &raw)
    }
}

/// The default query (also the template's default).
pub const DEFAULT_QUERY: &str = "select max(version)::text from schema_migrations";

#[cfg(test)]
#[test]
fn the_default_query_is_the_one_vars_names() {
    assert_eq!(DEFAULT_QUERY, vars::default(vars::VERSION_QUERY));
}

/// Where the Lambda reads versions, read once per cold start.
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `VERSION_SOURCE` | `s3`, `sql` or `file` | `s3` |
/// | `VERSION_BUCKET` | bucket of the version objects (`s3`) | required for `s3` |
/// | `PRODUCTION_VERSION_KEY` / `STAGING_VERSION_KEY` | the objects' keys (`s3`) | `schema-version/production` / `schema-version/staging` |
/// | `S3_FORCE_PATH_STYLE` | `true`: path-style S3 URLs (S3 emulators, some endpoints) | `false` |
/// | `VERSION_QUERY` | query run on each database; first column of its one row (`sql`) | `select max(version)::text from schema_migrations` |
/// | `SOURCE_DATABASE_URL` / `SOURCE_DB_SECRET_ARN` | production (`sql`): URL or Secrets Manager secret | one required for `sql` |
/// | `DATABASE_URL` / `DB_SECRET_ARN` | staging (`sql`): URL or Secrets Manager secret | one required for `sql` |
/// | `DB_SSLMODE`, `DB_SSLROOTCERT`, `DB_STATEMENT_TIMEOUT_MS`, `DB_LOCK_TIMEOUT_MS` | as for the database steps, both connections | see `dbsync_db::env` |
/// | `VERSION_DIR` | directory with `production` and `staging` files (`file`) | required for `file` |
///
///
/// Plus the SDK's own variables (`AWS_REGION`, `AWS_ENDPOINT_URL`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionConfig {
    S3 {
        bucket: String,
        production_key: String,
        staging_key: String,
        force_path_style: bool,
    },
    /// The connections come from the database variables (see `dbsync_db::env`).
    Sql {
        query: String,
    },
    File {
        dir: PathBuf,
    },
}

impl VersionConfig {
    pub fn from_env() -> Result<Self, StepError> {
        match config::var(vars::VERSION_SOURCE)
            .as_deref()
            .unwrap_or(vars::default(vars::VERSION_SOURCE))
        {
            "s3" => Ok(VersionConfig::S3 {
                bucket: config::required(
                    vars::VERSION_BUCKET,
                    "the bucket holding the schema version objects",
                )?,
                production_key: config::var(vars::PRODUCTION_VERSION_KEY)
                    .unwrap_or_else(|| vars::default(vars::PRODUCTION_VERSION_KEY).into()),
                staging_key: config::var(vars::STAGING_VERSION_KEY)
                    .unwrap_or_else(|| vars::default(vars::STAGING_VERSION_KEY).into()),
                force_path_style: config::flag(vars::S3_FORCE_PATH_STYLE, false)?,
            }),
            "sql" => Ok(VersionConfig::Sql {
                query: config::var(vars::VERSION_QUERY).unwrap_or_else(|| DEFAULT_QUERY.into()),
            }),
            "file" => Ok(VersionConfig::File {
                dir: config::required(
                    vars::VERSION_DIR,
                    "the directory holding the production and staging files",
                )?
                .into(),
            }),
            other => Err(StepError::Configuration(format!(
                "VERSION_SOURCE {other:?} is not one of s3, sql, file"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_trimmed_and_checked() {
        assert_eq!(
            parse_version(Side::Production, b"  20251124_0042\n").unwrap(),
            "20251124_0042"
        );
        for (raw, why) in [
            (&b""[..], "empty"),
            (b" \n\t ", "empty"),
            (b"1\n2", "more than one line"),
            (b"\xff\xfe", "not UTF-8"),
            (b"a\x07b", "control characters"),
        ] {
            let e = parse_version(Side::Staging, raw).unwrap_err();
            assert_eq!(e.name(), "VersionInvalid");
            assert!(
                e.to_string().contains(why) && e.to_string().contains("staging"),
                "{e}"
            );
        }
        let long = "9".repeat(MAX_LEN + 1);
        let e = parse_version(Side::Production, long.as_bytes()).unwrap_err();
        assert!(
            e.to_string().contains("201 characters") && !e.to_string().contains(&long),
            "{e}"
        );
        assert!(parse_version(Side::Production, "9".repeat(MAX_LEN).as_bytes()).is_ok());
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dbsync-versions-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn directory_source() {
        let d = dir("dir");
        std::fs::write(d.join("production"), "42\n").unwrap();
        std::fs::write(d.join("staging"), "42").unwrap();
        let src = DirSource::new(&d);
        let out = handle(&src, serde_json::json!({})).await.unwrap();
        assert_eq!(
            serde_json::to_value(out).unwrap(),
            serde_json::json!({"inSync": true, "prodVersion": "42", "stagingVersion": "42"})
        );

        std::fs::write(d.join("staging"), "41").unwrap();
        assert!(!handle(&src, serde_json::json!({})).await.unwrap().in_sync);

        std::fs::write(d.join("staging"), "").unwrap();
        assert_eq!(
            handle(&src, serde_json::json!({}))
                .await
                .unwrap_err()
                .name(),
            "VersionInvalid"
        );

        std::fs::remove_file(d.join("production")).unwrap();
        let e = handle(&src, serde_json::json!({})).await.unwrap_err();
        assert_eq!(e.name(), "VersionUnavailable");
        assert!(e.to_string().contains("production"), "{e}");

        assert_eq!(
            handle(&src, serde_json::json!("x"))
                .await
                .unwrap_err()
                .name(),
            "InvalidInput"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
