//! Maps PostgreSQL failures to the stable step errors.

use dbsync_workflow::StepError;

/// SQLSTATE the target guard raises (class "DS" is unused by PostgreSQL).
pub(crate) const NOT_OPTED_IN: &str = "DS001";

/// Turns a driver error into a named step error. `context` says what the step
/// was doing ("dropping foreign keys"); neither SQL text nor row values (the
/// server's DETAIL) are included.
pub fn classify(e: tokio_postgres::Error, context: &str) -> StepError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let message = db.message().to_owned();
        return match code {
            NOT_OPTED_IN => StepError::TargetNotOptedIn {
                database: db
                    .message()
                    .rsplit(' ')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            },
            "28P01" | "28000" => StepError::AuthenticationFailed(message),
            "55P03" => StepError::LockTimeout(context.to_owned()),
            "57014" => StepError::StatementTimeout(context.to_owned()),
            "3D000" => StepError::Configuration(format!("{message}; check the database name")),
            "53300" | "57P01" | "57P02" | "57P03" => StepError::DatabaseUnavailable(message),
            c if c.starts_with("08") => StepError::DatabaseUnavailable(message),
            "53200" => StepError::Database {
                code: code.to_owned(),
                message: format!(
                    "{message} while {context}; raise max_locks_per_transaction on the target"
                ),
            },
            _ => StepError::Database {
                code: code.to_owned(),
                message: format!("{message} (while {context})"),
            },
        };
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
