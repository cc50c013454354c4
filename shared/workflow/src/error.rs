//! The one list of errors a dbsync step can raise.
//!
//! Each variant has a stable PascalCase name. In Lambda it becomes the
//! `errorType` Step Functions matches in `Retry`/`Catch`, so a name never
//! changes once released; the state machine, the README's troubleshooting
//! table and the tests all refer to these strings. Messages say what to do
//! and never carry secrets, connection strings or full SQL text (they become
//! the execution's visible `Cause`).

/// Every failure a step reports. The variant's name is its error name,
/// unless `strum(serialize)` says otherwise; [`StepError::NAMES`] and
/// [`StepError::name`] are derived from this one list.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    thiserror::Error,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::EnumIter,
)]
pub enum StepError {
    /// The function's environment/configuration is wrong (missing or bad variable).
    #[error("configuration error: {0}")]
    #[strum(serialize = "ConfigurationError")]
    Configuration(String),

    /// The step's input document is not what it accepts.
    #[error("invalid step input: {0}")]
    InvalidInput(String),

    /// The DMS-style table-mapping rules cannot be used.
    #[error("invalid table mappings: {0}")]
    InvalidTableMappings(String),

    /// A destructive step was pointed at a database that was never opted in.
    #[error(
        "database {database:?} is not opted in as a sync target{}; run `dbsync init-target` \
         (or the SQL in the README) against the staging database once, and never against production",
        marker_note(.marker)
    )]
    TargetNotOptedIn {
        database: String,
        /// The database a copied marker names (`createdb -T staging`).
        marker: Option<String>,
    },

    /// Another sync holds the target (two runs at once).
    #[error("another sync is in progress on this target ({0}); wait for it to finish")]
    SyncInProgress(String),

    /// The server could not be reached or the connection broke. Transient.
    #[error("database unavailable: {0}; check the host, port, network path (VPC, security group) and that the server is up")]
    DatabaseUnavailable(String),

    /// The server rejected the credentials.
    #[error("database authentication failed: {0}; check the user and password (or the secret)")]
    #[strum(serialize = "DatabaseAuthenticationFailed")]
    AuthenticationFailed(String),

    /// TLS could not be set up or the server certificate was rejected.
    #[error("TLS error: {0}")]
    #[strum(serialize = "DatabaseTlsError")]
    Tls(String),

    /// A lock could not be taken within `lock_timeout`. Transient: retry later.
    #[error("timed out waiting for a lock ({0}); another session holds it — retry, or find the blocker in pg_stat_activity")]
    LockTimeout(String),

    /// A statement ran past `statement_timeout`.
    #[error("statement timed out ({0}); raise the step's time budget or run when the database is less busy")]
    StatementTimeout(String),

    /// Any other error reported by PostgreSQL (SQLSTATE and server message only).
    #[error("database error {code}: {message}")]
    #[strum(serialize = "DatabaseError")]
    Database { code: String, message: String },

    /// A saved foreign key's name is taken on its table by a different definition.
    #[error("constraint(s) exist with the same name but a different definition: {0}; rename or drop them, then rerun restore")]
    ConstraintConflict(String),

    /// Foreign keys could not be validated because of orphan rows (ORPHAN_POLICY=fail).
    #[error("orphan rows block validation: {0}; the constraints stay NOT VALID and saved — fix the rows (or set ORPHAN_POLICY=delete / keep-not-valid) and rerun restore")]
    #[strum(serialize = "OrphanRowsFound")]
    OrphanRows(String),

    /// One VALIDATE did not finish within a whole invocation's time budget.
    #[error("validating {0} did not finish within the step's time budget; raise the restore function's timeout or validate it by hand")]
    ValidationTimeout(String),

    /// A sequence cannot be moved past the data (value outside its bounds).
    #[error("sequence value out of range: {0}; widen the sequence (ALTER SEQUENCE … MAXVALUE/MINVALUE or AS bigint) and rerun")]
    SequenceOutOfRange(String),

    /// An AWS call failed in a way that passes (throttling, 5xx, network,
    /// timeout) and the SDK's own retries ran out. Transient.
    #[error("AWS is temporarily unavailable ({0}); the call was retried already — retry later")]
    #[strum(serialize = "AwsTransientError")]
    AwsTransient(String),

    /// An AWS call was refused for good (permissions, validation, missing resource).
    #[error("AWS call failed: {0}")]
    #[strum(serialize = "AwsServiceError")]
    AwsService(String),

    /// A Secrets Manager secret could not be read (missing, access denied, KMS).
    #[error("cannot read the database secret {0}; check the ARN and that the function may call secretsmanager:GetSecretValue (and kms:Decrypt)")]
    SecretUnavailable(String),

    /// A secret was read but does not hold usable connection settings.
    #[error("unusable database secret {0}; fix the secret's JSON (RDS format: host, port, username, password, dbname)")]
    SecretInvalid(String),

    /// A schema version could not be read (missing object/file, no row).
    #[error("schema version unavailable: {0}; nothing was changed — publish the version (or fix the source) and run again")]
    VersionUnavailable(String),

    /// A schema version was read but is not a usable value.
    #[error(
        "schema version invalid: {0}; a version is one non-empty line of at most 200 characters"
    )]
    VersionInvalid(String),

    /// The DMS task named in the configuration does not exist.
    #[error("replication task not found: {0}; check REPLICATION_TASK_ARN")]
    ReplicationTaskNotFound(String),

    /// The DMS task is already starting or running: nothing was started.
    #[error("replication task is already {0}; another load is in progress — let it finish (or stop it) and run again")]
    ReplicationAlreadyRunning(String),

    /// The DMS task is in a state that cannot start (creating, modifying, stopping, …).
    #[error(
        "replication task cannot start now: {0}; wait until it is ready or stopped and run again"
    )]
    ReplicationTaskNotReady(String),

    /// The load ended without success (failed, stopped for another reason, tables errored).
    #[error("replication failed: {0}")]
    ReplicationFailed(String),

    /// The DMS task (or its target endpoint) is set up in a way dbsync refuses:
    /// it would never finish, lose staging's schema, duplicate rows, or write
    /// to another database than the one the steps guard. Nothing was changed.
    #[error("the DMS task is misconfigured: {0}; nothing was changed")]
    ReplicationTaskMisconfigured(String),

    /// The task did not stop within the bounded wait after a failure, so the
    /// foreign keys were not restored (restoring while DMS writes would break the load).
    #[error("the DMS task is still {0} after it was asked to stop; the foreign keys stay saved — stop the task in the DMS console, wait until it is stopped, then run the sync (or just restore-fks) again")]
    ReplicationStillRunning(String),

    /// The load ran past the configured maximum; the task was told to stop.
    #[error("replication timed out: {0}; the task was stopped — find out why the load is slow (task logs, instance size) or raise MAX_REPLICATION_SECONDS")]
    ReplicationTimedOut(String),

    /// The sync configuration file (data rules, after-sync SQL) is missing,
    /// unreadable, or names something that does not fit the database. Found
    /// before anything changes.
    #[error("sync configuration invalid: {0}; nothing was changed — fix the file and run again")]
    SyncConfigInvalid(String),

    /// Masking the loaded rows failed; the run cannot succeed (raw rows may
    /// still be in staging until a masking run completes).
    #[error("masking failed: {0}; staging may still hold unmasked rows of that table — fix the rule and run the sync again")]
    MaskingFailed(String),

    /// One of the `after_sync` statements failed (its position is given, never its text).
    #[error("after-sync SQL failed: {0}; the statements before it were committed — fix the statement and run the sync again")]
    AfterSyncFailed(String),

    /// Staging's synced tables differ from production's (tables, columns,
    /// exact types): a copy would fail half-way or load wrong values.
    /// Found before anything changes; every difference is listed.
    #[error("staging's schema differs from production's — {0}\nnothing was changed: migrate staging to production's schema (or exclude the tables) and run again")]
    SchemaMismatch(String),

    /// The table selection covers no table (or one of its rules matches none).
    #[error("nothing to sync: {0}; nothing was changed — check the table mappings' schema and table names (they are case-sensitive)")]
    NothingSelected(String),

    /// Production and staging are one database.
    #[error("the source and the target are the same database ({0}); nothing was changed — give production as the source and staging as the target")]
    SameDatabase(String),

    /// The source is an opted-in staging and the target is not: most likely
    /// the two were given the wrong way round.
    #[error("{0}: did you swap the source and the target? nothing was changed")]
    SourceTargetSwapped(String),

    /// The run was stopped by the operator (Ctrl-C, SIGTERM).
    #[error("interrupted: {0}")]
    Interrupted(String),

    /// Strict masking: a synced column that no data rule classifies (a new
    /// column on production, most often). Found before anything changes.
    #[error("unclassified columns: {0}; nothing was changed — give each a data rule, or `untouched` if it holds no personal data")]
    UnclassifiedColumns(String),

    /// A statement that outlives invocations (a long `VALIDATE`) kept ending
    /// without its effect while no invocation was connected.
    #[error("{0}; PostgreSQL's log says why (orphan rows, a lock, a cancel) — run it by hand, then the sync again")]
    DetachedStatementFailed(String),

    /// An index (or primary key / unique constraint) dropped for the load
    /// could not be built again; its definition stays saved.
    #[error("{0}; the definition stays saved in dbsync.saved_index and the next run (or restore) builds it again")]
    IndexRebuildFailed(String),

    /// The Lambda engine: one piece did not copy within a whole invocation.
    #[error("{0} did not copy within one invocation; nothing of it was kept — lower CopyPieceMb (COPY_PIECE_MB) or raise the copy-piece function's timeout, and run again")]
    CopyPieceTooLarge(String),

    /// The Lambda engine: after a failure, copy sessions went on loading
    /// past any Lambda's life; the keys were left saved.
    #[error("{0}; the foreign keys and indexes stay saved (restoring beside a load would break it) — end the sessions named dbsync-copy-piece in staging's pg_stat_activity, then run the sync (or restore-fks) again")]
    CopyStillRunning(String),

    /// The Lambda engine: pieces were still not copied after several rounds.
    #[error("{0}; the copy stopped and staging was put back — find the session holding them in staging's pg_stat_activity (application_name dbsync-copy-piece), then run again")]
    CopyIncomplete(String),
}

/// A marker copied along with a database names the original.
fn marker_note(marker: &Option<String>) -> String {
    match marker {
        Some(m) => format!(
            " (its dbsync marker names the database {m:?}: it was copied from that one, e.g. with createdb -T; a copy is not a target until opted in itself)"
        ),
        None => String::new(),
    }
}

impl StepError {
    /// Every name a step can raise, for the check that the state machine handles them all.
    pub const NAMES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;

    /// Names worth retrying in the state machine (with backoff).
    pub const TRANSIENT: &'static [&'static str] =
        &["DatabaseUnavailable", "LockTimeout", "AwsTransientError"];

    /// The stable name (Step Functions `Error`).
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// A connection error saying which database it is about (`--source`,
    /// "production (source) database"); other errors as they are.
    pub fn about(self, which: &str) -> StepError {
        match self {
            Self::DatabaseUnavailable(m) => Self::DatabaseUnavailable(format!("{which}: {m}")),
            Self::AuthenticationFailed(m) => Self::AuthenticationFailed(format!("{which}: {m}")),
            Self::Tls(m) => Self::Tls(format!("{which}: {m}")),
            Self::Configuration(m) => Self::Configuration(format!("{which}: {m}")),
            other => other,
        }
    }

    /// Whether a later attempt can succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        Self::TRANSIENT.contains(&self.name())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn samples() -> Vec<StepError> {
        vec![
            StepError::Configuration("DATABASE_URL is not set".into()),
            StepError::InvalidInput("expected an object".into()),
            StepError::InvalidTableMappings("rule 1: missing object-locator".into()),
            StepError::TargetNotOptedIn {
                database: "staging".into(),
                marker: None,
            },
            StepError::SyncInProgress("run 42".into()),
            StepError::DatabaseUnavailable("connection refused".into()),
            StepError::AuthenticationFailed("password authentication failed".into()),
            StepError::Tls("invalid peer certificate".into()),
            StepError::LockTimeout("dropping foreign keys".into()),
            StepError::StatementTimeout("validating a constraint".into()),
            StepError::Database {
                code: "42P01".into(),
                message: "relation does not exist".into(),
            },
            StepError::ConstraintConflict("public.a.fk".into()),
            StepError::OrphanRows("public.a.fk: 3 rows".into()),
            StepError::ValidationTimeout("public.a.fk".into()),
            StepError::SequenceOutOfRange("public.s: 40000 > 32767".into()),
            StepError::AwsTransient("ThrottlingException: Rate exceeded".into()),
            StepError::AwsService("GetObject: AccessDenied: Access Denied".into()),
            StepError::SecretUnavailable(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:db".into(),
            ),
            StepError::SecretInvalid("needs host, username, password".into()),
            StepError::VersionUnavailable("production: no object s3://b/prod".into()),
            StepError::VersionInvalid("staging: empty".into()),
            StepError::ReplicationTaskNotFound("arn:aws:dms:us-east-1:123456789012:task:T".into()),
            StepError::ReplicationAlreadyRunning("running".into()),
            StepError::ReplicationTaskNotReady("modifying".into()),
            StepError::ReplicationFailed("Stop Reason FATAL_ERROR".into()),
            StepError::ReplicationTaskMisconfigured("migration type full-load-and-cdc".into()),
            StepError::ReplicationStillRunning("stopping".into()),
            StepError::ReplicationTimedOut("running for 43260 s".into()),
            StepError::SyncConfigInvalid("dbsync.yml: data_rules.email: unknown rule".into()),
            StepError::MaskingFailed("public.users: invalid input syntax".into()),
            StepError::AfterSyncFailed("statement 2 of 3: permission denied".into()),
            StepError::SchemaMismatch("public.t.v: production integer / staging real".into()),
            StepError::NothingSelected("rule 1 (public.orderz) matches no table".into()),
            StepError::SameDatabase("db on localhost".into()),
            StepError::SourceTargetSwapped("staging is opted in".into()),
            StepError::Interrupted("Ctrl-C during the copy".into()),
            StepError::UnclassifiedColumns("public.users.phone2".into()),
            StepError::DetachedStatementFailed("validating public.a.fk".into()),
            StepError::IndexRebuildFailed("public.users_email_key: duplicate key".into()),
            StepError::CopyPieceTooLarge("piece 3 of app.events (512 MB)".into()),
            StepError::CopyStillRunning(
                "copy workers were still loading pieces 30 minutes after the stop".into(),
            ),
            StepError::CopyIncomplete("2 piece(s) still not copied after 5 rounds".into()),
        ]
    }

    #[test]
    fn every_variant_has_a_sample_and_a_unique_name() {
        use strum::IntoEnumIterator;
        let names: Vec<_> = samples().iter().map(StepError::name).collect();
        let every: Vec<_> = StepError::iter().map(|e| e.name()).collect();
        assert_eq!(names, every, "samples() must hold every variant, in order");
        assert_eq!(names, StepError::NAMES);
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "names must be unique");
        for n in names {
            assert!(
                !n.starts_with("States."),
                "{n} uses the reserved States. prefix"
            );
            assert!(
                n.chars().next().unwrap().is_ascii_uppercase() && !n.contains(':'),
                "{n}"
            );
        }
    }

    #[test]
    fn transient_names_are_known() {
        for t in StepError::TRANSIENT {
            assert!(StepError::NAMES.contains(t));
        }
        assert!(StepError::LockTimeout(String::new()).is_transient());
        assert!(!StepError::OrphanRows(String::new()).is_transient());
        assert!(StepError::AwsTransient(String::new()).is_transient());
        assert!(!StepError::AwsService(String::new()).is_transient());
    }
}
