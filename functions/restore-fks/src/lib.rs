//! `restore-fks`: re-adds the saved foreign keys `NOT VALID`, then validates
//! them one by one until the invocation's time budget runs out. The state
//! machine calls it again while `remaining > 0`. Orphan rows follow
//! `ORPHAN_POLICY`.

use std::time::Duration;

use dbsync_db::{
    env::StepEnv,
    fks::{self, RestoreOptions},
    Budget,
};
use dbsync_workflow::{
    io::{parse_input, DbStepInput, RestoreFksOutput},
    StepError,
};
use serde_json::Value;

/// Below this much time left, stop validating and let the state machine call again.
const MIN_SLICE: Duration = Duration::from_secs(5);

pub async fn handle(
    env: &StepEnv,
    event: Value,
    budget: Budget,
) -> Result<RestoreFksOutput, StepError> {
    let _: DbStepInput = parse_input(event)?;
    let mut client = env.db.client().await?;
    let opts = RestoreOptions {
        policy: env.orphan_policy,
        limits: env.limits,
        min_slice: MIN_SLICE.min(budget.total() / 4),
    };
    fks::restore_fks(&mut client, opts, budget).await
}
