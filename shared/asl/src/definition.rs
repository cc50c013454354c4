//! Parsing and validation of state machine definitions.

use crate::intrinsics::{self, Call};
use crate::path::Path;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
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

/// Error names with the reserved `States.` prefix that AWS accepts.
pub(crate) const KNOWN_STATES_ERRORS: &[&str] = &[
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
    pub op: String,
    /// Literal operand or, for `…Path` operators, the path to read it from.
    pub operand: Operand,
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

#[derive(Default)]
struct Cx {
    problems: Vec<String>,
}

fn loc(state: &str, field: &str) -> String {
    format!("State '{state}', field '{field}'")
}

impl Cx {
    fn err(&mut self, msg: impl Into<String>) {
        self.problems.push(msg.into());
    }

    fn check_fields(&mut self, what: &str, obj: &Map<String, Value>, allowed: &[&str]) {
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                self.err(format!("{what}: unknown field '{k}'"));
            }
        }
    }

    fn query_language(&mut self, what: &str, obj: &Map<String, Value>) {
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
    fn graph(&mut self, scope: &str, obj: &Map<String, Value>) -> Option<Graph> {
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
        if !start_at.is_empty() && !states_o.contains_key(&start_at) {
            self.err(format!(
                "{scope}field 'StartAt': no state named '{start_at}'"
            ));
        }
        // Transitions must stay inside this graph, and every state must be reachable.
        for st in states.values() {
            for (field, target) in transitions(st) {
                if !states_o.contains_key(target) {
                    self.err(format!(
                        "{}: no state named '{target}' in this scope",
                        loc(&st.name, field)
                    ));
                }
            }
        }
        if self.problems.len() == before {
            let mut seen = HashSet::new();
            let mut todo = vec![start_at.as_str()];
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
        (self.problems.len() == before).then_some(Graph { start_at, states })
    }

    fn state(&mut self, name: &str, v: &Value) -> Option<State> {
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
        let (type_name, extra): (&'static str, Vec<&str>) = match ty {
            "Pass" => (
                "Pass",
                [IO, FLOW, &["ResultPath", "Parameters", "Result"]].concat(),
            ),
            "Task" => (
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
            ),
            "Choice" => ("Choice", [IO, &["Choices", "Default", "Assign"]].concat()),
            "Wait" => (
                "Wait",
                [
                    IO,
                    FLOW,
                    &["Seconds", "SecondsPath", "Timestamp", "TimestampPath"],
                ]
                .concat(),
            ),
            "Succeed" => ("Succeed", IO.to_vec()),
            "Fail" => ("Fail", vec!["Error", "ErrorPath", "Cause", "CausePath"]),
            "Parallel" => ("Parallel", [IO, FLOW, RES, &["Branches"]].concat()),
            "Map" => (
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
            ),
            other => {
                self.err(format!(
                    "{what}, field 'Type': unknown state type '{other}'"
                ));
                return None;
            }
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
            "Task" => {
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
            "Choice" => self.choice(name, o),
            "Wait" => self.wait(name, o),
            "Succeed" => Kind::Succeed,
            "Fail" => {
                let error = self.str_or_path(name, o, "Error", "ErrorPath");
                let cause = self.str_or_path(name, o, "Cause", "CausePath");
                Kind::Fail { error, cause }
            }
            "Parallel" => {
                let mut branches = Vec::new();
                match o.get("Branches") {
                    Some(Value::Array(bs)) if !bs.is_empty() => {
                        for (i, b) in bs.iter().enumerate() {
                            let scope = format!("State '{name}', field Branches[{i}]: ");
                            match b.as_object() {
                                Some(bo) => {
                                    self.check_fields(
                                        &format!("State '{name}', field Branches[{i}]"),
                                        bo,
                                        &["StartAt", "States", "Comment"],
                                    );
                                    if let Some(g) = self.graph(&scope, bo) {
                                        branches.push(Arc::new(g));
                                    }
                                }
                                None => self.err(format!("{scope}must be an object")),
                            }
                        }
                    }
                    _ => self.err(format!(
                        "{}: required, a non-empty array of branches",
                        loc(name, "Branches")
                    )),
                }
                Kind::Parallel { branches }
            }
            "Map" => self.map(name, o)?,
            _ => unreachable!("type checked above"),
        };
        (self.problems.len() == before).then_some(st)
    }

    fn map(&mut self, name: &str, o: &Map<String, Value>) -> Option<Kind> {
        let (field, proc_v) = match (o.get("ItemProcessor"), o.get("Iterator")) {
            (Some(_), Some(_)) => {
                self.err(format!(
                    "State '{name}': use either 'ItemProcessor' or 'Iterator', not both"
                ));
                return None;
            }
            (Some(p), None) => ("ItemProcessor", p),
            (None, Some(p)) => ("Iterator", p),
            (None, None) => {
                self.err(format!(
                    "State '{name}': missing required field 'ItemProcessor' (or legacy 'Iterator')"
                ));
                return None;
            }
        };
        if o.contains_key("ItemSelector") && o.contains_key("Parameters") {
            self.err(format!(
                "State '{name}': use either 'ItemSelector' or 'Parameters', not both"
            ));
        }
        for f in ["ItemReader", "ResultWriter", "ItemBatcher"] {
            if o.contains_key(f) {
                self.err(format!(
                    "{}: not supported by this local engine (distributed Map item readers and writers need S3)",
                    loc(name, f)
                ));
            }
        }
        let Some(po) = proc_v.as_object() else {
            self.err(format!("{}: must be an object", loc(name, field)));
            return None;
        };
        self.check_fields(
            &loc(name, field),
            po,
            &["StartAt", "States", "Comment", "ProcessorConfig"],
        );
        let mut distributed = false;
        if let Some(pc) = po.get("ProcessorConfig") {
            match pc.as_object() {
                Some(pco) => {
                    self.check_fields(
                        &format!("{}.ProcessorConfig", loc(name, field)),
                        pco,
                        &["Mode", "ExecutionType"],
                    );
                    match pco.get("Mode").and_then(Value::as_str) {
                        None | Some("INLINE") => {}
                        Some("DISTRIBUTED") => distributed = true,
                        Some(m) => self.err(format!(
                            "{}.ProcessorConfig.Mode: must be INLINE or DISTRIBUTED, got '{m}'",
                            loc(name, field)
                        )),
                    }
                }
                None => self.err(format!(
                    "{}.ProcessorConfig: must be an object",
                    loc(name, field)
                )),
            }
        }
        let scope = format!("{}: ", loc(name, field));
        let processor = Arc::new(self.graph(&scope, po)?);
        let item_selector = if o.contains_key("ItemSelector") {
            self.template(name, o, "ItemSelector")
        } else {
            None
        };
        let items_path = self.path_field(name, o, "ItemsPath", false);
        let max_concurrency = self.int_or_path(name, o, "MaxConcurrency", 0);
        let tolerated_count = self.num_or_path(name, o, "ToleratedFailureCount");
        let tolerated_percentage = self.num_or_path(name, o, "ToleratedFailurePercentage");
        if let Some(NumOrPath::Num(p)) = tolerated_percentage {
            if !(0.0..=100.0).contains(&p) {
                self.err(format!(
                    "{}: must be between 0 and 100",
                    loc(name, "ToleratedFailurePercentage")
                ));
            }
        }
        if let Some(NumOrPath::Num(c)) = tolerated_count {
            if c < 0.0 || c.fract() != 0.0 {
                self.err(format!(
                    "{}: must be a non-negative integer",
                    loc(name, "ToleratedFailureCount")
                ));
            }
        }
        Some(Kind::Map(Box::new(MapSpec {
            processor,
            distributed,
            items_path,
            item_selector,
            max_concurrency,
            tolerated_count,
            tolerated_percentage,
        })))
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

    fn choice(&mut self, name: &str, o: &Map<String, Value>) -> Kind {
        let default = match o.get("Default") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(format!("{}: must be a string", loc(name, "Default")));
                None
            }
        };
        let mut choices = Vec::new();
        match o.get("Choices") {
            Some(Value::Array(cs)) if !cs.is_empty() => {
                for (i, c) in cs.iter().enumerate() {
                    let at = format!("State '{name}', field Choices[{i}]");
                    let Some(co) = c.as_object() else {
                        self.err(format!("{at}: must be an object"));
                        continue;
                    };
                    let next = match co.get("Next") {
                        Some(Value::String(n)) => n.clone(),
                        _ => {
                            self.err(format!("{at}: a top-level choice rule needs 'Next'"));
                            String::new()
                        }
                    };
                    let assign = if co.contains_key("Assign") {
                        self.template(name, co, "Assign")
                    } else {
                        None
                    };
                    if let Some(rule) = self.rule(&at, co, true) {
                        choices.push(ChoiceBranch { rule, next, assign });
                    }
                }
            }
            _ => self.err(format!(
                "{}: required, a non-empty array of choice rules",
                loc(name, "Choices")
            )),
        }
        Kind::Choice { choices, default }
    }

    fn rule(&mut self, at: &str, o: &Map<String, Value>, top: bool) -> Option<Rule> {
        let mut extra = vec!["Comment"];
        if top {
            extra.extend(["Next", "Assign"]);
        } else if o.contains_key("Next") {
            self.err(format!(
                "{at}: 'Next' is only allowed on top-level choice rules"
            ));
        }
        let ops: Vec<&String> = o
            .keys()
            .filter(|k| !extra.contains(&k.as_str()) && *k != "Variable")
            .collect();
        if ops.len() != 1 {
            self.err(format!(
                "{at}: a choice rule needs exactly one comparison or And/Or/Not, found {}",
                if ops.is_empty() {
                    "none".to_string()
                } else {
                    ops.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
            return None;
        }
        let op = ops[0].as_str();
        let arg = &o[op];
        match op {
            "And" | "Or" => {
                if o.contains_key("Variable") {
                    self.err(format!("{at}: '{op}' cannot have a 'Variable'"));
                }
                let Some(items) = arg.as_array().filter(|a| !a.is_empty()) else {
                    self.err(format!("{at}.{op}: must be a non-empty array of rules"));
                    return None;
                };
                let mut rules = Vec::new();
                for (i, r) in items.iter().enumerate() {
                    let sub = format!("{at}.{op}[{i}]");
                    match r.as_object() {
                        Some(ro) => rules.extend(self.rule(&sub, ro, false)),
                        None => self.err(format!("{sub}: must be an object")),
                    }
                }
                Some(if op == "And" {
                    Rule::And(rules)
                } else {
                    Rule::Or(rules)
                })
            }
            "Not" => {
                let Some(ro) = arg.as_object() else {
                    self.err(format!("{at}.Not: must be an object"));
                    return None;
                };
                Some(Rule::Not(Box::new(self.rule(
                    &format!("{at}.Not"),
                    ro,
                    false,
                )?)))
            }
            _ => {
                let Some(var) = o.get("Variable") else {
                    self.err(format!("{at}: comparison '{op}' needs a 'Variable'"));
                    return None;
                };
                let Some(var) = var.as_str() else {
                    self.err(format!("{at}.Variable: must be a string path"));
                    return None;
                };
                let variable = match Path::parse(var) {
                    Ok(p) => p,
                    Err(e) => {
                        self.err(format!("{at}.Variable: {e}"));
                        return None;
                    }
                };
                let base = op.strip_suffix("Path").unwrap_or(op);
                let is_path = base != op;
                let expect = match base {
                    "StringEquals"
                    | "StringLessThan"
                    | "StringGreaterThan"
                    | "StringLessThanEquals"
                    | "StringGreaterThanEquals"
                    | "StringMatches"
                    | "TimestampEquals"
                    | "TimestampLessThan"
                    | "TimestampGreaterThan"
                    | "TimestampLessThanEquals"
                    | "TimestampGreaterThanEquals" => "string",
                    "NumericEquals"
                    | "NumericLessThan"
                    | "NumericGreaterThan"
                    | "NumericLessThanEquals"
                    | "NumericGreaterThanEquals" => "number",
                    "BooleanEquals" | "IsNull" | "IsPresent" | "IsNumeric" | "IsString"
                    | "IsBoolean" | "IsTimestamp" => "boolean",
                    _ => {
                        self.err(format!("{at}: unknown comparison operator '{op}'"));
                        return None;
                    }
                };
                if is_path && (base.starts_with("Is") || base == "StringMatches") {
                    self.err(format!("{at}: unknown comparison operator '{op}'"));
                    return None;
                }
                let operand = if is_path {
                    match arg.as_str().map(Path::parse) {
                        Some(Ok(p)) => Operand::Path(p),
                        Some(Err(e)) => {
                            self.err(format!("{at}.{op}: {e}"));
                            return None;
                        }
                        None => {
                            self.err(format!("{at}.{op}: must be a path string"));
                            return None;
                        }
                    }
                } else {
                    let ok = match expect {
                        "string" => arg.is_string(),
                        "number" => arg.is_number(),
                        _ => arg.is_boolean(),
                    };
                    if !ok {
                        self.err(format!("{at}.{op}: must be a {expect}, got {arg}"));
                        return None;
                    }
                    if base.starts_with("Timestamp")
                        && crate::time::parse_timestamp(arg.as_str().unwrap_or_default()).is_none()
                    {
                        self.err(format!("{at}.{op}: {arg} is not an ISO-8601 timestamp"));
                        return None;
                    }
                    Operand::Lit(arg.clone())
                };
                Some(Rule::Cmp(Box::new(Comparison {
                    variable,
                    op: base.to_string(),
                    operand,
                })))
            }
        }
    }

    fn str_or_path(
        &mut self,
        name: &str,
        o: &Map<String, Value>,
        lit: &str,
        path: &str,
    ) -> Option<StrOrExpr> {
        match (o.get(lit), o.get(path)) {
            (Some(_), Some(_)) => {
                self.err(format!(
                    "State '{name}': use either '{lit}' or '{path}', not both"
                ));
                None
            }
            (Some(Value::String(s)), None) => Some(StrOrExpr::Lit(s.clone())),
            (Some(_), None) => {
                self.err(format!("{}: must be a string", loc(name, lit)));
                None
            }
            (None, Some(v)) => {
                let s = v.as_str().unwrap_or_default();
                match parse_expr(s) {
                    Ok(e) => Some(StrOrExpr::Expr(e)),
                    Err(e) => {
                        self.err(format!("{}: {e}", loc(name, path)));
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    fn path_value(&mut self, name: &str, field: &str, v: &Value) -> Option<Path> {
        match v.as_str().map(Path::parse) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                self.err(format!("{}: {e}", loc(name, field)));
                None
            }
            None => {
                self.err(format!("{}: must be a path string", loc(name, field)));
                None
            }
        }
    }

    fn path_field(
        &mut self,
        name: &str,
        o: &Map<String, Value>,
        field: &str,
        reference: bool,
    ) -> PathField {
        match o.get(field) {
            None => PathField::Default,
            Some(Value::Null) => PathField::Null,
            Some(Value::String(s)) => {
                let p = if reference {
                    Path::parse_reference(s)
                } else {
                    Path::parse(s)
                };
                match p {
                    Ok(p) => PathField::Path(p),
                    Err(e) => {
                        self.err(format!("{}: {e}", loc(name, field)));
                        PathField::Default
                    }
                }
            }
            Some(other) => {
                self.err(format!(
                    "{}: must be a path string or null, got {other}",
                    loc(name, field)
                ));
                PathField::Default
            }
        }
    }

    fn int_or_path(
        &mut self,
        name: &str,
        o: &Map<String, Value>,
        field: &str,
        min: i64,
    ) -> Option<IntOrPath> {
        let pf = format!("{field}Path");
        match (o.get(field), o.get(&pf)) {
            (Some(_), Some(_)) => {
                self.err(format!(
                    "State '{name}': use either '{field}' or '{pf}', not both"
                ));
                None
            }
            (Some(v), None) => match v.as_i64() {
                Some(n) if n >= min => Some(IntOrPath::Int(n)),
                _ => {
                    self.err(format!(
                        "{}: must be an integer >= {min}, got {v}",
                        loc(name, field)
                    ));
                    None
                }
            },
            (None, Some(v)) => self.path_value(name, &pf, v).map(IntOrPath::Path),
            (None, None) => None,
        }
    }

    fn num_or_path(
        &mut self,
        name: &str,
        o: &Map<String, Value>,
        field: &str,
    ) -> Option<NumOrPath> {
        let pf = format!("{field}Path");
        match (o.get(field), o.get(&pf)) {
            (Some(_), Some(_)) => {
                self.err(format!(
                    "State '{name}': use either '{field}' or '{pf}', not both"
                ));
                None
            }
            (Some(v), None) => match v.as_f64() {
                Some(n) => Some(NumOrPath::Num(n)),
                None => {
                    self.err(format!("{}: must be a number, got {v}", loc(name, field)));
                    None
                }
            },
            (None, Some(v)) => self.path_value(name, &pf, v).map(NumOrPath::Path),
            (None, None) => None,
        }
    }

    fn template(&mut self, name: &str, o: &Map<String, Value>, field: &str) -> Option<Template> {
        let v = o.get(field)?;
        let mut problems = Vec::new();
        let t = compile_template(v, &mut problems);
        for p in problems {
            self.err(format!("{}: {p}", loc(name, field)));
        }
        Some(t)
    }

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

    fn retriers(&mut self, name: &str, o: &Map<String, Value>) -> Vec<Retrier> {
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

    fn catchers(&mut self, name: &str, o: &Map<String, Value>) -> Vec<Catcher> {
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

fn valid_var_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && cs.all(|c| c.is_alphanumeric() || c == '_')
        && s.chars().count() <= 80
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

/// Parses the value of a `.$` field: a path, context path, variable or intrinsic.
pub(crate) fn parse_expr(s: &str) -> Result<Expr, String> {
    if intrinsics::looks_like_call(s) {
        intrinsics::parse(s)
            .map(Expr::Call)
            .map_err(|e| format!("invalid intrinsic function '{s}': {e}"))
    } else {
        Path::parse(s).map(Expr::Path)
    }
}

pub(crate) fn compile_template(v: &Value, problems: &mut Vec<String>) -> Template {
    match v {
        Value::Object(m) => Template::Obj(
            m.iter()
                .map(|(k, v)| match k.strip_suffix(".$") {
                    Some(key) => {
                        let field = match v.as_str().map(parse_expr) {
                            Some(Ok(expr)) => TemplateField::Dyn {
                                expr,
                                field: k.clone(),
                            },
                            Some(Err(e)) => {
                                problems.push(format!("key '{k}': {e}"));
                                TemplateField::Nested(Template::Lit(v.clone()))
                            }
                            None => {
                                problems.push(format!(
                                    "key '{k}': the value of a '.$' key must be a path or intrinsic function string"
                                ));
                                TemplateField::Nested(Template::Lit(v.clone()))
                            }
                        };
                        (key.to_string(), field)
                    }
                    None => (k.clone(), TemplateField::Nested(compile_template(v, problems))),
                })
                .collect(),
        ),
        Value::Array(a) => Template::Arr(a.iter().map(|x| compile_template(x, problems)).collect()),
        other => Template::Lit(other.clone()),
    }
}
