//! `dbsync`: dbsync on one machine.

mod config;
mod demo;
mod diagram;
mod pgpass;
mod plan;
mod progress;
mod run;
mod starter;
mod steps;
mod summary;
mod wording;

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use config::{RunConfig, Versions};
use dbsync_asl::{ExecutionResult, NoTasks, RunOptions, StateMachine, Status, TokioClock};
use dbsync_db::{fks::OrphanPolicy, DbConfig, Selection};
use dbsync_workflow::{sync_config::SyncConfig, StepError};
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

/// `--source`, where a command needs production.
#[derive(clap::Args, Clone)]
struct Production {
    /// Production, read only: postgres://user@host:port/db[?sslmode=…].
    #[arg(
        long,
        value_name = "URL",
        env = "DBSYNC_SOURCE_URL",
        hide_env_values = true
    )]
    source: String,
}

#[derive(clap::Args, Clone)]
struct SyncArgs {
    /// DMS table-mapping JSON (selection rules); default: every user table.
    #[arg(long, value_name = "FILE")]
    table_mappings: Option<PathBuf>,
    /// Leave the materialized views over the synced tables as they are (default: refresh them).
    #[arg(long)]
    no_refresh_views: bool,
    /// The sync configuration (YAML): pgsync-style data_rules, applied while
    /// copying, and after_sync SQL. The same file the AWS build packages.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// What to do with orphan rows when validating restored FKs.
    #[arg(long, default_value = "fail", value_parser = ["fail", "delete", "keep-not-valid"])]
    orphan_policy: String,
    /// Copy a column whose staging type holds every production value (int →
    /// bigint, varchar(5) → text, …) through a cast instead of refusing the
    /// run (also `allow_lossless_casts: true` in the config file).
    #[arg(long)]
    allow_lossless_casts: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the deployed state machine locally: source → target.
    ///
    /// Give one of --versions or --version-query: a sync never runs without
    /// comparing the two schema versions. Passwords: PGPASSWORD or ~/.pgpass
    /// (PGPASSFILE) keep them off the command line.
    #[command(group(clap::ArgGroup::new("schema_versions").required(true).args(["versions", "version_query"])))]
    Run {
        #[command(flatten)]
        production: Production,
        /// Staging, opted in with `init-target`: postgres://user@host:port/db.
        #[arg(
            long,
            value_name = "URL",
            env = "DBSYNC_TARGET_URL",
            hide_env_values = true
        )]
        target: String,
        /// Directory with `production` and `staging` schema-version files (one of these two is required).
        #[arg(long, value_name = "DIR")]
        versions: Option<PathBuf>,
        /// Query returning the schema version, run read-only on both databases (one of these two is required).
        #[arg(long, value_name = "SQL")]
        version_query: Option<String>,
        #[command(flatten)]
        sync: SyncArgs,
        /// Tables copied at once (and indexes rebuilt at once after the load, at least 2).
        #[arg(long, default_value_t = 4)]
        parallelism: usize,
        /// Load into staging's indexed tables instead of dropping the
        /// indexes for the load and rebuilding them after it.
        #[arg(long)]
        keep_indexes: bool,
        /// Who copies: `dms` (the local replicator in DMS's place, one
        /// snapshot for every table) or `lambda` (the AWS Lambda engine's
        /// plan and copy-piece handlers, run in this process, --parallelism lanes).
        #[arg(long, default_value = "dms", value_parser = ["dms", "lambda"])]
        engine: String,
        /// The Lambda engine: tables larger than this many MB are copied in pieces of about this size.
        #[arg(long, value_name = "MB", default_value = dbsync_workflow::vars::default(dbsync_workflow::vars::COPY_PIECE_MB), value_parser = clap::value_parser!(u64).range(1..=65536))]
        piece_mb: u64,
        /// Print the final status and output as JSON (and no progress).
        #[arg(long)]
        json: bool,
        /// Testing: make the copy of this table (schema.table) fail.
        #[arg(long, hide = true)]
        inject_copy_failure: Option<String>,
    },
    /// Show what a run would do to the target; changes nothing.
    Plan {
        /// Staging: postgres://user@host:port/db.
        #[arg(
            long,
            value_name = "URL",
            env = "DBSYNC_TARGET_URL",
            hide_env_values = true
        )]
        target: String,
        /// Production, to list the tables a run would copy (without it, that part is not known).
        #[arg(
            long,
            value_name = "URL",
            env = "DBSYNC_SOURCE_URL",
            hide_env_values = true
        )]
        source: Option<String>,
        #[command(flatten)]
        sync: SyncArgs,
        /// Print JSON instead of the readable summary.
        #[arg(long)]
        json: bool,
    },
    /// Opt a database in as a sync target (once per staging database; never production).
    InitTarget {
        /// The staging database (never production).
        #[arg(
            long,
            value_name = "URL",
            env = "DBSYNC_TARGET_URL",
            hide_env_values = true,
            required_unless_present = "print_sql"
        )]
        target: Option<String>,
        /// Print the SQL instead, for teams that opt staging in without this CLI.
        #[arg(long, conflicts_with = "target")]
        print_sql: bool,
    },
    /// The sync configuration file (data rules).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
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
enum ConfigCommand {
    /// Write a starter config: every synced column of production, a suggested
    /// rule where the name or type suggests personal data, `untouched`
    /// elsewhere, `strict: true`. Review it before the first sync.
    Init {
        #[command(flatten)]
        production: Production,
        /// DMS table-mapping JSON (selection rules); default: every user table.
        #[arg(long, value_name = "FILE")]
        table_mappings: Option<PathBuf>,
        /// Write here instead of standard output (an existing file is left alone).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AslCommand {
    /// Run any state machine definition (JSONPath) locally; Task states are not available.
    Run {
        /// The definition (a JSON file).
        #[arg(long, value_name = "FILE")]
        definition: PathBuf,
        /// The execution's input.
        #[arg(long, value_name = "JSON", default_value = "{}")]
        input: String,
    },
    /// Print a mermaid flowchart of a definition (the README's diagram comes from here).
    Diagram {
        /// The definition (a JSON file).
        #[arg(long, value_name = "FILE")]
        definition: PathBuf,
    },
    /// Print a definition with the template's `${…}` substitutions filled with
    /// well-formed ARNs (for validators that do not know SAM).
    Substitute {
        /// The definition (a JSON file with `${…}` placeholders).
        #[arg(long, value_name = "FILE")]
        definition: PathBuf,
        /// `region:account` of the ARNs.
        #[arg(long, default_value = "us-east-1:123456789012")]
        region_account: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    // `dbsync plan | head -1`: end quietly when the reader goes away, like
    // other Unix tools, instead of panicking in println!.
    #[cfg(unix)]
    // SAFETY: called first thing, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
    let command = Cli::parse().command;
    let json = matches!(
        command,
        Command::Run { json: true, .. } | Command::Plan { json: true, .. }
    );
    match dispatch(command).await {
        Ok(code) => code,
        Err(e) => {
            let message = wording::local(&e.to_string());
            // --json: one document on stdout for every outcome; nothing had changed yet.
            if json {
                print_json(&json!({
                    "status": "FAILED",
                    "error": e.name(),
                    "cause": message,
                    "changed": "nothing",
                }));
            }
            eprintln!("error: {}: {message}", e.name());
            ExitCode::FAILURE
        }
    }
}

fn print_json(doc: &Value) {
    println!("{}", serde_json::to_string_pretty(doc).expect("json"));
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

/// The `--config` file (or none), with the command line's opt-ins; `run`
/// also takes the salt of deterministic rules (`plan` only checks them).
fn sync_config(args: &SyncArgs, salted: bool) -> Result<SyncConfig, StepError> {
    let mut sync = match &args.config {
        Some(path) => SyncConfig::load(path)?,
        None => SyncConfig::default(),
    };
    sync.allow_lossless_casts |= args.allow_lossless_casts;
    if !salted {
        return Ok(sync);
    }
    let salt = std::env::var(dbsync_workflow::sync_config::SALT_ENV).ok();
    sync.with_salt(salt.as_deref(), dbsync_workflow::sync_config::SALT_ENV)
}

fn selection(args: &SyncArgs) -> Result<Selection, StepError> {
    match mappings(args)? {
        None => Ok(Selection::all()),
        Some(text) => Selection::from_json(&text),
    }
}

/// A database from a flag's URL, the password found the way libpq finds it
/// when the URL has none; errors say which flag.
fn db(flag: &str, url: &str) -> Result<DbConfig, StepError> {
    DbConfig::from_url(url)
        .map(pgpass::fill)
        .map_err(|e| e.about(flag))
}

async fn dispatch(command: Command) -> Result<ExitCode, StepError> {
    match command {
        Command::Run {
            production: Production { source },
            target,
            versions,
            version_query,
            sync,
            parallelism,
            keep_indexes,
            engine,
            piece_mb,
            json,
            inject_copy_failure,
        } => {
            let versions = match (versions, version_query) {
                (Some(dir), _) => Versions::Dir(dir),
                (None, Some(q)) => Versions::Query(q),
                // clap's group makes one of them required.
                (None, None) => unreachable!("--versions or --version-query"),
            };
            let cfg = RunConfig {
                source: db("--source", &source)?,
                target: db("--target", &target)?,
                versions,
                selection: selection(&sync)?,
                table_mappings: mappings(&sync)?,
                refresh_views: !sync.no_refresh_views,
                orphan_policy: sync.orphan_policy.parse::<OrphanPolicy>()?,
                parallelism,
                keep_indexes,
                time_scale: 0.05,
                fail_table: inject_copy_failure,
                sync: sync_config(&sync, true)?,
                engine: engine.parse()?,
                piece_mb,
            };
            before_the_lock(&cfg).await?;
            let run = run_with_lock(&cfg, json).await?;
            if json {
                print_json(&run_document(&run));
            } else {
                report(&run);
            }
            Ok(if run.interrupted {
                ExitCode::from(130)
            } else {
                exit_code(&run.result)
            })
        }
        Command::Plan {
            target,
            source,
            sync,
            json,
        } => {
            plan::plan(
                &db("--target", &target)?,
                source.as_deref().map(|s| db("--source", s)).transpose()?,
                &selection(&sync)?,
                &sync_config(&sync, false)?,
                json,
            )
            .await
        }
        Command::InitTarget {
            print_sql: true, ..
        } => {
            print!("{}", dbsync_db::target::init_target_sql());
            Ok(ExitCode::SUCCESS)
        }
        Command::InitTarget { target, .. } => {
            let target = target.ok_or_else(|| {
                StepError::Configuration("give --target URL (or --print-sql)".into())
            })?;
            let cfg = db("--target", &target)?;
            let mut client = cfg.connect().await?;
            let already = dbsync_db::target::is_target(&mut client).await?;
            dbsync_db::target::init_target(&mut client).await?;
            if already {
                println!("{} is already a dbsync target.", cfg.describe());
            } else {
                println!(
                    "{} is now a dbsync target (schema dbsync created).",
                    cfg.describe()
                );
            }
            println!("next: dbsync plan --source PRODUCTION_URL --target STAGING_URL, then dbsync run with the same URLs and --version-query SQL (or --versions DIR)");
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
        Command::Config {
            command:
                ConfigCommand::Init {
                    production: Production { source },
                    table_mappings,
                    output,
                },
        } => {
            let source = db("--source", &source)?;
            let selection = match &table_mappings {
                Some(path) => {
                    Selection::from_json(&std::fs::read_to_string(path).map_err(|e| {
                        StepError::Configuration(format!("cannot read {}: {e}", path.display()))
                    })?)?
                }
                None => Selection::all(),
            };
            if let Some(path) = output.as_ref().filter(|p| p.exists()) {
                return Err(StepError::Configuration(format!(
                    "--output: {} exists; it was left as it is (remove it or give another path)",
                    path.display()
                )));
            }
            let client = source.connect().await.map_err(|e| side("--source", e))?;
            dbsync_db::schema::covered(&client, &selection).await?;
            let roots: Vec<u32> = dbsync_db::selected_tables(&client, &selection)
                .await?
                .iter()
                .filter(|t| !t.is_partition)
                .map(|t| t.oid)
                .collect();
            let columns = dbsync_db::mask::columns(&client, &roots).await?;
            let text = starter::render(&columns, &source.describe());
            match output {
                Some(path) => {
                    std::fs::write(&path, text).map_err(|e| {
                        StepError::Configuration(format!("cannot write {}: {e}", path.display()))
                    })?;
                    eprintln!(
                        "wrote {}: review it, then `dbsync plan --config {}` and `dbsync run --config {}`",
                        path.display(),
                        path.display(),
                        path.display()
                    );
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn exit_code(result: &ExecutionResult) -> ExitCode {
    if result.status == Status::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A failed step's cause is Lambda's error document as text; its message is what a person reads.
fn cause_message(cause: &str) -> String {
    let message = serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(str::to_owned))
        .unwrap_or_else(|| cause.to_owned());
    wording::local(&message)
}

/// `--json`: the cause as the JSON document it is, not a string holding JSON.
fn structured(mut doc: Value) -> Value {
    if let Some(cause) = doc.get("cause").and_then(Value::as_str) {
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(cause) {
            doc["cause"] = v;
        }
    }
    doc
}

/// `run --json`'s one document: the execution's result and what the copy did.
fn run_document(run: &run::LocalRun) -> Value {
    let mut doc = structured(run.result.to_json());
    if let Some(m) = doc.pointer("/cause/errorMessage").and_then(Value::as_str) {
        doc["cause"]["errorMessage"] = Value::String(wording::local(m));
    }
    let (refreshed, not) = run.tables();
    doc["tables"] = json!({"refreshed": refreshed, "notRefreshed": not});
    doc["interrupted"] = Value::Bool(run.interrupted);
    doc
}

/// Checks made before the run lock, on the two URLs as given: two different
/// databases, the right way round.
async fn before_the_lock(cfg: &RunConfig) -> Result<(), StepError> {
    let mut source = cfg
        .source
        .connect()
        .await
        .map_err(|e| side("--source", e))?;
    let mut target = cfg
        .target
        .connect()
        .await
        .map_err(|e| side("--target", e))?;
    if dbsync_db::schema::same_database(&source, &target).await? {
        return Err(StepError::SameDatabase(format!(
            "--source and --target both reach {}",
            cfg.target.describe()
        )));
    }
    if !dbsync_db::target::is_target(&mut target).await?
        && dbsync_db::target::is_target(&mut source).await?
    {
        return Err(StepError::SourceTargetSwapped(format!(
            "the source {} is an opted-in staging database and the target {} is not",
            cfg.source.describe(),
            cfg.target.describe()
        )));
    }
    Ok(())
}

/// A connection error, saying which flag's database it is.
pub(crate) fn side(flag: &str, e: StepError) -> StepError {
    e.about(flag)
}

fn report(run: &run::LocalRun) {
    let result = &run.result;
    if result.status == Status::Succeeded {
        println!(
            "sync succeeded ({} state transitions)",
            result.state_transitions
        );
        if let Some(out) = &result.output {
            print!("{}", summary::render(out));
        }
        return;
    }
    println!(
        "sync {}: {}: {}",
        format!("{:?}", result.status).to_uppercase(),
        result.error.as_deref().unwrap_or("?"),
        cause_message(result.cause.as_deref().unwrap_or(""))
    );
    let (refreshed, not) = run.tables();
    if refreshed.is_empty() && not.is_empty() {
        println!("no table was copied");
    } else {
        println!("refreshed ({}): {}", refreshed.len(), list(&refreshed));
        println!("not refreshed ({}): {}", not.len(), list(&not));
    }
    if run.interrupted {
        println!("interrupted: staging's foreign keys, sequences and run lease were put back; run again to refresh it");
    }
    if run.kept_not_valid > 0 {
        println!(
            "{} foreign key(s) left NOT VALID: the partial copy left rows without their parents (nothing deleted); the next run validates them",
            run.kept_not_valid
        );
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_read_as_messages_and_as_json() {
        let cause =
            r#"{"errorType":"OrphanRowsFound","errorMessage":"orphan rows block validation: x"}"#;
        assert_eq!(cause_message(cause), "orphan rows block validation: x");
        assert_eq!(cause_message("plain text"), "plain text");
        let doc =
            structured(json!({"status": "FAILED", "error": "OrphanRowsFound", "cause": cause}));
        assert_eq!(doc["cause"]["errorType"], "OrphanRowsFound");
        let doc = structured(json!({"status": "FAILED", "error": "X", "cause": "plain"}));
        assert_eq!(doc["cause"], "plain");
    }

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
