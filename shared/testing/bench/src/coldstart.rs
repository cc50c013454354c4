//! Rows 4 and 6: cold start of every Lambda binary against a minimal Python
//! handler that imports boto3 and psycopg2 as the seed's Lambdas do; binary
//! sizes and `sam build` times.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use dbsync_lambda_test::{Outcome, RuntimeApi};
use dbsync_workflow::naming::STEPS;

use crate::Row;

const RUNS: usize = 15;

/// What every function reads at start. The event itself may fail (no
/// database, no AWS), which is fine here: only the start is timed.
const LAMBDA_ENV: [(&str, &str); 9] = [
    ("DATABASE_URL", "postgres://bench@127.0.0.1:1/none"),
    // The Lambda engine's functions read production too.
    ("SOURCE_DATABASE_URL", "postgres://bench@127.0.0.1:1/none"),
    (
        "STATE_MACHINE_ARN",
        "arn:aws:states:us-east-1:123456789012:stateMachine:bench",
    ),
    (
        "REPLICATION_TASK_ARN",
        "arn:aws:dms:us-east-1:123456789012:task:bench",
    ),
    ("VERSION_SOURCE", "dir"),
    ("VERSION_DIR", "/nonexistent"),
    ("AWS_ACCESS_KEY_ID", "bench"),
    ("AWS_SECRET_ACCESS_KEY", "bench"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// What a Python Lambda of the seed looks like at cold start: SDK and driver
/// imported, a client built at module level, then the runtime loop.
const PYTHON_HANDLER: &str = r#"
import json, os, urllib.request
import boto3, psycopg2
s3 = boto3.client("s3")
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
while True:
    r = urllib.request.urlopen(f"http://{api}/2018-06-01/runtime/invocation/next")
    rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    json.loads(r.read())
    urllib.request.urlopen(urllib.request.Request(
        f"http://{api}/2018-06-01/runtime/invocation/{rid}/response", data=b"{}", method="POST"))
"#;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median time to first poll and the peak RSS after one event.
fn measure(program: &Path, args: &[&str], env: &[(&str, &str)]) -> (Duration, u64) {
    let mut times = Vec::new();
    let mut rss = 0;
    for _ in 0..RUNS {
        let mut api = RuntimeApi::start();
        api.spawn_args(program, args, env);
        times.push(api.wait_ready(Duration::from_secs(60)));
        let out = api.invoke(serde_json::json!({}), Duration::from_secs(60));
        assert!(
            !matches!(out, Outcome::InitError(_)),
            "{} failed to start: {out:?}",
            program.display()
        );
        rss = rss.max(api.peak_rss_kib().unwrap_or(0));
    }
    (median(times), rss)
}

fn python_baseline(notes: &mut Vec<String>) -> Option<(Duration, u64)> {
    let venv = std::env::temp_dir().join("dbsync-bench-python");
    let py = venv.join("bin/python");
    if !py.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "boto3", "psycopg2-binary"])
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            notes.push("Python baseline: could not install boto3/psycopg2-binary into a venv; row 4 has no reference.".into());
            return None;
        }
    }
    let script = venv.join("handler.py");
    std::fs::write(&script, PYTHON_HANDLER).ok()?;
    let script = script.display().to_string();
    Some(measure(
        &py,
        &[&script],
        &[("PYTHONDONTWRITEBYTECODE", "1")],
    ))
}

pub async fn run(notes: &mut Vec<String>) -> Vec<Row> {
    let mut pkgs = Vec::new();
    for s in STEPS {
        if root().join("functions").join(s).exists() {
            pkgs.extend(["-p", s]);
        }
    }
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .args(&pkgs)
        .current_dir(root())
        .status()
        .expect("cargo");
    assert!(status.success(), "release build of the functions failed");
    let python = python_baseline(notes);
    let mut rows = Vec::new();
    for step in STEPS {
        let bin = target_dir().join("release").join(step);
        if !bin.exists() {
            notes.push(format!("cold start: {step} has no binary yet"));
            continue;
        }
        let (init, rss) = measure(&bin, &[], &LAMBDA_ENV);
        let (reference, ratio, met) = match python {
            Some((p, prss)) => {
                let r = p.as_secs_f64() / init.as_secs_f64();
                (
                    format!(
                        "{:.1} ms, {:.1} MiB",
                        p.as_secs_f64() * 1e3,
                        prss as f64 / 1024.0
                    ),
                    format!("{r:.0}× faster"),
                    Some(init <= Duration::from_millis(15) && r >= 20.0),
                )
            }
            None => (
                "—".into(),
                "—".into(),
                Some(init <= Duration::from_millis(15)),
            ),
        };
        rows.push(Row {
            section: "4",
            what: format!("cold start to first poll: {step}"),
            dbsync: format!(
                "{:.1} ms, {:.1} MiB peak RSS",
                init.as_secs_f64() * 1e3,
                rss as f64 / 1024.0
            ),
            reference,
            ratio,
            goal: "≤ 15 ms and ≥ 20×".into(),
            met,
        });
    }
    notes.push(format!(
        "Cold start: median of {RUNS} process starts against a local Lambda Runtime API (time until the first /invocation/next), host (x86_64) release builds; reference: python3 with boto3 + psycopg2-binary imported and a boto3 client built at module level."
    ));
    rows
}

/// The release profiles compared: (label, lto, codegen-units). Thin LTO with
/// 16 units was measured once on this machine and lost on every count (785 s
/// clean, 63 s after an edit, binaries 1.36x fat's): not worth 13 minutes of
/// every bench run.
const PROFILES: [(&str, &str, &str); 2] = [
    ("fat LTO, 1 codegen unit", "fat", "1"),
    ("no LTO, 16 codegen units", "off", "16"),
];
/// Functions whose cold start is compared across profiles: one on the AWS
/// SDK, one on the database driver.
const PROFILE_COLD_START: [&str; 2] = ["preflight", "drop-fks"];

fn touch_one_function() {
    // Rewritten as it is: a new modification time, what an edit costs the build.
    let main = root().join("functions/drop-fks/src/main.rs");
    if let Ok(text) = std::fs::read_to_string(&main) {
        std::fs::write(&main, text).ok();
    }
}

/// The `lto` value of Cargo.toml's release profile.
fn configured_lto() -> String {
    let toml = std::fs::read_to_string(root().join("Cargo.toml")).unwrap_or_default();
    toml.split("[profile.release]")
        .nth(1)
        .and_then(|rest| {
            rest.lines()
                .take_while(|l| !l.starts_with("[profile."))
                .find_map(|l| l.trim().strip_prefix("lto = "))
        })
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "false".into())
}

/// Row 6: the release profile, chosen by measurement. Each profile builds the
/// eleven functions from an empty target directory (the registry cached),
/// then again after one function's source is touched; binary sizes and cold
/// starts come from those binaries. Host builds: cold starts can be measured
/// here, and cargo-lambda's arm64 cross build does the same work.
pub fn profiles(notes: &mut Vec<String>) -> Vec<Row> {
    let mut pkgs = Vec::new();
    for s in STEPS {
        pkgs.extend(["-p", s]);
    }
    let mut measured = Vec::new();
    for (label, lto, cgu) in PROFILES {
        let dir = target_dir().join(format!("bench-profile-{lto}"));
        let _ = std::fs::remove_dir_all(&dir);
        let build = || {
            let t = Instant::now();
            let ok = Command::new("cargo")
                .args(["build", "--release", "--quiet"])
                .args(&pkgs)
                .env("CARGO_TARGET_DIR", &dir)
                .env("CARGO_PROFILE_RELEASE_LTO", lto)
                .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", cgu)
                .current_dir(root())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "release build with {label} failed");
            t.elapsed()
        };
        let clean = build();
        touch_one_function();
        let touched = build();
        let size: u64 = STEPS
            .iter()
            .map(|s| std::fs::metadata(dir.join("release").join(s)).map_or(0, |m| m.len()))
            .sum();
        let starts: Vec<Duration> = PROFILE_COLD_START
            .iter()
            .map(|s| measure(&dir.join("release").join(s), &[], &LAMBDA_ENV).0)
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        measured.push((label, lto, clean, touched, size, starts));
    }
    // The rule: the smallest binaries among the profiles that meet both build goals.
    let goals = |clean: Duration, touched: Duration| {
        clean <= Duration::from_secs(8 * 60) && touched <= Duration::from_secs(120)
    };
    let chosen = measured
        .iter()
        .filter(|m| goals(m.2, m.3))
        .min_by_key(|m| m.4)
        .map(|m| m.1);
    let configured = configured_lto();
    let fat_size = measured[0].4 as f64;
    let mut rows = Vec::new();
    for (label, lto, clean, touched, size, starts) in &measured {
        let pick = chosen == Some(*lto);
        rows.push(Row {
            section: "6",
            what: format!(
                "release profile: {label}{}",
                if configured == *lto {
                    " (Cargo.toml)"
                } else {
                    ""
                }
            ),
            dbsync: format!(
                "build {:.0} s clean / {:.0} s after touching one function; 11 binaries {:.1} MiB",
                clean.as_secs_f64(),
                touched.as_secs_f64(),
                *size as f64 / 1024.0 / 1024.0
            ),
            reference: format!(
                "cold start {}",
                PROFILE_COLD_START
                    .iter()
                    .zip(starts)
                    .map(|(s, d)| format!("{s} {:.1} ms", d.as_secs_f64() * 1e3))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ratio: format!("size {:.2}× fat's", *size as f64 / fat_size),
            goal: if pick {
                "chosen: smallest within the build goals".into()
            } else {
                "—".into()
            },
            met: pick.then_some(configured == *lto),
        });
    }
    notes.push(format!(
        "Release profiles: host (x86_64) builds of the eleven functions with opt-level 3, stripped, panic = abort, from an empty target directory with the crates.io registry cached, then after rewriting functions/drop-fks/src/main.rs; cold start as in row 4 (median of {RUNS}). The profile kept in Cargo.toml must be the smallest among those meeting both build goals (≤ 8 min clean, ≤ 2 min after touching one function); \"met\" says whether it is."
    ));
    rows
}

pub fn binaries(notes: &mut Vec<String>) -> Vec<Row> {
    let mut rows = Vec::new();
    // An empty target directory of its own: what a first `make build` costs
    // (with the crates.io registry cached).
    let dir = target_dir().join("bench-sam-build");
    let _ = std::fs::remove_dir_all(&dir);
    let time = |args: &[&str]| {
        let t = Instant::now();
        // Offline: no RDS CA bundle to download; packaging it is not what is timed.
        let ok = Command::new("make")
            .args(args)
            .arg("RDS_CA_BUNDLE=none")
            .env("CARGO_TARGET_DIR", &dir)
            .current_dir(root())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| t.elapsed())
    };
    let _ = std::fs::remove_dir_all(root().join(".aws-sam"));
    let clean = time(&["build"]);
    touch_one_function();
    let touched = time(&["build"]);
    for step in STEPS {
        let bin = dir.join("lambda").join(step).join("bootstrap");
        if let Ok(m) = std::fs::metadata(&bin) {
            rows.push(Row {
                section: "6",
                what: format!("binary size (stripped, arm64): {step}"),
                dbsync: format!("{:.2} MiB", m.len() as f64 / 1024.0 / 1024.0),
                reference: "—".into(),
                ratio: "—".into(),
                goal: "—".into(),
                met: None,
            });
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let fmt = |d: Option<Duration>| {
        d.map(|d| format!("{:.0} s", d.as_secs_f64()))
            .unwrap_or_else(|| "failed".into())
    };
    let within = |d: Option<Duration>, secs| d.is_some_and(|d| d.as_secs() <= secs);
    rows.push(Row {
        section: "6",
        what:
            "`make build` (sam build, arm64): empty target directory / after touching one function"
                .into(),
        dbsync: format!("{} / {}", fmt(clean), fmt(touched)),
        reference: "—".into(),
        ratio: "—".into(),
        goal: "≤ 8 min / ≤ 2 min".into(),
        met: Some(within(clean, 480) && within(touched, 120)),
    });
    notes.push("make build: `.aws-sam` removed and an empty cargo target directory (the crates.io registry cached, the Python/npm tools installed), then again after rewriting functions/drop-fks/src/main.rs; offline, so without the RDS CA bundle.".into());
    rows
}
