//! The sync-target opt-in. Destructive steps check it inside their own
//! transaction (see [`crate::sql::prelude`]); these helpers are for operators.

use dbsync_workflow::StepError;
use tokio_postgres::Client;

use crate::{classify, sql};

/// Marks the connected database as a sync target and creates dbsync's schema.
/// Idempotent. Never run it against production.
pub async fn init_target(client: &mut Client) -> Result<(), StepError> {
    let ctx = "opting the database in as a sync target";
    let tx = client.transaction().await.map_err(|e| classify(e, ctx))?;
    tx.batch_execute(sql::INIT_TARGET)
        .await
        .map_err(|e| classify(e, ctx))?;
    tx.batch_execute(sql::CREATE_LEASE)
        .await
        .map_err(|e| classify(e, ctx))?;
    tx.batch_execute(sql::UPGRADE_SAVED)
        .await
        .map_err(|e| classify(e, ctx))?;
    tx.commit().await.map_err(|e| classify(e, ctx))
}

/// The opt-in as one SQL script (what [`init_target`] runs), for operators
/// who opt staging in without the CLI. Idempotent.
pub fn init_target_sql() -> String {
    format!(
        "-- dbsync: opt this database in as a sync target. Run on STAGING only, never on production,\n-- as the owner of the synced tables.\nBEGIN;\n{}\n{};\n{};\nCOMMIT;\n",
        sql::INIT_TARGET.trim(),
        sql::CREATE_LEASE.trim(),
        sql::UPGRADE_SAVED.trim()
    )
}

/// Fails with `TargetNotOptedIn` unless the database is opted in; changes nothing.
pub async fn check_target(client: &mut Client) -> Result<(), StepError> {
    let ctx = "checking the sync-target marker";
    let tx = client.transaction().await.map_err(|e| classify(e, ctx))?;
    // The guard alone: a read-only check must not queue behind a running sync's lock.
    tx.batch_execute(&format!("SET LOCAL search_path = '';\n{}", sql::GUARD))
        .await
        .map_err(|e| classify(e, ctx))?;
    tx.rollback().await.map_err(|e| classify(e, ctx))
}

/// Whether the database is opted in, by the same check the destructive steps
/// make (read-only; for `plan`).
pub async fn is_target(client: &mut Client) -> Result<bool, StepError> {
    match check_target(client).await {
        Ok(()) => Ok(true),
        Err(StepError::TargetNotOptedIn { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
