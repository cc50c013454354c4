//! Parsing and validation of state machine definitions.
//!
//! This module holds the public [`StateMachine`] and [`ValidationError`]. The rest:
//! - `model`: the parsed definition the executor walks (states, rules, templates);
//! - `parser`: the problem collector (`Cx`) and the parsing of a graph
//!   (`StartAt` + `States`);
//! - `parse_state`: one state (allowed and shared fields, `Next`/`End`, `Assign`)
//!   and the type-specific fields of Pass, Task, Wait, Succeed and Fail;
//! - `parse_choice`: Choice states, their rules and comparison operators;
//! - `parse_map_parallel`: Parallel branches and Map processors;
//! - `parse_retry_catch`: `Retry` and `Catch` and their error names;
//! - `parse_fields`: field shapes several states share (paths, value-or-path
//!   pairs, payload templates);
//! - `validate`: graph checks (dangling transitions, unreachable states).

mod model;
mod parse_choice;
mod parse_fields;
mod parse_map_parallel;
mod parse_retry_catch;
mod parse_state;
mod parser;
mod validate;

pub(crate) use model::{
    Catcher, ChoiceBranch, Comparable, Expr, Graph, IntOrPath, Kind, MapSpec, NumOrPath, Op,
    Operand, PathField, Relation, Rule, State, StrOrExpr, Template, TemplateField, WaitFor,
};

use parser::Cx;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// Why a definition was rejected. Each message names the state and the field.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationError {
    /// One line per problem, e.g. `State 'Foo', field 'Next': no state named 'Bar'`.
    pub problems: Vec<String>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid state machine definition: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationError {}

/// A parsed and validated state machine definition.
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub(crate) graph: Arc<Graph>,
    pub(crate) timeout_seconds: Option<u64>,
}

impl StateMachine {
    /// Parses and validates a definition (JSON text), rejecting what AWS would reject.
    pub fn from_json(text: &str) -> Result<StateMachine, ValidationError> {
        let v: Value = serde_json::from_str(text).map_err(|e| ValidationError {
            problems: vec![format!("the definition is not valid JSON: {e}")],
        })?;
        Self::from_value(&v)
    }

    /// Same as [`StateMachine::from_json`] for an already parsed definition.
    pub fn from_value(v: &Value) -> Result<StateMachine, ValidationError> {
        let mut cx = Cx::default();
        let Some(obj) = v.as_object() else {
            return Err(ValidationError {
                problems: vec!["the definition must be a JSON object".into()],
            });
        };
        cx.check_fields(
            "the state machine",
            obj,
            &[
                "StartAt",
                "States",
                "Comment",
                "Version",
                "TimeoutSeconds",
                "QueryLanguage",
            ],
        );
        cx.query_language("the state machine", obj);
        let timeout_seconds = match obj.get("TimeoutSeconds") {
            None => None,
            Some(t) => match t.as_u64() {
                Some(n) if n > 0 => Some(n),
                _ => {
                    cx.err("the state machine, field 'TimeoutSeconds': must be a positive integer");
                    None
                }
            },
        };
        let graph = cx.graph("", obj);
        if cx.problems.is_empty() {
            Ok(StateMachine {
                graph: Arc::new(graph.expect("no problems means a graph")),
                timeout_seconds,
            })
        } else {
            Err(ValidationError {
                problems: cx.problems,
            })
        }
    }

    /// The names of all top-level states.
    pub fn state_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.graph.states.keys().cloned().collect();
        v.sort();
        v
    }

    /// The `StartAt` state.
    pub fn start_at(&self) -> &str {
        &self.graph.start_at
    }
}
