//! The PostgreSQL adapter of dbsync — the "layer" every database step links.
//!
//! - [`DbConfig`] / [`Db`]: connect from a URL or a secret (read through the
//!   core's `SecretReader` port), TLS (`disable`, `require`, `verify-ca`,
//!   `verify-full`), session time limits, and a handle that reconnects
//!   across Lambda invocations.
//! - [`StepEnv`]: the database steps' configuration, read once per cold start.
//! - [`steps`]: the handlers of drop-fks, restore-fks and fix-sequences.
//! - [`Selection`]: which tables a sync covers (DMS selection rules).
//! - [`fks`]: capture + drop foreign keys (saved in the target, same
//!   transaction), restore them `NOT VALID`, validate within a time budget.
//! - [`sequences`]: move every sequence behind the synced columns past the data.
//! - [`target`]: the opt-in marker destructive steps insist on.
//! - [`lease`]: one sync at a time per target, however it was started.
//! - [`views`]: materialized views over the synced tables, refreshed after the load.
//! - [`version`]: schema versions read with a query (version-check's `sql` source).
//! - [`schema`]: production's and staging's synced tables compared before any change.
//! - [`verify`]: compare two databases after a sync (the demo and the tests).
//!
//! The SQL of the steps lives in [`sql`]; the read-only checks of [`verify`]
//! keep theirs beside them. Everything here depends only on the core crate.

pub mod after_load;
mod connect;
pub mod env;
mod error;
pub mod fks;
pub mod indexes;
pub mod lease;
pub mod long;
pub mod mask;
pub mod schema;
pub mod secrets;
mod selection;
pub mod sequences;
pub mod sql;
pub mod steps;
pub mod target;
mod tls;
pub mod triggers;
pub mod verify;
pub mod version;
pub mod views;

pub use connect::{ConfigLoader, Db, DbConfig, Endpoint, Timeouts};
pub use env::StepEnv;
pub use error::classify;
pub use selection::{is_reserved, Selection};
pub use sql::PROJECT_SCHEMA;
pub use tls::TlsMode;

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
            oid: r.get("oid"),
            schema: r.get("schema"),
            name: r.get("name"),
            partitioned: r.get::<_, &str>("kind") == "p",
            is_partition: r.get("is_partition"),
        })
        .filter(|t| selection.matches(&t.schema, &t.name))
        .collect())
}

/// The oids of the tables the selection covers.
pub async fn selected_oids(
    client: &impl tokio_postgres::GenericClient,
    selection: &Selection,
) -> Result<Vec<u32>, dbsync_workflow::StepError> {
    Ok(selected_tables(client, selection)
        .await?
        .iter()
        .map(|t| t.oid)
        .collect())
}

/// Creates a step's bookkeeping table (`ddl`, idempotent) under the target
/// guard, so a database never opted in is refused by name before anything is
/// created in it. A catalog-only statement: a short limit of its own,
/// whatever is left of the step's budget.
pub async fn create_bookkeeping(
    client: &mut tokio_postgres::Client,
    ddl: &str,
    timeouts: Timeouts,
    ctx: &str,
) -> Result<(), dbsync_workflow::StepError> {
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
    let budget = Budget::from_now(LIMIT.min(timeouts.statement));
    let tx = step_transaction(client, timeouts, budget, true, ctx).await?;
    tx.batch_execute(ddl).await.map_err(|e| classify(e, ctx))?;
    tx.commit().await.map_err(|e| classify(e, ctx))
}

/// Opens a step's transaction: empty search path, time limits within the
/// budget, the dbsync lock and (with `guard`) the target opt-in check.
pub async fn step_transaction<'a>(
    client: &'a mut tokio_postgres::Client,
    timeouts: Timeouts,
    budget: Budget,
    guard: bool,
    ctx: &str,
) -> Result<tokio_postgres::Transaction<'a>, dbsync_workflow::StepError> {
    let tx = client.transaction().await.map_err(|e| classify(e, ctx))?;
    tx.batch_execute(&sql::prelude(
        budget.statement_timeout(timeouts.statement),
        timeouts.lock,
        guard,
    ))
    .await
    .map_err(|e| classify(e, ctx))?;
    Ok(tx)
}
