//! Row 1: a whole `dbsync run` (the release CLI, end to end: every state of the
//! deployed definition) against the per-table `psql` COPY pipe users would
//! otherwise script, on an even and a skewed dataset; against
//! `pg_dump -Fd | pg_restore`; the split's scaling with `--parallelism`; and
//! what `COPY … FREEZE` is worth.

use std::{
    path::PathBuf,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use dbsync_db::{DbConfig, Selection};
use dbsync_replicate::{replicate, Progress, ReplicateOptions};
use dbsync_testpg::Cluster;

use crate::{server, Args, Row};

/// Tables copied at once by every method (the machine's 2 cores).
const PARALLEL: usize = 2;
/// Measured runs of each side, alternating; the median is reported.
const RUNS: usize = 3;
/// ~104 bytes a row on disk (measured: 8.26 M rows took 861 MiB).
const ROW_BYTES: u64 = 104;

const COLUMNS: &str = "(id bigint PRIMARY KEY, customer int NOT NULL, amount numeric(12,2), \
                       note text, created timestamptz NOT NULL, flags int)";

/// A dataset: its name and the share of the bytes each table holds.
struct Shape {
    name: &'static str,
    shares: Vec<f64>,
}

fn shapes() -> [Shape; 2] {
    [
        Shape {
            name: "even",
            shares: vec![1.0 / 8.0; 8],
        },
        // One table with 80% of the bytes, four small ones.
        Shape {
            name: "skewed",
            shares: vec![0.8, 0.05, 0.05, 0.05, 0.05],
        },
    ]
}

pub(crate) async fn exec(url: &str, sql: &str) {
    let cfg = DbConfig::from_url(url).unwrap();
    let c = cfg.connect().await.unwrap_or_else(|e| panic!("{e}"));
    c.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{}: {e:?}", &sql[..sql.len().min(80)]));
}

fn sh(script: &str) -> Duration {
    shell(script, None).0
}

/// Runs `script` with `sh -c` (with `path` as PATH when given); its time
/// and what it printed. Fails the bench when it fails.
pub(crate) fn shell(script: &str, path: Option<&str>) -> (Duration, String) {
    let t = Instant::now();
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let out = cmd.output().expect("sh");
    assert!(
        out.status.success(),
        "{script} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        t.elapsed(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub(crate) fn dbsync_cli() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../target")));
    let bin = target.join("release/dbsync");
    assert!(
        bin.exists(),
        "{} is missing: `make bench` builds it (cargo build --release -p dbsync)",
        bin.display()
    );
    bin
}

/// One generated dataset in its own source database, with a dbsync target
/// (opted in) and a pipe target, both with the primary keys in place.
struct Dataset {
    name: &'static str,
    tables: usize,
    mb: f64,
    src: String,
    dbsync: String,
    pipe: String,
}

async fn generate(c: &Cluster, shape: &Shape, size_mb: u64, notes: &mut Vec<String>) -> Dataset {
    let n = shape.name;
    let (src, dbsync, pipe) = (
        format!("src_{n}"),
        format!("dst_{n}_dbsync"),
        format!("dst_{n}_pipe"),
    );
    let ddl: String = (0..shape.shares.len())
        .map(|i| format!("CREATE TABLE bench.t{i} {COLUMNS};"))
        .collect();
    for db in [&src, &dbsync, &pipe] {
        c.admin_sql(&format!("CREATE DATABASE {db}")).unwrap();
        exec(&c.url(db), &format!("CREATE SCHEMA bench; {ddl}")).await;
    }
    let total_rows = size_mb * 1024 * 1024 / ROW_BYTES;
    let rows: Vec<u64> = shape
        .shares
        .iter()
        .map(|s| (total_rows as f64 * s) as u64)
        .collect();
    let t = Instant::now();
    // Generated two tables at a time, largest first.
    let queue = Arc::new(Mutex::new((0..rows.len()).collect::<Vec<_>>()));
    let mut gen = Vec::new();
    for _ in 0..PARALLEL {
        let (url, queue, rows) = (c.url(&src), queue.clone(), rows.clone());
        gen.push(tokio::spawn(async move {
            loop {
                let Some(i) = ({ queue.lock().unwrap().pop() }) else {
                    return;
                };
                exec(
                    &url,
                    &format!(
                        "INSERT INTO bench.t{i} SELECT g, g % 100000, (g % 10000) / 7.0, md5(g::text) || ' order note', \
                         TIMESTAMPTZ '2024-01-01' + g * INTERVAL '1 second', g % 7 FROM generate_series(1, {}) g",
                        rows[i]
                    ),
                )
                .await;
                // VACUUM cannot share an (implicit) transaction with the INSERT.
                exec(&url, &format!("VACUUM ANALYZE bench.t{i}")).await;
            }
        }));
    }
    for g in gen {
        g.await.unwrap();
    }
    let client = DbConfig::from_url(&c.url(&src))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bytes: i64 = client
        .query_one(
            "SELECT sum(pg_table_size(c.oid))::int8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'bench' AND c.relkind = 'r'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mb = bytes as f64 / 1024.0 / 1024.0;
    let shares: Vec<String> = shape
        .shares
        .iter()
        .map(|s| format!("{:.0}%", s * 100.0))
        .collect();
    notes.push(format!(
        "Sync dataset \"{n}\": {} tables ({}), {} rows, {mb:.0} MB of table data (generated in {:.0} s).",
        rows.len(),
        shares.join(" / "),
        rows.iter().sum::<u64>(),
        t.elapsed().as_secs_f64()
    ));
    let status = Command::new(dbsync_cli())
        .args(["init-target", "--target", &c.url(&dbsync)])
        .output()
        .expect("dbsync init-target");
    assert!(status.status.success(), "init-target: {status:?}");
    Dataset {
        name: n,
        tables: rows.len(),
        mb,
        src: c.url(&src),
        dbsync: c.url(&dbsync),
        pipe,
    }
}

/// A whole `dbsync run`, end to end, as a user starts it.
fn dbsync_run(d: &Dataset, versions: &std::path::Path, parallelism: usize) -> Duration {
    dbsync_run_with(d, versions, parallelism, true, &[])
}

fn dbsync_run_with(
    d: &Dataset,
    versions: &std::path::Path,
    parallelism: usize,
    split: bool,
    extra: &[&str],
) -> Duration {
    let t = Instant::now();
    let out = Command::new(dbsync_cli())
        .env("DBSYNC_SPLIT", if split { "auto" } else { "off" })
        .args(["run", "--json", "--source", &d.src, "--target", &d.dbsync])
        .arg("--versions")
        .arg(versions)
        .args(["--parallelism", &parallelism.to_string()])
        .args(extra)
        .output()
        .expect("dbsync run");
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "dbsync run on {} failed: {}{}",
        d.name,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// What a user would script: per table, truncate, then `psql COPY TO STDOUT`
/// piped into `psql COPY FROM STDIN`, binary format (the faster one), two
/// tables at a time, largest first.
fn pipe_script(c: &Cluster, d: &Dataset, n_lanes: usize) -> String {
    let bin = c.bindir().display().to_string();
    let conn = format!("-h 127.0.0.1 -p {} -U postgres", c.port);
    let src = d.src.rsplit('/').next().unwrap().to_owned();
    let lanes: Vec<Vec<String>> = (0..n_lanes)
        .map(|lane| {
            (0..d.tables)
                .filter(|i| i % n_lanes == lane)
                .map(|i| {
                    format!(
                        "{bin}/psql -X -q {conn} -d {p} -c 'TRUNCATE bench.t{i}' && \
                         {bin}/psql -X -q {conn} -d {src} -c 'COPY bench.t{i} TO STDOUT (FORMAT binary)' | {bin}/psql -X -q {conn} -d {p} -c 'COPY bench.t{i} FROM STDIN (FORMAT binary)'",
                        p = d.pipe
                    )
                })
                .collect()
        })
        .collect();
    lanes
        .iter()
        .map(|l| format!("( {} ) &", l.join(" && ")))
        .collect::<Vec<_>>()
        .join("\n")
        + "\nwait"
}

pub(crate) async fn checkpoint(c: &Cluster) {
    // Each measured run starts with the same amount of dirty data behind it.
    exec(&c.url("postgres"), "CHECKPOINT").await;
}

pub async fn run(args: &Args, notes: &mut Vec<String>) -> Vec<Row> {
    let c = server();
    let versions =
        std::env::temp_dir().join(format!("dbsync-bench-versions-{}", std::process::id()));
    std::fs::create_dir_all(&versions).unwrap();
    std::fs::write(versions.join("production"), "1").unwrap();
    std::fs::write(versions.join("staging"), "1").unwrap();
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    let mut datasets = Vec::new();
    for shape in shapes() {
        let d = generate(&c, &shape, args.size_mb, notes).await;
        if !args.wants("sync") {
            // Only the FREEZE row: the even dataset is all it needs.
            rows.push(freeze(&c, &d, notes).await);
            let _ = std::fs::remove_dir_all(&versions);
            return rows;
        }
        let script = pipe_script(&c, &d, PARALLEL);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for i in 0..RUNS {
            // Alternating which side goes first.
            for side in [i % 2, 1 - i % 2] {
                checkpoint(&c).await;
                if side == 0 {
                    ours.push(dbsync_run(&d, &versions, PARALLEL));
                } else {
                    theirs.push(sh(&script));
                }
            }
        }
        let (ours, theirs) = (median(ours), median(theirs));
        let row = against_pipe(
            "1",
            format!(
                "whole `dbsync run --parallelism {PARALLEL}`, {} dataset, {:.0} MB: vs per-table binary psql COPY pipe, {PARALLEL} tables at a time",
                d.name, d.mb
            ),
            d.mb,
            ours,
            theirs,
        );
        ratios.push(theirs.as_secs_f64() / ours.as_secs_f64());
        rows.push(row);
        datasets.push((d, ours));
    }
    let (even, skewed) = (ratios[0], ratios[1]);
    let gap = (even - skewed) / even;
    rows.push(Row {
        section: "1",
        what: "skewed against even (ratio to the pipe)".into(),
        dbsync: format!("{skewed:.2}× vs {even:.2}×"),
        reference: "—".into(),
        ratio: format!("{:+.0}%", -gap * 100.0),
        goal: "within 10%".into(),
        met: Some(gap <= 0.10),
    });

    // pg_dump / pg_restore, directory format, two jobs each, on the even dataset.
    let (even_d, even_ours) = &datasets[0];
    let dump_db = "dst_even_dump";
    c.admin_sql(&format!("CREATE DATABASE {dump_db}")).unwrap();
    let ddl: String = (0..even_d.tables)
        .map(|i| format!("CREATE TABLE bench.t{i} {COLUMNS};"))
        .collect();
    exec(&c.url(dump_db), &format!("CREATE SCHEMA bench; {ddl}")).await;
    let bin = c.bindir().display().to_string();
    let dir = std::env::temp_dir().join(format!("dbsync-bench-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let conn = format!("-h 127.0.0.1 -p {} -U postgres", c.port);
    checkpoint(&c).await;
    let dump = sh(&format!(
        "{bin}/pg_dump {conn} -d src_even -Fd -j{PARALLEL} --data-only -f {d} && {bin}/pg_restore {conn} -d {dump_db} -j{PARALLEL} --data-only {d}",
        d = dir.display()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let r = dump.as_secs_f64() / even_ours.as_secs_f64();
    rows.push(Row {
        section: "1",
        what: format!(
            "whole `dbsync run`, even dataset: vs pg_dump -Fd -j{PARALLEL} + pg_restore -j{PARALLEL} --data-only"
        ),
        dbsync: format!("{:.1} s", even_ours.as_secs_f64()),
        reference: format!("{:.1} s", dump.as_secs_f64()),
        ratio: format!("{r:.2}×"),
        goal: "≥ 1.5×".into(),
        met: Some(r >= 1.5),
    });

    // The split's scaling on the skewed dataset.
    let (skew_d, _) = &datasets[1];
    let mut scaling = Vec::new();
    for p in [1, 2, 4] {
        checkpoint(&c).await;
        scaling.push((p, dbsync_run(skew_d, &versions, p)));
    }
    let mut whole = Vec::new();
    for p in [2, 4] {
        checkpoint(&c).await;
        whole.push(format!(
            "{p}: {:.1} s",
            dbsync_run_with(skew_d, &versions, p, false, &[]).as_secs_f64()
        ));
    }
    notes.push(format!(
        "Skewed dataset with every table copied whole (no block ranges; DBSYNC_SPLIT=off), by --parallelism: {}.",
        whole.join(", ")
    ));
    let base = scaling[0].1.as_secs_f64();
    // One worker against one pipe, table after table.
    checkpoint(&c).await;
    let one_pipe = sh(&pipe_script(&c, skew_d, 1));
    let r1 = one_pipe.as_secs_f64() / base;
    rows.push(Row {
        section: "1",
        what: "whole `dbsync run --parallelism 1`, skewed dataset: vs one binary psql COPY pipe, table after table".into(),
        dbsync: format!("{base:.1} s"),
        reference: format!("{:.1} s", one_pipe.as_secs_f64()),
        ratio: format!("{r1:.2}×"),
        goal: "≥ 1.0×".into(),
        met: Some(r1 >= 1.0),
    });
    rows.push(Row {
        section: "1",
        what: "whole `dbsync run` on the skewed dataset, by --parallelism (the big table split into block ranges)".into(),
        dbsync: scaling
            .iter()
            .map(|(p, t)| format!("{p}: {:.1} s", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        reference: format!("--parallelism 1: {base:.1} s"),
        ratio: scaling
            .iter()
            .skip(1)
            .map(|(p, t)| format!("{p}: {:.2}×", base / t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        goal: "faster with more workers, up to the cores".into(),
        met: Some(scaling[1].1 < scaling[0].1),
    });

    rows.push(freeze(&c, even_d, notes).await);
    notes.push(format!(
        "Whole runs: the release `dbsync run` CLI against the dataset's own target (the previous run's copy in place, as in a refresh), end to end through every state; the pipe truncates each table first. Median of {RUNS} runs each, alternating which side goes first, CHECKPOINT before each; both targets have the primary keys in place; {PARALLEL} tables at a time (2 cores)."
    ));
    let _ = std::fs::remove_dir_all(&versions);
    rows
}

/// `COPY … FREEZE` against a plain COPY: the load, then the first count of
/// every table (what VerifyCopy runs; a first reader pays the hint bits) and
/// the VACUUM autovacuum runs after a bulk insert (setting the visibility map
/// that FREEZE sets during the load).
async fn freeze(c: &Cluster, d: &Dataset, notes: &mut Vec<String>) -> Row {
    let mut best = [Duration::MAX; 2];
    let mut loads = [Duration::MAX; 2];
    for round in 0..2 {
        for freeze in [round == 0, round != 0] {
            checkpoint(c).await;
            let opts = ReplicateOptions {
                source: DbConfig::from_url(&d.src).unwrap(),
                target: DbConfig::from_url(&c.url(&d.pipe)).unwrap(),
                selection: Selection::all(),
                parallelism: PARALLEL,
                fail_table: None,
                sync: Default::default(),
                freeze,
            };
            let progress = Arc::new(Mutex::new(Progress::default()));
            let t = Instant::now();
            replicate(&opts, &progress).await.unwrap();
            let load = t.elapsed();
            assert_eq!(progress.lock().unwrap().tables_errored(), 0);
            let target = opts.target.connect().await.unwrap();
            for i in 0..d.tables {
                target
                    .query_one(&format!("SELECT count(*) FROM bench.t{i}"), &[])
                    .await
                    .unwrap();
                // What autovacuum runs soon after a bulk insert (its insert threshold).
                target
                    .batch_execute(&format!("VACUUM bench.t{i}"))
                    .await
                    .unwrap();
            }
            let k = usize::from(!freeze);
            best[k] = best[k].min(t.elapsed());
            loads[k] = loads[k].min(load);
        }
    }
    let r = best[1].as_secs_f64() / best[0].as_secs_f64();
    notes.push(format!(
        "FREEZE: the replicator on the even dataset, {PARALLEL} tables at a time, then count(*) and VACUUM of every table; best of 2 each, alternating. Load alone: {:.1} s with FREEZE, {:.1} s without.",
        loads[0].as_secs_f64(),
        loads[1].as_secs_f64()
    ));
    Row {
        section: "1",
        what: "COPY … FREEZE (tables loaded whole): load + first count(*) + the VACUUM after a bulk insert, even dataset".into(),
        dbsync: format!("{:.1} s with FREEZE", best[0].as_secs_f64()),
        reference: format!("{:.1} s without", best[1].as_secs_f64()),
        ratio: format!("{r:.2}×"),
        goal: "keep only if it pays (≥ 1.0×)".into(),
        met: Some(r >= 1.0),
    }
}

/// A whole run against the binary pipe: rates, times, the ratio (goal ≥ 1.0×).
fn against_pipe(
    section: &'static str,
    what: String,
    mb: f64,
    ours: Duration,
    theirs: Duration,
) -> Row {
    let ratio = theirs.as_secs_f64() / ours.as_secs_f64();
    let rate = |t: Duration| mb / t.as_secs_f64();
    Row {
        section,
        what,
        dbsync: format!("{:.1} MB/s ({:.1} s)", rate(ours), ours.as_secs_f64()),
        reference: format!("{:.1} MB/s ({:.1} s)", rate(theirs), theirs.as_secs_f64()),
        ratio: format!("{ratio:.2}×"),
        goal: "≥ 1.0×".into(),
        met: Some(ratio >= 1.0),
    }
}

/// Row 9: the Lambda engine's handlers (plan-copy, then copy-piece lanes, in
/// this process through the deployed definition: `dbsync run --engine
/// lambda`) against the binary pipe and the local replicator, 4 at a time.
pub async fn lambda_engine(args: &Args, notes: &mut Vec<String>) -> Vec<Row> {
    const LANES: usize = 4;
    // What a deployment gets unless told otherwise.
    let piece_mb = dbsync_workflow::vars::default(dbsync_workflow::vars::COPY_PIECE_MB);
    let c = server();
    let versions = std::env::temp_dir().join(format!(
        "dbsync-bench-lambda-versions-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&versions).unwrap();
    std::fs::write(versions.join("production"), "1").unwrap();
    std::fs::write(versions.join("staging"), "1").unwrap();
    let mut rows = Vec::new();
    for shape in shapes() {
        let d = generate(&c, &shape, args.size_mb, notes).await;
        let script = pipe_script(&c, &d, LANES);
        let lambda = ["--engine", "lambda", "--piece-mb", piece_mb];
        let (mut ours, mut replicator, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..RUNS {
            for leg in [i % 3, (i + 1) % 3, (i + 2) % 3] {
                checkpoint(&c).await;
                match leg {
                    0 => ours.push(dbsync_run_with(&d, &versions, LANES, true, &lambda)),
                    1 => replicator.push(dbsync_run(&d, &versions, LANES)),
                    _ => theirs.push(sh(&script)),
                }
            }
        }
        let (ours, replicator, theirs) = (median(ours), median(replicator), median(theirs));
        rows.push(against_pipe(
            "9",
            format!(
                "whole `dbsync run --engine lambda --parallelism {LANES} --piece-mb {piece_mb}` (plan-copy + {LANES} copy-piece lanes in-process), {} dataset, {:.0} MB: vs per-table binary psql COPY pipe, {LANES} tables at a time",
                d.name, d.mb
            ),
            d.mb,
            ours,
            theirs,
        ));
        rows.push(Row {
            section: "9",
            what: format!(
                "the same, Lambda engine vs the local replicator (`--engine dms`, one snapshot), {} dataset",
                d.name
            ),
            dbsync: format!("{:.1} s", ours.as_secs_f64()),
            reference: format!("{:.1} s", replicator.as_secs_f64()),
            ratio: format!("{:.2}×", replicator.as_secs_f64() / ours.as_secs_f64()),
            goal: "—".into(),
            met: None,
        });
    }
    notes.push(format!(
        "Row 9: whole runs (every state of the deployed definition, index rebuilds and FK restore included) with the Lambda engine's handlers run in this process — one plan, then {LANES} lanes taking {piece_mb} MB pieces (primary-key ranges) off staging's queue, each piece one REPEATABLE READ read of production and one staging transaction with its done mark; median of {RUNS}, the order of the three legs rotated, CHECKPOINT before each. On AWS each lane is a Lambda invocation reaching both databases over the network: this row shows the handler's own cost, not Lambda's network."
    ));
    let _ = std::fs::remove_dir_all(&versions);
    rows
}
