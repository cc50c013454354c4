//! The handlers of the database steps. Each takes the step's configuration
//! ([`StepEnv`]), the event and the invocation's time [`Budget`]; the Lambdas
//! (`functions/<step>/src/main.rs`) and the local CLI call these same functions.
//!
//! Every step but `lease` works only for the execution holding the run lease
//! (or, started by hand with `{}`, only while nobody holds it), on the tables
//! of that run's mappings.

use std::time::Duration;

use dbsync_workflow::{
    io::{
        parse_input, AfterLoadAction, AfterLoadInput, DbStepInput, DropFksOutput,
        FixSequencesOutput, LeaseInput, LeaseOutput, MaskOutput, RefreshViewsOutput,
        RestoreFksOutput,
    },
    StepError,
};
use serde_json::Value;

use crate::{
    after_load,
    fks::{self, OrphanPolicy, RestoreOptions},
    lease::{self, LeaseContext},
    mask, sequences, views, Budget, StepEnv,
};

/// Below this much time left, restore stops validating and lets the state machine call again.
const MIN_SLICE: Duration = Duration::from_secs(5);

/// `lease`: before anything changes, checks the target (reachable, opted in,
/// the DMS task's target database), the source (when configured) and the
/// table mappings, and takes the run lease; or releases it.
pub async fn lease(env: &StepEnv, event: Value, budget: Budget) -> Result<LeaseOutput, StepError> {
    let input: LeaseInput = parse_input(event)?;
    let cx = LeaseContext {
        target: &env.db,
        source: env.source.as_ref(),
        selection: &env.selection,
        timeouts: env.timeouts,
        ttl: env.lease_ttl,
        sync: &env.sync,
    };
    env.run(lease::run(&cx, input, budget)).await
}

/// `drop-fks`: saves and drops every foreign key on, or referencing, the
/// synced tables of the target, so DMS can truncate and load them in any
/// order. Output: counts only; the definitions stay in `dbsync.saved_fk`.
pub async fn drop_fks(
    env: &StepEnv,
    event: Value,
    budget: Budget,
) -> Result<DropFksOutput, StepError> {
    let input: DbStepInput = parse_input(event)?;
    env.run(async {
        let mut client = env.db.client().await?;
        let selection =
            lease::selection_for(&client, input.execution_id.as_deref(), &env.selection).await?;
        // Unique indexes over masked columns stay (see `indexes`).
        let masked: crate::indexes::MaskedColumns =
            if env.index_drop == crate::indexes::IndexDrop::None {
                Default::default()
            } else {
                mask::plan(&*client, &selection, &env.sync)
                    .await?
                    .tables
                    .values()
                    .flat_map(|t| {
                        t.columns
                            .iter()
                            .map(|c| (t.schema.clone(), t.name.clone(), c.column.clone()))
                    })
                    .collect()
            };
        fks::drop_for_load(
            &mut client,
            &selection,
            env.timeouts,
            budget,
            env.index_drop,
            &masked,
        )
        .await
    })
    .await
}

/// `restore-fks`: re-adds every saved foreign key `NOT VALID`, then validates
/// them one by one within the budget; the state machine calls again while
/// `remaining > 0`. Orphan rows follow `ORPHAN_POLICY`, except on the failure
/// path (`compensation`), which never deletes a row: there a key with orphans
/// stays NOT VALID (enforced for new rows) and saved for the next run.
pub async fn restore_fks(
    env: &StepEnv,
    event: Value,
    budget: Budget,
) -> Result<RestoreFksOutput, StepError> {
    let input: DbStepInput = parse_input(event)?;
    env.run(async {
        // A VALIDATE longer than the invocation goes on, on a session of its
        // own with the same settings (known once a session has opened; read
        // before holding the handle's session, which `config` would wait for).
        drop(env.db.client().await?);
        let detach = env.db.config().await;
        let mut client = env.db.client().await?;
        let synced =
            lease::selection_for(&client, input.execution_id.as_deref(), &env.selection).await?;
        let policy = match (input.compensation, env.orphan_policy) {
            (true, OrphanPolicy::Delete) => OrphanPolicy::KeepNotValid,
            (_, p) => p,
        };
        let opts = RestoreOptions {
            detach,
            policy,
            synced,
            timeouts: env.timeouts,
            min_slice: MIN_SLICE.min(budget.total() / 4),
            index_jobs: env.index_jobs,
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
    let input: DbStepInput = parse_input(event)?;
    env.run(async {
        let mut client = env.db.client().await?;
        let selection =
            lease::selection_for(&client, input.execution_id.as_deref(), &env.selection).await?;
        sequences::fix_sequences(&mut client, &selection, env.timeouts, budget).await
    })
    .await
}

/// `refresh-views`: refreshes the materialized views over the synced tables
/// (`CONCURRENTLY` where a unique index allows), within the budget; the state
/// machine calls again while `remaining > 0`. `REFRESH_VIEWS=false` turns it off.
pub async fn refresh_views(
    env: &StepEnv,
    event: Value,
    budget: Budget,
) -> Result<RefreshViewsOutput, StepError> {
    let input: DbStepInput = parse_input(event)?;
    if !env.refresh_views {
        return Ok(RefreshViewsOutput {
            disabled: true,
            ..Default::default()
        });
    }
    env.run(async {
        // A refresh longer than the invocation goes on, on a session of its own.
        drop(env.db.client().await?);
        let detach = env.db.config().await;
        let mut client = env.db.client().await?;
        let selection =
            lease::selection_for(&client, input.execution_id.as_deref(), &env.selection).await?;
        views::refresh(
            &mut client,
            &selection,
            input.execution_id.as_deref(),
            env.timeouts,
            budget,
            MIN_SLICE.min(budget.total() / 4),
            detach.as_ref(),
        )
        .await
    })
    .await
}

/// `after-load`: what runs between the load and the FK restore (`mask`,
/// `verify`) and after the sequences (`after-sync`), each time-budgeted and
/// resumable; the state machine calls again while `remaining > 0`.
pub async fn after_load(env: &StepEnv, event: Value, budget: Budget) -> Result<Value, StepError> {
    let input: AfterLoadInput = parse_input(event)?;
    let execution = input.execution_id.as_deref();
    let min_slice = MIN_SLICE.min(budget.total() / 4);
    fn json<T: serde::Serialize>(v: Result<T, StepError>) -> Result<Value, StepError> {
        v.map(|o| serde_json::to_value(o).expect("outputs serialize"))
    }
    env.run(async {
        // An after_sync statement longer than the invocation goes on, on a
        // session of its own (read before holding the handle's session).
        let detach = match input.action {
            AfterLoadAction::AfterSync => {
                drop(env.db.client().await?);
                env.db.config().await
            }
            _ => None,
        };
        let mut client = env.db.client().await?;
        let selection = lease::selection_for(&client, execution, &env.selection).await?;
        match input.action {
            AfterLoadAction::Mask => {
                let plan = mask::plan(&*client, &selection, &env.sync).await?;
                if env.masked_in_flight || plan.is_empty() {
                    return json(Ok(MaskOutput {
                        tables: plan.tables.len() as u64,
                        columns: plan.columns() as u64,
                        in_flight: env.masked_in_flight && !plan.is_empty(),
                        ..Default::default()
                    }));
                }
                json(
                    mask::mask(
                        &mut client,
                        &plan,
                        execution,
                        env.timeouts,
                        budget,
                        min_slice,
                        mask::CHUNK_BLOCKS,
                    )
                    .await,
                )
            }
            AfterLoadAction::Verify => {
                let tables: Vec<(String, String)> = crate::selected_tables(&*client, &selection)
                    .await?
                    .into_iter()
                    .filter(|t| !t.partitioned)
                    .map(|t| (t.schema, t.name))
                    .collect();
                json(
                    after_load::verify(
                        &mut client,
                        input.copied.as_ref(),
                        &tables,
                        execution,
                        env.timeouts,
                        budget,
                        min_slice,
                    )
                    .await,
                )
            }
            AfterLoadAction::AfterSync => json(
                after_load::after_sync(
                    &mut client,
                    &env.sync.after_sync,
                    execution,
                    env.timeouts,
                    budget,
                    min_slice,
                    detach.as_ref(),
                )
                .await,
            ),
        }
    })
    .await
}
