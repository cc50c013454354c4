//! `fix-sequences`: moves every sequence behind a synced column just past the
//! copied data (DMS copies rows, not sequence positions).

use dbsync_db::{env::StepEnv, sequences, Budget};
use dbsync_workflow::{
    io::{parse_input, DbStepInput, FixSequencesOutput},
    StepError,
};
use serde_json::Value;

pub async fn handle(
    env: &StepEnv,
    event: Value,
    budget: Budget,
) -> Result<FixSequencesOutput, StepError> {
    let _: DbStepInput = parse_input(event)?;
    let mut client = env.db.client().await?;
    sequences::fix_sequences(&mut client, &env.selection, env.limits, budget).await
}
