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
//! - [`SqlSource`]: one query run on each database, e.g.
//!   `select max(version)::text from schema_migrations` (first column of the
//!   single row, any type, as text).
//! - `s3::S3Source` (feature `aws`): one object per environment.
//!
//! A version is one line: surrounding whitespace is trimmed; empty, multi-line,
//! non-UTF-8 or longer than [`MAX_LEN`] characters is rejected. The Lambda's
//! configuration is documented in [`lambda`].

use std::path::PathBuf;

use dbsync_db::Db;
use dbsync_workflow::{
    io::{parse_input, VersionCheckOutput},
    ports::{Side, VersionSource},
    StepError,
};
use serde_json::Value;

#[cfg(feature = "aws")]
pub mod lambda;
#[cfg(feature = "aws")]
pub mod s3;

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
    source: &impl VersionSource,
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
    async fn read(&self, side: Side) -> Result<String, StepError> {
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

/// A database handle the source owns or borrows (local mode shares the
/// target's handle with the other steps).
pub enum DbRef<'a> {
    Owned(Box<Db>),
    Borrowed(&'a Db),
}

impl DbRef<'_> {
    fn get(&self) -> &Db {
        match self {
            DbRef::Owned(db) => db,
            DbRef::Borrowed(db) => db,
        }
    }
}

impl From<Db> for DbRef<'_> {
    fn from(db: Db) -> Self {
        DbRef::Owned(Box::new(db))
    }
}

impl<'a> From<&'a Db> for DbRef<'a> {
    fn from(db: &'a Db) -> Self {
        DbRef::Borrowed(db)
    }
}

/// One query, run on production and on staging.
pub struct SqlSource<'a> {
    production: DbRef<'a>,
    staging: DbRef<'a>,
    query: String,
}

impl<'a> SqlSource<'a> {
    pub fn new(
        production: impl Into<DbRef<'a>>,
        staging: impl Into<DbRef<'a>>,
        query: String,
    ) -> Self {
        Self {
            production: production.into(),
            staging: staging.into(),
            query,
        }
    }
}

impl VersionSource for SqlSource<'_> {
    async fn read(&self, side: Side) -> Result<String, StepError> {
        let db = match side {
            Side::Production => self.production.get(),
            Side::Staging => self.staging.get(),
        };
        let context = format!("reading the schema version on {}", side.as_str());
        let client = db.client().await?;
        // The simple protocol returns every column as text, whatever its type.
        let messages = client
            .simple_query(&self.query)
            .await
            .map_err(|e| dbsync_db::classify(e, &context))?;
        let mut rows = messages.iter().filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        });
        let side_name = side.as_str();
        let row = rows.next().ok_or_else(|| {
            StepError::VersionUnavailable(format!("{side_name}: the version query returned no row"))
        })?;
        if rows.next().is_some() {
            return Err(StepError::VersionInvalid(format!(
                "{side_name}: the version query returned more than one row"
            )));
        }
        let value = row.get(0).ok_or_else(|| {
            StepError::VersionUnavailable(format!(
                "{side_name}: the version query returned NULL (no migrations recorded?)"
            ))
        })?;
        parse_version(side, value.as_bytes())
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
