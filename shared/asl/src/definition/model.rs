//! The parsed form of a definition that the executor walks: a `Graph` of
//! `State`s, each with its I/O fields, Retry/Catch and type-specific `Kind`,
//! down to choice rules, payload templates and path-or-value fields.

use crate::intrinsics::Call;
use crate::path::Path;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A value computed from the state data: a path or an intrinsic call.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Path(Path),
    Call(Call),
}

/// A payload template (`Parameters`, `ResultSelector`, `ItemSelector`, `Assign`).
#[derive(Debug, Clone)]
pub(crate) enum Template {
    Lit(Value),
    Obj(Vec<(String, TemplateField)>),
    Arr(Vec<Template>),
}

#[derive(Debug, Clone)]
pub(crate) enum TemplateField {
    /// `"key.$": "<expr>"`: `key` is stored without the suffix; `field` keeps the
    /// original name for error messages.
    Dyn {
        expr: Expr,
        field: String,
    },
    Nested(Template),
}

/// Where an optional path field stands: absent (default `$`), `null`, or a path.
#[derive(Debug, Clone, Default)]
pub(crate) enum PathField {
    #[default]
    Default,
    Null,
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    pub errors: Vec<String>,
    pub interval: f64,
    pub max_attempts: u64,
    pub backoff: f64,
    pub max_delay: Option<f64>,
    pub full_jitter: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Catcher {
    pub errors: Vec<String>,
    pub next: String,
    pub result_path: PathField,
    pub assign: Option<Template>,
}

#[derive(Debug, Clone)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Cmp(Box<Comparison>),
}

#[derive(Debug, Clone)]
pub(crate) struct Comparison {
    pub variable: Path,
    /// The operator, without its `Path` suffix: `StringEqualsPath` is
    /// `Op::Compare(String, Equals)` with an `Operand::Path`.
    pub op: Op,
    /// Literal operand or, for `…Path` operators, the path to read it from.
    pub operand: Operand,
}

/// A choice rule's comparison operator, parsed once when the definition is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    IsPresent,
    IsNull,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
    BooleanEquals,
    StringMatches,
    /// `StringEquals`, `NumericLessThan`, `TimestampGreaterThanEquals`…: orders the
    /// value against the operand as the given type.
    Compare(Comparable, Relation),
}

/// The types the ordering operators compare as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparable {
    String,
    Numeric,
    Timestamp,
}

/// `Equals`, `LessThan`… of the ordering operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relation {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Lit(Value),
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) struct ChoiceBranch {
    pub rule: Rule,
    pub next: String,
    pub assign: Option<Template>,
}

#[derive(Debug, Clone)]
pub(crate) enum IntOrPath {
    Int(i64),
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum NumOrPath {
    Num(f64),
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum WaitFor {
    Seconds(i64),
    SecondsPath(Path),
    Timestamp(String),
    TimestampPath(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum StrOrExpr {
    Lit(String),
    Expr(Expr),
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task {
        resource: String,
        timeout: Option<IntOrPath>,
        heartbeat: Option<IntOrPath>,
    },
    Choice {
        choices: Vec<ChoiceBranch>,
        default: Option<String>,
    },
    Wait(WaitFor),
    Succeed,
    Fail {
        error: Option<StrOrExpr>,
        cause: Option<StrOrExpr>,
    },
    Parallel {
        branches: Vec<Arc<Graph>>,
    },
    Map(Box<MapSpec>),
}

#[derive(Debug, Clone)]
pub(crate) struct MapSpec {
    pub processor: Arc<Graph>,
    pub distributed: bool,
    pub items_path: PathField,
    pub item_selector: Option<Template>,
    pub max_concurrency: Option<IntOrPath>,
    pub tolerated_count: Option<NumOrPath>,
    pub tolerated_percentage: Option<NumOrPath>,
}

#[derive(Debug, Clone)]
pub(crate) struct State {
    pub name: String,
    pub kind: Kind,
    pub type_name: &'static str,
    pub input_path: PathField,
    pub output_path: PathField,
    pub result_path: PathField,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub assign: Option<Template>,
    pub next: Option<String>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

/// A set of states with a start: the whole machine, a Parallel branch, or a Map
/// processor.
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    pub start_at: String,
    pub states: HashMap<String, Arc<State>>,
}
