//! Configuration of the database steps, read once per cold start.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATABASE_URL` | target as `postgres://…` (`sslmode`, `sslrootcert` accepted) | this or `DB_SECRET_ARN` |
//! | `DB_SECRET_ARN` | Secrets Manager secret with the target's settings (host, port, username, password, dbname; an RDS-managed secret's username and password alone) | this or `DATABASE_URL` |
//! | `DB_HOST` / `DB_PORT` / `DB_NAME` (`SOURCE_DB_…` for production) | where the database is when its secret holds only credentials | from the secret |
//! | `DB_SSLMODE` | `disable` / `require` / `verify-ca` / `verify-full`, overrides the URL or secret | URL: from the URL; secret: `require` |
//! | `DB_SSLROOTCERT` | CA bundle path (e.g. the RDS global bundle shipped with the function) | public roots |
//! | `DB_STATEMENT_TIMEOUT_MS` | ceiling for any one statement | 600000 |
//! | `DB_LOCK_TIMEOUT_MS` | how long DDL waits for a lock (then `LockTimeout`) | 10000 |
//! | `TABLE_MAPPINGS` / `TABLE_MAPPINGS_FILE` | DMS table-mapping JSON (selection rules) | every user table |
//! | `ORPHAN_POLICY` | `fail` / `delete` / `keep-not-valid` (restore) | `fail` |
//! | `TIME_MARGIN_MS` | time kept back from the invocation's deadline | 15000 |
//! | `SOURCE_DATABASE_URL` / `SOURCE_DB_SECRET_ARN` | production, when reachable: the lease step checks it answers | none |
//! | `REFRESH_VIEWS` | `false`: leave the materialized views over synced tables as they are | `true` |
//! | `SYNC_CONFIG` | the sync configuration file (data rules, `after_sync`); the build packages it | none |
//! | `LEASE_TTL_SECONDS` | the longest a run lease lasts (the state machine's time limit) | 86400 |
//! | `COPY_ENGINE` | `dms` or `lambda` (masks applied in flight, every index dropped for the load) | `dms` |
//! | `MASK_SALT_SECRET_ARN` / `DBSYNC_MASK_SALT` | the deterministic data rules' salt: a secret holding it, or the value (lease, after-load, plan-copy, copy-piece; see [`salted`]) | none |

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use dbsync_workflow::{config, ports::SecretReader, sync_config::SyncConfig, vars, StepError};

use crate::{fks::OrphanPolicy, Budget, Db, DbConfig, Selection, Timeouts, TlsMode};

/// Everything a database step needs besides its input.
pub struct StepEnv {
    pub db: Db,
    /// The production database, when configured (`SOURCE_DATABASE_URL` /
    /// `SOURCE_DB_SECRET_ARN`): the lease step checks that it answers.
    pub source: Option<Db>,
    /// How long a run lease lasts at most (`LEASE_TTL_SECONDS`).
    pub lease_ttl: Duration,
    /// Refresh the materialized views over the synced tables (`REFRESH_VIEWS`).
    pub refresh_views: bool,
    pub selection: Selection,
    pub timeouts: Timeouts,
    pub orphan_policy: OrphanPolicy,
    /// Time kept back from the invocation's deadline (answer, roll back, report).
    pub margin: Duration,
    /// Data rules and `after_sync` SQL (`SYNC_CONFIG`).
    pub sync: SyncConfig,
    /// The copy applied the data rules already (local mode): `after-load`'s
    /// mask has nothing to update.
    pub masked_in_flight: bool,
    /// Which indexes the load goes without (AWS: all but primary keys, which
    /// DMS's full LOB mode looks rows up by; locally: all).
    pub index_drop: crate::indexes::IndexDrop,
    /// Index builds at once after the load.
    pub index_jobs: usize,
}

/// `DB_STATEMENT_TIMEOUT_MS` and `DB_LOCK_TIMEOUT_MS`.
pub fn timeouts_from_env() -> Result<Timeouts, StepError> {
    let d = Timeouts::default();
    Ok(Timeouts {
        statement: config::millis(vars::DB_STATEMENT_TIMEOUT_MS, d.statement)?,
        lock: config::millis(vars::DB_LOCK_TIMEOUT_MS, d.lock)?,
    })
}

/// A connection handle from `url_var` (a `postgres://` URL) or `secret_var`
/// (a secret ARN, read through `secrets` lazily: once per cold start and again
/// after an authentication failure), with `DB_SSLMODE`/`DB_SSLROOTCERT` and
/// `timeouts` applied. Exactly one of the two variables must be set.
pub fn connection_from_env(
    url_var: &str,
    secret_var: &str,
    app: &str,
    timeouts: Timeouts,
    secrets: Option<Arc<dyn SecretReader>>,
) -> Result<Db, StepError> {
    let tls: Option<TlsMode> = config::parsed(vars::DB_SSLMODE)?;
    let ca = config::var(vars::DB_SSLROOTCERT).map(PathBuf::from);
    let app = app.to_owned();
    let finish = move |config: DbConfig| {
        let config = config.with_timeouts(timeouts).with_application_name(&app);
        let mode = tls.unwrap_or(config.tls_mode());
        config.with_tls(mode, ca.clone())
    };
    match (config::var(url_var), config::var(secret_var), secrets) {
        (Some(_), Some(_), _) => Err(StepError::Configuration(format!(
            "both {url_var} and {secret_var} are set; set only one"
        ))),
        (Some(url), None, _) => Ok(Db::new(finish(DbConfig::from_url(&url)?))),
        (None, Some(arn), Some(reader)) => Ok(Db::with_loader(crate::secrets::loader_at(
            arn,
            reader,
            endpoint_from_env(secret_var)?,
            Arc::new(finish),
        ))),
        (None, Some(_), None) => Err(StepError::Configuration(format!(
            "{secret_var} is set, but this program reads no secrets; use a postgres:// URL"
        ))),
        (None, None, _) => Err(StepError::Configuration(format!(
            "set {url_var} (postgres://user:password@host:port/db) or {secret_var} (a Secrets Manager secret ARN)"
        ))),
    }
}

impl StepEnv {
    /// Reads the environment. `app` becomes the sessions' `application_name`;
    /// `secrets` reads `DB_SECRET_ARN` when that is how the target is given.
    pub fn from_env(app: &str, secrets: Option<Arc<dyn SecretReader>>) -> Result<Self, StepError> {
        let timeouts = timeouts_from_env()?;
        let engine = config::CopyEngine::from_env()?;
        let source = if config::var(vars::SOURCE_DATABASE_URL).is_some()
            || config::var(vars::SOURCE_DB_SECRET_ARN).is_some()
        {
            Some(connection_from_env(
                vars::SOURCE_DATABASE_URL,
                vars::SOURCE_DB_SECRET_ARN,
                app,
                timeouts,
                secrets.clone(),
            )?)
        } else {
            None
        };
        Ok(Self {
            db: connection_from_env(
                vars::DATABASE_URL,
                vars::DB_SECRET_ARN,
                app,
                timeouts,
                secrets,
            )?,
            source,
            lease_ttl: crate::lease::ttl_from_env()?,
            refresh_views: config::flag(
                vars::REFRESH_VIEWS,
                vars::default(vars::REFRESH_VIEWS) == "true",
            )?,
            selection: Selection::from_env()?,
            timeouts,
            orphan_policy: config::parsed(vars::ORPHAN_POLICY)?.unwrap_or_default(),
            margin: config::millis(
                vars::TIME_MARGIN_MS,
                Duration::from_millis(vars::default_u64(vars::TIME_MARGIN_MS)),
            )?,
            sync: SyncConfig::from_env()?,
            // The Lambda engine selects masked values from production; DMS
            // needs the primary keys for its LOB lookups, the Lambda engine does not.
            masked_in_flight: engine == config::CopyEngine::Lambda,
            index_drop: match engine {
                config::CopyEngine::Dms => crate::indexes::IndexDrop::AllButPrimaryKeys,
                config::CopyEngine::Lambda => crate::indexes::IndexDrop::All,
            },
            index_jobs: crate::indexes::DEFAULT_JOBS,
        })
    }

    /// The budget of an invocation that must answer by `deadline`.
    pub fn budget(&self, deadline: Instant) -> Budget {
        Budget::until(
            deadline
                .checked_sub(self.margin)
                .unwrap_or_else(Instant::now),
        )
    }

    /// Runs a step's database work; after a broken connection the session is
    /// forgotten, so the next attempt (a Step Functions retry, usually in the
    /// same warm Lambda) reconnects.
    pub async fn run<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StepError>>,
    ) -> Result<T, StepError> {
        let result = work.await;
        if matches!(result, Err(StepError::DatabaseUnavailable(_))) {
            self.db.reset().await;
        }
        result
    }
}

/// Where the database of `secret_var` is when its secret holds only
/// credentials: `DB_HOST`/`DB_PORT`/`DB_NAME` beside `DB_SECRET_ARN`,
/// `SOURCE_DB_HOST`/… beside `SOURCE_DB_SECRET_ARN`.
fn endpoint_from_env(secret_var: &str) -> Result<crate::Endpoint, StepError> {
    let prefix = secret_var.trim_end_matches("SECRET_ARN");
    let port_var = format!("{prefix}PORT");
    let port =
        match config::var(&port_var) {
            None => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| {
                StepError::Configuration(format!("{port_var} is not a port number"))
            })?),
        };
    Ok(crate::Endpoint {
        host: config::var(&format!("{prefix}HOST")),
        port,
        dbname: config::var(&format!("{prefix}NAME")),
    })
}

/// The sync configuration with its salt, for `deterministic: true`: the
/// secret `MASK_SALT_SECRET_ARN` names (a plain string), else
/// `DBSYNC_MASK_SALT`; neither is refused by name. Read at cold start by the
/// functions that check or apply the rules (lease, after-load).
pub async fn salted(
    sync: SyncConfig,
    secrets: Option<Arc<dyn SecretReader>>,
) -> Result<SyncConfig, StepError> {
    if !sync.deterministic {
        return Ok(sync);
    }
    match (config::var(vars::MASK_SALT_SECRET_ARN), secrets) {
        (Some(arn), Some(reader)) => {
            let value = reader.secret_string(&arn).await?;
            sync.with_salt(Some(&value), "the MaskSaltSecretArn secret")
        }
        _ => {
            let value = config::var(dbsync_workflow::sync_config::SALT_ENV);
            sync.with_salt(value.as_deref(), "MaskSaltSecretArn or DBSYNC_MASK_SALT")
        }
    }
}
