//! The run lease: one sync at a time per target, however it was started
//! (the schedule, the console, a retried trigger).
//!
//! A row in `dbsync.lease` names the execution (its Step Functions ARN) that
//! holds the target. `acquire` takes it before anything changes — after
//! checking that the target is reachable and opted in, that it is the
//! database the DMS task writes to, and that the source answers — and every
//! database step afterwards refuses to work for another execution
//! (`SyncInProgress`). It is released on every terminal path of the state
//! machine.
//!
//! A holder that died (aborted, timed out, its Lambda killed before the
//! release) never blocks for long: `acquire` answers with the holder, the
//! state machine asks Step Functions whether that execution still runs, and
//! takes the lease over when it does not. The lease also expires on its own
//! after `LEASE_TTL_SECONDS` (default one day, the state machine's own time
//! limit), for holders Step Functions cannot answer for.

use std::time::Duration;

use dbsync_workflow::{
    io::{EndpointTarget, LeaseAction, LeaseInput, LeaseOutput},
    StepError,
};
use tokio_postgres::{types::Type, Client};

use crate::{
    classify, selected_tables, sql, step_transaction, Budget, Db, DbConfig, Selection, Timeouts,
};

/// Default lease lifetime: the state machine's `TimeoutSeconds`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(86_400);

/// Who holds the lease now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub execution: String,
    pub expired: bool,
    pub table_mappings: Option<String>,
}

/// The lease row, if the table and a row exist.
pub async fn holder(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Option<Holder>, StepError> {
    let ctx = "reading the run lease";
    let has_table: bool = client
        .query_typed_one(sql::HAS_LEASE_TABLE, &[])
        .await
        .map_err(|e| classify(e, ctx))?
        .get(0);
    if !has_table {
        return Ok(None);
    }
    Ok(client
        .query_typed(sql::READ_LEASE, &[])
        .await
        .map_err(|e| classify(e, ctx))?
        .first()
        .map(|r| Holder {
            execution: r.get("execution"),
            expired: r.get("expired"),
            table_mappings: r.get("table_mappings"),
        }))
}

/// What a database step may work on for `execution` (`None`: started by hand):
/// the run's own table mappings when it holds the lease, `fallback` when
/// nobody does; `SyncInProgress` when another live execution holds it.
pub async fn selection_for(
    client: &Client,
    execution: Option<&str>,
    fallback: &Selection,
) -> Result<Selection, StepError> {
    match holder(client).await? {
        Some(h) if Some(h.execution.as_str()) == execution => match &h.table_mappings {
            Some(m) => Selection::from_json(m),
            None => Ok(fallback.clone()),
        },
        Some(h) if !h.expired => Err(StepError::SyncInProgress(format!(
            "execution {} holds the target",
            h.execution
        ))),
        _ => Ok(fallback.clone()),
    }
}

/// Everything `acquire` needs besides the input.
pub struct LeaseContext<'a> {
    pub target: &'a Db,
    /// The production database, when this deployment can reach it.
    pub source: Option<&'a Db>,
    /// The selection when the input carries no table mappings (local mode).
    pub selection: &'a Selection,
    pub timeouts: Timeouts,
    pub ttl: Duration,
    /// The data rules, checked against the catalog before anything changes.
    pub sync: &'a dbsync_workflow::sync_config::SyncConfig,
}

/// The `lease` step: acquire (with the checks that come before any change) or release.
pub async fn run(
    cx: &LeaseContext<'_>,
    input: LeaseInput,
    budget: Budget,
) -> Result<LeaseOutput, StepError> {
    let execution = input.execution_id.clone().ok_or_else(|| {
        StepError::InvalidInput(
            "executionId is required (the execution's ARN, $$.Execution.Id)".into(),
        )
    })?;
    // Open the session first: its settings (host, port) are known from then on.
    drop(cx.target.client().await?);
    let config = cx.target.config().await;
    let mut client = cx.target.client().await?;
    match input.action {
        LeaseAction::Release => {
            let n = client
                .execute_typed(sql::RELEASE_LEASE, &[(&execution, Type::TEXT)])
                .await;
            // A target opted in before the lease existed has no table: nothing to release.
            let done = match n {
                Ok(n) => n > 0,
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                    false
                }
                Err(e) => return Err(classify(e, "releasing the run lease")),
            };
            Ok(LeaseOutput {
                done,
                ..Default::default()
            })
        }
        LeaseAction::Acquire => acquire(cx, &mut client, config, &execution, input, budget).await,
    }
}

async fn acquire(
    cx: &LeaseContext<'_>,
    client: &mut Client,
    config: Option<DbConfig>,
    execution: &str,
    input: LeaseInput,
    budget: Budget,
) -> Result<LeaseOutput, StepError> {
    let ctx = "taking the run lease";
    let err = |e| classify(e, ctx);
    if let (Some(target), Some(config)) = (&input.target, config) {
        same_database(client, &config, target).await?;
    }
    let selection = match &input.table_mappings {
        Some(m) => Selection::from_json(m)?,
        None => cx.selection.clone(),
    };
    let source_checked = match cx.source {
        Some(source) => {
            reach_source(source).await?;
            let production = source.client().await?;
            // Strict masking judged on production's columns: a column added
            // there is what strict mode is for.
            if cx.sync.strict {
                crate::mask::plan(&*production, &selection, cx.sync)
                    .await?
                    .require_classified(&cx.sync.origin)?;
            }
            // Same database, a selection that covers tables, compatible
            // schemas: all refused here, before the lease and any change.
            crate::schema::gate(
                &production,
                client,
                &selection,
                cx.sync.allow_lossless_casts,
            )
            .await?;
            true
        }
        None => false,
    };
    // Data rules that do not fit the schema fail here, before any change;
    // without production, strict mode judges staging's columns.
    let strict_here = cx.sync.strict && !source_checked;
    if !cx.sync.data_rules.is_empty() || strict_here {
        let plan = crate::mask::plan(&*client, &selection, cx.sync).await?;
        if strict_here {
            plan.require_classified(&cx.sync.origin)?;
        }
        if !plan.is_empty() {
            crate::mask::check(client, &plan, &cx.sync.origin).await?;
        }
    }
    // The guard (opt-in) and the steps' advisory lock: acquiring waits for a
    // step of another run that is mid-transaction.
    let tx = step_transaction(client, cx.timeouts, budget, true, ctx).await?;
    tx.batch_execute(sql::CREATE_LEASE).await.map_err(err)?;
    let current = holder(&tx).await?;
    let free = match &current {
        None => true,
        Some(h) => {
            h.execution == execution
                || h.expired
                || input.take_over.as_deref() == Some(h.execution.as_str())
        }
    };
    if !free {
        let h = current.expect("not free means held");
        tx.rollback().await.map_err(err)?;
        return Ok(LeaseOutput {
            done: false,
            holder: Some(h.execution),
            ..Default::default()
        });
    }
    let tables = selected_tables(&tx, &selection).await?.len() as u64;
    tx.execute_typed(
        sql::TAKE_LEASE,
        &[
            (&execution, Type::TEXT),
            (&cx.ttl.as_secs_f64(), Type::FLOAT8),
            (&input.table_mappings, Type::TEXT),
        ],
    )
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)?;
    if let Some(h) = current.filter(|h| h.execution != execution) {
        tracing::warn!(previous = %h.execution, expired = h.expired, "took the run lease over from an execution that is no longer running");
    }
    Ok(LeaseOutput {
        done: true,
        holder: None,
        tables,
        source_checked,
    })
}

/// Refuses a staging connection that is not the database the DMS task loads.
async fn same_database(
    client: &Client,
    config: &DbConfig,
    target: &EndpointTarget,
) -> Result<(), StepError> {
    let row = client
        .query_typed_one(sql::WHERE_AM_I, &[])
        .await
        .map_err(|e| classify(e, "checking where the target connection points"))?;
    let database: String = row.get("database");
    let address: Option<String> = row.get("address");
    let port = row
        .get::<_, Option<i32>>("port")
        .or(config.port().map(i32::from));
    let host = config.host();
    let same_host = match &host {
        Some(h) => {
            h.trim_end_matches('.')
                .eq_ignore_ascii_case(target.server.trim_end_matches('.'))
                || resolves_to_same(&target.server, h, address.as_deref(), target.port).await
        }
        None => false,
    };
    if database == target.database && port == Some(target.port) && same_host {
        return Ok(());
    }
    Err(StepError::ReplicationTaskMisconfigured(format!(
        "the DMS task's target endpoint is {}:{}/{} but the staging connection is {}:{}/{database}; DMS would load another database than the one dbsync guards — point the endpoint (or TargetDbSecretArn) at staging",
        target.server,
        target.port,
        target.database,
        host.unwrap_or_default(),
        port.map(|p| p.to_string()).unwrap_or_default(),
    )))
}

/// Whether the endpoint's server name resolves to the address this session
/// reached (or to the same addresses as the connection's host name).
async fn resolves_to_same(server: &str, host: &str, reached: Option<&str>, port: i32) -> bool {
    let port = u16::try_from(port).unwrap_or(5432);
    let lookup = |name: String| async move {
        tokio::net::lookup_host((name.as_str(), port))
            .await
            .map(|a| a.map(|s| s.ip().to_string()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let endpoint = lookup(server.to_owned()).await;
    if endpoint.is_empty() {
        return false;
    }
    if reached.is_some_and(|r| endpoint.iter().any(|e| e == r)) {
        return true;
    }
    let ours = lookup(host.to_owned()).await;
    ours.iter().any(|a| endpoint.contains(a))
}

/// The production database answers (read-only, one round trip).
async fn reach_source(source: &Db) -> Result<(), StepError> {
    let side = |e: StepError| e.about("production (source) database");
    let client = source.client().await.map_err(side)?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| side(classify(e, "reaching the production (source) database")))?;
    Ok(())
}

/// `LEASE_TTL_SECONDS`.
pub fn ttl_from_env() -> Result<Duration, StepError> {
    dbsync_workflow::config::seconds(dbsync_workflow::vars::LEASE_TTL_SECONDS, DEFAULT_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_and_acquire_parse() {
        let i: LeaseInput = dbsync_workflow::io::parse_input(serde_json::json!({
            "action": "release", "executionId": "arn:x"
        }))
        .unwrap();
        assert_eq!(i.action, LeaseAction::Release);
        let e =
            dbsync_workflow::io::parse_input::<LeaseInput>(serde_json::json!({"action": "grab"}))
                .unwrap_err();
        assert_eq!(e.name(), "InvalidInput");
    }
}

#[cfg(test)]
mod default_ttl {
    #[test]
    fn is_the_one_vars_names() {
        use dbsync_workflow::vars;
        assert_eq!(
            super::DEFAULT_TTL.as_secs(),
            vars::default_u64(vars::LEASE_TTL_SECONDS)
        );
    }
}
