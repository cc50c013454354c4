//! `make bench`: dbsync against what users would otherwise run, measured side by
//! side on this machine in one run. Absolute numbers vary between machines;
//! the ratios are the point. Prints a table and writes `BENCHMARKS.md`.
//!
//! Usage: `dbsync-bench --help`.

mod coldstart;
mod indexed;
mod latency;
mod masking;
mod scale;
mod throughput;
mod transitions;

use std::{fmt::Write as _, path::PathBuf, time::Instant};

use dbsync_testpg::{Cluster, Options};

/// One row of the results table.
pub struct Row {
    pub section: &'static str,
    pub what: String,
    pub dbsync: String,
    pub reference: String,
    pub ratio: String,
    pub goal: String,
    pub met: Option<bool>,
}

/// `make bench`: dbsync against the alternatives, side by side, in one run.
#[derive(clap::Parser)]
#[command(name = "dbsync-bench")]
pub struct Args {
    /// Size of the sync dataset in MB.
    #[arg(long, default_value_t = 1024)]
    pub size_mb: u64,
    /// Only these sections (sync, freeze, lambda, indexed, steps, validate, coldstart, transitions, masking, profiles, binaries).
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Where to write the results table.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../BENCHMARKS.md"))]
    pub out: PathBuf,
}

impl Args {
    pub fn wants(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == section))
    }
}

/// A bench-tuned server: like a small production box, durable writes on.
pub fn server() -> Cluster {
    Cluster::start(Options {
        settings: vec![
            ("fsync".into(), "on".into()),
            ("synchronous_commit".into(), "on".into()),
            ("full_page_writes".into(), "on".into()),
            ("shared_buffers".into(), "512MB".into()),
            ("maintenance_work_mem".into(), "256MB".into()),
            ("max_wal_size".into(), "4GB".into()),
            ("checkpoint_timeout".into(), "30min".into()),
            ("max_locks_per_transaction".into(), "1024".into()),
        ],
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("cannot start a PostgreSQL server for the benchmarks: {e}"))
}

pub fn secs(d: std::time::Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|k| format!("{:.0} GiB", k as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let pg = std::process::Command::new("pg_dump")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .replace("pg_dump (PostgreSQL) ", "PostgreSQL ")
        })
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem} RAM, {pg}")
}

#[tokio::main]
async fn main() {
    let args = <Args as clap::Parser>::parse();
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    if args.wants("sync") || args.wants("freeze") {
        rows.extend(throughput::run(&args, &mut notes).await);
    }
    if args.wants("lambda") {
        rows.extend(throughput::lambda_engine(&args, &mut notes).await);
    }
    if args.wants("indexed") {
        rows.extend(indexed::run(&args, &mut notes).await);
    }
    if args.wants("steps") {
        rows.extend(scale::steps(&mut notes).await);
    }
    if args.wants("validate") {
        rows.extend(scale::validation(&mut notes).await);
    }
    if args.wants("coldstart") {
        rows.extend(coldstart::run(&mut notes).await);
    }
    if args.wants("transitions") {
        rows.extend(transitions::measure(&mut notes).await);
    }
    if args.wants("masking") {
        rows.extend(masking::run(&mut notes).await);
    }
    if args.wants("profiles") {
        rows.extend(coldstart::profiles(&mut notes));
    }
    if args.wants("binaries") {
        rows.extend(coldstart::binaries(&mut notes));
    }

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Benchmarks\n\nMeasured by `make bench` on: {}.",
        machine()
    );
    let _ = writeln!(
        md,
        "Every row runs dbsync and its reference side by side in the same run; ratios carry over to other machines, absolute times do not. Whole run: {:.0} s.\n",
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        md,
        "| # | measurement | dbsync | reference | ratio | goal | met |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for r in &rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.section, r.what, r.dbsync, r.reference, r.ratio, r.goal, met
        );
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "\n## Notes\n");
        for n in &notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    print!("{md}");
    if args.only.is_none() {
        std::fs::write(&args.out, &md)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", args.out.display()));
        eprintln!("wrote {}", args.out.display());
    }
}
