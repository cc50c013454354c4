//! One state: the fields its type allows, the fields every type shares (I/O paths,
//! `Parameters`, `ResultSelector`, `Assign`, Retry/Catch), `Next`/`End`, and the
//! type-specific fields of the simple types (Pass, Task, Wait, Succeed, Fail).
//! Choice, Parallel and Map have modules of their own.

use super::model::{IntOrPath, Kind, State, WaitFor};
use super::parser::{loc, Cx};
use serde_json::{Map, Value};

impl Cx {
    pub(super) fn state(&mut self, name: &str, v: &Value) -> Option<State> {
        let what = format!("State '{name}'");
        let Some(o) = v.as_object() else {
            self.err(format!("{what}: must be a JSON object"));
            return None;
        };
        let ty = match o.get("Type") {
            Some(Value::String(t)) => t.as_str(),
            Some(_) => {
                self.err(format!("{what}, field 'Type': must be a string"));
                return None;
            }
            None => {
                self.err(format!("{what}: missing required field 'Type'"));
                return None;
            }
        };
        let Some((type_name, extra)) = type_fields(ty) else {
            self.err(format!("{what}, field 'Type': unknown state type '{ty}'"));
            return None;
        };
        let allowed: Vec<&str> = [COMMON, &extra].concat();
        let before = self.problems.len();
        self.check_fields(&what, o, &allowed);
        self.query_language(&what, o);

        let has = |f: &str| o.contains_key(f);
        let mut st = State {
            name: name.to_string(),
            kind: Kind::Succeed,
            type_name,
            input_path: self.path_field(name, o, "InputPath", false),
            output_path: self.path_field(name, o, "OutputPath", false),
            result_path: self.path_field(name, o, "ResultPath", true),
            parameters: self.template(name, o, "Parameters"),
            result_selector: self.template(name, o, "ResultSelector"),
            assign: self.template(name, o, "Assign"),
            next: None,
            retry: self.retriers(name, o),
            catch: self.catchers(name, o),
        };
        if let Some(Value::Object(a)) = o.get("Assign") {
            for k in a.keys() {
                let var = k.strip_suffix(".$").unwrap_or(k);
                if !valid_var_name(var) {
                    self.err(format!(
                        "{}: '{var}' is not a valid variable name",
                        loc(name, "Assign")
                    ));
                }
            }
        } else if has("Assign") {
            self.err(format!("{}: must be a JSON object", loc(name, "Assign")));
        }

        // Next/End: states that continue need exactly one of them.
        if matches!(ty, "Pass" | "Task" | "Wait" | "Parallel" | "Map") {
            let end = match o.get("End") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    self.err(format!("{}: must be a boolean", loc(name, "End")));
                    false
                }
            };
            match (o.get("Next"), end) {
                (Some(_), true) => self.err(format!(
                    "State '{name}': has both 'Next' and 'End'; use only one"
                )),
                (Some(Value::String(n)), false) => st.next = Some(n.clone()),
                (Some(_), false) => self.err(format!("{}: must be a string", loc(name, "Next"))),
                (None, false) => self.err(format!(
                    "State '{name}': must have either 'Next' or 'End': true"
                )),
                (None, true) => {}
            }
        }

        st.kind = match ty {
            "Pass" => Kind::Pass {
                result: o.get("Result").cloned(),
            },
            "Task" => self.task(name, o),
            "Choice" => self.choice(name, o),
            "Wait" => self.wait(name, o),
            "Succeed" => Kind::Succeed,
            "Fail" => {
                let error = self.str_or_path(name, o, "Error", "ErrorPath");
                let cause = self.str_or_path(name, o, "Cause", "CausePath");
                Kind::Fail { error, cause }
            }
            "Parallel" => self.parallel(name, o),
            "Map" => self.map(name, o)?,
            _ => unreachable!("type checked above"),
        };
        (self.problems.len() == before).then_some(st)
    }

    /// Task: `Resource`, `TimeoutSeconds`/`…Path`, `HeartbeatSeconds`/`…Path`.
    fn task(&mut self, name: &str, o: &Map<String, Value>) -> Kind {
        let resource = match o.get("Resource") {
            Some(Value::String(r)) => r.clone(),
            Some(_) => {
                self.err(format!("{}: must be a string", loc(name, "Resource")));
                String::new()
            }
            None => {
                self.err(format!("State '{name}': missing required field 'Resource'"));
                String::new()
            }
        };
        let timeout = self.int_or_path(name, o, "TimeoutSeconds", 1);
        let heartbeat = self.int_or_path(name, o, "HeartbeatSeconds", 1);
        if let (Some(IntOrPath::Int(t)), Some(IntOrPath::Int(h))) = (&timeout, &heartbeat) {
            if h >= t {
                self.err(format!(
                    "{}: must be smaller than 'TimeoutSeconds'",
                    loc(name, "HeartbeatSeconds")
                ));
            }
        }
        Kind::Task {
            resource,
            timeout,
            heartbeat,
        }
    }

    fn wait(&mut self, name: &str, o: &Map<String, Value>) -> Kind {
        let given: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
            .into_iter()
            .filter(|f| o.contains_key(*f))
            .collect();
        if given.len() != 1 {
            self.err(format!(
                "State '{name}': a Wait state needs exactly one of 'Seconds', 'SecondsPath', 'Timestamp', 'TimestampPath' (found {})",
                if given.is_empty() { "none".to_string() } else { given.join(", ") }
            ));
            return Kind::Wait(WaitFor::Seconds(0));
        }
        let f = given[0];
        let v = &o[f];
        match f {
            "Seconds" => match v.as_i64() {
                Some(n) if n >= 0 => Kind::Wait(WaitFor::Seconds(n)),
                _ => {
                    self.err(format!("{}: must be a non-negative integer", loc(name, f)));
                    Kind::Wait(WaitFor::Seconds(0))
                }
            },
            "Timestamp" => {
                let s = v.as_str().unwrap_or_default();
                if crate::time::parse_timestamp(s).is_none() {
                    self.err(format!(
                        "{}: must be an ISO-8601 extended offset date-time, got {v}",
                        loc(name, f)
                    ));
                }
                Kind::Wait(WaitFor::Timestamp(s.to_string()))
            }
            _ => match self.path_value(name, f, v) {
                Some(p) if f == "SecondsPath" => Kind::Wait(WaitFor::SecondsPath(p)),
                Some(p) => Kind::Wait(WaitFor::TimestampPath(p)),
                None => Kind::Wait(WaitFor::Seconds(0)),
            },
        }
    }
}

/// Fields every state type allows.
const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];
const IO: &[&str] = &["InputPath", "OutputPath"];
const FLOW: &[&str] = &["Next", "End", "Assign"];
const RES: &[&str] = &[
    "ResultPath",
    "Parameters",
    "ResultSelector",
    "Retry",
    "Catch",
];

/// The name of state type `ty` and the fields it allows besides [`COMMON`];
/// `None` for an unknown type.
fn type_fields(ty: &str) -> Option<(&'static str, Vec<&'static str>)> {
    match ty {
        "Pass" => Some((
            "Pass",
            [IO, FLOW, &["ResultPath", "Parameters", "Result"]].concat(),
        )),
        "Task" => Some((
            "Task",
            [
                IO,
                FLOW,
                RES,
                &[
                    "Resource",
                    "TimeoutSeconds",
                    "TimeoutSecondsPath",
                    "HeartbeatSeconds",
                    "HeartbeatSecondsPath",
                    "Credentials",
                ],
            ]
            .concat(),
        )),
        "Choice" => Some(("Choice", [IO, &["Choices", "Default", "Assign"]].concat())),
        "Wait" => Some((
            "Wait",
            [
                IO,
                FLOW,
                &["Seconds", "SecondsPath", "Timestamp", "TimestampPath"],
            ]
            .concat(),
        )),
        "Succeed" => Some(("Succeed", IO.to_vec())),
        "Fail" => Some(("Fail", vec!["Error", "ErrorPath", "Cause", "CausePath"])),
        "Parallel" => Some(("Parallel", [IO, FLOW, RES, &["Branches"]].concat())),
        "Map" => Some((
            "Map",
            [
                IO,
                FLOW,
                RES,
                &[
                    "ItemProcessor",
                    "Iterator",
                    "ItemsPath",
                    "ItemSelector",
                    "MaxConcurrency",
                    "MaxConcurrencyPath",
                    "ToleratedFailureCount",
                    "ToleratedFailureCountPath",
                    "ToleratedFailurePercentage",
                    "ToleratedFailurePercentagePath",
                    "ItemReader",
                    "ItemBatcher",
                    "ResultWriter",
                    "Label",
                ],
            ]
            .concat(),
        )),
        _ => None,
    }
}

fn valid_var_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && cs.all(|c| c.is_alphanumeric() || c == '_')
        && s.chars().count() <= 80
}
