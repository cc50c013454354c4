//! Foreign keys: capture + drop before the copy, restore + validate after.
//!
//! The saved definitions live in the target (`dbsync.saved_fk`) and are written
//! in the same transaction that drops the constraints, so no crash can lose
//! one; a definition is deleted only in the transaction that finishes restoring it.

use std::{str::FromStr, time::Duration};

use dbsync_workflow::{
    io::{DropFksOutput, OrphanReport, RestoreFksOutput},
    StepError,
};
use tokio_postgres::{error::SqlState, types::Type, Client, Row};

use crate::{classify, selected_tables, sql, step_transaction, Budget, Selection, Timeouts};

/// What restore does when rows violate a foreign key (DMS's full load is not a
/// consistent snapshot, so a child row can arrive without its parent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrphanPolicy {
    /// Leave the constraint NOT VALID (still saved) and fail with the counts.
    #[default]
    Fail,
    /// Delete the orphan rows, then validate.
    Delete,
    /// Leave the constraint NOT VALID on purpose and report it.
    KeepNotValid,
}

impl FromStr for OrphanPolicy {
    type Err = StepError;
    fn from_str(s: &str) -> Result<Self, StepError> {
        match s {
            "fail" => Ok(Self::Fail),
            "delete" => Ok(Self::Delete),
            "keep-not-valid" => Ok(Self::KeepNotValid),
            other => Err(StepError::Configuration(format!(
                "ORPHAN_POLICY {other:?} is not one of fail, delete, keep-not-valid"
            ))),
        }
    }
}

/// The foreign keys a sync would lift, as (child table, constraint, parent
/// table). Read-only.
pub async fn plan(
    client: &mut Client,
    selection: &Selection,
) -> Result<Vec<(String, String, String)>, StepError> {
    plan_rows(client, selection, &sql::plan_fks()).await
}

/// A read-only planning query over the selected tables' oids (`$1`), three text columns.
async fn plan_rows(
    client: &mut Client,
    selection: &Selection,
    query: &str,
) -> Result<Vec<(String, String, String)>, StepError> {
    let ctx = "planning";
    let tx = client.transaction().await.map_err(|e| classify(e, ctx))?;
    tx.batch_execute("SET LOCAL search_path = ''; SET LOCAL transaction_read_only = on")
        .await
        .map_err(|e| classify(e, ctx))?;
    let oids: Vec<u32> = selected_tables(&tx, selection)
        .await?
        .iter()
        .map(|t| t.oid)
        .collect();
    let rows = tx
        .query_typed(query, &[(&oids, Type::OID_ARRAY)])
        .await
        .map_err(|e| classify(e, ctx))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Saves and drops every foreign key on or referencing a selected table, in one
/// transaction and a constant number of round trips. Indexes stay.
pub async fn drop_fks(
    client: &mut Client,
    selection: &Selection,
    timeouts: Timeouts,
    budget: Budget,
) -> Result<DropFksOutput, StepError> {
    let keep = crate::indexes::IndexDrop::None;
    drop_for_load(
        client,
        selection,
        timeouts,
        budget,
        keep,
        &Default::default(),
    )
    .await
}

/// [`drop_fks`], and in the same transaction the indexes the load goes
/// without ([`crate::indexes`]).
pub async fn drop_for_load(
    client: &mut Client,
    selection: &Selection,
    timeouts: Timeouts,
    budget: Budget,
    indexes: crate::indexes::IndexDrop,
    masked: &crate::indexes::MaskedColumns,
) -> Result<DropFksOutput, StepError> {
    let ctx = "dropping foreign keys";
    let err = |e| classify(e, ctx);
    let tx = step_transaction(client, timeouts, budget, true, ctx).await?;
    tx.batch_execute(sql::UPGRADE_SAVED).await.map_err(err)?;
    let tables = selected_tables(&tx, selection).await?;
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let plan = tx
        .query_typed(&sql::capture_and_plan_drop(), &[(&oids, Type::OID_ARRAY)])
        .await
        .map_err(err)?;
    let checks = tx
        .query_typed(
            &sql::capture_and_plan_check_drop(),
            &[(&oids, Type::OID_ARRAY)],
        )
        .await
        .map_err(err)?;
    // Every drop in one round trip.
    let (mut dropped, mut checks_dropped) = (0u64, 0u64);
    let mut statements = String::new();
    for (rows, n) in [(&plan, &mut dropped), (&checks, &mut checks_dropped)] {
        for row in rows {
            statements.push_str(row.get::<_, &str>(0));
            statements.push_str(";\n");
            *n += row.get::<_, i64>(1) as u64;
        }
    }
    // User triggers off for the load, saved with their modes in this same
    // transaction (DMS's AfterConnectScript needs a superuser; a table
    // owner may do this).
    let triggers = tx
        .query_typed(
            &sql::capture_and_plan_triggers_off(),
            &[(&oids, Type::OID_ARRAY)],
        )
        .await
        .map_err(err)?;
    for row in &triggers {
        statements.push_str(row.get::<_, &str>(0));
        statements.push_str(";\n");
    }
    if !statements.is_empty() {
        tx.batch_execute(&statements).await.map_err(err)?;
    }
    // After the FKs: an index an FK leaned on is free now.
    let indexes_dropped = crate::indexes::capture_and_drop(&tx, &oids, indexes, masked).await?;
    let saved: i64 = tx
        .query_typed_one(sql::COUNT_SAVED, &[])
        .await
        .map_err(err)?
        .get(0);
    tx.commit().await.map_err(err)?;
    Ok(DropFksOutput {
        tables: tables.len() as u64,
        dropped,
        saved: saved as u64,
        checks_dropped,
        triggers_disabled: triggers.len() as u64,
        indexes_dropped,
    })
}

/// The user triggers a run switches off for the load (`plan`).
pub async fn plan_triggers(
    client: &Client,
    selection: &Selection,
) -> Result<Vec<String>, StepError> {
    let oids = crate::selected_oids(client, selection).await?;
    Ok(client
        .query_typed(&sql::triggers_in_scope(), &[(&oids, Type::OID_ARRAY)])
        .await
        .map_err(|e| classify(e, "listing user triggers"))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Switches every saved user trigger back on in the mode it had and forgets
/// it, in one transaction (a crash leaves them saved, and the next restore
/// does it). Returns how many came back.
async fn restore_triggers(
    client: &mut Client,
    timeouts: Timeouts,
    budget: Budget,
) -> Result<u64, StepError> {
    let ctx = "switching user triggers back on";
    let err = |e| classify(e, ctx);
    let tx = step_transaction(client, timeouts, budget, true, ctx).await?;
    tx.batch_execute(sql::UPGRADE_SAVED).await.map_err(err)?;
    let plan = tx
        .query_typed(sql::PLAN_TRIGGERS_ON, &[])
        .await
        .map_err(err)?;
    let statements: String = plan
        .iter()
        .map(|r| format!("{};\n", r.get::<_, &str>(0)))
        .collect();
    if !statements.is_empty() {
        tx.batch_execute(&statements).await.map_err(err)?;
    }
    tx.commit().await.map_err(err)?;
    Ok(plan.len() as u64)
}

/// Settings of the restore step.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub policy: OrphanPolicy,
    /// The synced tables: orphans are deleted only from these, never from
    /// staging's own tables (their rows are not DMS's to remove).
    pub synced: Selection,
    pub timeouts: Timeouts,
    /// Below this much remaining budget, stop and let the state machine call again.
    pub min_slice: Duration,
    /// Where a `VALIDATE` may run on a session of its own and outlive the
    /// invocation ([`crate::long`]); `None`: within the invocation only
    /// (then one that needs more is `ValidationTimeout`).
    pub detach: Option<crate::DbConfig>,
    /// Index builds at once (the indexes dropped for the load come back
    /// first: the foreign keys need their unique indexes).
    pub index_jobs: usize,
}

/// Where a saved foreign key stands (`dbsync.saved_fk.state`, whose CHECK
/// constraint allows exactly these three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SavedState {
    /// Saved and dropped; not re-added yet.
    Dropped,
    /// Re-added NOT VALID, waiting for validation.
    Added,
    /// Left NOT VALID on purpose (ORPHAN_POLICY=keep-not-valid).
    KeptNotValid,
}

impl SavedState {
    fn parse(s: &str) -> Self {
        match s {
            "added" => Self::Added,
            "kept_not_valid" => Self::KeptNotValid,
            // The table's CHECK admits nothing else; treat anything odd as not restored yet.
            _ => Self::Dropped,
        }
    }
}

/// One saved foreign key and its live counterpart (columns read by name).
struct Saved {
    schema: String,
    table: String,
    name: String,
    definition: String,
    was_validated: bool,
    on_partitioned: bool,
    state: SavedState,
    table_exists: bool,
    live_type: Option<String>,
    live_definition: Option<String>,
    live_validated: Option<bool>,
    server_version: i32,
    child_table: String,
    child_only: bool,
    parent_table: String,
    parent_only: bool,
    child_columns: Vec<String>,
    parent_columns: Vec<String>,
    match_full: bool,
    comment: Option<String>,
}

impl Saved {
    fn from_row(r: &Row) -> Self {
        Self {
            schema: r.get("table_schema"),
            table: r.get("table_name"),
            name: r.get("constraint_name"),
            definition: r.get("definition"),
            was_validated: r.get("was_validated"),
            on_partitioned: r.get("on_partitioned"),
            state: SavedState::parse(r.get("state")),
            table_exists: r.get("table_exists"),
            live_type: r.get("live_type"),
            live_definition: r.get("live_definition"),
            live_validated: r.get("live_validated"),
            server_version: r.get("server_version"),
            child_table: r.get("child_table"),
            child_only: r.get("child_only"),
            parent_table: r.get("parent_table"),
            parent_only: r.get("parent_only"),
            child_columns: r.get("child_columns"),
            parent_columns: r.get("parent_columns"),
            match_full: r.get("match_full"),
            comment: r.get("comment"),
        }
    }

    /// `; COMMENT ON CONSTRAINT …` when the original had a comment (after an ADD).
    fn comment_statement(&self) -> String {
        self.comment
            .as_deref()
            .map(|c| {
                format!(
                    ";\n{}",
                    sql::comment_on_constraint(&self.child_table, &self.name, c)
                )
            })
            .unwrap_or_default()
    }

    fn label(&self) -> String {
        format!("{}.{}", self.child_table, sql::ident(&self.name))
    }

    fn key(&self) -> String {
        sql::saved_key(&self.schema, &self.table, &self.name)
    }

    /// Whether the original constraint was validated (so the copy must be too).
    /// `NOT ENFORCED` constraints (PostgreSQL 18) are never validated.
    fn must_validate(&self) -> bool {
        self.was_validated && !self.definition.contains(" NOT ENFORCED")
    }

    /// Whether the FK must be added validated in one step instead of NOT VALID
    /// then VALIDATE: before PostgreSQL 18 a partitioned table cannot hold a
    /// NOT VALID FK, and when the referenced table is partitioned, VALIDATE
    /// leaves the per-partition clones marked NOT VALID (seen on 15), which
    /// would not restore the original flags.
    fn add_with_validation(&self) -> bool {
        (self.on_partitioned && self.server_version < 180_000) || !self.parent_only
    }

    fn definition_not_valid(&self) -> String {
        if self.must_validate() {
            format!("{} NOT VALID", self.definition)
        } else {
            self.definition.clone()
        }
    }

    fn orphan_predicate(&self) -> String {
        sql::orphan_predicate(
            &self.parent_table,
            self.parent_only,
            &self.child_columns,
            &self.parent_columns,
            self.match_full,
        )
    }
}

fn strip_not_valid(d: &str) -> &str {
    d.strip_suffix(" NOT VALID").unwrap_or(d)
}

/// What the validation loop does with one constraint.
enum Work {
    /// Exists NOT VALID: `VALIDATE CONSTRAINT`.
    Validate(Saved),
    /// See [`Saved::add_with_validation`].
    AddValidated(Saved),
}

impl Work {
    fn saved(&self) -> &Saved {
        match self {
            Work::Validate(s) | Work::AddValidated(s) => s,
        }
    }

    fn statement(&self) -> String {
        match self {
            Work::Validate(s) => sql::validate_constraint(&s.child_table, &s.name),
            Work::AddValidated(s) => format!(
                "{}{};\n{}",
                sql::add_constraint(&s.child_table, &s.name, &s.definition),
                s.comment_statement(),
                sql::RENAME_SAVED_CLONES
            ),
        }
    }
}

/// Re-adds saved foreign keys `NOT VALID`, then validates them one by one
/// while the budget lasts. `remaining > 0` in the output means "call again".
pub async fn restore_fks(
    client: &mut Client,
    opts: RestoreOptions,
    budget: Budget,
) -> Result<RestoreFksOutput, StepError> {
    let mut out = RestoreFksOutput {
        triggers_restored: restore_triggers(client, opts.timeouts, budget).await?,
        ..Default::default()
    };
    let rebuilt = crate::indexes::rebuild(
        client,
        &crate::indexes::RebuildOptions {
            timeouts: opts.timeouts,
            jobs: opts.index_jobs,
            detach: opts.detach.as_ref(),
            min_slice: opts.min_slice,
        },
        budget,
    )
    .await?;
    out.indexes_rebuilt = rebuilt.built;
    if rebuilt.remaining > 0 {
        // The keys wait for their indexes: call again.
        let saved: i64 = client
            .query_one(sql::COUNT_SAVED, &[])
            .await
            .map_err(|e| classify(e, "counting saved foreign keys"))?
            .get(0);
        out.indexes_remaining = rebuilt.remaining;
        out.remaining = rebuilt.remaining + saved as u64;
        return Ok(out);
    }
    let queue = add_phase(client, &opts, budget, &mut out).await?;
    let out = validate_phase(client, &opts, budget, queue, &mut out).await?;
    if out.remaining == 0 {
        // A validation a detached run finished may have been taken as
        // existing by the add phase: its start count goes too.
        client
            .batch_execute(sql::FORGET_LONG_VALIDATIONS)
            .await
            .map_err(|e| classify(e, "forgetting finished validations"))?;
    }
    Ok(out)
}

/// Phase 1, one transaction: every missing constraint comes back NOT VALID
/// (instant), or nothing does when any saved name is taken by another definition.
async fn add_phase(
    client: &mut Client,
    opts: &RestoreOptions,
    budget: Budget,
    out: &mut RestoreFksOutput,
) -> Result<Vec<Work>, StepError> {
    let ctx = "re-adding foreign keys";
    let err = |e| classify(e, ctx);
    let tx = step_transaction(client, opts.timeouts, budget, true, ctx).await?;
    tx.batch_execute(sql::UPGRADE_SAVED).await.map_err(err)?;
    let saved: Vec<Saved> = tx
        .query_typed(sql::RESTORE_STATUS, &[])
        .await
        .map_err(err)?
        .iter()
        .map(Saved::from_row)
        .collect();

    let mut conflicts = Vec::new();
    let mut adds = String::new();
    let mut now_added: [Vec<&str>; 3] = Default::default();
    let mut finished: [Vec<&str>; 3] = Default::default();
    let mut queue_idx = Vec::new();
    for (i, s) in saved.iter().enumerate() {
        if !s.table_exists {
            conflicts.push(format!("{} (table no longer exists)", s.label()));
            continue;
        }
        match (&s.live_type, &s.live_definition) {
            (Some(t), Some(live)) => {
                if t != "f" || strip_not_valid(live) != strip_not_valid(&s.definition) {
                    conflicts.push(s.label());
                } else if s.state == SavedState::KeptNotValid {
                    // Accepted as NOT VALID by policy earlier in this run.
                } else if !s.must_validate() || s.live_validated == Some(true) {
                    out.skipped_existing += 1;
                    push_key(&mut finished, s);
                } else {
                    if s.state == SavedState::Dropped {
                        out.skipped_existing += 1;
                        push_key(&mut now_added, s);
                    }
                    queue_idx.push((i, false));
                }
            }
            (Some(_), None) | (None, Some(_)) => {
                unreachable!("type and definition come from one row")
            }
            (None, None) => {
                if s.must_validate() && s.add_with_validation() {
                    queue_idx.push((i, true));
                    continue;
                }
                adds.push_str(&sql::add_constraint(
                    &s.child_table,
                    &s.name,
                    &s.definition_not_valid(),
                ));
                adds.push_str(&s.comment_statement());
                adds.push_str(";\n");
                out.added += 1;
                if s.must_validate() {
                    push_key(&mut now_added, s);
                    queue_idx.push((i, false));
                } else {
                    push_key(&mut finished, s);
                }
            }
        }
    }
    let checks = restore_checks(&tx, &mut conflicts).await?;
    if !conflicts.is_empty() {
        // Nothing was changed: the transaction rolls back on drop.
        return Err(StepError::ConstraintConflict(summarize(&conflicts)));
    }
    if !checks.0.is_empty() {
        tx.batch_execute(&checks.0).await.map_err(err)?;
        out.checks_restored += checks.1;
    }
    if !adds.is_empty() {
        tx.batch_execute(&adds).await.map_err(err)?;
    }
    // Clones of the FKs now back get their saved names (the others wait).
    tx.batch_execute(sql::RENAME_SAVED_CLONES)
        .await
        .map_err(err)?;
    if !now_added[0].is_empty() || !finished[0].is_empty() {
        let [a0, a1, a2] = &now_added;
        let [f0, f1, f2] = &finished;
        tx.query_typed(
            sql::RECORD_RESTORE_PROGRESS,
            &[
                (a0, Type::TEXT_ARRAY),
                (a1, Type::TEXT_ARRAY),
                (a2, Type::TEXT_ARRAY),
                (f0, Type::TEXT_ARRAY),
                (f1, Type::TEXT_ARRAY),
                (f2, Type::TEXT_ARRAY),
            ],
        )
        .await
        .map_err(err)?;
    }
    tx.commit().await.map_err(err)?;

    let mut slots: Vec<Option<Saved>> = saved.into_iter().map(Some).collect();
    Ok(queue_idx
        .into_iter()
        .map(|(i, add)| {
            let s = slots[i].take().expect("each saved FK is queued once");
            if add {
                Work::AddValidated(s)
            } else {
                Work::Validate(s)
            }
        })
        .collect())
}

/// The statements that put the saved NOT VALID checks back (and forget them),
/// with how many come back; name clashes go to `conflicts`.
async fn restore_checks(
    tx: &tokio_postgres::Transaction<'_>,
    conflicts: &mut Vec<String>,
) -> Result<(String, u64), StepError> {
    let rows = tx
        .query_typed(sql::CHECK_RESTORE_STATUS, &[])
        .await
        .map_err(|e| classify(e, "re-adding check constraints"))?;
    let mut batch = String::new();
    let mut restored = 0;
    for r in &rows {
        let (schema, table, name): (&str, &str, &str) = (
            r.get("table_schema"),
            r.get("table_name"),
            r.get("constraint_name"),
        );
        let (definition, comment): (&str, Option<&str>) = (r.get("definition"), r.get("comment"));
        let qualified: &str = r.get("qualified");
        let label = format!("{qualified}.{}", sql::ident(name));
        if !r.get::<_, bool>("table_exists") {
            conflicts.push(format!("{label} (table no longer exists)"));
            continue;
        }
        match r.get::<_, Option<&str>>("live_definition") {
            Some(live) if live == definition => {}
            Some(_) => {
                conflicts.push(label);
                continue;
            }
            None => {
                batch.push_str(&sql::add_constraint(qualified, name, definition));
                batch.push_str(";\n");
                if let Some(c) = comment {
                    batch.push_str(&sql::comment_on_constraint(qualified, name, c));
                    batch.push_str(";\n");
                }
                restored += 1;
            }
        }
        batch.push_str(&sql::forget_saved_check(schema, table, name));
        batch.push_str(";\n");
    }
    Ok((batch, restored))
}

/// `CHECK … NOT VALID` constraints a sync would lift, as (table, constraint,
/// definition). Read-only.
pub async fn plan_checks(
    client: &mut Client,
    selection: &Selection,
) -> Result<Vec<(String, String, String)>, StepError> {
    plan_rows(client, selection, &sql::plan_checks()).await
}

/// Counts a finished piece of work: validated, and re-created too when it was
/// added validated in one step (so "re-added" counts every key put back).
fn count_done(out: &mut RestoreFksOutput, work: &Work) {
    out.validated += 1;
    if matches!(work, Work::AddValidated(_)) {
        out.added += 1;
    }
}

fn push_key<'a>(v: &mut [Vec<&'a str>; 3], s: &'a Saved) {
    v[0].push(&s.schema);
    v[1].push(&s.table);
    v[2].push(&s.name);
}

/// Phase 2: validate one constraint per transaction (validation can take long
/// on big tables; each success is kept even if the invocation ends early).
async fn validate_phase(
    client: &mut Client,
    opts: &RestoreOptions,
    budget: Budget,
    queue: Vec<Work>,
    out: &mut RestoreFksOutput,
) -> Result<RestoreFksOutput, StepError> {
    let ctx = "validating foreign keys";
    let total = queue.len();
    let mut done = 0usize;
    let mut orphan_failures = Vec::new();
    // With sessions to detach to, the VALIDATEs run several at a time, each
    // on its own session; what they leave (orphans) is handled here after.
    let queue: Vec<Work> = match &opts.detach {
        Some(session) => {
            let (validates, rest): (Vec<Work>, Vec<Work>) = queue
                .into_iter()
                .partition(|w| matches!(w, Work::Validate(_)));
            let outcomes = validate_concurrently(client, session, opts, budget, &validates).await?;
            let mut running = false;
            for (work, outcome) in validates.iter().zip(outcomes) {
                match outcome {
                    Some(Detached::Done) => {
                        count_done(out, work);
                        done += 1;
                    }
                    // Too little left to handle them well (others ran to the
                    // end of the budget): validated again next time.
                    Some(Detached::Orphans) if budget.remaining() < opts.min_slice => {
                        running = true
                    }
                    Some(Detached::Orphans) => {
                        if handle_orphans(client, opts, budget, work, out, &mut orphan_failures)
                            .await?
                        {
                            done += 1;
                        } else {
                            // Orphans deleted; validated again, detached, next time.
                            running = true;
                        }
                    }
                    Some(Detached::Running) | None => running = true,
                }
            }
            if running {
                // The rest waits for the next invocation.
                if !orphan_failures.is_empty() {
                    return Err(StepError::OrphanRows(summarize(&orphan_failures)));
                }
                out.remaining = (total - done) as u64;
                return Ok(std::mem::take(out));
            }
            rest
        }
        None => queue,
    };
    for work in &queue {
        if budget.remaining() < opts.min_slice {
            break;
        }
        let s = work.saved();
        let timeout = budget.statement_timeout(opts.timeouts.statement);
        let batch = format!(
            "BEGIN;\n{}{};\n{};\nCOMMIT;",
            sql::prelude(timeout, opts.timeouts.lock, false),
            work.statement(),
            sql::forget_saved(&s.key())
        );
        match client.batch_execute(&batch).await {
            Ok(()) => {
                count_done(out, work);
                done += 1;
            }
            Err(e) => {
                // The batch stopped inside its transaction; end it before anything else.
                if client.batch_execute("ROLLBACK").await.is_err() {
                    return Err(classify(e, ctx));
                }
                match e.code() {
                    Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => {
                        handle_orphans(client, opts, budget, work, out, &mut orphan_failures)
                            .await?;
                        done += 1;
                    }
                    Some(c)
                        if *c == SqlState::QUERY_CANCELED && done == 0 && out.validated == 0 =>
                    {
                        // It had the whole invocation and still did not finish: looping would never end.
                        return Err(StepError::ValidationTimeout(s.label()));
                    }
                    Some(c) if *c == SqlState::QUERY_CANCELED => break,
                    _ => return Err(classify(e, ctx)),
                }
            }
        }
    }
    if !orphan_failures.is_empty() {
        return Err(StepError::OrphanRows(summarize(&orphan_failures)));
    }
    out.remaining = (total - done) as u64;
    Ok(std::mem::take(out))
}

/// Runs detached `VALIDATE`s up to `index_jobs` at once, never two on one
/// table (each holds its table's SHARE UPDATE EXCLUSIVE lock), those an
/// earlier invocation left running first. Per work: its outcome, or `None`
/// when it was not started (out of budget or slots).
async fn validate_concurrently(
    client: &Client,
    session: &crate::DbConfig,
    opts: &RestoreOptions,
    budget: Budget,
    works: &[Work],
) -> Result<Vec<Option<Detached>>, StepError> {
    use futures_util::{stream::FuturesUnordered, StreamExt};
    let mut order: Vec<usize> = (0..works.len()).collect();
    let keys: Vec<String> = works.iter().map(|w| validate_key(w.saved())).collect();
    let running =
        crate::long::running_keys(client, &keys.iter().map(String::as_str).collect::<Vec<_>>())
            .await?;
    order.sort_by_key(|&i| !running[i]);
    let mut outcomes: Vec<Option<Detached>> = works.iter().map(|_| None).collect();
    let mut busy: std::collections::BTreeSet<&str> = Default::default();
    let mut free = opts.index_jobs.max(1);
    let mut pending = order;
    let mut in_flight = FuturesUnordered::new();
    loop {
        while free > 0 {
            let next = pending
                .iter()
                .position(|&i| !busy.contains(works[i].saved().child_table.as_str()));
            let Some(at) = next else { break };
            let i = pending.remove(at);
            if !running[i] && budget.remaining() < opts.min_slice {
                pending.clear();
                break;
            }
            free -= 1;
            busy.insert(works[i].saved().child_table.as_str());
            in_flight.push(async move {
                (
                    i,
                    validate_detached(client, session, opts, budget, &works[i]).await,
                )
            });
        }
        let Some((i, outcome)) = in_flight.next().await else {
            break;
        };
        let outcome = outcome?;
        match outcome {
            Detached::Done => {
                free += 1;
                busy.remove(works[i].saved().child_table.as_str());
            }
            // Its orphans are handled after, on a table no other validation
            // of this invocation touches.
            Detached::Orphans => free += 1,
            Detached::Running => {}
        }
        outcomes[i] = Some(outcome);
    }
    Ok(outcomes)
}

/// A validation's key among the long statements.
fn validate_key(s: &Saved) -> String {
    format!("validate {}", s.key())
}

/// What a detached validation came to in this invocation.
enum Detached {
    Done,
    Running,
    Orphans,
}

/// One `VALIDATE` that may take longer than the invocation: waits for a run
/// of it an earlier invocation left going, or starts it on a session of its
/// own ([`crate::long`]); the saved definition is forgotten once the live
/// constraint is validated.
async fn validate_detached(
    client: &Client,
    session: &crate::DbConfig,
    opts: &RestoreOptions,
    budget: Budget,
    work: &Work,
) -> Result<Detached, StepError> {
    let ctx = "validating foreign keys";
    let err = |e| classify(e, ctx);
    let s = work.saved();
    let (what, key, statement) = (
        format!("validating {}", s.label()),
        validate_key(s),
        work.statement(),
    );
    let job = crate::long::Job::new(&what, &key, &statement, opts.timeouts);
    let validated = || async {
        client
            .query_one(sql::CONSTRAINT_VALIDATED, &[&s.child_table, &s.name])
            .await
            .map(|r| r.get::<_, Option<bool>>(0).unwrap_or(false))
            .map_err(err)
    };
    match crate::long::drive(client, session, &job, budget, validated).await? {
        crate::long::Outcome::Done => {
            client
                .batch_execute(&sql::forget_saved(&s.key()))
                .await
                .map_err(err)?;
            Ok(Detached::Done)
        }
        crate::long::Outcome::Running => Ok(Detached::Running),
        crate::long::Outcome::Failed(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
            Ok(Detached::Orphans)
        }
        crate::long::Outcome::Failed(e) => Err(classify(e, ctx)),
    }
}

/// What a constraint with orphan rows comes to under the policy. `false`:
/// the orphans were deleted but the constraint is validated later (a
/// detached `VALIDATE`, which may outlast this invocation).
async fn handle_orphans(
    client: &mut Client,
    opts: &RestoreOptions,
    budget: Budget,
    work: &Work,
    out: &mut RestoreFksOutput,
    failures: &mut Vec<String>,
) -> Result<bool, StepError> {
    let ctx = "checking orphan rows";
    let err = |e| classify(e, ctx);
    let s = work.saved();
    let predicate = s.orphan_predicate();
    let policy = match (opts.policy, work) {
        // A partitioned table before PostgreSQL 18 cannot hold a NOT VALID FK.
        (OrphanPolicy::KeepNotValid, Work::AddValidated(_)) => OrphanPolicy::Fail,
        // Staging-only rows are never deleted: the user decides about them.
        (OrphanPolicy::Delete, _) if !opts.synced.matches(&s.schema, &s.table) => {
            OrphanPolicy::Fail
        }
        (p, _) => p,
    };
    match policy {
        OrphanPolicy::Fail | OrphanPolicy::KeepNotValid => {
            // Counted within the invocation's budget; a count that does not
            // fit is reported as such, never left running past it.
            let count: Option<i64> = {
                let tx = step_transaction(client, opts.timeouts, budget, false, ctx).await?;
                match tx
                    .query_typed_one(
                        &sql::count_orphans(&s.child_table, s.child_only, &predicate),
                        &[],
                    )
                    .await
                {
                    Ok(row) => Some(row.get(0)),
                    Err(e) if e.code() == Some(&SqlState::QUERY_CANCELED) => None,
                    Err(e) => return Err(err(e)),
                }
            };
            let shown = count.map_or_else(
                || "uncounted (too many to count in time)".into(),
                |c| c.to_string(),
            );
            if policy == OrphanPolicy::Fail {
                failures.push(format!("{}: {shown} orphan row(s)", s.label()));
            } else {
                client
                    .batch_execute(&sql::keep_not_valid(&s.key()))
                    .await
                    .map_err(err)?;
                out.kept_not_valid_total += 1;
                if out.kept_not_valid.len() < RestoreFksOutput::LISTED {
                    out.kept_not_valid.push(OrphanReport {
                        constraint: s.label(),
                        orphan_rows: count.unwrap_or(0) as u64,
                    });
                }
            }
        }
        OrphanPolicy::Delete => {
            let tx = step_transaction(client, opts.timeouts, budget, false, ctx).await?;
            let delete = if s.child_table == s.parent_table {
                sql::delete_orphan_trees(
                    &s.child_table,
                    s.child_only,
                    &predicate,
                    &s.child_columns,
                    &s.parent_columns,
                )
            } else {
                sql::delete_orphans(&s.child_table, s.child_only, &predicate)
            };
            let blocked = |e: tokio_postgres::Error| {
                match e.code() {
                Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => StepError::OrphanRows(format!(
                    "{}: its orphan rows cannot be deleted because rows of another table reference them",
                    s.label()
                )),
                _ => classify(e, ctx),
            }
            };
            // Repeat until none are left: deleting can orphan rows further down.
            loop {
                let n = tx.execute_typed(&delete, &[]).await.map_err(blocked)?;
                out.deleted_orphan_rows += n;
                if n == 0 {
                    break;
                }
            }
            if opts.detach.is_some() && matches!(work, Work::Validate(_)) {
                // The deletes are kept; the VALIDATE is tried within what is
                // left, and if it does not fit it runs again, detached, in
                // the next invocation.
                tx.commit().await.map_err(err)?;
                let tx = step_transaction(client, opts.timeouts, budget, false, ctx).await?;
                return match tx
                    .batch_execute(&format!(
                        "{};\n{}",
                        work.statement(),
                        sql::forget_saved(&s.key())
                    ))
                    .await
                {
                    Ok(()) => {
                        tx.commit().await.map_err(err)?;
                        count_done(out, work);
                        Ok(true)
                    }
                    Err(e) if e.code() == Some(&SqlState::QUERY_CANCELED) => Ok(false),
                    Err(e) => Err(classify(e, "validating foreign keys")),
                };
            }
            tx.batch_execute(&format!(
                "{};\n{}",
                work.statement(),
                sql::forget_saved(&s.key())
            ))
            .await
            .map_err(|e| classify(e, "validating foreign keys"))?;
            tx.commit().await.map_err(err)?;
            count_done(out, work);
        }
    }
    Ok(true)
}

fn summarize(items: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > SHOWN {
        s.push_str(&format!("; and {} more", items.len() - SHOWN));
    }
    s
}
