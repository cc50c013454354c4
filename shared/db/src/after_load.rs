//! After the load, besides masking: the team's own `after_sync` SQL, and the
//! verification summary (each table's rows against what the load reported).
//! Both are time-budgeted and resumable like the FK restore: what an
//! execution has done is committed with it (`dbsync.after_sync_done`,
//! `dbsync.row_count`), and the state machine calls again while
//! `remaining > 0`.

use std::{collections::BTreeMap, time::Duration};

use dbsync_workflow::{
    io::{AfterSyncOutput, TableCount, VerifyOutput, MAX_FLAGGED, MAX_LISTED},
    StepError,
};
use tokio_postgres::{error::SqlState, types::Type, Client};

use crate::{classify, sql, Budget, DbConfig, Timeouts};

/// Runs the `after_sync` statements this execution has not run yet, in order,
/// each in its own transaction (with its record) under the target guard and
/// the statement timeout. A failure names the statement's position, not its text.
///
/// With `detach` (a session's settings) and an execution, a statement longer
/// than the invocation goes on by itself and the next invocation waits for
/// it (see `crate::long`); without, one statement must fit one invocation.
pub async fn after_sync(
    client: &mut Client,
    statements: &[String],
    execution: Option<&str>,
    timeouts: Timeouts,
    budget: Budget,
    min_slice: Duration,
    detach: Option<&DbConfig>,
) -> Result<AfterSyncOutput, StepError> {
    let ctx = "running after_sync";
    let err = |e| classify(e, ctx);
    let run = execution.unwrap_or("by-hand");
    let mut out = AfterSyncOutput {
        statements: statements.len() as u64,
        ..Default::default()
    };
    if statements.is_empty() {
        return Ok(out);
    }
    crate::create_bookkeeping(client, sql::CREATE_AFTER_SYNC_DONE, timeouts, ctx).await?;
    let done: Vec<i32> = client
        .query_typed(sql::AFTER_SYNC_DONE, &[(&run, Type::TEXT)])
        .await
        .map_err(err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let total = statements.len();
    for (i, statement) in statements.iter().enumerate() {
        let position = i as i32 + 1;
        if done.contains(&position) {
            continue;
        }
        if budget.remaining() < min_slice {
            break;
        }
        let which = || format!("statement {position} of {total}");
        let failed = |e: tokio_postgres::Error| {
            crate::error::classify_user_sql(e, &format!("running after_sync {}", which()), |m| {
                StepError::AfterSyncFailed(format!("{}: {m}", which()))
            })
        };
        if let (Some(session), Some(x)) = (detach, execution) {
            let what = format!("after_sync {}", which());
            let key = format!("after_sync {x} {position}");
            let statement = sql::detached_after_sync(statement, x, position);
            let job = crate::long::Job::new(&what, &key, &statement, timeouts);
            // Done when its record is there (committed with it).
            let recorded = || async {
                let rows = client
                    .query_typed(sql::AFTER_SYNC_DONE, &[(&x, Type::TEXT)])
                    .await
                    .map_err(err)?;
                Ok(rows.iter().any(|r| r.get::<_, i32>(0) == position))
            };
            match crate::long::drive(client, session, &job, budget, recorded).await? {
                crate::long::Outcome::Done => {
                    out.ran += 1;
                    continue;
                }
                crate::long::Outcome::Running => break,
                crate::long::Outcome::Failed(e) => return Err(failed(e)),
            }
        }
        let result = async {
            let tx = client.transaction().await?;
            tx.batch_execute(&sql::prelude_user_sql(
                budget.statement_timeout(timeouts.statement),
                timeouts.lock,
            ))
            .await?;
            tx.batch_execute(statement).await?;
            tx.execute(sql::RECORD_AFTER_SYNC, &[&run, &position])
                .await?;
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => out.ran += 1,
            Err(e) if e.code() == Some(&SqlState::QUERY_CANCELED) && out.ran > 0 => break,
            Err(e) => return Err(failed(e)),
        }
    }
    out.remaining = (total - done.len()) as u64 - out.ran;
    if out.remaining == 0 {
        client
            .execute_typed(sql::FORGET_AFTER_SYNC, &[(&run, Type::TEXT)])
            .await
            .map_err(err)?;
        if detach.is_some() {
            client
                .execute_typed(sql::FORGET_LONG_AFTER_SYNC, &[(&run, Type::TEXT)])
                .await
                .map_err(err)?;
        }
    }
    Ok(out)
}

/// Counts the rows of every table the load reported (or, without a report,
/// of `tables`), table by table within the budget, and compares.
pub async fn verify(
    client: &mut Client,
    copied: Option<&BTreeMap<String, i64>>,
    tables: &[(String, String)],
    execution: Option<&str>,
    timeouts: Timeouts,
    budget: Budget,
    min_slice: Duration,
) -> Result<VerifyOutput, StepError> {
    let ctx = "counting rows";
    let err = |e| classify(e, ctx);
    let run = execution.unwrap_or("by-hand");
    crate::create_bookkeeping(client, sql::CREATE_ROW_COUNTS, timeouts, ctx).await?;
    // What to count: `schema.table` keys, as the load names them.
    let mut todo: Vec<String> = match copied {
        Some(c) => c.keys().cloned().collect(),
        None => tables.iter().map(|(s, t)| format!("{s}.{t}")).collect(),
    };
    todo.sort();
    let mut counted: BTreeMap<String, Option<i64>> = client
        .query_typed(sql::ROW_COUNTS, &[(&run, Type::TEXT)])
        .await
        .map_err(err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut counted_now = 0;
    for key in &todo {
        if counted.contains_key(key) {
            continue;
        }
        if budget.remaining() < min_slice {
            break;
        }
        let rows = match count(client, key, timeouts, budget).await {
            Ok(n) => n,
            Err(e) if e.code() == Some(&SqlState::QUERY_CANCELED) && counted_now > 0 => break,
            Err(e) => return Err(classify(e, &format!("counting {key}"))),
        };
        client
            .execute(sql::RECORD_ROW_COUNT, &[&run, key, &rows])
            .await
            .map_err(err)?;
        counted.insert(key.clone(), rows);
        counted_now += 1;
    }
    let remaining = todo.iter().filter(|k| !counted.contains_key(*k)).count() as u64;
    let mut out = VerifyOutput {
        tables: todo.len() as u64,
        rows_copied: copied.map(|c| c.values().sum()),
        remaining,
        per_table_unavailable: copied.is_none(),
        ..Default::default()
    };
    for key in &todo {
        let target = counted.get(key).copied().flatten();
        out.rows_in_target += target.unwrap_or(0);
        let expected = copied.and_then(|c| c.get(key).copied());
        if remaining == 0 && out.counts.len() < MAX_LISTED {
            out.counts.push(TableCount {
                table: key.clone(),
                copied: expected,
                target,
            });
        }
        if copied.is_some() && remaining == 0 && target != expected {
            out.flagged_total += 1;
            if out.flagged.len() < MAX_FLAGGED {
                out.flagged.push(TableCount {
                    table: key.clone(),
                    copied: expected,
                    target,
                });
            }
        }
    }
    if remaining == 0 {
        client
            .execute_typed(sql::FORGET_ROW_COUNTS, &[(&run, Type::TEXT)])
            .await
            .map_err(err)?;
    }
    Ok(out)
}

/// `count(*)` of `schema.table` (partitions included); `None` when the
/// target has no such table.
async fn count(
    client: &mut Client,
    key: &str,
    timeouts: Timeouts,
    budget: Budget,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let (schema, table) = key.split_once('.').unwrap_or(("public", key));
    let tx = client.build_transaction().read_only(true).start().await?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        budget
            .statement_timeout(timeouts.statement)
            .as_millis()
            .max(1)
    ))
    .await?;
    let exists: bool = tx
        .query_one(
            "SELECT pg_catalog.to_regclass(pg_catalog.quote_ident($1) || '.' || pg_catalog.quote_ident($2)) IS NOT NULL",
            &[&schema, &table],
        )
        .await?
        .get(0);
    let rows = if exists {
        let q = format!(
            "SELECT pg_catalog.count(*) FROM {}.{}",
            sql::ident(schema),
            sql::ident(table)
        );
        Some(tx.query_one(&q, &[]).await?.get(0))
    } else {
        None
    };
    tx.commit().await?;
    Ok(rows)
}
