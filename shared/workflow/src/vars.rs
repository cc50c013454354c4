//! Every environment variable dbsync reads, defined once: its name (a
//! constant each read site uses) and, where the code has one, its default
//! (read from here by the code, and checked against template.yaml's
//! parameter defaults by the deployment test). Reading a name missing here
//! fails every test that reaches it ([`crate::config::var`]), and
//! template.yaml may give a function no variable that is missing here, so a
//! misspelt variable cannot fall back to a default unnoticed.

/// One variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    pub name: &'static str,
    /// The value the code assumes when it is unset (as the template writes it).
    pub default: Option<&'static str>,
}

macro_rules! vars {
    ($( $(#[doc = $doc:literal])* $id:ident $(= $default:literal)? ; )*) => {
        $( $(#[doc = $doc])* pub const $id: &str = stringify!($id); )*
        /// Every variable, in the order defined.
        pub const ALL: &[Var] = &[ $( Var { name: stringify!($id), default: vars!(@default $($default)?) } ),* ];
    };
    (@default) => { None };
    (@default $d:literal) => { Some($d) };
}

vars! {
    /// The target (staging) as a `postgres://` URL (tests, one-off runs).
    DATABASE_URL;
    /// The target's Secrets Manager secret.
    DB_SECRET_ARN;
    /// Where the target is when its secret holds only credentials.
    DB_HOST;
    DB_PORT;
    DB_NAME;
    /// The source (production), the same four ways.
    SOURCE_DATABASE_URL;
    SOURCE_DB_SECRET_ARN;
    SOURCE_DB_HOST;
    SOURCE_DB_PORT;
    SOURCE_DB_NAME;
    /// TLS to both databases.
    DB_SSLMODE;
    DB_SSLROOTCERT;
    DB_STATEMENT_TIMEOUT_MS;
    DB_LOCK_TIMEOUT_MS;
    /// Kept back from an invocation's deadline.
    TIME_MARGIN_MS = "15000";
    /// The synced tables: DMS table mappings, inline or in a file.
    TABLE_MAPPINGS;
    TABLE_MAPPINGS_FILE;
    /// At most this long a run lease holds (the state machine's own limit).
    LEASE_TTL_SECONDS = "86400";
    ORPHAN_POLICY = "fail";
    REFRESH_VIEWS = "true";
    /// The sync configuration file (data rules, after_sync).
    SYNC_CONFIG;
    MASK_SALT_SECRET_ARN;
    NOTIFY_ON_SUCCESS = "false";
    POLL_MIN_SECONDS = "30";
    POLL_MAX_SECONDS = "7200";
    MAX_REPLICATION_SECONDS = "43200";
    REPLICATION_TASK_ARN;
    REPLICATION_CONFIG_ARN;
    VERSION_SOURCE = "s3";
    VERSION_BUCKET;
    PRODUCTION_VERSION_KEY = "schema-version/production";
    STAGING_VERSION_KEY = "schema-version/staging";
    VERSION_QUERY = "select max(version)::text from schema_migrations";
    VERSION_DIR;
    /// Tests: S3 path-style addressing (an emulator).
    S3_FORCE_PATH_STYLE = "false";
    STATE_MACHINE_ARN;
    /// The local copy: `off` copies every table whole (no block ranges).
    DBSYNC_SPLIT = "auto";
    /// How staging is loaded: `dms` (a task or a serverless config) or
    /// `lambda` (the copy-piece workers, masking in flight).
    COPY_ENGINE = "dms";
    /// The Lambda engine: a table larger than this is copied in pieces of about this size.
    COPY_PIECE_MB = "512";
    /// The Lambda engine: copy workers at once (how hard production is read).
    COPY_CONCURRENCY = "4";
}

/// Whether dbsync reads `name`.
pub fn known(name: &str) -> bool {
    ALL.iter().any(|v| v.name == name)
}

/// `name`'s default. Panics for a variable without one (a programming error
/// the tests meet at once).
pub fn default(name: &str) -> &'static str {
    ALL.iter()
        .find(|v| v.name == name)
        .and_then(|v| v.default)
        .unwrap_or_else(|| panic!("{name} has no default in vars::ALL"))
}

/// `name`'s default as a number (seconds, milliseconds).
pub fn default_u64(name: &str) -> u64 {
    default(name)
        .parse()
        .unwrap_or_else(|_| panic!("{name}'s default is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_defaults_read() {
        let mut names: Vec<_> = ALL.iter().map(|v| v.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(POLL_MIN_SECONDS, "POLL_MIN_SECONDS");
        assert_eq!(default_u64(POLL_MAX_SECONDS), 7200);
        assert!(known(DB_HOST) && !known("ORPHAN_POLCY"));
    }
}
