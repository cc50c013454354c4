//! Configuration of the database steps, read once per cold start.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATABASE_URL` | target as `postgres://…` (`sslmode`, `sslrootcert` accepted) | this or `DB_SECRET_ARN` |
//! | `DB_SECRET_ARN` | Secrets Manager secret with the target's settings (RDS JSON: host, port, username, password, dbname); needs the `secrets` feature | this or `DATABASE_URL` |
//! | `DB_SSLMODE` | `disable` / `require` / `verify-ca` / `verify-full`, overrides the URL or secret | URL: from the URL; secret: `require` |
//! | `DB_SSLROOTCERT` | CA bundle path (e.g. the RDS global bundle shipped with the function) | public roots |
//! | `DB_STATEMENT_TIMEOUT_MS` | ceiling for any one statement | 600000 |
//! | `DB_LOCK_TIMEOUT_MS` | how long DDL waits for a lock (then `LockTimeout`) | 10000 |
//! | `TABLE_MAPPINGS` / `TABLE_MAPPINGS_FILE` | DMS table-mapping JSON (selection rules) | every user table |
//! | `ORPHAN_POLICY` | `fail` / `delete` / `keep-not-valid` (restore) | `fail` |
//! | `TIME_MARGIN_MS` | time kept back from the invocation's deadline | 15000 |

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use dbsync_workflow::StepError;

use crate::{fks::OrphanPolicy, Budget, Db, DbConfig, Selection, StepLimits, Timeouts, TlsMode};

/// Everything a database step needs besides its input.
pub struct StepEnv {
    pub db: Db,
    pub selection: Selection,
    pub limits: StepLimits,
    pub orphan_policy: OrphanPolicy,
    pub margin: Duration,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn millis(name: &str, default: u64) -> Result<Duration, StepError> {
    match var(name) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .ok_or_else(|| {
                StepError::Configuration(format!(
                    "{name} must be a positive number of milliseconds"
                ))
            }),
    }
}

/// `DB_STATEMENT_TIMEOUT_MS` and `DB_LOCK_TIMEOUT_MS`.
pub fn timeouts_from_env() -> Result<Timeouts, StepError> {
    Ok(Timeouts {
        statement: millis("DB_STATEMENT_TIMEOUT_MS", 600_000)?,
        lock: millis("DB_LOCK_TIMEOUT_MS", 10_000)?,
    })
}

/// A connection handle from `url_var` (a `postgres://` URL) or `secret_var`
/// (a Secrets Manager ARN, read lazily: once per cold start and again after an
/// authentication failure), with `DB_SSLMODE`/`DB_SSLROOTCERT` and `timeouts`
/// applied. Exactly one of the two variables must be set.
pub fn connection_from_env(
    url_var: &str,
    secret_var: &str,
    app: &str,
    timeouts: Timeouts,
) -> Result<Db, StepError> {
    let tls = var("DB_SSLMODE")
        .map(|m| m.parse::<TlsMode>())
        .transpose()?;
    let ca = var("DB_SSLROOTCERT").map(PathBuf::from);
    let app = app.to_owned();
    let finish = move |config: DbConfig| {
        let config = config.with_timeouts(timeouts).with_application_name(&app);
        let mode = tls.unwrap_or(config.tls_mode());
        config.with_tls(mode, ca.clone())
    };
    match (var(url_var), var(secret_var)) {
        (Some(_), Some(_)) => Err(StepError::Configuration(format!(
            "both {url_var} and {secret_var} are set; set only one"
        ))),
        (Some(url), None) => Ok(Db::new(finish(DbConfig::from_url(&url)?))),
        (None, Some(arn)) => secret_db(secret_var, arn, Arc::new(finish)),
        (None, None) => Err(StepError::Configuration(format!(
            "set {url_var} (postgres://user:password@host:port/db) or {secret_var} (a Secrets Manager secret ARN)"
        ))),
    }
}

#[cfg(feature = "secrets")]
fn secret_db(_var: &str, arn: String, finish: crate::secrets::Finish) -> Result<Db, StepError> {
    Ok(Db::with_loader(crate::secrets::loader(arn, None, finish)))
}

#[cfg(not(feature = "secrets"))]
fn secret_db(
    var: &str,
    _arn: String,
    _finish: Arc<dyn Fn(DbConfig) -> DbConfig + Send + Sync>,
) -> Result<Db, StepError> {
    Err(StepError::Configuration(format!(
        "{var} is set, but this build reads no Secrets Manager secrets (dbsync-db feature `secrets`); use a postgres:// URL"
    )))
}

impl StepEnv {
    /// Reads the environment. `app` becomes the sessions' `application_name`.
    pub fn from_env(app: &str) -> Result<Self, StepError> {
        let timeouts = timeouts_from_env()?;
        Ok(Self {
            db: connection_from_env("DATABASE_URL", "DB_SECRET_ARN", app, timeouts)?,
            selection: Selection::from_env()?,
            limits: timeouts.into(),
            orphan_policy: var("ORPHAN_POLICY")
                .map(|p| p.parse())
                .transpose()?
                .unwrap_or_default(),
            margin: millis("TIME_MARGIN_MS", 15_000)?,
        })
    }

    /// The budget of an invocation whose deadline is `deadline_ms` (epoch milliseconds).
    pub fn budget(&self, deadline_ms: u64) -> Budget {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let left =
            Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(self.margin);
        Budget::until(Instant::now() + left)
    }
}
