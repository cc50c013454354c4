//! Configuration of the database steps, read once per cold start.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATABASE_URL` | target as `postgres://…` (`sslmode`, `sslrootcert` accepted) | required |
//! | `DB_SSLMODE` | `disable` / `require` / `verify-ca` / `verify-full`, overrides the URL | from the URL |
//! | `DB_SSLROOTCERT` | CA bundle path (e.g. the RDS global bundle shipped with the function) | public roots |
//! | `DB_STATEMENT_TIMEOUT_MS` | ceiling for any one statement | 600000 |
//! | `DB_LOCK_TIMEOUT_MS` | how long DDL waits for a lock (then `LockTimeout`) | 10000 |
//! | `TABLE_MAPPINGS` / `TABLE_MAPPINGS_FILE` | DMS table-mapping JSON (selection rules) | every user table |
//! | `ORPHAN_POLICY` | `fail` / `delete` / `keep-not-valid` (restore) | `fail` |
//! | `TIME_MARGIN_MS` | time kept back from the invocation's deadline | 15000 |

use std::{
    path::PathBuf,
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
            .ok_or_else(|| StepError::Configuration(format!("{name} must be a positive number of milliseconds"))),
    }
}

impl StepEnv {
    /// Reads the environment. `app` becomes the sessions' `application_name`.
    pub fn from_env(app: &str) -> Result<Self, StepError> {
        let timeouts = Timeouts {
            statement: millis("DB_STATEMENT_TIMEOUT_MS", 600_000)?,
            lock: millis("DB_LOCK_TIMEOUT_MS", 10_000)?,
        };
        let url = var("DATABASE_URL").ok_or_else(|| {
            StepError::Configuration("set DATABASE_URL to the target database (postgres://user:password@host:port/db)".into())
        })?;
        let mut config = DbConfig::from_url(&url)?.with_timeouts(timeouts).with_application_name(app);
        if let Some(mode) = var("DB_SSLMODE") {
            config = config.with_tls(mode.parse::<TlsMode>()?, var("DB_SSLROOTCERT").map(PathBuf::from));
        } else if let Some(ca) = var("DB_SSLROOTCERT") {
            let mode = config.tls_mode();
            config = config.with_tls(mode, Some(PathBuf::from(ca)));
        }
        Ok(Self {
            db: Db::new(config),
            selection: Selection::from_env()?,
            limits: timeouts.into(),
            orphan_policy: var("ORPHAN_POLICY").map(|p| p.parse()).transpose()?.unwrap_or_default(),
            margin: millis("TIME_MARGIN_MS", 15_000)?,
        })
    }

    /// The budget of an invocation whose deadline is `deadline_ms` (epoch milliseconds).
    pub fn budget(&self, deadline_ms: u64) -> Budget {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(self.margin);
        Budget::until(Instant::now() + left)
    }
}
