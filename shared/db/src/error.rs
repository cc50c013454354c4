//! Maps PostgreSQL failures to the stable step errors.

use dbsync_workflow::StepError;
use tokio_postgres::error::SqlState;

/// SQLSTATE the target guard raises (class "DS" is unused by PostgreSQL).
pub(crate) const NOT_OPTED_IN: &str = "DS001";

/// Turns a driver error into a named step error. `context` says what the step
/// was doing ("dropping foreign keys"); neither SQL text nor row values (the
/// server's DETAIL) are included.
pub fn classify(e: tokio_postgres::Error, context: &str) -> StepError {
    if let Some(db) = e.as_db_error() {
        let state = db.code();
        let code = state.code();
        let message = db.message().to_owned();
        let unavailable = [
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ];
        return if code == NOT_OPTED_IN {
            // The guard raises the database's name as the whole message.
            StepError::TargetNotOptedIn {
                database: message,
                // Our own guard's DETAIL (never a row value): the name a copied marker holds.
                marker: db.detail().filter(|d| !d.is_empty()).map(str::to_owned),
            }
        } else if *state == SqlState::INVALID_PASSWORD
            || *state == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            StepError::AuthenticationFailed(message)
        } else if *state == SqlState::LOCK_NOT_AVAILABLE {
            StepError::LockTimeout(context.to_owned())
        } else if *state == SqlState::QUERY_CANCELED {
            StepError::StatementTimeout(context.to_owned())
        } else if *state == SqlState::UNDEFINED_DATABASE {
            StepError::Configuration(format!("{message}; check the database name"))
        } else if unavailable.contains(state) || code.starts_with("08") {
            // Class 08: connection exceptions.
            StepError::DatabaseUnavailable(message)
        } else if *state == SqlState::OUT_OF_MEMORY {
            StepError::Database {
                code: code.to_owned(),
                message: format!(
                    "{message} while {context}; raise max_locks_per_transaction on the target"
                ),
            }
        } else {
            StepError::Database {
                code: code.to_owned(),
                message: format!("{message} (while {context})"),
            }
        };
    }
    // tokio-postgres says "invalid configuration", with the reason in its source.
    let mut reasons = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        reasons.push_str(&format!(": {s}"));
        source = s.source();
    }
    if reasons.contains("password missing") {
        return StepError::AuthenticationFailed(
            "the server asks for a password and none was given — put it in PGPASSWORD or ~/.pgpass (or the secret)".into(),
        );
    }
    if is_tls(&e) {
        return StepError::Tls(format!(
            "{e}; check sslmode and the CA bundle (sslrootcert)"
        ));
    }
    // Everything else is transport: refused, reset, closed, timed out.
    StepError::DatabaseUnavailable(format!("{e} (while {context})"))
}

fn is_tls(e: &tokio_postgres::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
        }
        source = s.source();
    }
    // tokio-postgres reports a refused or failed handshake as a plain message.
    let text = e.to_string();
    text.contains("TLS handshake") || text.contains("does not support TLS")
}

/// For the team's own SQL (masking expressions, `after_sync`): an error in
/// that SQL becomes `wrap`'s named error with the server's message and
/// SQLSTATE; what is not the SQL's fault (connection, timeouts, locks, the
/// guard) keeps its usual name, so the state machine retries it.
pub(crate) fn classify_user_sql(
    e: tokio_postgres::Error,
    context: &str,
    wrap: impl FnOnce(String) -> StepError,
) -> StepError {
    let own = e
        .as_db_error()
        .map(|db| (db.code().code().to_owned(), db.message().to_owned()));
    match classify(e, context) {
        StepError::Database { .. } => {
            let (code, message) = own.unwrap_or_default();
            wrap(format!("{message} (SQLSTATE {code})"))
        }
        other => other,
    }
}
