//! Runs the AWS-recorded conformance corpus (`../shared/asl-conformance`, beside the
//! repository) and compares results per the corpus README:
//! status must match; SUCCEEDED compares `output`, FAILED compares `error`; the cause
//! is scored apart (AWS's English wording) and reported, not required.
//!
//! Cases listed in `tests/known-failures.txt` may fail; any other failure fails the
//! test, and so does a listed case that now passes (the list only shrinks).
//! Without the corpus (a fresh clone) the test prints `skipped: ASL conformance
//! corpus not found at …` and passes; but when `ASL_CONFORMANCE_DIR` names a
//! directory without the corpus, it fails (an explicit request is not skipped).
//! `test_state` cases (TestState API) run the single state inside a small machine;
//! their `nextState` is checked, their `inspectionData` is not.
//! Run one case with `ASL_CASE=<part of its id>`.

use dbsync_asl::{
    run, BoxFuture, InstantClock, RunOptions, StateMachine, Status, TaskError, TaskHandler,
    TaskRequest,
};
use regex::Regex;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the corpus is, and whether `ASL_CONFORMANCE_DIR` asked for it explicitly.
fn corpus_dir() -> (PathBuf, bool) {
    match std::env::var_os("ASL_CONFORMANCE_DIR") {
        Some(d) => (PathBuf::from(d), true),
        None => (
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/asl-conformance"),
            false,
        ),
    }
}

/// Says the corpus run was skipped, visibly: libtest captures `print!`/`eprint!`
/// output, but not a direct write to the stderr handle, so the message shows with
/// and without `--nocapture`.
fn report_skip(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
    println!("{msg}");
}

/// Returns the recorded task outcomes in order, per state name.
struct Replay {
    queues: Mutex<HashMap<String, VecDeque<Value>>>,
}

impl TaskHandler for Replay {
    fn invoke(&self, req: TaskRequest) -> BoxFuture<'static, Result<Value, TaskError>> {
        let next = self
            .queues
            .lock()
            .unwrap()
            .get_mut(&req.state_name)
            .and_then(VecDeque::pop_front);
        Box::pin(async move {
            let Some(a) = next else {
                return Err(TaskError::new(
                    "Replay.Exhausted",
                    format!("no recorded attempt left for state '{}'", req.state_name),
                ));
            };
            match a["outcome"].as_str() {
                Some("succeeded") => Ok(a["output"].clone()),
                _ => Err(TaskError {
                    error: a["error"].as_str().unwrap_or("").to_string(),
                    cause: a["cause"].as_str().map(str::to_string),
                }),
            }
        })
    }
}

struct Normaliser {
    date: Regex,
}

impl Normaliser {
    fn value(&self, v: &Value, key: Option<&str>) -> Value {
        // The recordings turned dates into "date" before scrubbing `timestamp` keys, so
        // a date under such a key stays "date".
        if key.is_some_and(|k| k.to_lowercase().contains("timestamp"))
            && v.as_str().is_none_or(|s| self.string(s) != "date")
        {
            return json!("timestamp");
        }
        match v {
            Value::String(s) => Value::String(self.string(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.value(x, None)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.value(x, Some(k))))
                    .collect::<Map<_, _>>(),
            ),
            other => other.clone(),
        }
    }
    fn string(&self, s: &str) -> String {
        // Only real date-times count: AWS echoes an invalid one (month 13) verbatim.
        let s = self.date.replace_all(s, |c: &regex::Captures| {
            let n = |i: usize| c[i].parse::<u32>().unwrap_or(99);
            if (1..=12).contains(&n(1)) && (1..=31).contains(&n(2)) && n(3) < 24 {
                "date".to_string()
            } else {
                c[0].to_string()
            }
        });
        s.replace("arn:aws:", "arn:<partition>:")
            .replace("us-east-1", "<region>")
    }
}

/// Does the interpreter's (normalised) `actual` match the recorded `expected`?
fn matches(expected: &Value, actual: &Value, repl: &[String]) -> bool {
    match (expected, actual) {
        // A recorded value scrubbed to a token (e.g. a random number replaced by
        // "RandomNumberGenerated") matches any scalar.
        (Value::String(e), Value::Number(_) | Value::Bool(_))
            if string_matches(e, "", repl) && string_matches(e, "x", repl) =>
        {
            true
        }
        // JSON text inside a string (a Lambda error cause) compares as JSON: the
        // replayed attempt carries it re-serialised without AWS's original spacing.
        (Value::String(e), Value::String(a))
            if e != a && e.starts_with('{') && a.starts_with('{') =>
        {
            match (
                serde_json::from_str::<Value>(e),
                serde_json::from_str::<Value>(a),
            ) {
                (Ok(ev), Ok(av)) => matches(&ev, &av, repl),
                _ => string_matches(e, a, repl),
            }
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(e), Value::String(a)) => string_matches(e, a, repl),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| matches(x, y, repl))
        }
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter()
                    .all(|(k, x)| a.get(k).is_some_and(|y| matches(x, y, repl)))
        }
        _ => expected == actual,
    }
}

fn string_matches(expected: &str, actual: &str, repl: &[String]) -> bool {
    if expected == actual {
        return true;
    }
    if !expected.contains('<') && !repl.iter().any(|r| expected.contains(r.as_str())) {
        return false;
    }
    // Build a regex: `<...>` tokens and replacement strings match any text.
    let mut alts: Vec<String> = repl
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| regex::escape(r))
        .collect();
    alts.sort_by_key(|a| std::cmp::Reverse(a.len()));
    alts.push(r"<[^<>]*>".to_string());
    let wild = Regex::new(&alts.join("|")).unwrap();
    let mut pat = String::from("(?s)^");
    let mut last = 0;
    for m in wild.find_iter(expected) {
        pat.push_str(&regex::escape(&expected[last..m.start()]));
        pat.push_str(".*?");
        last = m.end();
    }
    pat.push_str(&regex::escape(&expected[last..]));
    pat.push('$');
    Regex::new(&pat)
        .map(|r| r.is_match(actual))
        .unwrap_or(false)
}

struct Outcome {
    pass: bool,
    cause_ok: Option<bool>,
    detail: String,
}

/// Wraps a single state (TestState API case) into a machine: Choice targets become
/// terminal Pass states so the chosen one shows up in the history.
fn test_state_machine(def: &Value) -> Value {
    let mut state = def.clone();
    let mut states = Map::new();
    if def["Type"] == "Choice" {
        let mut targets: Vec<String> = def["Choices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Next"].as_str().map(str::to_string))
            .collect();
        targets.extend(def["Default"].as_str().map(str::to_string));
        for t in targets {
            states.insert(t, json!({"Type": "Pass", "End": true}));
        }
    } else if state.get("Next").is_some() {
        state.as_object_mut().unwrap().remove("Next");
        state["End"] = json!(true);
    }
    states.insert("TestState".into(), state);
    json!({"StartAt": "TestState", "States": states})
}

async fn run_case(case: &Value, norm: &Normaliser) -> Outcome {
    let kind = case["kind"].as_str().unwrap_or("");
    let def = if kind == "test_state" {
        test_state_machine(&case["definition"])
    } else {
        case["definition"].clone()
    };
    let sm = match StateMachine::from_value(&def) {
        Ok(sm) => sm,
        Err(e) => {
            return Outcome {
                pass: false,
                cause_ok: None,
                detail: format!("rejected: {e}"),
            }
        }
    };
    let mut queues = HashMap::new();
    if let Some(Value::Object(tr)) = case.get("task_replay") {
        for (k, v) in tr {
            let list = v.as_array().cloned().unwrap_or_default();
            queues.insert(k.clone(), list.into_iter().collect());
        }
    }
    let handler = Arc::new(Replay {
        queues: Mutex::new(queues),
    });
    let opts = RunOptions {
        account: "111111111111".into(),
        state_machine_name: "StateMachine-conformance".into(),
        ..RunOptions::default()
    }
    .with_clock(Arc::new(InstantClock::new()))
    // Synchronous executions exist only for EXPRESS workflows.
    .with_express(kind == "sync_result");
    let fut = run(&sm, case["input"].clone(), handler, opts);
    let res = match tokio::time::timeout(Duration::from_secs(10), fut).await {
        Ok(r) => r,
        Err(_) => {
            return Outcome {
                pass: false,
                cause_ok: None,
                detail: "timed out (10 s)".into(),
            }
        }
    };
    let exp = &case["expected"];
    let mut repl: Vec<String> = case["snapshot_replacements"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    // The recordings scrub the execution role ARN to this name; a few cases omit it
    // from their replacement list.
    repl.push("sfn_role_arn".into());
    let status = res.status.as_str();
    if exp["status"] != status {
        return Outcome {
            pass: false,
            cause_ok: None,
            detail: format!(
                "status {status} (expected {}); got {}",
                exp["status"],
                res.to_json()
            ),
        };
    }
    if res.status == Status::Succeeded {
        let out = norm.value(res.output.as_ref().unwrap_or(&Value::Null), None);
        let mut pass = matches(&exp["output"], &out, &repl);
        let mut detail = String::new();
        if !pass {
            detail = format!("output {out}\n      expected {}", exp["output"]);
        }
        if let Some(next) = exp.get("nextState") {
            let chosen = res
                .history
                .iter()
                .filter_map(|e| e.state_name.clone())
                .find(|n| n != "TestState");
            if chosen.as_deref() != next.as_str() {
                pass = false;
                detail = format!("next state {chosen:?}, expected {next}");
            }
        }
        return Outcome {
            pass,
            cause_ok: None,
            detail,
        };
    }
    let err = res.error.clone().map(Value::String).unwrap_or(Value::Null);
    let exp_err = exp.get("error").cloned().unwrap_or(Value::Null);
    let pass = matches(
        &exp_err,
        &Value::String(norm.string(err.as_str().unwrap_or(""))),
        &repl,
    ) || (exp_err.is_null() && err.is_null());
    let cause_ok = match (exp.get("cause"), &res.cause) {
        (None, None) => true,
        (Some(e), Some(a)) => {
            matches(e, &json!(norm.string(a)), &repl)
                || exp.get("cause_json").is_some_and(|cj| {
                    serde_json::from_str::<Value>(a)
                        .map(|v| matches(cj, &norm.value(&v, None), &repl))
                        .unwrap_or(false)
                })
        }
        _ => false,
    };
    Outcome {
        pass,
        cause_ok: Some(cause_ok),
        detail: format!(
            "error {err} cause {:?}\n      expected error {exp_err} cause {}",
            res.cause,
            exp.get("cause").unwrap_or(&Value::Null)
        ),
    }
}

/// Passes without running anything when the corpus is absent (see the module docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_or_skip_without_corpus() {
    let (dir, explicit) = corpus_dir();
    if !dir.join("cases.jsonl").exists() {
        assert!(
            !explicit,
            "ASL_CONFORMANCE_DIR is set to '{}', but no ASL conformance corpus (cases.jsonl) is there",
            dir.display()
        );
        report_skip(&format!(
            "skipped: ASL conformance corpus not found at {} (set ASL_CONFORMANCE_DIR to run it)",
            dir.display()
        ));
        return;
    }
    let known_text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/known-failures.txt"),
    )
    .unwrap_or_default();
    let known: HashMap<String, String> = known_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(" # ") {
            Some((id, why)) => (id.trim().to_string(), why.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect();
    let norm = Normaliser {
        date: Regex::new(r"\d{4}-(\d{2})-(\d{2})T(\d{2}):\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})")
            .unwrap(),
    };
    let only = std::env::var("ASL_CASE").ok();
    let mut unexpected = Vec::new();
    let mut now_passing = Vec::new();
    for file in ["cases.jsonl", "task-replay.jsonl"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let mut per_cat: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let (mut total, mut passed, mut causes, mut cause_ok) = (0, 0, 0, 0);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let case: Value = serde_json::from_str(line).unwrap();
            let id = case["id"].as_str().unwrap().to_string();
            if only.as_ref().is_some_and(|o| !id.contains(o.as_str())) {
                continue;
            }
            let cat = case["category"]
                .as_str()
                .unwrap_or("")
                .split('/')
                .next()
                .unwrap_or("")
                .to_string();
            let o = run_case(&case, &norm).await;
            total += 1;
            let e = per_cat.entry(cat).or_default();
            e.1 += 1;
            if o.pass {
                passed += 1;
                e.0 += 1;
            }
            if let Some(c) = o.cause_ok {
                causes += 1;
                if c {
                    cause_ok += 1;
                } else if o.pass {
                    println!("  cause differs: {id}\n      {}", o.detail);
                }
            }
            match (o.pass, known.contains_key(&id)) {
                (false, false) => unexpected.push(format!("{id}\n      {}", o.detail)),
                (true, true) => now_passing.push(id),
                (false, true) if only.is_some() => {
                    println!("known failure {id}\n      {}", o.detail)
                }
                _ => {}
            }
        }
        println!("== {file}: {passed}/{total} passed; causes matching {cause_ok}/{causes}");
        for (cat, (p, t)) in per_cat {
            println!("   {cat:<28} {p}/{t}");
        }
    }
    for u in &unexpected {
        println!("UNEXPECTED FAILURE {u}");
    }
    for n in &now_passing {
        println!("NOW PASSING (remove from known-failures.txt): {n}");
    }
    assert!(
        unexpected.is_empty() && now_passing.is_empty(),
        "{} unexpected failure(s), {} known failure(s) now passing",
        unexpected.len(),
        now_passing.len()
    );
}
