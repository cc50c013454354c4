//! `drop-fks`: saves and drops every foreign key on, or referencing, the synced
//! tables of the target, so DMS can truncate and load them in any order.
//! Input: any JSON object. Output: [`DropFksOutput`] (counts only; the
//! definitions stay in the target's `dbsync.saved_fk`).

use dbsync_db::{env::StepEnv, fks, Budget};
use dbsync_workflow::{
    io::{parse_input, DbStepInput, DropFksOutput},
    StepError,
};
use serde_json::Value;

pub async fn handle(
    env: &StepEnv,
    event: Value,
    budget: Budget,
) -> Result<DropFksOutput, StepError> {
    let _: DbStepInput = parse_input(event)?;
    let mut client = env.db.client().await?;
    fks::drop_fks(&mut client, &env.selection, env.limits, budget).await
}
