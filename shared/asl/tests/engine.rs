//! Focused tests of validation and input/output processing, independent of the
//! conformance corpus.

use dbsync_asl::{
    run, CancellationToken, EventType, HistoryEvent, InstantClock, NoTasks, RunOptions,
    ScaledClock, StateMachine, Status, TaskError, TaskRequest, TokioClock,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

fn invalid(def: Value) -> String {
    match StateMachine::from_value(&def) {
        Ok(_) => panic!("accepted an invalid definition: {def}"),
        Err(e) => e.to_string(),
    }
}

fn machine(def: Value) -> StateMachine {
    StateMachine::from_value(&def).unwrap_or_else(|e| panic!("{e}"))
}

fn instant() -> RunOptions {
    RunOptions::default()
        .with_clock(Arc::new(InstantClock::new()))
        .with_execution_name("exec-1")
        .with_state_machine_name("sm-1")
}

async fn run_flow(def: Value, input: Value) -> dbsync_asl::ExecutionResult {
    run(&machine(def), input, Arc::new(NoTasks), instant()).await
}

fn one(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state}})
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
    }
}

// ---------- validation ----------

#[test]
fn rejects_unknown_type_and_field() {
    let m = invalid(one(json!({"Type": "Bogus", "End": true})));
    assert_has(&m, &["State 'S'", "'Type'", "Bogus"]);
    let m = invalid(one(json!({"Type": "Pass", "End": true, "Foo": 1})));
    assert_has(&m, &["State 'S'", "unknown field 'Foo'"]);
    let m = invalid(one(json!({"Type": "Succeed", "End": true})));
    assert_has(&m, &["State 'S'", "unknown field 'End'"]);
}

#[test]
fn rejects_bad_transitions() {
    let m = invalid(one(json!({"Type": "Pass", "Next": "Nope"})));
    assert_has(&m, &["State 'S'", "'Next'", "Nope"]);
    let m = invalid(one(json!({"Type": "Pass", "Next": "S", "End": true})));
    assert_has(&m, &["State 'S'", "both 'Next' and 'End'"]);
    let m = invalid(one(json!({"Type": "Pass"})));
    assert_has(&m, &["State 'S'", "'Next' or 'End'"]);
    let m = invalid(json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "End": true},
        "B": {"Type": "Pass", "End": true}}}));
    assert_has(&m, &["State 'B'", "unreachable"]);
    let m = invalid(json!({"StartAt": "X", "States": {"A": {"Type": "Pass", "End": true}}}));
    assert_has(&m, &["'StartAt'", "X"]);
    let m = invalid(one(json!({"Type": "Choice", "Choices": [
        {"Variable": "$.a", "IsNull": true, "Next": "S"}], "Default": "Missing"})));
    assert_has(&m, &["State 'S'", "'Default'", "Missing"]);
}

#[test]
fn rejects_bad_error_names_and_states_all_placement() {
    let task =
        |retry: Value| one(json!({"Type": "Task", "Resource": "r", "End": true, "Retry": retry}));
    let m = invalid(task(json!([{"ErrorEquals": ["States.MyError"]}])));
    assert_has(&m, &["State 'S'", "Retry", "States.MyError", "reserved"]);
    let m = invalid(task(json!([{"ErrorEquals": ["States.ALL", "Other"]}])));
    assert_has(&m, &["States.ALL", "alone"]);
    let m = invalid(task(
        json!([{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]),
    ));
    assert_has(&m, &["field Retry[0]", "last"]);
    let m = invalid(task(json!([{"ErrorEquals": ["X"], "BackoffRate": 0.5}])));
    assert_has(&m, &["BackoffRate"]);
}

#[test]
fn rejects_bad_paths_and_intrinsics() {
    let m = invalid(one(
        json!({"Type": "Pass", "InputPath": "a.b", "End": true}),
    ));
    assert_has(&m, &["State 'S'", "'InputPath'"]);
    // ResultPath must be a reference path: no wildcards or filters.
    let m = invalid(one(
        json!({"Type": "Pass", "ResultPath": "$.a[*]", "End": true}),
    ));
    assert_has(&m, &["State 'S'", "'ResultPath'", "reference path"]);
    let m = invalid(one(
        json!({"Type": "Pass", "Parameters": {"x.$": "States.Nope(1)"}, "End": true}),
    ));
    assert_has(&m, &["State 'S'", "'Parameters'", "x.$", "States.Nope"]);
    let m = invalid(one(
        json!({"Type": "Pass", "Parameters": {"x.$": 3}, "End": true}),
    ));
    assert_has(&m, &["'Parameters'", "x.$"]);
}

#[test]
fn rejects_jsonata_and_odd_states() {
    let m = invalid(json!({"QueryLanguage": "JSONata", "StartAt": "S",
        "States": {"S": {"Type": "Pass", "End": true}}}));
    assert_has(&m, &["JSONata", "not supported"]);
    let m = invalid(one(
        json!({"Type": "Pass", "QueryLanguage": "JSONata", "End": true}),
    ));
    assert_has(&m, &["State 'S'", "JSONata"]);
    let m = invalid(one(
        json!({"Type": "Wait", "Seconds": 1, "Timestamp": "2020-01-01T00:00:00Z", "End": true}),
    ));
    assert_has(&m, &["State 'S'", "exactly one"]);
    let m = invalid(one(json!({"Type": "Choice", "Choices": [
        {"And": [{"Variable": "$.a", "IsNull": true, "Next": "S"}], "Next": "S"}]})));
    assert_has(&m, &["only allowed on top-level"]);
    let m = invalid(one(
        json!({"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}),
    ));
    assert_has(&m, &["State 'S'", "'Error' or 'ErrorPath'"]);
    let m = invalid(one(json!({"Type": "Map", "End": true})));
    assert_has(&m, &["State 'S'", "ItemProcessor"]);
}

#[test]
fn reports_every_problem() {
    let e = StateMachine::from_value(&json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B", "Bad": 1},
        "B": {"Type": "Task", "End": true}}}))
    .unwrap_err();
    assert!(e.problems.len() >= 2, "{e}");
}

// ---------- input/output processing ----------

#[tokio::test]
async fn full_io_chain_on_a_task() {
    let def = one(json!({
        "Type": "Task", "Resource": "echo",
        "InputPath": "$.in",
        "Parameters": {"v.$": "$.v", "const": 1, "exec.$": "$$.Execution.Name", "nested": {"w.$": "$.v"}},
        "ResultSelector": {"got.$": "$.v", "n.$": "$.nested.w"},
        "ResultPath": "$.out.result",
        "OutputPath": "$.out",
        "End": true
    }));
    let seen = Arc::new(Mutex::new(None));
    let s2 = seen.clone();
    let handler = move |req: TaskRequest| {
        *s2.lock().unwrap() = Some(req.input.clone());
        async move { Ok(req.input) }
    };
    let res = run(
        &machine(def),
        json!({"in": {"v": 7}, "keep": true}),
        Arc::new(handler),
        instant(),
    )
    .await;
    assert_eq!(res.status, Status::Succeeded, "{:?}", res.to_json());
    assert_eq!(
        *seen.lock().unwrap(),
        Some(json!({"v": 7, "const": 1, "exec": "exec-1", "nested": {"w": 7}}))
    );
    assert_eq!(res.output, Some(json!({"result": {"got": 7, "n": 7}})));
}

#[tokio::test]
async fn null_paths_discard() {
    let r = run_flow(
        one(json!({"Type": "Pass", "InputPath": null, "End": true})),
        json!({"a": 1}),
    )
    .await;
    assert_eq!(r.output, Some(json!({})));
    let r = run_flow(
        one(json!({"Type": "Pass", "Result": 5, "ResultPath": null, "End": true})),
        json!({"a": 1}),
    )
    .await;
    assert_eq!(r.output, Some(json!({"a": 1})));
    let r = run_flow(
        one(json!({"Type": "Pass", "OutputPath": null, "End": true})),
        json!({"a": 1}),
    )
    .await;
    assert_eq!(r.output, Some(json!({})));
}

#[tokio::test]
async fn result_wins_over_parameters_in_pass() {
    let r = run_flow(
        one(json!({"Type": "Pass", "Parameters": {"p": 1}, "Result": {"r": 2}, "End": true})),
        json!({}),
    )
    .await;
    assert_eq!(r.output, Some(json!({"r": 2})));
}

#[tokio::test]
async fn missing_parameter_path_is_a_runtime_error() {
    let r = run_flow(
        one(json!({"Type": "Pass", "Parameters": {"x.$": "$.nope"}, "End": true})),
        json!({"a": 1}),
    )
    .await;
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
    assert_has(
        r.cause.as_deref().unwrap(),
        &["state 'S'", "event id #2", "'$.nope'", "'x.$'"],
    );
}

#[tokio::test]
async fn result_path_into_a_string_is_caught_as_match_failure() {
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "r", "ResultPath": "$.s.x", "Next": "Done",
              "Catch": [{"ErrorEquals": ["States.ResultPathMatchFailure"], "ResultPath": "$.err", "Next": "Done"}]},
        "Done": {"Type": "Pass", "End": true}}});
    let handler = |_req: TaskRequest| async { Ok(json!(1)) };
    let r = run(
        &machine(def),
        json!({"s": "str"}),
        Arc::new(handler),
        instant(),
    )
    .await;
    assert_eq!(r.status, Status::Succeeded);
    let out = r.output.unwrap();
    assert_eq!(out["s"], json!("str"));
    assert_eq!(out["err"]["Error"], json!("States.ResultPathMatchFailure"));
}

#[tokio::test]
async fn context_object_and_map_item() {
    let def = json!({"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.xs", "MaxConcurrency": 2,
        "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value", "k.$": "$.k"},
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass",
            "Parameters": {"name.$": "$$.State.Name", "sm.$": "$$.StateMachine.Name", "i.$": "$.i", "v.$": "$.v", "k.$": "$.k"},
            "End": true}}},
        "End": true}}});
    let r = run_flow(def, json!({"xs": ["a", "b", "c"], "k": 9})).await;
    assert_eq!(
        r.output,
        Some(json!([
            {"name": "P", "sm": "sm-1", "i": 0, "v": "a", "k": 9},
            {"name": "P", "sm": "sm-1", "i": 1, "v": "b", "k": 9},
            {"name": "P", "sm": "sm-1", "i": 2, "v": "c", "k": 9}
        ]))
    );
}

#[tokio::test]
async fn variables_take_effect_after_the_state() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"x": 1}, "Next": "B"},
        "B": {"Type": "Pass", "Assign": {"x": 2, "old.$": "$x"}, "Next": "C"},
        "C": {"Type": "Pass", "Parameters": {"x.$": "$x", "old.$": "$old",
              "sum.$": "States.MathAdd($x, $old)"}, "End": true}}});
    let r = run_flow(def, json!({})).await;
    assert_eq!(r.output, Some(json!({"x": 2, "old": 1, "sum": 3})));
}

#[tokio::test]
async fn intrinsics_in_parameters() {
    let def = one(json!({"Type": "Pass", "Parameters": {
        "f.$": "States.Format('{} has {} items', $.name, States.ArrayLength($.xs))",
        "h.$": "States.Hash('abc', 'SHA-256')",
        "b.$": "States.Base64Decode(States.Base64Encode('hi'))",
        "j.$": "States.JsonToString($.obj)",
        "p.$": "States.ArrayPartition($.xs, 2)",
        "m.$": "States.JsonMerge($.obj, States.StringToJson('{\"b\":2}'), false)"
    }, "End": true}));
    let r = run_flow(
        def,
        json!({"name": "box", "xs": [1, 2, 3], "obj": {"a": 1}}),
    )
    .await;
    assert_eq!(
        r.output,
        Some(json!({
            "f": "box has 3 items",
            "h": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "b": "hi",
            "j": "{\"a\":1}",
            "p": [[1, 2], [3]],
            "m": {"a": 1, "b": 2}
        }))
    );
}

#[tokio::test]
async fn choice_rules_and_no_match() {
    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.n", "NumericGreaterThanPath": "$.min"},
                     {"Not": {"Variable": "$.s", "StringMatches": "skip*"}}], "Next": "Big"},
            {"Variable": "$.t", "TimestampLessThan": "2020-01-01T00:00:00Z", "Next": "Old"}]},
        "Big": {"Type": "Pass", "Result": "big", "End": true},
        "Old": {"Type": "Pass", "Result": "old", "End": true}}});
    let r = run_flow(def.clone(), json!({"n": 5, "min": 1, "s": "go"})).await;
    assert_eq!(r.output, Some(json!("big")));
    let r = run_flow(
        def.clone(),
        json!({"n": 5, "min": 1, "s": "skip-me", "t": "2019-05-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(r.output, Some(json!("old")));
    let r = run_flow(
        def,
        json!({"n": 0, "min": 1, "s": "x", "t": "2021-05-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(r.error.as_deref(), Some("States.NoChoiceMatched"));
}

// ---------- errors and recovery ----------

#[tokio::test]
async fn retry_then_succeed_counts_transitions_and_advances_the_clock() {
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "flaky", "Retry": [
            {"ErrorEquals": ["Flaky"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 3}],
            "Parameters": {"n.$": "$$.State.RetryCount"}, "End": true}}});
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let handler = move |req: TaskRequest| {
        let n = c2.fetch_add(1, Ordering::SeqCst);
        async move {
            assert_eq!(req.retry_count, n);
            assert_eq!(req.input, json!({"n": n}));
            if n < 2 {
                Err(TaskError::new("Flaky", "try again"))
            } else {
                Ok(json!({"attempts": n + 1}))
            }
        }
    };
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let clock = Arc::new(InstantClock::starting_at(start));
    let opts = instant().with_clock(clock.clone());
    let r = run(&machine(def), json!({}), Arc::new(handler), opts).await;
    assert_eq!(r.output, Some(json!({"attempts": 3})));
    // Waited 2 s then 6 s of virtual time.
    use dbsync_asl::Clock;
    assert_eq!(
        clock.now().duration_since(start).unwrap(),
        Duration::from_secs(8)
    );
    // One state entered plus two retries.
    assert_eq!(r.state_transitions, 3);
    let scheduled: Vec<u32> = r
        .history
        .iter()
        .filter(|e| e.event_type == EventType::TaskScheduled)
        .filter_map(|e| e.retry_count)
        .collect();
    assert_eq!(scheduled, vec![0, 1, 2]);
}

#[tokio::test]
async fn task_failed_does_not_catch_timeout_and_all_does_not_catch_runtime() {
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "r", "Next": "Ok",
              "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Ok"}]},
        "Ok": {"Type": "Pass", "End": true}}});
    let timeout = |_r: TaskRequest| async {
        Err(TaskError {
            error: "States.Timeout".into(),
            cause: None,
        })
    };
    let r = run(
        &machine(def.clone()),
        json!({}),
        Arc::new(timeout),
        instant(),
    )
    .await;
    assert_eq!(r.error.as_deref(), Some("States.Timeout"));
    let custom = |_r: TaskRequest| async { Err(TaskError::new("Custom", "c")) };
    let r = run(&machine(def), json!({}), Arc::new(custom), instant()).await;
    assert_eq!(r.status, Status::Succeeded);
    assert_eq!(r.output, Some(json!({"Error": "Custom", "Cause": "c"})));

    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "r", "OutputPath": "$.missing.deep", "Next": "Ok",
              "Retry": [{"ErrorEquals": ["States.ALL"]}],
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Ok"}]},
        "Ok": {"Type": "Pass", "End": true}}});
    let ok = |_r: TaskRequest| async { Ok(json!({})) };
    let r = run(&machine(def), json!({}), Arc::new(ok), instant()).await;
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
    assert_has(
        r.cause.as_deref().unwrap(),
        &["Missing property in path $['missing']"],
    );
}

#[tokio::test]
async fn task_timeout_fires_on_a_scaled_clock() {
    let def = one(json!({"Type": "Task", "Resource": "slow", "TimeoutSeconds": 1, "End": true}));
    let slow = |req: TaskRequest| async move {
        assert_eq!(req.timeout, Some(Duration::from_secs(1)));
        assert!(req.deadline.is_some());
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(json!(null))
    };
    let opts = instant().with_clock(Arc::new(ScaledClock::new(0.001)));
    let r = run(&machine(def), json!({}), Arc::new(slow), opts).await;
    assert_eq!(r.error.as_deref(), Some("States.Timeout"));
    assert!(r
        .history
        .iter()
        .any(|e| e.event_type == EventType::TaskTimedOut));
}

#[tokio::test]
async fn parallel_and_fail_states() {
    let def = one(json!({"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "End": true}}},
        {"StartAt": "B", "States": {"B": {"Type": "Pass", "InputPath": "$.x", "End": true}}}]}));
    let r = run_flow(def, json!({"x": 2})).await;
    assert_eq!(r.output, Some(json!([1, 2])));

    let def = one(json!({"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e", "Cause": "boom"}}}]}));
    let r = run_flow(def, json!({"e": "MyError"})).await;
    assert_eq!(
        r.to_json(),
        json!({"status": "FAILED", "error": "MyError", "cause": "boom"})
    );
}

#[tokio::test]
async fn map_tolerated_failures() {
    let def = one(
        json!({"Type": "Map", "ToleratedFailureCount": 1, "End": true,
        "ItemProcessor": {"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericEquals": 0, "Next": "F"}], "Default": "P"},
            "F": {"Type": "Fail", "Error": "Zero"},
            "P": {"Type": "Pass", "End": true}}}}),
    );
    let r = run_flow(def.clone(), json!([1, 0, 2])).await;
    assert_eq!(r.status, Status::Succeeded);
    let r = run_flow(def, json!([0, 0, 2])).await;
    assert_eq!(
        r.error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold")
    );
}

#[tokio::test]
async fn wait_uses_the_clock_and_cancellation_aborts() {
    let def = one(json!({"Type": "Wait", "Seconds": 86400, "End": true}));
    let r = run_flow(def.clone(), json!({"a": 1})).await;
    assert_eq!(r.output, Some(json!({"a": 1})));

    let cancel = CancellationToken::new();
    let opts = instant()
        .with_clock(Arc::new(TokioClock))
        .with_cancel(cancel.clone());
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        c2.cancel();
    });
    let r = run(&machine(def), json!({}), Arc::new(NoTasks), opts).await;
    assert_eq!(r.status, Status::Aborted);
    assert_eq!(r.to_json(), json!({"status": "ABORTED"}));
}

#[tokio::test]
async fn observer_sees_events_live_with_aws_names() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let obs = move |e: &HistoryEvent| s2.lock().unwrap().push(e.type_name());
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Succeed"}}});
    let r = run(
        &machine(def),
        json!({}),
        Arc::new(NoTasks),
        instant().with_observer(Arc::new(obs)),
    )
    .await;
    let names = seen.lock().unwrap().clone();
    assert_eq!(
        names,
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "SucceedStateEntered",
            "SucceedStateExited",
            "ExecutionSucceeded"
        ]
    );
    assert_eq!(r.history.len(), names.len());
    assert_eq!(r.state_transitions, 2);
    assert_eq!(r.to_json(), json!({"status": "SUCCEEDED", "output": {}}));
}
