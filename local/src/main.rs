//! `dbsync`: dbsync on one machine.

mod config;
mod demo;
mod diagram;
mod progress;
mod run;
mod steps;

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use config::{RunConfig, Versions};
use dbsync_asl::{ExecutionResult, NoTasks, RunOptions, StateMachine, Status, TokioClock};
use dbsync_db::{fks::OrphanPolicy, DbConfig, Selection};
use dbsync_workflow::StepError;
use run::run_with_lock;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "dbsync",
    version,
    about = "Refresh a staging PostgreSQL database from production — locally"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct SyncArgs {
    /// DMS table-mapping JSON (selection rules); default: every user table.
    #[arg(long, value_name = "FILE")]
    table_mappings: Option<PathBuf>,
    /// Leave the materialized views over the synced tables as they are (default: refresh them).
    #[arg(long)]
    no_refresh_views: bool,
    /// What to do with orphan rows when validating restored FKs.
    #[arg(long, default_value = "fail", value_parser = ["fail", "delete", "keep-not-valid"])]
    orphan_policy: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the deployed state machine locally: source → target.
    Run {
        #[arg(long, value_name = "URL")]
        source: String,
        #[arg(long, value_name = "URL")]
        target: String,
        /// Directory with `production` and `staging` schema-version files.
        #[arg(long, value_name = "DIR", conflicts_with = "version_query")]
        versions: Option<PathBuf>,
        /// Query returning the schema version, run on both databases.
        #[arg(long, value_name = "SQL")]
        version_query: Option<String>,
        #[command(flatten)]
        sync: SyncArgs,
        /// Tables copied at once.
        #[arg(long, default_value_t = 4)]
        parallelism: usize,
        /// Print the final status and output as JSON (and no progress).
        #[arg(long)]
        json: bool,
        /// Testing: make the copy of this table (schema.table) fail.
        #[arg(long, hide = true)]
        inject_copy_failure: Option<String>,
    },
    /// Show what a run would do to the target; changes nothing.
    Plan {
        #[arg(long, value_name = "URL")]
        target: String,
        #[arg(long, value_name = "URL")]
        source: Option<String>,
        #[command(flatten)]
        sync: SyncArgs,
    },
    /// Opt a database in as a sync target (once per staging database; never production).
    InitTarget {
        #[arg(long, value_name = "URL")]
        target: String,
    },
    /// Amazon States Language tools.
    Asl {
        #[command(subcommand)]
        command: AslCommand,
    },
    /// Start a throwaway server, sync a realistic prod into a stale staging, verify, clean up.
    Demo {
        /// Data size factor (1 ≈ 0.8 M rows).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Leave the server running and print how to connect.
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Subcommand)]
enum AslCommand {
    /// Run any state machine definition (JSONPath) locally; Task states are not available.
    Run {
        #[arg(long, value_name = "FILE")]
        definition: PathBuf,
        #[arg(long, value_name = "JSON", default_value = "{}")]
        input: String,
    },
    /// Print a mermaid flowchart of a definition (the README's diagram comes from here).
    Diagram {
        #[arg(long, value_name = "FILE")]
        definition: PathBuf,
    },
    /// Print a definition with the template's `${…}` substitutions filled with
    /// well-formed ARNs (for validators that do not know SAM).
    Substitute {
        #[arg(long, value_name = "FILE")]
        definition: PathBuf,
        /// `region:account` of the ARNs.
        #[arg(long, default_value = "us-east-1:123456789012")]
        region_account: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DBSYNC_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, and never under NO_COLOR (no-color.org).
        .with_ansi(use_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .init();
    match dispatch(Cli::parse().command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}: {e}", e.name());
            ExitCode::FAILURE
        }
    }
}

/// Whether log lines may carry ANSI colours.
fn use_colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The `--table-mappings` file's text, if given.
fn mappings(args: &SyncArgs) -> Result<Option<String>, StepError> {
    args.table_mappings
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path).map_err(|e| {
                StepError::Configuration(format!("cannot read {}: {e}", path.display()))
            })
        })
        .transpose()
}

fn selection(args: &SyncArgs) -> Result<Selection, StepError> {
    match mappings(args)? {
        None => Ok(Selection::all()),
        Some(text) => Selection::from_json(&text),
    }
}

fn url(u: &str) -> Result<DbConfig, StepError> {
    DbConfig::from_url(u)
}

async fn dispatch(command: Command) -> Result<ExitCode, StepError> {
    match command {
        Command::Run {
            source,
            target,
            versions,
            version_query,
            sync,
            parallelism,
            json,
            inject_copy_failure,
        } => {
            let versions = match (versions, version_query) {
                (Some(dir), _) => Versions::Dir(dir),
                (None, Some(q)) => Versions::Query(q),
                (None, None) => {
                    return Err(StepError::Configuration(
                        "give --versions DIR or --version-query SQL: a sync never runs without comparing schema versions".into(),
                    ))
                }
            };
            let cfg = RunConfig {
                source: url(&source)?,
                target: url(&target)?,
                versions,
                selection: selection(&sync)?,
                table_mappings: mappings(&sync)?,
                refresh_views: !sync.no_refresh_views,
                orphan_policy: sync.orphan_policy.parse::<OrphanPolicy>()?,
                parallelism,
                time_scale: 0.05,
                fail_table: inject_copy_failure,
            };
            let result = run_with_lock(&cfg, json).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&result.to_json()).expect("json")
                );
            } else {
                report(&result);
            }
            Ok(exit_code(&result))
        }
        Command::Plan {
            target,
            source,
            sync,
        } => {
            plan(
                &url(&target)?,
                source.as_deref().map(url).transpose()?,
                &selection(&sync)?,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::InitTarget { target } => {
            let cfg = url(&target)?;
            let mut client = cfg.connect().await?;
            dbsync_db::target::init_target(&mut client).await?;
            println!(
                "{} is now a dbsync target (schema dbsync created).",
                cfg.describe()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Asl {
            command: AslCommand::Run { definition, input },
        } => {
            let text = std::fs::read_to_string(&definition).map_err(|e| {
                StepError::Configuration(format!("cannot read {}: {e}", definition.display()))
            })?;
            let machine = StateMachine::from_json(&text).map_err(|e| {
                StepError::Configuration(format!("invalid definition: {}", e.problems.join("; ")))
            })?;
            let input: Value = serde_json::from_str(&input)
                .map_err(|e| StepError::InvalidInput(format!("--input is not JSON: {e}")))?;
            let opts = RunOptions::default().with_clock(Arc::new(TokioClock));
            let result = dbsync_asl::run(&machine, input, Arc::new(NoTasks), opts).await;
            println!(
                "{}",
                serde_json::to_string_pretty(&result.to_json()).expect("json")
            );
            Ok(exit_code(&result))
        }
        Command::Asl {
            command: AslCommand::Diagram { definition },
        } => {
            let text = std::fs::read_to_string(&definition).map_err(|e| {
                StepError::Configuration(format!("cannot read {}: {e}", definition.display()))
            })?;
            let doc: Value = serde_json::from_str(&text).map_err(|e| {
                StepError::InvalidInput(format!("{} is not JSON: {e}", definition.display()))
            })?;
            print!("{}", diagram::mermaid(&doc));
            Ok(ExitCode::SUCCESS)
        }
        Command::Asl {
            command:
                AslCommand::Substitute {
                    definition,
                    region_account,
                },
        } => {
            let text = std::fs::read_to_string(&definition).map_err(|e| {
                StepError::Configuration(format!("cannot read {}: {e}", definition.display()))
            })?;
            print!(
                "{}",
                dbsync_workflow::naming::substitute(&text, &region_account)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { scale, keep } => demo::run(scale, keep).await,
    }
}

fn exit_code(result: &ExecutionResult) -> ExitCode {
    if result.status == Status::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn report(result: &ExecutionResult) {
    match result.status {
        Status::Succeeded => println!(
            "sync succeeded ({} state transitions)",
            result.state_transitions
        ),
        _ => println!(
            "sync {}: {}: {}",
            format!("{:?}", result.status).to_uppercase(),
            result.error.as_deref().unwrap_or("?"),
            result.cause.as_deref().unwrap_or("")
        ),
    }
}

async fn plan(
    target: &DbConfig,
    source: Option<DbConfig>,
    selection: &Selection,
) -> Result<(), StepError> {
    let mut client = target.connect().await?;
    let opted_in = dbsync_db::target::is_target(&mut client).await?;
    let fks = dbsync_db::fks::plan(&mut client, selection).await?;
    let checks = dbsync_db::fks::plan_checks(&mut client, selection).await?;
    let tables = dbsync_db::selected_tables(&client, selection).await?;
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let seqs = dbsync_db::sequences::sequence_uses(&client, &oids).await?;
    let copy = match &source {
        Some(s) => Some(dbsync_replicate::plan(&s.connect().await?, selection).await?),
        None => None,
    };
    let doc = json!({
        "target": target.describe(),
        "optedIn": opted_in,
        "foreignKeysToDrop": fks.iter().map(|(c, n, p)| json!({"table": c, "constraint": n, "references": p})).collect::<Vec<_>>(),
        "notValidChecksToLift": checks.iter().map(|(t, n, d)| json!({"table": t, "constraint": n, "definition": d})).collect::<Vec<_>>(),
        "sequencesToFix": seqs.iter().map(|s| json!({"sequence": s.name, "columns": s.columns.iter().map(|(t, c)| format!("{t}.{c}")).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "tablesToCopy": copy.map(|c| c.iter().map(|t| t.qualified()).collect::<Vec<_>>()),
    });
    println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    if !opted_in {
        eprintln!(
            "note: {} is not opted in; run `dbsync init-target --target …` first",
            target.describe()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_at_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(!use_colour(false, None), "a pipe or a file gets plain text");
        assert!(!use_colour(true, Some("1".into())));
        assert!(
            use_colour(true, Some("".into())),
            "NO_COLOR set but empty does not count"
        );
    }
}
