//! The PostgreSQL side of dbsync — the "layer" every database step links.
//!
//! - [`DbConfig`] / [`Db`]: connect from a URL or a Secrets Manager secret,
//!   TLS (`disable`, `require`, `verify-ca`, `verify-full`), session time
//!   limits, and a handle that reconnects across Lambda invocations.
//! - [`Selection`]: which tables a sync covers (DMS selection rules).
//! - [`fks`]: capture + drop foreign keys (saved in the target, same
//!   transaction), restore them `NOT VALID`, validate within a time budget.
//! - [`sequences`]: move every sequence behind the synced columns past the data.
//! - [`target`]: the opt-in marker destructive steps insist on.
//!
//! All SQL text lives in [`sql`].

mod connect;
pub mod env;
mod error;
pub mod fks;
pub mod lambda;
#[cfg(feature = "secrets")]
pub mod secrets;
mod selection;
pub mod sequences;
pub mod sql;
pub mod target;
mod tls;

pub use connect::{ConfigLoader, Db, DbConfig, Timeouts, TlsMode};
pub use error::classify;
pub use selection::{is_reserved, Selection, PROJECT_SCHEMA};

use std::time::{Duration, Instant};

/// The time a step may still spend, from its invocation's deadline minus a
/// safety margin (time to answer, roll back, and for Lambda to report).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    end: Instant,
    total: Duration,
}

impl Budget {
    pub fn until(end: Instant) -> Self {
        Self {
            end,
            total: end.saturating_duration_since(Instant::now()),
        }
    }

    pub fn from_now(d: Duration) -> Self {
        Self::until(Instant::now() + d)
    }

    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    pub fn total(&self) -> Duration {
        self.total
    }

    /// A statement limit that ends with the budget, never above `cap`.
    pub fn statement_timeout(&self, cap: Duration) -> Duration {
        self.remaining().min(cap)
    }
}

/// A table a sync covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// A partitioned table (holds no rows itself).
    pub partitioned: bool,
    pub is_partition: bool,
}

impl TableRef {
    /// `schema.table`, quoted.
    pub fn qualified(&self) -> String {
        format!("{}.{}", sql::ident(&self.schema), sql::ident(&self.name))
    }
}

/// The tables the selection covers, in name order.
pub async fn selected_tables(
    client: &impl tokio_postgres::GenericClient,
    selection: &Selection,
) -> Result<Vec<TableRef>, dbsync_workflow::StepError> {
    let rows = client
        .query_typed(sql::LIST_TABLES, &[])
        .await
        .map_err(|e| classify(e, "listing tables"))?;
    Ok(rows
        .iter()
        .map(|r| TableRef {
            oid: r.get(0),
            schema: r.get(1),
            name: r.get(2),
            partitioned: r.get::<_, String>(3) == "p",
            is_partition: r.get(4),
        })
        .filter(|t| selection.matches(&t.schema, &t.name))
        .collect())
}

/// Opens a step's transaction: empty search path, time limits within the
/// budget, the dbsync lock and (with `guard`) the target opt-in check.
pub(crate) async fn step_transaction<'a>(
    client: &'a mut tokio_postgres::Client,
    limits: StepLimits,
    budget: Budget,
    guard: bool,
    ctx: &str,
) -> Result<tokio_postgres::Transaction<'a>, dbsync_workflow::StepError> {
    let tx = client.transaction().await.map_err(|e| classify(e, ctx))?;
    tx.batch_execute(&sql::prelude(
        budget.statement_timeout(limits.statement_timeout),
        limits.lock_timeout,
        guard,
    ))
    .await
    .map_err(|e| classify(e, ctx))?;
    Ok(tx)
}

/// Step-level settings shared by the database steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLimits {
    /// Ceiling for any one statement.
    pub statement_timeout: Duration,
    /// How long DDL waits for a lock before giving up (LockTimeout, retryable).
    pub lock_timeout: Duration,
}

impl From<Timeouts> for StepLimits {
    fn from(t: Timeouts) -> Self {
        Self {
            statement_timeout: t.statement,
            lock_timeout: t.lock,
        }
    }
}
