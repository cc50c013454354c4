//! Graph checks, once a scope's states are parsed: `StartAt` names a state, every
//! transition (`Next`, `Default`, choice and catcher `Next`) stays inside the
//! scope, and every state is reachable from `StartAt`.

use super::model::{Kind, State};
use super::parser::{loc, Cx};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

impl Cx {
    /// Checks the graph of one scope (the machine, a branch or a Map processor).
    /// `declared` are the scope's `States` as written; `states` those that parsed.
    /// Reachability is only checked when nothing was wrong since `before`.
    pub(super) fn check_graph(
        &mut self,
        scope: &str,
        before: usize,
        start_at: &str,
        declared: &Map<String, Value>,
        states: &HashMap<String, Arc<State>>,
    ) {
        if !start_at.is_empty() && !declared.contains_key(start_at) {
            self.err(format!(
                "{scope}field 'StartAt': no state named '{start_at}'"
            ));
        }
        // Transitions must stay inside this graph, and every state must be reachable.
        for st in states.values() {
            for (field, target) in transitions(st) {
                if !declared.contains_key(target) {
                    self.err(format!(
                        "{}: no state named '{target}' in this scope",
                        loc(&st.name, field)
                    ));
                }
            }
        }
        if self.problems.len() == before {
            let mut seen = HashSet::new();
            let mut todo = vec![start_at];
            while let Some(n) = todo.pop() {
                if seen.insert(n) {
                    if let Some(st) = states.get(n) {
                        todo.extend(transitions(st).into_iter().map(|(_, t)| t));
                    }
                }
            }
            let mut unreachable: Vec<&String> = states
                .keys()
                .filter(|n| !seen.contains(n.as_str()))
                .collect();
            unreachable.sort();
            for n in unreachable {
                self.err(format!(
                    "State '{n}': unreachable (no transition leads to it from '{start_at}')"
                ));
            }
        }
    }
}

/// Every (field, target) transition out of a state.
fn transitions(st: &State) -> Vec<(&'static str, &str)> {
    let mut out = Vec::new();
    if let Some(n) = &st.next {
        out.push(("Next", n.as_str()));
    }
    for c in &st.catch {
        out.push(("Catch.Next", c.next.as_str()));
    }
    if let Kind::Choice { choices, default } = &st.kind {
        for c in choices {
            out.push(("Choices.Next", c.next.as_str()));
        }
        if let Some(d) = default {
            out.push(("Default", d.as_str()));
        }
    }
    out
}
