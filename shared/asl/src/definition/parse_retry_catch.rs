//! `Retry` and `Catch`: retriers (interval, attempts, backoff, max delay, jitter)
//! and catchers (`Next`, `ResultPath`, `Assign`), with the rules for their
//! `ErrorEquals` names (the reserved `States.` prefix, `States.ALL` alone and last).

use super::model::{Catcher, PathField, Retrier};
use super::parser::{loc, Cx};
use crate::path::Path;
use serde_json::{Map, Value};

/// Error names with the reserved `States.` prefix that AWS accepts.
const KNOWN_STATES_ERRORS: &[&str] = &[
    "States.ALL",
    "States.DataLimitExceeded",
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.Http.Socket",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.QueryEvaluationError",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    "States.Runtime",
    "States.TaskFailed",
    "States.Timeout",
    "States.BranchFailed",
];

impl Cx {
    fn error_list(&mut self, at: &str, o: &Map<String, Value>) -> Vec<String> {
        let Some(list) = o
            .get("ErrorEquals")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
        else {
            self.err(format!(
                "{at}: 'ErrorEquals' is required, a non-empty array of error names"
            ));
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in list {
            let Some(e) = e.as_str() else {
                self.err(format!("{at}.ErrorEquals: error names must be strings"));
                continue;
            };
            if e.starts_with("States.") && !KNOWN_STATES_ERRORS.contains(&e) {
                self.err(format!(
                    "{at}.ErrorEquals: '{e}' uses the reserved 'States.' prefix but is not a predefined error"
                ));
            }
            out.push(e.to_string());
        }
        if out.iter().any(|e| e == "States.ALL") && out.len() > 1 {
            self.err(format!("{at}.ErrorEquals: 'States.ALL' must appear alone"));
        }
        out
    }

    pub(super) fn retriers(&mut self, name: &str, o: &Map<String, Value>) -> Vec<Retrier> {
        let Some(v) = o.get("Retry") else {
            return Vec::new();
        };
        let Some(list) = v.as_array() else {
            self.err(format!("{}: must be an array", loc(name, "Retry")));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let at = format!("State '{name}', field Retry[{i}]");
            let Some(ro) = r.as_object() else {
                self.err(format!("{at}: must be an object"));
                continue;
            };
            self.check_fields(
                &at,
                ro,
                &[
                    "ErrorEquals",
                    "IntervalSeconds",
                    "MaxAttempts",
                    "BackoffRate",
                    "MaxDelaySeconds",
                    "JitterStrategy",
                    "Comment",
                ],
            );
            let errors = self.error_list(&at, ro);
            if errors.iter().any(|e| e == "States.ALL") && i + 1 != list.len() {
                self.err(format!(
                    "{at}: a retrier with 'States.ALL' must be the last one"
                ));
            }
            let num =
                |cx: &mut Cx, f: &str, default: f64, ok: &dyn Fn(f64) -> bool, what: &str| match ro
                    .get(f)
                {
                    None => default,
                    Some(v) => match v.as_f64() {
                        Some(n) if ok(n) => n,
                        _ => {
                            cx.err(format!("{at}.{f}: must be {what}, got {v}"));
                            default
                        }
                    },
                };
            let is_int = |n: f64| n.fract() == 0.0;
            let interval = num(
                self,
                "IntervalSeconds",
                1.0,
                &|n| is_int(n) && n >= 1.0,
                "an integer >= 1",
            );
            let max_attempts = num(
                self,
                "MaxAttempts",
                3.0,
                &|n| is_int(n) && n >= 0.0,
                "a non-negative integer",
            );
            let backoff = num(self, "BackoffRate", 2.0, &|n| n >= 1.0, "a number >= 1.0");
            let max_delay = ro.contains_key("MaxDelaySeconds").then(|| {
                num(
                    self,
                    "MaxDelaySeconds",
                    0.0,
                    &|n| is_int(n) && n >= 1.0,
                    "an integer >= 1",
                )
            });
            let full_jitter = match ro.get("JitterStrategy") {
                None => false,
                Some(Value::String(s)) if s == "FULL" => true,
                Some(Value::String(s)) if s == "NONE" => false,
                Some(v) => {
                    self.err(format!(
                        "{at}.JitterStrategy: must be \"FULL\" or \"NONE\", got {v}"
                    ));
                    false
                }
            };
            out.push(Retrier {
                errors,
                interval,
                max_attempts: max_attempts as u64,
                backoff,
                max_delay,
                full_jitter,
            });
        }
        out
    }

    pub(super) fn catchers(&mut self, name: &str, o: &Map<String, Value>) -> Vec<Catcher> {
        let Some(v) = o.get("Catch") else {
            return Vec::new();
        };
        let Some(list) = v.as_array() else {
            self.err(format!("{}: must be an array", loc(name, "Catch")));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, c) in list.iter().enumerate() {
            let at = format!("State '{name}', field Catch[{i}]");
            let Some(co) = c.as_object() else {
                self.err(format!("{at}: must be an object"));
                continue;
            };
            self.check_fields(
                &at,
                co,
                &["ErrorEquals", "Next", "ResultPath", "Comment", "Assign"],
            );
            let errors = self.error_list(&at, co);
            if errors.iter().any(|e| e == "States.ALL") && i + 1 != list.len() {
                self.err(format!(
                    "{at}: a catcher with 'States.ALL' must be the last one"
                ));
            }
            let next = match co.get("Next") {
                Some(Value::String(n)) => n.clone(),
                _ => {
                    self.err(format!("{at}: 'Next' is required"));
                    String::new()
                }
            };
            let result_path = match co.get("ResultPath") {
                None => PathField::Default,
                Some(Value::Null) => PathField::Null,
                Some(Value::String(s)) => match Path::parse_reference(s) {
                    Ok(p) => PathField::Path(p),
                    Err(e) => {
                        self.err(format!("{at}.ResultPath: {e}"));
                        PathField::Default
                    }
                },
                Some(v) => {
                    self.err(format!(
                        "{at}.ResultPath: must be a path string or null, got {v}"
                    ));
                    PathField::Default
                }
            };
            let assign = if co.contains_key("Assign") {
                self.template(name, co, "Assign")
            } else {
                None
            };
            out.push(Catcher {
                errors,
                next,
                result_path,
                assign,
            });
        }
        out
    }
}
