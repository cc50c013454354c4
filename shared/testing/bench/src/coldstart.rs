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
        // Configuration is read at start; the event itself may fail (no database), which is fine here.
        let env = [
            ("DATABASE_URL", "postgres://bench@127.0.0.1:1/none"),
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
        let (init, rss) = measure(&bin, &[], &env);
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

pub fn binaries(notes: &mut Vec<String>) -> Vec<Row> {
    let mut rows = Vec::new();
    let time = |args: &[&str]| {
        let t = Instant::now();
        // Offline: no RDS CA bundle to download; packaging it is not what is timed.
        let ok = Command::new("make")
            .args(args)
            .arg("RDS_CA_BUNDLE=none")
            .current_dir(root())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| t.elapsed())
    };
    let _ = std::fs::remove_dir_all(root().join(".aws-sam"));
    let warm = time(&["build"]);
    let touched = {
        // Rewritten as it is: a new modification time, what an edit costs the build.
        let main = root().join("functions/drop-fks/src/main.rs");
        if let Ok(text) = std::fs::read_to_string(&main) {
            std::fs::write(&main, text).ok();
        }
        time(&["build"])
    };
    for step in STEPS {
        let bin = target_dir().join("lambda").join(step).join("bootstrap");
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
    let fmt = |d: Option<Duration>| {
        d.map(|d| format!("{:.0} s", d.as_secs_f64()))
            .unwrap_or_else(|| "failed".into())
    };
    rows.push(Row {
        section: "6",
        what: "sam build, .aws-sam removed, cargo cache warm / after touching one function".into(),
        dbsync: format!("{} / {}", fmt(warm), fmt(touched)),
        reference: "—".into(),
        ratio: "—".into(),
        goal: "—".into(),
        met: None,
    });
    notes.push("sam build times use the shared cargo target directory as left by earlier builds (a fully cold build compiles the AWS SDK for arm64 first: several minutes on 2 cores).".into());
    rows
}
