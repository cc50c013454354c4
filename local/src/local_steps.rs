//! The AWS-facing steps in local mode (same handlers as the Lambdas, local
//! ports), and the demo's orchestration.

use std::{process::ExitCode, time::Duration};

use dbsync_db::{env::StepEnv, DbConfig, Selection};
use dbsync_replicate::LocalReplicator;
use dbsync_testpg::{Cluster, Options};
use dbsync_workflow::StepError;
use serde_json::Value;

use crate::{
    demo,
    engine::{RunConfig, Versions, LOCAL_TASK_ARN},
};

/// Local poll bounds: short, since local copies are quick (waits are also scaled).
const POLL: poll_dms::PollConfig = poll_dms::PollConfig {
    min_wait: Duration::from_secs(2),
    max_wait: Duration::from_secs(60),
    max_duration: Duration::from_secs(6 * 3600),
};

pub async fn version_check(
    versions: &Versions,
    source: &DbConfig,
    env: &StepEnv,
    payload: Value,
) -> Result<Value, StepError> {
    let out = match versions {
        Versions::Dir(dir) => {
            version_check::handle(&version_check::DirSource::new(dir.clone()), payload).await?
        }
        Versions::Query(q) => {
            let src = version_check::SqlSource::new(
                dbsync_db::Db::new(source.clone()),
                &env.db,
                q.clone(),
            );
            version_check::handle(&src, payload).await?
        }
    };
    Ok(serde_json::to_value(out).expect("serializable"))
}

pub async fn start(replicator: &LocalReplicator, payload: Value) -> Result<Value, StepError> {
    let out = start_dms::handle(replicator, LOCAL_TASK_ARN, &POLL, payload).await?;
    Ok(serde_json::to_value(out).expect("serializable"))
}

pub async fn poll(replicator: &LocalReplicator, payload: Value) -> Result<Value, StepError> {
    let out = poll_dms::handle(replicator, LOCAL_TASK_ARN, &POLL, payload).await?;
    Ok(serde_json::to_value(out).expect("serializable"))
}

/// `dbsync demo`.
pub async fn demo(scale: f64, keep: bool) -> Result<ExitCode, StepError> {
    let total = demo::Timer::start();
    println!("dbsync demo: starting a throwaway PostgreSQL server…");
    let cluster = Cluster::start(Options {
        persistent: keep,
        ..Options::default()
    })
    .map_err(|e| StepError::Configuration(format!("cannot start PostgreSQL for the demo: {e}")))?;
    cluster
        .admin_sql("CREATE DATABASE prod")
        .and_then(|_| cluster.admin_sql("CREATE DATABASE staging"))
        .map_err(StepError::Configuration)?;
    let (prod_cfg, staging_cfg) = (
        DbConfig::from_url(&cluster.url("prod"))?,
        DbConfig::from_url(&cluster.url("staging"))?,
    );
    let (prod, mut staging) = (
        demo::session(&prod_cfg).await?,
        demo::session(&staging_cfg).await?,
    );

    let t = demo::Timer::start();
    demo::setup(&prod, &staging, scale).await?;
    let versions =
        std::env::temp_dir().join(format!("dbsync-demo-versions-{}", std::process::id()));
    demo::write_versions(&versions, "2025.11.0042", "2025.11.0042")
        .map_err(|e| StepError::Configuration(format!("cannot write version files: {e}")))?;
    dbsync_db::target::init_target(&mut staging).await?;
    let setup_secs = t.secs();
    let selection = Selection::from_json(demo::TABLE_MAPPINGS)?;
    let fks_before = demo::fk_snapshot(&staging).await?;
    println!(
        "created prod and a stale staging ({setup_secs:.1}s); staging has {} foreign keys; syncing…",
        fks_before.len()
    );

    let cfg = RunConfig {
        source: prod_cfg.clone(),
        target: staging_cfg.clone(),
        versions: Versions::Dir(versions.clone()),
        selection: selection.clone(),
        orphan_policy: dbsync_db::fks::OrphanPolicy::Fail,
        parallelism: 4,
        time_scale: 0.05,
        fail_table: None,
    };
    let t = demo::Timer::start();
    let result = crate::run_with_lock(&cfg, false).await?;
    let sync_secs = t.secs();
    let _ = std::fs::remove_dir_all(&versions);
    if result.status != dbsync_asl::Status::Succeeded {
        println!(
            "sync FAILED: {}: {}",
            result.error.as_deref().unwrap_or("?"),
            result.cause.as_deref().unwrap_or("")
        );
        return Ok(ExitCode::FAILURE);
    }

    println!("verifying…");
    let t = demo::Timer::start();
    let (src, dst) = (
        demo::table_checksums(&prod, &selection).await?,
        demo::table_checksums(&staging, &selection).await?,
    );
    let rows: i64 = src.values().map(|(n, _)| n).sum();
    let mut problems = Vec::new();
    for (table, s) in &src {
        if dst.get(table) != Some(s) {
            problems.push(format!(
                "{table}: source {s:?}, target {:?}",
                dst.get(table)
            ));
        }
    }
    let fks_after = demo::fk_snapshot(&staging).await?;
    if fks_after != fks_before {
        problems.push("foreign keys differ from before the sync".into());
    }
    let seq_tables = demo::sequences_work(&mut staging).await?;
    let verify_secs = t.secs();

    println!();
    println!("  tables copied        {:>10}", src.len());
    println!("  rows copied          {rows:>10}");
    println!(
        "  sync wall time       {sync_secs:>9.1}s  ({:.0} rows/s end to end)",
        rows as f64 / sync_secs
    );
    println!("  state transitions    {:>10}", result.state_transitions);
    println!(
        "  foreign keys         {:>10}  identical definitions, validated as before",
        fks_after.len()
    );
    println!("  sequences checked    {seq_tables:>10}  tables accept INSERT … DEFAULT VALUES");
    println!(
        "  setup / verify       {setup_secs:>5.1}s / {verify_secs:.1}s, total {:.1}s",
        total.secs()
    );
    println!();
    if !problems.is_empty() {
        println!("verification FAILED:");
        for p in &problems {
            println!("  - {p}");
        }
        return Ok(ExitCode::FAILURE);
    }
    println!("verified: every synced table matches production row for row.");
    if keep {
        println!(
            "the server keeps running: psql -h 127.0.0.1 -p {} -U postgres staging   (stop it with: kill {})",
            cluster.port,
            cluster.pid()
        );
        std::mem::forget(cluster);
    }
    Ok(ExitCode::SUCCESS)
}
