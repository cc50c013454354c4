//! Statements longer than one invocation (a `VALIDATE CONSTRAINT` on a table
//! of hundreds of millions of rows): no statement is limited by a Lambda's
//! 15 minutes.
//!
//! Such a statement runs on a session of its own, alone in its message (or
//! with its bookkeeping, inside `BEGIN` … `COMMIT` in that one message), so
//! PostgreSQL commits it before it sends anything back (notices are off for
//! the session, see [`session_setup`]): it keeps running and commits when the invocation that
//! started it has returned (the session stays open in the frozen Lambda, or
//! the local process) — and even when its client is gone altogether, since
//! a backend notices a lost client only when it next writes to it, after
//! the commit (`client_connection_check_interval`, which would end it
//! sooner, is switched off for the session). Its session is tagged through
//! `application_name`, so the next invocation finds it in `pg_stat_activity`
//! and waits for it instead of starting another.
//!
//! A statement that ends without its effect (it failed while nobody waited)
//! is started again, at most [`MAX_STARTS`] times in all; then the step fails
//! by name (`DetachedStatementFailed`), and PostgreSQL's log says why.

use std::time::Duration;

use dbsync_workflow::StepError;
use tokio_postgres::Client;

use crate::{classify, Budget, DbConfig, Timeouts};

/// How often one statement is started before the step gives up.
pub const MAX_STARTS: i32 = 3;

/// The longest a detached statement may run: within the execution's own
/// limit (a day), with room for the rest of the run.
pub const LIMIT: Duration = Duration::from_secs(20 * 3600);

/// Time kept back from the budget when waiting (to answer in time).
const WAIT_MARGIN: Duration = Duration::from_secs(2);

/// What became of a long statement within this invocation.
#[derive(Debug)]
pub enum Outcome {
    /// It finished (committed).
    Done,
    /// It is still running on its own session: call again.
    Running,
    /// It failed while this invocation waited: the server's error.
    Failed(tokio_postgres::Error),
}

/// One long statement.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    /// What it is for messages (`validating public.orders.orders_customer`).
    pub what: &'a str,
    /// A key unique on the target (the saved constraint's name, …).
    pub key: &'a str,
    /// One statement.
    pub statement: &'a str,
    /// Its limit: the execution's, not the invocation's.
    pub limit: Duration,
    pub timeouts: Timeouts,
}

impl<'a> Job<'a> {
    /// A job limited by the execution's own limit ([`LIMIT`]).
    pub fn new(what: &'a str, key: &'a str, statement: &'a str, timeouts: Timeouts) -> Self {
        Job {
            what,
            key,
            statement,
            limit: LIMIT,
            timeouts,
        }
    }

    /// The session's `application_name` (at most 63 bytes): a hash of the key.
    pub fn tag(&self) -> String {
        tag_of(self.key)
    }
}

fn tag_of(key: &str) -> String {
    // FNV-1a: stable across builds, unlike std's hasher.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("dbsync-long:{hash:016x}")
}

/// One invocation's share of a long job: waits while a run of it left by an
/// earlier invocation goes on; then, unless `done` says its effect is there,
/// starts it and waits while the budget lasts.
pub async fn drive<F, Fut>(
    checker: &Client,
    session: &DbConfig,
    job: &Job<'_>,
    budget: Budget,
    done: F,
) -> Result<Outcome, StepError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<bool, StepError>>,
{
    let until = tokio::time::Instant::now() + budget.remaining().saturating_sub(WAIT_MARGIN);
    if wait_while_running(checker, job, until).await? {
        return Ok(Outcome::Running);
    }
    if done().await? {
        forget(checker, job).await?;
        return Ok(Outcome::Done);
    }
    start(checker, session, job, until).await
}

/// Whether the job's statement runs on some session now.
pub async fn running(checker: &Client, job: &Job<'_>) -> Result<bool, StepError> {
    Ok(running_keys(checker, &[job.key]).await?[0])
}

/// For each key, whether its job's statement runs on some session now: one
/// round trip however many jobs a step has.
pub async fn running_keys(checker: &Client, keys: &[&str]) -> Result<Vec<bool>, StepError> {
    let tags: std::collections::HashSet<String> = checker
        .query(
            // `active` from the message's first statement to its last (a
            // failed block waiting for its ROLLBACK runs nothing).
            "SELECT DISTINCT application_name::text FROM pg_catalog.pg_stat_activity \
             WHERE application_name LIKE 'dbsync-long:%' AND state = 'active' \
               AND pid <> pg_catalog.pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| classify(e, "looking for running statements"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(keys.iter().map(|k| tags.contains(&tag_of(k))).collect())
}

/// Waits while the job's statement runs elsewhere, until `until`; `true`
/// when it still runs then.
pub async fn wait_while_running(
    checker: &Client,
    job: &Job<'_>,
    until: tokio::time::Instant,
) -> Result<bool, StepError> {
    loop {
        if !running(checker, job).await? {
            return Ok(false);
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            return Ok(true);
        }
        tokio::time::sleep((until - now).min(Duration::from_millis(500))).await;
    }
}

/// Starts the job on a session of its own and waits for it until `until`.
/// Counts the starts in `dbsync.long_statement` (on `checker`): past
/// [`MAX_STARTS`] it is `DetachedStatementFailed`. The caller has checked
/// that it is neither running nor done.
pub async fn start(
    checker: &Client,
    session: &DbConfig,
    job: &Job<'_>,
    until: tokio::time::Instant,
) -> Result<Outcome, StepError> {
    let ctx = "starting a long statement";
    let err = |e| classify(e, ctx);
    let starts: i32 = checker
        .query_one(crate::sql::COUNT_LONG_START, &[&job.key])
        .await
        .map_err(err)?
        .get(0);
    if starts > MAX_STARTS {
        forget(checker, job).await?;
        return Err(StepError::DetachedStatementFailed(format!(
            "{} ended without finishing {MAX_STARTS} times while no invocation was connected",
            job.what
        )));
    }
    let client = session.connect().await?;
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(err)?
        .get(0);
    client
        .batch_execute(&session_setup(job, version))
        .await
        .map_err(err)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let statement = job.statement.to_owned();
    // The task owns the session: it outlives this invocation, and the
    // statement with it.
    tokio::spawn(async move {
        let result = client.batch_execute(&statement).await;
        let _ = tx.send(result);
    });
    match tokio::time::timeout_at(until, rx).await {
        Ok(Ok(Ok(()))) => {
            forget(checker, job).await?;
            Ok(Outcome::Done)
        }
        Ok(Ok(Err(e))) => {
            forget(checker, job).await?;
            Ok(Outcome::Failed(e))
        }
        Ok(Err(_)) => Err(StepError::DatabaseUnavailable(format!(
            "the session of a long statement ({}) ended without an answer",
            job.what
        ))),
        Err(_) => Ok(Outcome::Running),
    }
}

/// The settings of a detached statement's session: its tag, the job's
/// limits, and nothing that would make the server write to the client before
/// the statement has committed — a notice (`client_min_messages`) is flushed
/// at once, and a write to a client that is gone ends the session; nor
/// anything that probes the client (`client_connection_check_interval`,
/// PostgreSQL 14+). A session left in a failed transaction block (a
/// statement of several that failed with nobody reading) is closed soon.
pub fn session_setup(job: &Job<'_>, server_version_num: i32) -> String {
    let mut setup = format!(
        "SET application_name = {}; SET statement_timeout = {}; SET lock_timeout = {}; \
         SET client_min_messages = error; SET idle_in_transaction_session_timeout = 10000;",
        crate::sql::literal(&job.tag()),
        job.limit.as_millis().max(1),
        job.timeouts.lock.as_millis().max(1),
    );
    if server_version_num >= 140_000 {
        setup.push_str(" SET client_connection_check_interval = 0;");
    }
    setup
}

/// Forgets the job's start count (it finished, or the step gave up).
pub async fn forget(checker: &Client, job: &Job<'_>) -> Result<(), StepError> {
    checker
        .execute(crate::sql::FORGET_LONG, &[&job.key])
        .await
        .map_err(|e| classify(e, "forgetting a long statement"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_fit_application_name_and_differ_by_key() {
        let job = |key| Job {
            what: "x",
            key,
            statement: "SELECT 1",
            limit: Duration::from_secs(1),
            timeouts: Timeouts::default(),
        };
        let a = job("public.orders.orders_customer").tag();
        assert!(a.len() <= 63, "{a}");
        assert_eq!(a, job("public.orders.orders_customer").tag());
        assert_ne!(a, job("public.orders.orders_product").tag());
    }
}
