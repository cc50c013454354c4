//! Checks that tie the deployable pieces together mechanically: the naming
//! chain (step → binary → `…Function` → `${…FunctionArn}` → state), and the
//! error names the state machine matches against the ones the code raises.

use std::{collections::BTreeSet, path::PathBuf};

use dbsync_workflow::{naming, StepError};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn definition() -> Value {
    serde_json::from_str(&read("statemachine/db-sync.asl.json")).expect("the definition is JSON")
}

/// The state that runs each step (the trigger starts the machine instead).
const STATES: [(&str, &str); 9] = [
    ("preflight", "Preflight"),
    ("lease", "AcquireLease"),
    ("version-check", "CheckSchemaVersions"),
    ("drop-fks", "DropForeignKeys"),
    ("start-dms", "StartReplication"),
    ("poll-dms", "PollReplication"),
    ("restore-fks", "RestoreForeignKeys"),
    ("fix-sequences", "FixSequences"),
    ("refresh-views", "RefreshViews"),
];

#[test]
fn naming_chain_holds_from_step_to_state() {
    let (template, makefile, asl) = (read("template.yaml"), read("Makefile"), definition());
    for step in naming::STEPS {
        let pascal = naming::pascal(step);
        let cargo = read(&format!("functions/{step}/Cargo.toml"));
        assert!(
            cargo.contains(&format!("name = \"{step}\"")),
            "functions/{step}: package/binary named {step}"
        );
        assert!(
            template.contains(&format!("  {pascal}Function:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildMethod: makefile\n")),
            "template.yaml: {pascal}Function built by the Makefile"
        );
        assert!(
            makefile.contains(&format!("{pascal}Function={step}")),
            "Makefile: build-{pascal}Function builds {step}"
        );
    }
    for (step, state) in STATES {
        let pascal = naming::pascal(step);
        assert!(
            template.contains(&format!(
                "{pascal}FunctionArn: !GetAtt {pascal}Function.Arn"
            )),
            "template.yaml: DefinitionSubstitutions maps {pascal}FunctionArn"
        );
        assert_eq!(
            asl["States"][state]["Parameters"]["FunctionName"],
            format!("${{{pascal}FunctionArn}}"),
            "state {state} invokes {step}"
        );
    }
    // No substitution without a producer.
    let text = read("statemachine/db-sync.asl.json");
    for name in text
        .split("${")
        .skip(1)
        .map(|s| s.split('}').next().unwrap())
    {
        assert!(
            template.contains(&format!("        {name}: ")),
            "template.yaml substitutes ${{{name}}}"
        );
    }
}

fn error_names(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(names)) = m.get("ErrorEquals") {
                out.extend(names.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            m.values().for_each(|x| error_names(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| error_names(x, out)),
        _ => {}
    }
}

#[test]
fn every_matched_error_name_exists_and_every_raised_name_is_handled() {
    let asl = definition();
    let mut used = BTreeSet::new();
    error_names(&asl, &mut used);
    for name in &used {
        let known = name.starts_with("States.")
            || name.starts_with("Lambda.")
            || name.starts_with("SNS.")
            || name.starts_with("Sfn.")
            || StepError::NAMES.contains(&name.as_str());
        assert!(
            known,
            "the state machine matches {name}, which no code raises"
        );
    }
    // Transient names are retried; every other name reaches a Catch-all.
    for t in StepError::TRANSIENT {
        assert!(used.contains(*t), "transient {t} is never retried");
    }
    for (name, state) in asl["States"].as_object().unwrap() {
        if state["Type"] == "Task" {
            let catches_all = state["Catch"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["ErrorEquals"] == serde_json::json!(["States.ALL"]))
            });
            assert!(catches_all, "task {name} lets some errors escape its Catch");
            for r in state["Retry"].as_array().into_iter().flatten() {
                assert!(
                    !r["ErrorEquals"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e == "States.ALL" || e == "States.TaskFailed"),
                    "task {name} blanket-retries"
                );
            }
        }
    }
}

/// Every step is safe to run again, so whatever passes is retried on every
/// Lambda task: a Lambda that died (`Lambda.Unknown`: its timeout, out of
/// memory), AWS throttling after the SDK's own retries, and — for the steps
/// that reach a database — a dropped connection or a lock held a moment too long.
#[test]
fn every_lambda_task_retries_what_passes() {
    let asl = definition();
    let db_steps = [
        "lease",
        "version-check",
        "drop-fks",
        "restore-fks",
        "fix-sequences",
    ];
    for (name, state) in asl["States"].as_object().unwrap() {
        if state["Resource"] != "arn:aws:states:::lambda:invoke" {
            continue;
        }
        let mut retried = BTreeSet::new();
        for r in state["Retry"].as_array().into_iter().flatten() {
            error_names(r, &mut retried);
        }
        let function = state["Parameters"]["FunctionName"].as_str().unwrap();
        let step =
            naming::step_of_substitution(function.trim_start_matches("${").trim_end_matches('}'))
                .unwrap();
        let mut want = vec![
            "Lambda.Unknown",
            "Lambda.ServiceException",
            "Lambda.TooManyRequestsException",
            "AwsTransientError",
        ];
        if db_steps.contains(&step) {
            want.extend(["DatabaseUnavailable", "LockTimeout"]);
        }
        for w in want {
            assert!(
                retried.contains(w),
                "state {name} ({step}) does not retry {w}"
            );
        }
    }
}

#[test]
fn the_definition_is_valid_for_the_local_engine() {
    let substituted = naming::substitute(
        &read("statemachine/db-sync.asl.json"),
        "us-east-1:123456789012",
    )
    .unwrap();
    dbsync_asl::StateMachine::from_json(&substituted).unwrap_or_else(|e| panic!("{e:?}"));
}
