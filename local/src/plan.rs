//! `dbsync plan`: what a run would do to staging, and whether it would be
//! refused (the same checks a run makes before any change). Changes nothing.

use std::process::ExitCode;

use dbsync_db::{schema::Compatibility, DbConfig, Selection};
use dbsync_workflow::{sync_config::SyncConfig, StepError};
use serde_json::{json, Value};

use crate::side;

/// What `plan` found.
struct Plan {
    target: String,
    opted_in: bool,
    fks: Vec<(String, String, String)>,
    checks: Vec<(String, String, String)>,
    /// User triggers switched off for the load and back on.
    triggers: Vec<String>,
    seqs: Vec<dbsync_db::sequences::SequenceUse>,
    /// `None` without `--source`.
    copy: Option<Vec<String>>,
    compat: Option<Compatibility>,
    /// `schema.table.column`, rule key, rule name.
    masked: Vec<(String, String, String)>,
    saved_keys: i64,
    /// Indexes saved by an interrupted run and not rebuilt.
    saved_indexes: i64,
    lease: Option<dbsync_db::lease::Holder>,
    /// Strict mode: columns no rule classifies.
    unclassified: Vec<String>,
    allow_casts: bool,
}

impl Plan {
    /// The refusals a run would meet, as error names with a reason.
    fn refusals(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.opted_in {
            out.push((
                "TargetNotOptedIn".to_owned(),
                "run `dbsync init-target --target …` first".to_owned(),
            ));
        }
        if !self.unclassified.is_empty() {
            out.push((
                "UnclassifiedColumns".to_owned(),
                format!(
                    "strict: {} column(s) have no data rule",
                    self.unclassified.len()
                ),
            ));
        }
        if let Some(c) = &self.compat {
            let n = c.blocking(self.allow_casts).len();
            if n > 0 {
                out.push((
                    "SchemaMismatch".to_owned(),
                    format!("{n} difference(s) between production and staging"),
                ));
            }
        }
        out
    }
}

pub async fn plan(
    target: &DbConfig,
    source: Option<DbConfig>,
    selection: &Selection,
    sync: &SyncConfig,
    as_json: bool,
) -> Result<ExitCode, StepError> {
    let mut client = target.connect().await.map_err(|e| side("--target", e))?;
    let opted_in = dbsync_db::target::is_target(&mut client).await?;
    let fks = dbsync_db::fks::plan(&mut client, selection).await?;
    let checks = dbsync_db::fks::plan_checks(&mut client, selection).await?;
    let triggers = dbsync_db::fks::plan_triggers(&client, selection).await?;
    let tables = dbsync_db::selected_tables(&client, selection).await?;
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let seqs = dbsync_db::sequences::sequence_uses(&client, &oids).await?;
    // The run's refusals of the config file, against staging's catalog.
    let masks = dbsync_db::mask::plan(&client, selection, sync).await?;
    if !masks.is_empty() {
        dbsync_db::mask::check(&mut client, &masks, &sync.origin).await?;
    }
    let masked: Vec<(String, String, String)> = masks
        .tables
        .values()
        .flat_map(|t| {
            t.columns.iter().map(|c| {
                (
                    format!("{}.{}.{}", t.schema, t.name, c.column),
                    c.key.clone(),
                    c.rule.to_owned(),
                )
            })
        })
        .collect();
    // Strict masking judges production's columns when it can read them.
    let mut unclassified = masks.unclassified.clone();
    let (copy, compat) = match &source {
        Some(s) => {
            let production = s.connect().await.map_err(|e| side("--source", e))?;
            if sync.strict {
                unclassified = dbsync_db::mask::plan(&production, selection, sync)
                    .await?
                    .unclassified;
            }
            if dbsync_db::schema::same_database(&production, &client).await? {
                return Err(StepError::SameDatabase(format!(
                    "--source and --target both reach {}",
                    target.describe()
                )));
            }
            dbsync_db::schema::covered(&production, selection).await?;
            let compat = dbsync_db::schema::check(&production, &client, selection).await?;
            let copy = dbsync_replicate::plan(&production, selection)
                .await?
                .iter()
                .map(|t| t.qualified())
                .collect();
            (Some(copy), Some(compat))
        }
        None => (None, None),
    };
    let plan = Plan {
        target: target.describe(),
        opted_in,
        fks,
        checks,
        triggers,
        seqs,
        copy,
        compat,
        masked,
        saved_keys: saved_keys(&client).await?,
        saved_indexes: dbsync_db::indexes::saved_count(&client).await?,
        lease: dbsync_db::lease::holder(&client).await?,
        unclassified,
        allow_casts: sync.allow_lossless_casts,
    };
    if as_json {
        crate::print_json(&document(&plan));
    } else {
        print!("{}", text(&plan));
    }
    Ok(if plan.refusals().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Foreign keys saved by an earlier run and not yet restored.
async fn saved_keys(client: &tokio_postgres::Client) -> Result<i64, StepError> {
    let ctx = "counting saved foreign keys";
    let row = client
        .query_one(
            "SELECT CASE WHEN pg_catalog.to_regclass('dbsync.saved_fk') IS NULL THEN 0::int8 \
             ELSE (SELECT pg_catalog.count(*) FROM dbsync.saved_fk) END",
            &[],
        )
        .await;
    match row {
        Ok(r) => Ok(r.get(0)),
        Err(e) => Err(dbsync_db::classify(e, ctx)),
    }
}

fn document(p: &Plan) -> Value {
    let compat = p.compat.as_ref();
    json!({
        "target": p.target,
        "optedIn": p.opted_in,
        "wouldRefuse": p.refusals().iter().map(|(n, why)| json!({"error": n, "why": why})).collect::<Vec<_>>(),
        "schemaDifferences": compat.map(|c| c.differences.iter().map(|d| json!({
            "object": d.object,
            "production": d.production,
            "staging": d.staging,
            "losslessCast": d.lossless_cast,
            "blocking": !(d.note_only || p.allow_casts && d.lossless_cast),
        })).collect::<Vec<_>>()),
        "foreignKeysToDrop": p.fks.iter().map(|(c, n, parent)| json!({"table": c, "constraint": n, "references": parent})).collect::<Vec<_>>(),
        "notValidChecksToLift": p.checks.iter().map(|(t, n, d)| json!({"table": t, "constraint": n, "definition": d})).collect::<Vec<_>>(),
        "triggersToSwitchOff": p.triggers,
        "sequencesToFix": p.seqs.iter().map(|s| json!({"sequence": s.name, "columns": s.columns.iter().map(|(t, c)| format!("{t}.{c}")).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "tablesToCopy": p.copy,
        "maskedColumns": p.masked.iter().map(|(c, k, r)| json!({"column": c, "key": k, "rule": r})).collect::<Vec<_>>(),
        "unclassifiedColumns": p.unclassified,
        "savedForeignKeysWaiting": p.saved_keys,
        "savedIndexesWaiting": p.saved_indexes,
        "lease": p.lease.as_ref().map(|h| json!({"heldBy": h.execution, "expired": h.expired})),
    })
}

fn text(p: &Plan) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "target {}: {}",
        p.target,
        if p.opted_in {
            "opted in"
        } else {
            "NOT opted in (run `dbsync init-target` first)"
        }
    );
    if p.saved_keys > 0 {
        let _ = writeln!(s, "waiting: {} foreign key(s) saved by an interrupted run and not restored; the next run restores them", p.saved_keys);
    }
    if p.saved_indexes > 0 {
        let _ = writeln!(s, "waiting: {} index(es) dropped for an interrupted run's load and not rebuilt; the next run rebuilds them", p.saved_indexes);
    }
    if let Some(h) = &p.lease {
        let _ = writeln!(
            s,
            "run lease: held by {}{}",
            h.execution,
            if h.expired {
                " (expired: the next run takes it)"
            } else {
                " (the next local run takes it over when that run is gone)"
            }
        );
    }
    match &p.compat {
        Some(c) if c.differences.is_empty() => {
            let _ = writeln!(
                s,
                "\nschema: the {} synced table(s) match production's",
                c.tables
            );
        }
        Some(c) => {
            let blocking = c.blocking(p.allow_casts).len();
            let _ = writeln!(
                s,
                "\nschema differences ({}; {blocking} would refuse a run):",
                c.differences.len()
            );
            for d in &c.differences {
                let cast = match (d.lossless_cast, p.allow_casts, d.note_only) {
                    (_, _, true) => "  [staging's own: kept as it is]",
                    (true, true, _) => "  [copied through a cast]",
                    (true, false, _) => {
                        "  [lossless: --allow-lossless-casts copies it through a cast]"
                    }
                    _ => "",
                };
                let _ = writeln!(
                    s,
                    "  {}: production {} / staging {}{cast}",
                    d.object, d.production, d.staging
                );
            }
        }
        None => {
            let _ = writeln!(
                s,
                "\nschema: not compared without --source (a run compares production's and staging's tables first)"
            );
        }
    }
    let _ = writeln!(s, "\nforeign keys to lift and restore ({}):", p.fks.len());
    for (table, name, parent) in &p.fks {
        let _ = writeln!(s, "  {table:<40} {name:<40} → {parent}");
    }
    let _ = writeln!(
        s,
        "\nCHECK … NOT VALID constraints to lift and restore ({}):",
        p.checks.len()
    );
    for (table, name, _) in &p.checks {
        let _ = writeln!(s, "  {table:<40} {name}");
    }
    let _ = writeln!(
        s,
        "\nuser triggers off for the load, back on in their modes ({}):",
        p.triggers.len()
    );
    for t in &p.triggers {
        let _ = writeln!(s, "  {t}");
    }
    let _ = writeln!(s, "\nsequences to move past the data ({}):", p.seqs.len());
    for q in &p.seqs {
        let cols: Vec<String> = q.columns.iter().map(|(t, c)| format!("{t}.{c}")).collect();
        let _ = writeln!(s, "  {:<40} {}", q.name, cols.join(", "));
    }
    if !p.masked.is_empty() {
        let _ = writeln!(s, "\nmasked columns ({}):", p.masked.len());
        for (col, key, rule) in &p.masked {
            let _ = writeln!(s, "  {col:<50} {rule} (rule {key})");
        }
    }
    if !p.unclassified.is_empty() {
        let _ = writeln!(
            s,
            "\nunclassified columns (strict; {}): give each a rule or `untouched`",
            p.unclassified.len()
        );
        for c in &p.unclassified {
            let _ = writeln!(s, "  {c}");
        }
    }
    match &p.copy {
        Some(tables) => {
            let _ = writeln!(s, "\ntables to copy ({}):", tables.len());
            for t in tables {
                let _ = writeln!(s, "  {t}");
            }
        }
        None => {
            let _ = writeln!(
                s,
                "\ntables to copy: not known without --source (the copy reads production's tables)"
            );
        }
    }
    let refusals = p.refusals();
    if !refusals.is_empty() {
        let _ = writeln!(s, "\na run would be refused:");
        for (name, why) in refusals {
            let _ = writeln!(s, "  {name}: {why}");
        }
    }
    s
}
