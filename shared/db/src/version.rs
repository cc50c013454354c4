//! Schema versions read with a query (version-check's `sql` source): one
//! query, e.g. `select max(version)::text from schema_migrations`, run on
//! each database; the first column of its single row, any type, as text.

use dbsync_workflow::{
    ports::{BoxFuture, Side, VersionSource},
    steps::version_check::parse_version,
    StepError,
};

use crate::Db;

/// The version query's limit: far below any Lambda timeout dbsync deploys with.
pub const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
pub struct SqlVersionSource<'a> {
    production: DbRef<'a>,
    staging: DbRef<'a>,
    query: String,
}

impl<'a> SqlVersionSource<'a> {
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

impl VersionSource for SqlVersionSource<'_> {
    fn read(&self, side: Side) -> BoxFuture<'_, Result<String, StepError>> {
        Box::pin(self.query(side))
    }
}

impl SqlVersionSource<'_> {
    async fn query(&self, side: Side) -> Result<String, StepError> {
        let db = match side {
            Side::Production => self.production.get(),
            Side::Staging => self.staging.get(),
        };
        let context = format!("reading the schema version on {}", side.as_str());
        let client = db.client().await?;
        // Read-only, and bounded well inside the Lambda's time: the query is
        // the user's, and one of the databases is production.
        client
            .batch_execute(&format!(
                "BEGIN READ ONLY; SET LOCAL statement_timeout = {}",
                QUERY_TIMEOUT.as_millis()
            ))
            .await
            .map_err(|e| crate::classify(e, &context))?;
        // One statement through the extended protocol, as a subquery: a
        // `COMMIT; …` in the query cannot leave the read-only transaction
        // (the server takes exactly one statement, and a subquery must be a
        // query). Its first column, any type, as text.
        let query = self.query.trim().trim_end_matches(';').trim_end();
        let wrapped = format!("SELECT v::text FROM ({query}) AS version_query(v)");
        let result = client.query(&wrapped, &[]).await;
        let end = client
            .batch_execute(if result.is_ok() { "COMMIT" } else { "ROLLBACK" })
            .await;
        let rows = result.map_err(|e| match e.code() {
            Some(code) if code.code() == "42601" => StepError::Configuration(format!(
                "the version query must be one SELECT (it runs read-only, as a subquery): {}",
                e.as_db_error().map_or("", |d| d.message())
            )),
            _ => crate::classify(e, &context),
        })?;
        end.map_err(|e| crate::classify(e, &context))?;
        let side_name = side.as_str();
        let row = match rows.as_slice() {
            [] => {
                return Err(StepError::VersionUnavailable(format!(
                    "{side_name}: the version query returned no row"
                )))
            }
            [row] => row,
            _ => {
                return Err(StepError::VersionInvalid(format!(
                    "{side_name}: the version query returned more than one row"
                )))
            }
        };
        let value: Option<&str> = row.get(0);
        let value = value.ok_or_else(|| {
            StepError::VersionUnavailable(format!(
                "{side_name}: the version query returned NULL (no migrations recorded?)"
            ))
        })?;
        parse_version(side, value.as_bytes())
    }
}
