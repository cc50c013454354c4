//! The parser's problem collector `Cx` (every check adds a message naming the state
//! and field, and parsing goes on so that one pass reports all problems), its
//! shared helpers, and the parsing of one graph: `StartAt` and `States`.
//! The parsing of a state and its fields continues in the `parse_*` modules as
//! further `impl Cx` blocks.

use super::model::Graph;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Collects the problems found in a definition.
#[derive(Default)]
pub(super) struct Cx {
    pub(super) problems: Vec<String>,
}

/// `State '<state>', field '<field>'`: where a problem is.
pub(super) fn loc(state: &str, field: &str) -> String {
    format!("State '{state}', field '{field}'")
}

impl Cx {
    pub(super) fn err(&mut self, msg: impl Into<String>) {
        self.problems.push(msg.into());
    }

    pub(super) fn check_fields(&mut self, what: &str, obj: &Map<String, Value>, allowed: &[&str]) {
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                self.err(format!("{what}: unknown field '{k}'"));
            }
        }
    }

    pub(super) fn query_language(&mut self, what: &str, obj: &Map<String, Value>) {
        match obj.get("QueryLanguage") {
            None => {}
            Some(Value::String(s)) if s == "JSONPath" => {}
            Some(Value::String(s)) if s == "JSONata" => self.err(format!(
                "{what}, field 'QueryLanguage': JSONata is not supported by this engine; only JSONPath"
            )),
            Some(other) => self.err(format!(
                "{what}, field 'QueryLanguage': must be \"JSONPath\" or \"JSONata\", got {other}"
            )),
        }
    }

    /// Parses `StartAt` + `States`; `scope` prefixes messages for nested graphs.
    pub(super) fn graph(&mut self, scope: &str, obj: &Map<String, Value>) -> Option<Graph> {
        let before = self.problems.len();
        let start_at = match obj.get("StartAt") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                self.err(format!("{scope}field 'StartAt' must be a string"));
                String::new()
            }
            None => {
                self.err(format!("{scope}missing required field 'StartAt'"));
                String::new()
            }
        };
        let Some(states_v) = obj.get("States") else {
            self.err(format!("{scope}missing required field 'States'"));
            return None;
        };
        let Some(states_o) = states_v.as_object() else {
            self.err(format!("{scope}field 'States' must be an object"));
            return None;
        };
        if states_o.is_empty() {
            self.err(format!("{scope}field 'States' must not be empty"));
        }
        let mut states = HashMap::new();
        for (name, sv) in states_o {
            if name.is_empty() || name.chars().count() > 80 {
                self.err(format!(
                    "State '{name}': a state name must be 1 to 80 characters long"
                ));
            }
            if let Some(st) = self.state(name, sv) {
                states.insert(name.clone(), Arc::new(st));
            }
        }
        self.check_graph(scope, before, &start_at, states_o, &states);
        (self.problems.len() == before).then_some(Graph { start_at, states })
    }
}
