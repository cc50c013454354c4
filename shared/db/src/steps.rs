//! The handlers of the three database steps. Each takes the step's
//! configuration ([`StepEnv`]), the event (any JSON object: everything else
//! is configuration or lives in the target) and the invocation's time
//! [`Budget`]; the Lambdas (`functions/<step>/src/main.rs`) and the local CLI
//! call these same functions.

use std::time::Duration;

use dbsync_workflow::{
    io::{parse_input, DbStepInput, DropFksOutput, FixSequencesOutput, RestoreFksOutput},
    StepError,
};
use serde_json::Value;

use crate::{
    fks::{self, RestoreOptions},
    sequences, Budget, StepEnv,
};

/// Below this much time left, restore stops validating and lets the state machine call again.
const MIN_SLICE: Duration = Duration::from_secs(5);

/// `drop-fks`: saves and drops every foreign key on, or referencing, the
/// synced tables of the target, so DMS can truncate and load them in any
/// order. Output: counts only; the definitions stay in `dbsync.saved_fk`.
pub async fn drop_fks(
    env: &StepEnv,
    event: Value,
    budget: Budget,
) -> Result<DropFksOutput, StepError> {
    let _: DbStepInput = parse_input(event)?;
    env.run(async {
        let mut client = env.db.client().await?;
        fks::drop_fks(&mut client, &env.selection, env.timeouts, budget).await
    })
    .await
}

/// `restore-fks`: re-adds every saved foreign key `NOT VALID`, then validates
/// them one by one within the budget; the state machine calls again while
/// `remaining > 0`. Orphan rows follow `ORPHAN_POLICY`.
pub async fn restore_fks(
    env: &StepEnv,
    event: Value,
    budget: Budget,
) -> Result<RestoreFksOutput, StepError> {
    let _: DbStepInput = parse_input(event)?;
    env.run(async {
        let mut client = env.db.client().await?;
        let opts = RestoreOptions {
            policy: env.orphan_policy,
            timeouts: env.timeouts,
            min_slice: MIN_SLICE.min(budget.total() / 4),
        };
        fks::restore_fks(&mut client, opts, budget).await
    })
    .await
}

/// `fix-sequences`: moves every sequence behind a synced column just past the data.
pub async fn fix_sequences(
    env: &StepEnv,
    event: Value,
    budget: Budget,
) -> Result<FixSequencesOutput, StepError> {
    let _: DbStepInput = parse_input(event)?;
    env.run(async {
        let mut client = env.db.client().await?;
        sequences::fix_sequences(&mut client, &env.selection, env.timeouts, budget).await
    })
    .await
}
