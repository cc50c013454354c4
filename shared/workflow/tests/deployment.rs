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

#[test]
fn naming_chain_holds_from_step_to_state() {
    let (t, makefile, asl) = (template(), read("Makefile"), definition());
    let substitutions =
        &t["Resources"]["SyncStateMachine"]["Properties"]["DefinitionSubstitutions"];
    assert!(
        substitutions.is_mapping(),
        "the state machine's DefinitionSubstitutions"
    );
    for step in naming::STEPS {
        let pascal = naming::pascal(step);
        let cargo = read(&format!("functions/{step}/Cargo.toml"));
        assert!(
            cargo.contains(&format!("name = \"{step}\"")),
            "functions/{step}: package/binary named {step}"
        );
        let function = &t["Resources"][format!("{pascal}Function").as_str()];
        assert_eq!(
            (
                function["Type"].as_str(),
                function["Metadata"]["BuildMethod"].as_str()
            ),
            (Some("AWS::Serverless::Function"), Some("makefile")),
            "template.yaml: {pascal}Function built by the Makefile"
        );
        assert!(
            makefile.contains(&format!("{pascal}Function={step}")),
            "Makefile: build-{pascal}Function builds {step}"
        );
    }
    for (step, state) in naming::STEP_TABLE
        .iter()
        .filter_map(|s| s.state.map(|state| (s.name, state)))
    {
        let pascal = naming::pascal(step);
        let arn = &substitutions[format!("{pascal}FunctionArn").as_str()];
        // An engine's own function exists only with that engine: `!If [cond, !GetAtt …, placeholder]`.
        let arn = match arn {
            serde_yaml_ng::Value::Tagged(t) if t.tag == "!If" => &t.value[1],
            other => other,
        };
        assert_eq!(
            tagged(arn),
            Some(("!GetAtt", format!("{pascal}Function.Arn"))),
            "template.yaml: DefinitionSubstitutions maps {pascal}FunctionArn"
        );
        assert_eq!(
            find_state(&asl, state)["Parameters"]["FunctionName"],
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
            !substitutions[name].is_null(),
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
            || name == "Sandbox.Timedout"
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
        // Sandbox.Timedout: a timeout in the init phase (AWS's own samples retry it).
        let mut want = vec![
            "Lambda.Unknown",
            "Sandbox.Timedout",
            "Lambda.ServiceException",
            "Lambda.TooManyRequestsException",
            "AwsTransientError",
        ];
        if naming::step_named(step).unwrap().database {
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

/// AWS documents that CloudWatch alarms can publish only to a topic whose key
/// is customer-managed with a policy letting them; every
/// function's logs expire; the asynchronously invoked trigger has somewhere
/// to send its failures; parameter combinations are checked at deploy time.
#[test]
fn notifications_reach_someone_and_logs_expire() {
    let (text, t) = (read("template.yaml"), template());
    let resources = &t["Resources"];
    assert!(
        !text.contains("alias/aws/sns"),
        "an AWS-managed key cannot be granted to CloudWatch alarms"
    );
    assert_eq!(
        tagged(&resources["FailureTopic"]["Properties"]["KmsMasterKeyId"]),
        Some(("!Ref", "NotificationKey".to_owned()))
    );
    let key = &resources["NotificationKey"]["Properties"];
    assert_eq!(key["EnableKeyRotation"].as_bool(), Some(true));
    let principals: Vec<&str> = key["KeyPolicy"]["Statement"]
        .as_sequence()
        .expect("the key's policy statements")
        .iter()
        .filter_map(|s| s["Principal"]["Service"].as_str())
        .collect();
    assert!(
        principals.contains(&"cloudwatch.amazonaws.com"),
        "CloudWatch alarms may use the key"
    );
    // Nothing of EventBridge's publishes to the topic: no grant nobody uses.
    assert!(!principals.contains(&"events.amazonaws.com"));
    for step in naming::STEPS {
        let base = naming::pascal(step);
        let function = &resources[format!("{base}Function").as_str()]["Properties"];
        assert_eq!(
            tagged(&function["LoggingConfig"]["LogGroup"]),
            Some(("!Ref", format!("{base}LogGroup"))),
            "{base}Function logs to its declared log group"
        );
        let group = &resources[format!("{base}LogGroup").as_str()];
        assert_eq!(
            group["Type"].as_str(),
            Some("AWS::Logs::LogGroup"),
            "{base}LogGroup is declared"
        );
        assert_eq!(
            tagged(&group["Properties"]["RetentionInDays"]),
            Some(("!Ref", "LogRetentionDays".to_owned())),
            "{base}LogGroup expires"
        );
    }
    assert_eq!(
        tagged(&resources["StateMachineLogGroup"]["Properties"]["RetentionInDays"]),
        Some(("!Ref", "LogRetentionDays".to_owned())),
        "the state machine's log group expires"
    );
    let on_failure = &resources["TriggerFunction"]["Properties"]["EventInvokeConfig"]
        ["DestinationConfig"]["OnFailure"];
    assert_eq!(on_failure["Type"].as_str(), Some("SNS"));
    assert_eq!(
        tagged(&on_failure["Destination"]),
        Some(("!Ref", "FailureTopic".to_owned()))
    );
    for rule in [
        "SqlVersionsNeedTheSourceSecret",
        "S3VersionsNeedTheBucket",
        "ExactlyOneReplication",
    ] {
        assert!(t["Rules"][rule].is_mapping(), "Rules: {rule}");
    }
    for alarm in [
        "NoSuccessfulSyncAlarm",
        "TriggerErrorsAlarm",
        "FailedExecutionsAlarm",
    ] {
        assert!(resources[alarm].is_mapping(), "{alarm}");
    }
}

/// Each samconfig environment deploys its own stack, with every parameter a run needs.
#[test]
fn samconfig_environments_are_complete_and_distinct() {
    let text = read("samconfig.toml");
    let mut stacks = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("stack_name")) {
        stacks.push(line.split('"').nth(1).unwrap().to_owned());
    }
    let mut unique = stacks.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), stacks.len(), "stack names {stacks:?}");
    for section in text.split("parameter_overrides = [").skip(1) {
        let params = &section[..section.find(']').unwrap()];
        for needed in ["TargetDbSecretArn=", "SubnetIds=", "SecurityGroupIds="] {
            assert!(params.contains(needed), "{needed} missing in {params}");
        }
        // The template's Rules: the Lambda engine reads production itself and
        // names no DMS resource; DMS needs exactly one of a task and a serverless config.
        if params.contains("CopyEngine=lambda") {
            assert!(
                params.contains("SourceDbSecretArn=arn")
                    && !params.contains("ReplicationTaskArn=")
                    && !params.contains("ReplicationConfigArn="),
                "the Lambda engine: production's secret, no DMS: {params}"
            );
        } else {
            assert!(
                params.contains("ReplicationTaskArn=") != params.contains("ReplicationConfigArn="),
                "exactly one of a task and a serverless config: {params}"
            );
        }
        let sql = params.contains("VersionSource=sql");
        assert!(
            if sql {
                params.contains("SourceDbSecretArn=arn")
            } else {
                params.contains("VersionBucket=")
            },
            "the version source's settings: {params}"
        );
    }
}

/// A load may run at most so long that the FK restore still fits in the
/// execution's own time limit (`TimeoutSeconds`).
#[test]
fn the_longest_load_leaves_time_for_the_restore() {
    let (t, asl) = (template(), definition());
    let limit = asl["TimeoutSeconds"]
        .as_u64()
        .expect("the execution has a time limit");
    let max = t["Parameters"]["MaxReplicationSeconds"]["MaxValue"]
        .as_u64()
        .expect("MaxReplicationSeconds has a MaxValue");
    assert!(
        max + 4 * 3600 <= limit,
        "{max} s of load leaves under 4 h of {limit} s for the restore"
    );
}

/// IAM: no wildcard actions; a wildcard resource only where AWS allows no
/// other (the Describe actions, log delivery), and then held to this region.
/// (In the key policy, `Resource: "*"` means the key itself.)
#[test]
fn iam_statements_are_scoped() {
    use serde_yaml_ng::Value as Y;
    // Every string an Action holds, through `!If [cond, a, b]` and lists.
    fn strings(v: &Y, out: &mut Vec<String>) {
        match v {
            Y::String(s) => out.push(s.clone()),
            Y::Sequence(items) => items.iter().for_each(|x| strings(x, out)),
            Y::Tagged(t) => strings(&t.value, out),
            _ => {}
        }
    }
    // Every IAM statement (a mapping with an Effect) below `v`.
    fn statements<'a>(v: &'a Y, out: &mut Vec<&'a Y>) {
        match v {
            Y::Mapping(m) => {
                if m.contains_key("Effect") {
                    out.push(v);
                }
                m.values().for_each(|x| statements(x, out));
            }
            Y::Sequence(items) => items.iter().for_each(|x| statements(x, out)),
            Y::Tagged(t) => statements(&t.value, out),
            _ => {}
        }
    }
    let t = template();
    let mut wildcards = 0;
    for (name, resource) in t["Resources"].as_mapping().unwrap() {
        let name = name.as_str().unwrap_or_default();
        let mut found = Vec::new();
        statements(resource, &mut found);
        for st in found {
            let mut actions = Vec::new();
            strings(&st["Action"], &mut actions);
            for a in &actions {
                assert!(!a.ends_with('*'), "{name}: wildcard action {a}");
            }
            let mut resources = Vec::new();
            strings(&st["Resource"], &mut resources);
            // In the key policy, `Resource: "*"` means the key itself.
            if resources.iter().any(|r| r == "*") && name != "NotificationKey" {
                let region = &st["Condition"]["StringEquals"]["aws:RequestedRegion"];
                assert_eq!(
                    tagged(region),
                    Some(("!Ref", "AWS::Region".to_owned())),
                    "{name}: a wildcard resource held to this region"
                );
                wildcards += 1;
            }
        }
    }
    assert_eq!(
        wildcards, 4,
        "three Describe statements and the log delivery"
    );
}

/// `verify-full` works out of the box: every function that connects to a
/// database points `DB_SSLROOTCERT` at the bundle the Makefile packages beside
/// its binary, and only those functions get one.
#[test]
fn the_ca_bundle_is_packaged_where_the_template_looks() {
    let makefile = read("Makefile");
    assert!(makefile.contains("cp \"$(SYNC_CONFIG_FILE)\" $(1)/dbsync.yml"));
    let file = makefile
        .lines()
        .find_map(|l| l.strip_prefix("CA_FILE_NAME := "))
        .expect("Makefile: CA_FILE_NAME");
    let db_binaries: BTreeSet<&str> = makefile
        .lines()
        .find_map(|l| l.strip_prefix("DB_BINARIES := "))
        .expect("Makefile: DB_BINARIES")
        .split_whitespace()
        .collect();
    let from_table: BTreeSet<&str> = naming::STEP_TABLE
        .iter()
        .filter(|s| s.database)
        .map(|s| s.name)
        .collect();
    assert_eq!(
        db_binaries, from_table,
        "Makefile: DB_BINARIES is the step table's database steps"
    );
    let t = template();
    assert_eq!(
        t["Parameters"]["DbSslMode"]["Default"].as_str(),
        Some("verify-full"),
        "verify-full is the default"
    );
    for step in naming::STEPS {
        let pascal = naming::pascal(step);
        let variables = &t["Resources"][format!("{pascal}Function").as_str()]["Properties"]
            ["Environment"]["Variables"];
        let connects = tagged(&variables["DB_SSLMODE"]) == Some(("!Ref", "DbSslMode".into()));
        assert_eq!(
            connects,
            db_binaries.contains(step),
            "{pascal}Function: connects to a database exactly when the Makefile packages its CA bundle"
        );
        if connects {
            assert_eq!(
                variables["DB_SSLROOTCERT"].as_str(),
                Some(format!("/var/task/{file}").as_str()),
                "{pascal}Function: DB_SSLROOTCERT names the packaged bundle"
            );
        }
        // The sync configuration: read by the lease (checks the rules before any
        // change), drop-fks (keeps masked columns' unique indexes), after-load
        // (applies the rules) and the Lambda engine (applies them in flight),
        // packaged beside the database functions.
        let reads_config = variables["SYNC_CONFIG"].as_str() == Some("/var/task/dbsync.yml");
        assert_eq!(
            reads_config,
            ["lease", "drop-fks", "after-load", "plan-copy", "copy-piece"].contains(&step),
            "{pascal}Function: SYNC_CONFIG"
        );
        assert!(!reads_config || db_binaries.contains(step));
    }
}

/// The README's troubleshooting table names every error a step raises, and
/// nothing that neither a step nor the state machine itself raises.
#[test]
fn the_readme_error_table_matches_the_error_list() {
    let readme = read("README.md");
    let mut lines = readme
        .lines()
        .skip_while(|l| l.trim() != "| error | what happened | what to do |")
        .skip(2);
    let mut documented = BTreeSet::new();
    for line in lines.by_ref().take_while(|l| l.starts_with('|')) {
        let first = line.split('|').nth(1).unwrap_or_default();
        documented.extend(first.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    assert!(
        !documented.is_empty(),
        "the README's error table was not found"
    );
    for name in StepError::NAMES {
        assert!(
            documented.contains(*name),
            "{name} is raised but the README's error table does not explain it"
        );
    }
    // The state machine's own: a Fail state's `Error`, or one a Pass state
    // hands to a Fail state's `ErrorPath`.
    fn own_errors(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(e)) = m.get("Error") {
                    out.insert(e.clone());
                }
                m.values().for_each(|x| own_errors(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| own_errors(x, out)),
            _ => {}
        }
    }
    let mut fail_states = BTreeSet::new();
    own_errors(&definition(), &mut fail_states);
    for name in &documented {
        assert!(
            StepError::NAMES.contains(&name.as_str()) || fail_states.contains(name),
            "the README explains {name}, which nothing raises"
        );
    }
}

/// A CloudFormation short form (`!Ref X`, `!GetAtt X.Arn`) as (tag, scalar).
fn tagged(v: &serde_yaml_ng::Value) -> Option<(&'static str, String)> {
    match v {
        serde_yaml_ng::Value::Tagged(t) => {
            let tag = ["!Ref", "!GetAtt", "!Sub", "!If"]
                .into_iter()
                .find(|k| t.tag == *k)?;
            Some((tag, t.value.as_str()?.to_owned()))
        }
        _ => None,
    }
}

/// A state by name, in the machine or inside a Map's or Parallel's graph.
fn find_state<'a>(graph: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    fn walk<'a>(g: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
        let states = g["States"].as_object()?;
        if let Some(s) = states.get(name) {
            return Some(s);
        }
        states.values().find_map(|s| {
            ["ItemProcessor", "Iterator"]
                .iter()
                .find_map(|k| walk(&s[*k], name))
                .or_else(|| s["Branches"].as_array()?.iter().find_map(|b| walk(b, name)))
        })
    }
    walk(graph, name).unwrap_or_else(|| panic!("no state named {name}"))
}

/// template.yaml parsed as YAML (CloudFormation's `!Ref`/`!If`/… tags kept
/// as tagged values).
fn template() -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&read("template.yaml")).expect("template.yaml parses as YAML")
}

/// Every environment variable the template gives a function is one dbsync
/// reads (a misspelt `ORPHAN_POLCY` would silently leave the default), and
/// where it passes a parameter, that parameter's default is the code's.
#[test]
fn every_template_variable_is_read_and_defaults_agree() {
    use dbsync_workflow::vars;
    use serde_yaml_ng::Value as Y;
    let t = template();
    let params = &t["Parameters"];
    let mut blocks = vec![(
        "Globals".to_owned(),
        &t["Globals"]["Function"]["Environment"]["Variables"],
    )];
    for (name, r) in t["Resources"].as_mapping().expect("Resources") {
        if r["Type"].as_str() == Some("AWS::Serverless::Function") {
            blocks.push((
                name.as_str().unwrap_or_default().to_owned(),
                &r["Properties"]["Environment"]["Variables"],
            ));
        }
    }
    let mut seen = 0;
    for (function, variables) in blocks {
        let Some(variables) = variables.as_mapping() else {
            continue;
        };
        for (key, value) in variables {
            let key = key.as_str().expect("variable names are strings");
            seen += 1;
            let Some(var) = vars::ALL.iter().find(|v| v.name == key) else {
                panic!("{function} is given {key}, which dbsync never reads");
            };
            // `!Ref Parameter`: the parameter's default must be the code's.
            if let Y::Tagged(tagged) = value {
                if tagged.tag == "!Ref" {
                    let param = tagged.value.as_str().unwrap_or_default();
                    let default = match &params[param]["Default"] {
                        Y::String(s) => Some(s.clone()),
                        Y::Number(n) => Some(n.to_string()),
                        Y::Bool(b) => Some(b.to_string()),
                        _ => None,
                    };
                    if let (Some(ours), Some(theirs)) =
                        (var.default, default.filter(|d| !d.is_empty()))
                    {
                        assert_eq!(
                            ours, theirs,
                            "{key}: the code's default differs from parameter {param}'s"
                        );
                    }
                }
            }
        }
    }
    assert!(
        seen > 20,
        "the template's variables were not found ({seen})"
    );
}

/// The README's variable table explains every variable dbsync reads.
#[test]
fn the_readme_names_every_variable() {
    let readme = read("README.md");
    for v in dbsync_workflow::vars::ALL {
        assert!(
            readme.contains(&format!("`{}`", v.name)),
            "{} is read but the README does not mention it",
            v.name
        );
    }
}

/// Each function's time limit in template.yaml (its own `Timeout`, else the
/// Globals') is the step table's, which the local and scenario runs use.
#[test]
fn function_timeouts_are_the_step_tables() {
    let t = template();
    let global = t["Globals"]["Function"]["Timeout"].as_u64();
    for step in naming::STEP_TABLE {
        let pascal = naming::pascal(step.name);
        let own =
            t["Resources"][format!("{pascal}Function").as_str()]["Properties"]["Timeout"].as_u64();
        assert_eq!(
            own.or(global),
            Some(step.timeout_seconds),
            "{pascal}Function's Timeout"
        );
    }
}

/// `events/` holds one sample event per step (for `sam local invoke`), each
/// a JSON object, and nothing for a step that does not exist.
#[test]
fn every_step_has_a_sample_event() {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("events")).expect("events/") {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            v.is_object(),
            "{}: an event is a JSON object",
            path.display()
        );
        found.insert(name);
    }
    let steps: BTreeSet<String> = naming::STEPS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        found, steps,
        "events/<step>.json for every step, and only those"
    );
}

/// The template's `Rules`, evaluated for parameter values: exactly one way of
/// loading staging is accepted at deploy time, and the Lambda engine needs
/// production's secret.
#[test]
fn the_rules_accept_exactly_one_engine() {
    use serde_yaml_ng::Value as Y;
    use std::collections::BTreeMap;
    fn value(v: &Y, params: &BTreeMap<String, String>) -> String {
        match v {
            Y::String(s) => s.clone(),
            Y::Tagged(t) if t.tag == "!Ref" => params[t.value.as_str().unwrap()].clone(),
            other => panic!("no value for {other:?}"),
        }
    }
    fn holds(v: &Y, params: &BTreeMap<String, String>) -> bool {
        let Y::Tagged(t) = v else {
            panic!("not a condition: {v:?}")
        };
        let args = t.value.as_sequence().expect("condition arguments");
        match t.tag.to_string().as_str() {
            "!Equals" => value(&args[0], params) == value(&args[1], params),
            "!Not" => !holds(&args[0], params),
            "!And" => args.iter().all(|a| holds(a, params)),
            "!Or" => args.iter().any(|a| holds(a, params)),
            other => panic!("unsupported {other}"),
        }
    }
    let t = template();
    let defaults: BTreeMap<String, String> = t["Parameters"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, p)| {
            let d = match &p["Default"] {
                Y::String(s) => s.clone(),
                Y::Number(n) => n.to_string(),
                _ => String::new(),
            };
            (k.as_str().unwrap().to_owned(), d)
        })
        .collect();
    let accepted = |overrides: &[(&str, &str)]| -> bool {
        let mut params = defaults.clone();
        params.insert("VersionBucket".into(), "versions".into());
        for (k, v) in overrides {
            params.insert((*k).into(), (*v).into());
        }
        t["Rules"].as_mapping().unwrap().values().all(|rule| {
            let applies = rule.get("RuleCondition").is_none_or(|c| holds(c, &params));
            !applies
                || rule["Assertions"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .all(|a| holds(&a["Assert"], &params))
        })
    };
    let task = (
        "ReplicationTaskArn",
        "arn:aws:dms:us-east-1:123456789012:task:T",
    );
    let config = (
        "ReplicationConfigArn",
        "arn:aws:dms:us-east-1:123456789012:replication-config:C",
    );
    let source = (
        "SourceDbSecretArn",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod",
    );
    let lambda = ("CopyEngine", "lambda");
    assert!(accepted(&[task]));
    assert!(accepted(&[config]));
    assert!(accepted(&[lambda, source]));
    assert!(!accepted(&[]), "no engine");
    assert!(!accepted(&[task, config]), "two DMS resources");
    assert!(
        !accepted(&[lambda, source, task]),
        "the Lambda engine with DMS"
    );
    assert!(
        !accepted(&[lambda]),
        "the Lambda engine without production's secret"
    );
}
