//! Materialized views over the synced tables, refreshed after the load:
//! directly or through other views, in dependency order, `CONCURRENTLY` when
//! a unique index allows it (readers are never blocked), one view per
//! transaction within the invocation's time budget, resumable: the views this
//! execution refreshed are recorded (`dbsync.view_refresh`) in the same
//! transaction as the refresh, and the state machine calls again while
//! `remaining > 0`.

use std::time::Duration;

use dbsync_workflow::{io::RefreshViewsOutput, StepError};
use tokio_postgres::{error::SqlState, types::Type, Client};

use crate::{classify, sql, Budget, Selection, Timeouts};

/// One materialized view to refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// `schema.view`, quoted.
    pub name: String,
    pub concurrently: bool,
}

/// The materialized views that depend on the selected tables, in the order
/// they must be refreshed.
pub async fn dependent_views(
    client: &impl tokio_postgres::GenericClient,
    selection: &Selection,
) -> Result<Vec<View>, StepError> {
    let oids = crate::selected_oids(client, selection).await?;
    Ok(client
        .query_typed(sql::DEPENDENT_VIEWS, &[(&oids, Type::OID_ARRAY)])
        .await
        .map_err(|e| classify(e, "finding materialized views"))?
        .iter()
        .map(|r| View {
            name: r.get("name"),
            concurrently: r.get("concurrently"),
        })
        .collect())
}

/// Refreshes what this execution has not refreshed yet, while the budget lasts.
pub async fn refresh(
    client: &mut Client,
    selection: &Selection,
    execution: Option<&str>,
    timeouts: Timeouts,
    budget: Budget,
    min_slice: Duration,
    detach: Option<&crate::DbConfig>,
) -> Result<RefreshViewsOutput, StepError> {
    let ctx = "refreshing materialized views";
    let err = |e| classify(e, ctx);
    crate::create_bookkeeping(client, sql::CREATE_VIEW_REFRESH, timeouts, ctx).await?;
    let views = dependent_views(&*client, selection).await?;
    let done: Vec<String> = match execution {
        Some(x) => client
            .query_typed(sql::VIEWS_REFRESHED, &[(&x, Type::TEXT)])
            .await
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect(),
        None => Vec::new(),
    };
    let todo: Vec<&View> = views.iter().filter(|v| !done.contains(&v.name)).collect();
    let mut out = RefreshViewsOutput {
        views: views.len() as u64,
        ..Default::default()
    };
    let mut refreshed_now = 0usize;
    for v in &todo {
        if budget.remaining() < min_slice {
            break;
        }
        // A refresh longer than the invocation goes on by itself (see `crate::long`).
        if let (Some(session), Some(x)) = (detach, execution) {
            match refresh_detached(client, session, x, v, timeouts, budget).await? {
                crate::long::Outcome::Done => {
                    refreshed_now += 1;
                    out.refreshed += 1;
                    if v.concurrently {
                        out.concurrently += 1;
                    }
                    continue;
                }
                crate::long::Outcome::Running => break,
                crate::long::Outcome::Failed(e) => {
                    return Err(classify(e, &format!("refreshing {}", v.name)))
                }
            }
        }
        let record = execution
            .map(|x| format!("{};\n", sql::record_view_refresh(x, &v.name)))
            .unwrap_or_default();
        let batch = format!(
            "BEGIN;\n{}{};\n{record}COMMIT;",
            sql::prelude(
                budget.statement_timeout(timeouts.statement),
                timeouts.lock,
                true
            ),
            sql::refresh_view(&v.name, v.concurrently),
        );
        match client.batch_execute(&batch).await {
            Ok(()) => {
                refreshed_now += 1;
                out.refreshed += 1;
                if v.concurrently {
                    out.concurrently += 1;
                }
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                if e.code() == Some(&SqlState::QUERY_CANCELED) && refreshed_now > 0 {
                    // Out of time: the next invocation goes on from here.
                    break;
                }
                return Err(classify(e, &format!("refreshing {}", v.name)));
            }
        }
    }
    out.remaining = (todo.len() - refreshed_now) as u64;
    if out.remaining == 0 {
        if let Some(x) = execution {
            client
                .execute_typed(sql::FORGET_VIEW_REFRESHES, &[(&x, Type::TEXT)])
                .await
                .map_err(err)?;
            client
                .execute(sql::FORGET_LONG_REFRESHES, &[&x])
                .await
                .map_err(err)?;
        }
    }
    Ok(out)
}

/// One refresh that may outlive the invocation: the refresh and its
/// bookkeeping row in one statement (a `DO` block, committed before it
/// answers), so the row says it is done however the invocation ended.
async fn refresh_detached(
    client: &Client,
    session: &crate::DbConfig,
    execution: &str,
    v: &View,
    timeouts: Timeouts,
    budget: Budget,
) -> Result<crate::long::Outcome, StepError> {
    let ctx = "refreshing materialized views";
    let (what, key) = (
        format!("refreshing {}", v.name),
        format!("refresh {execution} {}", v.name),
    );
    let statement = format!(
        "DO $dbsync_refresh$ BEGIN EXECUTE {}; EXECUTE {}; END $dbsync_refresh$",
        sql::literal(&sql::refresh_view(&v.name, v.concurrently)),
        sql::literal(&sql::record_view_refresh(execution, &v.name)),
    );
    let job = crate::long::Job::new(&what, &key, &statement, timeouts);
    // Done when its bookkeeping row is there (written in the same statement).
    let refreshed = || async {
        let rows = client
            .query_typed(sql::VIEWS_REFRESHED, &[(&execution, Type::TEXT)])
            .await
            .map_err(|e| classify(e, ctx))?;
        Ok(rows.iter().any(|r| r.get::<_, &str>(0) == v.name))
    };
    crate::long::drive(client, session, &job, budget, refreshed).await
}
