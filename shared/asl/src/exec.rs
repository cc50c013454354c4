//! The executor: runs a validated [`StateMachine`] against a [`TaskHandler`].

use crate::choice;
use crate::clock::{BoxFuture, Clock, TokioClock};
use crate::definition::{
    Catcher, Expr, Graph, IntOrPath, Kind, MapSpec, NumOrPath, PathField, State, StateMachine,
    StrOrExpr, Template, TemplateField, WaitFor,
};
use crate::history::{EventType, HistoryEvent};
use crate::intrinsics::{self, EvalError};
use crate::path::{self, Path, PathError, Root};
use crate::time;
use futures_util::stream::StreamExt;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// What a task handler is asked to do for one attempt of a Task state.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// The state's `Resource` string, as written.
    pub resource: String,
    /// The effective input: after `InputPath` and `Parameters`.
    pub input: Value,
    /// The Task state's name.
    pub state_name: String,
    /// 0 for the first attempt, then 1, 2… for retries (`$$.State.RetryCount`).
    pub retry_count: u32,
    /// `TimeoutSeconds` (or `TimeoutSecondsPath`) when set.
    pub timeout: Option<Duration>,
    /// When the attempt times out, in the executor's clock time.
    pub deadline: Option<SystemTime>,
    /// `HeartbeatSeconds` when set (informational; heartbeats are not tracked).
    pub heartbeat: Option<Duration>,
    /// The context object (`$$`) of this attempt.
    pub context: Value,
    /// A task token for `.waitForTaskToken` resources.
    pub task_token: Option<String>,
}

/// A failed task: an error name and an optional cause, as a Lambda or service reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    pub error: String,
    pub cause: Option<String>,
}

impl TaskError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> TaskError {
        TaskError {
            error: error.into(),
            cause: Some(cause.into()),
        }
    }
}

/// Implemented by the caller: runs the work behind a Task state's `Resource`.
pub trait TaskHandler: Send + Sync {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, TaskError>>;
}

/// Any `Fn(TaskRequest) -> impl Future<Output = Result<Value, TaskError>>` is a handler.
impl<F, Fut> TaskHandler for F
where
    F: Fn(TaskRequest) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<Value, TaskError>> + Send + 'static,
{
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, TaskError>> {
        Box::pin(self(request))
    }
}

/// A handler for machines without Task states: every task fails with
/// `States.TaskFailed`.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTasks;

impl TaskHandler for NoTasks {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, TaskError>> {
        Box::pin(async move {
            Err(TaskError::new(
                "States.TaskFailed",
                format!("no task handler for resource '{}'", request.resource),
            ))
        })
    }
}

/// Sees every history event as it is recorded (e.g. to show progress live).
pub trait Observer: Send + Sync {
    fn on_event(&self, event: &HistoryEvent);
}

/// Any `Fn(&HistoryEvent)` is an observer (e.g. a closure printing progress).
impl<F> Observer for F
where
    F: Fn(&HistoryEvent) + Send + Sync,
{
    fn on_event(&self, event: &HistoryEvent) {
        self(event)
    }
}

impl Observer for tokio::sync::mpsc::UnboundedSender<HistoryEvent> {
    fn on_event(&self, event: &HistoryEvent) {
        // A closed receiver just means nobody watches any more.
        let _ = self.send(event.clone());
    }
}

/// How to run one execution.
#[derive(Clone)]
pub struct RunOptions {
    /// `$$.Execution.Name`; a UUID when not set.
    pub execution_name: Option<String>,
    /// `$$.StateMachine.Name`.
    pub state_machine_name: String,
    /// `$$.StateMachine.Id`; derived from region, account and name when not set.
    pub state_machine_arn: Option<String>,
    pub region: String,
    pub account: String,
    /// `$$.Execution.RoleArn`.
    pub role_arn: Option<String>,
    pub clock: Arc<dyn Clock>,
    /// Cancel to stop the execution; it then ends `Aborted`.
    pub cancel: CancellationToken,
    pub observer: Option<Arc<dyn Observer>>,
    /// Run as an EXPRESS workflow: AWS then gives the execution an `express:` ARN
    /// and no `RedriveCount` in `$$.Execution`.
    pub express: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            execution_name: None,
            state_machine_name: "StateMachine".into(),
            state_machine_arn: None,
            region: "us-east-1".into(),
            account: "123456789012".into(),
            role_arn: None,
            clock: Arc::new(TokioClock),
            cancel: CancellationToken::new(),
            observer: None,
            express: false,
        }
    }
}

impl RunOptions {
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    pub fn with_execution_name(mut self, name: impl Into<String>) -> Self {
        self.execution_name = Some(name.into());
        self
    }
    pub fn with_state_machine_name(mut self, name: impl Into<String>) -> Self {
        self.state_machine_name = name.into();
        self
    }
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }
    pub fn with_express(mut self, express: bool) -> Self {
        self.express = express;
        self
    }
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Succeeded,
    Failed,
    Aborted,
}

impl Status {
    /// `SUCCEEDED`, `FAILED` or `ABORTED`, as AWS spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::Aborted => "ABORTED",
        }
    }
}

/// The outcome of [`run`].
#[derive(Debug, Clone)]
pub struct ExecutionResult {
    pub status: Status,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub history: Vec<HistoryEvent>,
    /// State transitions as AWS bills them: one per state entered, plus one per retry.
    pub state_transitions: u64,
}

impl ExecutionResult {
    /// `{"status": "SUCCEEDED", "output": …}` or `{"status": "FAILED", "error": …,
    /// "cause": …}` (absent error/cause are left out).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("status".into(), self.status.as_str().into());
        match self.status {
            Status::Succeeded => {
                m.insert("output".into(), self.output.clone().unwrap_or(Value::Null));
            }
            _ => {
                if let Some(e) = &self.error {
                    m.insert("error".into(), e.clone().into());
                }
                if let Some(c) = &self.cause {
                    m.insert("cause".into(), c.clone().into());
                }
            }
        }
        Value::Object(m)
    }
}

/// Runs `machine` on `input` until it succeeds, fails or is cancelled.
pub async fn run(
    machine: &StateMachine,
    input: Value,
    handler: Arc<dyn TaskHandler>,
    opts: RunOptions,
) -> ExecutionResult {
    let exec_name = opts
        .execution_name
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let sm_arn = opts.state_machine_arn.clone().unwrap_or_else(|| {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{}",
            opts.region, opts.account, opts.state_machine_name
        )
    });
    let sm_name = opts.state_machine_name.clone();
    let exec_arn = if opts.express {
        format!(
            "arn:aws:states:{}:{}:express:{}:{}:{}",
            opts.region,
            opts.account,
            sm_name,
            exec_name,
            uuid::Uuid::new_v4()
        )
    } else {
        format!(
            "arn:aws:states:{}:{}:execution:{}:{}",
            opts.region, opts.account, sm_name, exec_name
        )
    };
    let role = opts
        .role_arn
        .clone()
        .unwrap_or_else(|| format!("arn:aws:iam::{}:role/StepFunctionsLocal", opts.account));
    let start = opts.clock.now();
    let engine = Arc::new(Engine {
        handler,
        clock: opts.clock.clone(),
        cancel: opts.cancel.clone(),
        observer: opts.observer.clone(),
        history: Mutex::new(Vec::new()),
        transitions: AtomicU64::new(0),
        execution: {
            let mut x = json!({
                "Id": exec_arn,
                "Input": input.clone(),
                "StartTime": time::format_time(start),
                "Name": exec_name,
                "RoleArn": role,
            });
            if !opts.express {
                x["RedriveCount"] = json!(0);
            }
            x
        },
        state_machine: json!({"Id": sm_arn, "Name": sm_name}),
    });
    engine.emit(EventType::ExecutionStarted, None, |e| {
        e.input = Some(input.clone());
    });
    let fut = engine
        .clone()
        .run_graph(machine.graph.clone(), input, Map::new());
    let outcome = match machine.timeout_seconds {
        Some(t) => {
            tokio::select! {
                r = fut => r,
                _ = opts.clock.timeout(Duration::from_secs(t)) => Err(Stop::TimedOut),
            }
        }
        None => fut.await,
    };
    let (status, output, error, cause) = match outcome {
        Ok((out, _)) => {
            engine.emit(EventType::ExecutionSucceeded, None, |e| {
                e.output = Some(out.clone());
            });
            (Status::Succeeded, Some(out), None, None)
        }
        Err(Stop::Fail(f)) => {
            engine.emit(EventType::ExecutionFailed, None, |e| {
                e.error = f.error.clone();
                e.cause = f.cause.clone();
            });
            (Status::Failed, None, f.error, f.cause)
        }
        Err(Stop::TimedOut) => {
            let f = Failure::new("States.Timeout", None);
            engine.emit(EventType::ExecutionTimedOut, None, |e| {
                e.error = f.error.clone();
            });
            (Status::Failed, None, f.error, None)
        }
        Err(Stop::Abort) => {
            engine.emit(EventType::ExecutionAborted, None, |_| {});
            (Status::Aborted, None, None, None)
        }
    };
    let history = std::mem::take(&mut *engine.history.lock().expect("history lock"));
    ExecutionResult {
        status,
        output,
        error,
        cause,
        history,
        state_transitions: engine.transitions.load(Ordering::Relaxed),
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Failure {
    fn new(error: &str, cause: Option<String>) -> Failure {
        Failure {
            error: Some(error.to_string()),
            cause,
        }
    }
    fn name(&self) -> &str {
        self.error.as_deref().unwrap_or("")
    }
}

#[derive(Debug)]
enum Stop {
    Fail(Failure),
    Abort,
    TimedOut,
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Stop {
        Stop::Fail(f)
    }
}

/// Workflow variables of one scope.
type Vars = Map<String, Value>;

struct Engine {
    handler: Arc<dyn TaskHandler>,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
    observer: Option<Arc<dyn Observer>>,
    history: Mutex<Vec<HistoryEvent>>,
    transitions: AtomicU64,
    execution: Value,
    state_machine: Value,
}

/// What a path or template is evaluated against.
pub(crate) struct Env<'a> {
    input: &'a Value,
    ctx: &'a Value,
    vars: &'a Map<String, Value>,
}

enum ReadError {
    Path(PathError),
    NoVar(String),
}

impl Env<'_> {
    fn read(&self, p: &Path) -> Result<Value, ReadError> {
        let subject = match &p.root {
            Root::Input => self.input,
            Root::Context => self.ctx,
            Root::Var(v) => self
                .vars
                .get(v)
                .ok_or_else(|| ReadError::NoVar(v.clone()))?,
        };
        p.read(subject).map_err(ReadError::Path)
    }
}

/// One state being run: for error messages that name the state and its entry event.
pub(crate) struct Run<'a> {
    st: &'a State,
    entered_id: u64,
}

impl Run<'_> {
    /// A `States.Runtime` failure, worded as AWS words it.
    fn runtime(&self, msg: impl std::fmt::Display) -> Failure {
        Failure::new(
            "States.Runtime",
            Some(format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). {msg}",
                self.st.name, self.entered_id
            )),
        )
    }

    fn read_err(&self, p: &Path, e: ReadError) -> Failure {
        match e {
            ReadError::Path(e) => {
                self.runtime(format!("Invalid path '{}' : {}", p.raw, e.detail()))
            }
            ReadError::NoVar(v) => self.runtime(format!(
                "Invalid path '{}' : The variable '${v}' is not defined",
                p.raw
            )),
        }
    }

    fn read(&self, env: &Env, p: &Path) -> Result<Value, Failure> {
        env.read(p).map_err(|e| self.read_err(p, e))
    }

    /// Applies an `InputPath`/`OutputPath`-style field (`null` gives `{}`).
    fn select(&self, field: &PathField, env: &Env) -> Result<Value, Failure> {
        match field {
            PathField::Default => Ok(env.input.clone()),
            PathField::Null => Ok(json!({})),
            PathField::Path(p) => self.read(env, p),
        }
    }

    fn eval_expr(&self, expr: &Expr, field: &str, env: &Env) -> Result<Value, Failure> {
        match expr {
            Expr::Path(p) => env.read(p).map_err(|e| match e {
                ReadError::Path(_) => self.runtime(format!(
                    "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
                    p.raw,
                    Value::to_string(if p.root == Root::Context { env.ctx } else { env.input })
                )),
                e => self.read_err(p, e),
            }),
            Expr::Call(c) => intrinsics::eval(c, &|p: &Path| env.read(p)).map_err(|e| match e {
                EvalError::Path(ReadError::Path(_)) => self.runtime(format!(
                    "The JSONPath specified for the field '{field}' could not be found in the input '{}'",
                    env.input
                )),
                EvalError::Path(e @ ReadError::NoVar(_)) => {
                    self.read_err(&Path::parse("$").expect("root path"), e)
                }
                EvalError::Intrinsic(msg) => Failure::new("States.IntrinsicFailure", Some(msg)),
            }),
        }
    }

    fn template(&self, t: &Template, env: &Env) -> Result<Value, Failure> {
        Ok(match t {
            Template::Lit(v) => v.clone(),
            Template::Arr(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.template(i, env))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Obj(fields) => {
                let mut m = Map::new();
                for (k, f) in fields {
                    let v = match f {
                        TemplateField::Dyn { expr, field } => self.eval_expr(expr, field, env)?,
                        TemplateField::Nested(t) => self.template(t, env)?,
                    };
                    m.insert(k.clone(), v);
                }
                Value::Object(m)
            }
        })
    }

    /// Merges `result` into `raw` per `ResultPath`.
    fn result_path(&self, field: &PathField, raw: &Value, result: Value) -> Result<Value, Failure> {
        match field {
            PathField::Default => Ok(result),
            PathField::Null => Ok(raw.clone()),
            PathField::Path(p) => {
                let mut out = raw.clone();
                let steps = p.steps.as_ref().expect("reference paths are definite");
                path::write(&mut out, steps, result).map_err(|at| {
                    Failure::new(
                        "States.ResultPathMatchFailure",
                        Some(format!(
                            "Unable to apply ReferencePath {} to input '{}': cannot write at {at}",
                            p.raw, raw
                        )),
                    )
                })?;
                Ok(out)
            }
        }
    }

    /// Evaluates `Assign` (all expressions see the variables as they were before).
    fn assign(
        &self,
        t: Option<&Template>,
        env: &Env,
        pending: &mut Vec<(String, Value)>,
    ) -> Result<(), Failure> {
        if let Some(t) = t {
            if let Value::Object(m) = self.template(t, env)? {
                pending.extend(m);
            }
        }
        Ok(())
    }
}

fn matches_error(names: &[String], err: &str) -> bool {
    names.iter().any(|n| {
        n == err
            || n == "States.ALL"
            || (n == "States.TaskFailed" && err != "States.Timeout" && !err.is_empty())
    })
}

/// The state-specific outcome of one attempt: its result, before ResultPath.
struct Attempt {
    result: Value,
}

impl Engine {
    fn emit(&self, ty: EventType, st: Option<&State>, fill: impl FnOnce(&mut HistoryEvent)) -> u64 {
        let mut h = self.history.lock().expect("history lock");
        let id = h.len() as u64 + 1;
        let mut e = HistoryEvent::new(id, self.clock.now(), ty);
        if let Some(st) = st {
            e.state_name = Some(st.name.clone());
            e.state_type = Some(st.type_name);
        }
        fill(&mut e);
        if let Some(o) = &self.observer {
            o.on_event(&e);
        }
        h.push(e);
        id
    }

    fn context(&self, st: &State, entered: SystemTime, retry: Option<u32>) -> Value {
        let mut state = Map::new();
        state.insert("EnteredTime".into(), time::format_time(entered).into());
        state.insert("Name".into(), st.name.clone().into());
        if let Some(r) = retry {
            state.insert("RetryCount".into(), r.into());
        }
        json!({
            "Execution": self.execution,
            "StateMachine": self.state_machine,
            "State": state,
        })
    }

    fn run_graph(
        self: Arc<Self>,
        g: Arc<Graph>,
        input: Value,
        mut vars: Map<String, Value>,
    ) -> BoxFuture<'static, Result<(Value, Vars), Stop>> {
        Box::pin(async move {
            let mut cur = g.start_at.clone();
            let mut data = input;
            loop {
                if self.cancel.is_cancelled() {
                    return Err(Stop::Abort);
                }
                let st = g.states.get(&cur).expect("validated transition").clone();
                let (out, next) = self.clone().run_state(&st, data, &mut vars).await?;
                match next {
                    Some(n) => {
                        cur = n;
                        data = out;
                    }
                    None => return Ok((out, vars)),
                }
            }
        })
    }

    async fn run_state(
        self: Arc<Self>,
        st: &State,
        raw: Value,
        vars: &mut Map<String, Value>,
    ) -> Result<(Value, Option<String>), Stop> {
        let entered_at = self.clock.now();
        let entered_id = self.emit(EventType::StateEntered, Some(st), |e| {
            e.input = Some(raw.clone());
        });
        self.transitions.fetch_add(1, Ordering::Relaxed);
        let run = Run { st, entered_id };
        let retries = matches!(
            st.kind,
            Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map(_)
        );
        let ctx = self.context(st, entered_at, retries.then_some(0));
        let mut pending = Vec::new();

        let (out, next) = match &st.kind {
            Kind::Pass { result } => {
                let env = Env {
                    input: &raw,
                    ctx: &ctx,
                    vars,
                };
                let eff = run.select(&st.input_path, &env)?;
                let env = Env {
                    input: &eff,
                    ctx: &ctx,
                    vars,
                };
                // `Result` wins over `Parameters` when both are given (as on AWS).
                let res = match (result, &st.parameters) {
                    (Some(r), _) => r.clone(),
                    (None, Some(p)) => run.template(p, &env)?,
                    (None, None) => eff.clone(),
                };
                let env = Env {
                    input: &res,
                    ctx: &ctx,
                    vars,
                };
                run.assign(st.assign.as_ref(), &env, &mut pending)?;
                let merged = run.result_path(&st.result_path, &raw, res)?;
                let out = run.select(
                    &st.output_path,
                    &Env {
                        input: &merged,
                        ctx: &ctx,
                        vars,
                    },
                )?;
                (out, st.next.clone())
            }
            Kind::Succeed => {
                let env = Env {
                    input: &raw,
                    ctx: &ctx,
                    vars,
                };
                let eff = run.select(&st.input_path, &env)?;
                let out = run.select(
                    &st.output_path,
                    &Env {
                        input: &eff,
                        ctx: &ctx,
                        vars,
                    },
                )?;
                (out, None)
            }
            Kind::Fail { error, cause } => {
                let env = Env {
                    input: &raw,
                    ctx: &ctx,
                    vars,
                };
                let eval = |f: &Option<StrOrExpr>,
                            field: &str|
                 -> Result<Option<String>, Failure> {
                    Ok(match f {
                        None => None,
                        Some(StrOrExpr::Lit(s)) => Some(s.clone()),
                        Some(StrOrExpr::Expr(Expr::Path(p))) => match env.read(p) {
                            Ok(Value::String(s)) => Some(s),
                            Ok(other) => Some(other.to_string()),
                            Err(_) => {
                                return Err(run.runtime(format!(
                                    "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
                                    p.raw, raw
                                )))
                            }
                        },
                        Some(StrOrExpr::Expr(e)) => match run.eval_expr(e, field, &env)? {
                            Value::String(s) => Some(s),
                            other => Some(other.to_string()),
                        },
                    })
                };
                let error = eval(error, "ErrorPath")?;
                let cause = eval(cause, "CausePath")?;
                return Err(Stop::Fail(Failure { error, cause }));
            }
            Kind::Choice { choices, default } => {
                let env = Env {
                    input: &raw,
                    ctx: &ctx,
                    vars,
                };
                let eff = run.select(&st.input_path, &env)?;
                let env = Env {
                    input: &eff,
                    ctx: &ctx,
                    vars,
                };
                let mut next = None;
                for c in choices {
                    if choice::eval(&c.rule, &env_reader(&env), &run)? {
                        run.assign(c.assign.as_ref(), &env, &mut pending)?;
                        next = Some(c.next.clone());
                        break;
                    }
                }
                let next = match (next, default) {
                    (Some(n), _) => n,
                    (None, Some(d)) => d.clone(),
                    (None, None) => {
                        return Err(Failure::new(
                            "States.NoChoiceMatched",
                            Some(format!(
                            "No Matches! (state '{}' has no matching choice rule and no Default)",
                            st.name
                        )),
                        )
                        .into())
                    }
                };
                run.assign(st.assign.as_ref(), &env, &mut pending)?;
                let out = run.select(&st.output_path, &env)?;
                (out, Some(next))
            }
            Kind::Wait(w) => {
                let env = Env {
                    input: &raw,
                    ctx: &ctx,
                    vars,
                };
                let eff = run.select(&st.input_path, &env)?;
                let env = Env {
                    input: &eff,
                    ctx: &ctx,
                    vars,
                };
                let delay = self.wait_delay(&run, w, &env)?;
                run.assign(st.assign.as_ref(), &env, &mut pending)?;
                let out = run.select(&st.output_path, &env)?;
                tokio::select! {
                    _ = self.clock.sleep(delay) => {}
                    _ = self.cancel.cancelled() => return Err(Stop::Abort),
                }
                (out, st.next.clone())
            }
            Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map(_) => {
                return self.run_with_recovery(&run, raw, vars, entered_at).await;
            }
        };
        if too_large(&out) {
            return Err(data_limit(st));
        }
        for (k, v) in pending {
            vars.insert(k, v);
        }
        self.emit(EventType::StateExited, Some(st), |e| {
            e.output = Some(out.clone());
        });
        Ok((out, next))
    }

    fn wait_delay(&self, run: &Run, w: &WaitFor, env: &Env) -> Result<Duration, Failure> {
        let now = self.clock.now();
        let until = |t: SystemTime| t.duration_since(now).unwrap_or(Duration::ZERO);
        let d = match w {
            WaitFor::Seconds(s) => Duration::from_secs(*s as u64),
            WaitFor::SecondsPath(p) => {
                let v = run.read(env, p)?;
                match v.as_i64() {
                    Some(n) if n >= 0 => Duration::from_secs(n as u64),
                    Some(_) => {
                        return Err(run.runtime(format!(
                            "The SecondsPath parameter references a negative value: {} == {v}",
                            p.raw
                        )))
                    }
                    None => {
                        return Err(run.runtime(format!(
                            "The SecondsPath parameter cannot be parsed as a long value: {} == {v}",
                            p.raw
                        )))
                    }
                }
            }
            WaitFor::Timestamp(s) => until(time::to_system_time(
                time::parse_timestamp(s).expect("validated"),
            )),
            WaitFor::TimestampPath(p) => {
                let v = run.read(env, p)?;
                let parsed = v.as_str().and_then(time::parse_timestamp);
                match parsed {
                    Some(t) => until(time::to_system_time(t)),
                    None => {
                        let shown = v
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string());
                        return Err(run.runtime(format!(
                            "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {} == {shown}",
                            p.raw
                        )));
                    }
                }
            }
        };
        // AWS keeps a wait below a year-ish bound measured in seconds as a signed int.
        if d.as_secs() > i32::MAX as u64 {
            return Err(run.runtime("Wait state delay is too long."));
        }
        Ok(d)
    }

    /// Task, Parallel and Map: attempts with Retry, then Catch.
    async fn run_with_recovery(
        self: Arc<Self>,
        run: &Run<'_>,
        raw: Value,
        vars: &mut Map<String, Value>,
        entered_at: SystemTime,
    ) -> Result<(Value, Option<String>), Stop> {
        let st = run.st;
        let mut counts = vec![0u64; st.retry.len()];
        let mut retry_count: u32 = 0;
        loop {
            let ctx = self.context(st, entered_at, Some(retry_count));
            let attempt = self
                .clone()
                .attempt(run, &raw, &ctx, vars, retry_count)
                .await;
            let failure = match attempt {
                Ok(a) => {
                    let env = Env {
                        input: &a.result,
                        ctx: &ctx,
                        vars,
                    };
                    let mut pending = Vec::new();
                    let done = (|| {
                        run.assign(st.assign.as_ref(), &env, &mut pending)?;
                        let merged = run.result_path(&st.result_path, &raw, a.result.clone())?;
                        run.select(
                            &st.output_path,
                            &Env {
                                input: &merged,
                                ctx: &ctx,
                                vars,
                            },
                        )
                    })();
                    match done {
                        Ok(out) => {
                            if too_large(&out) {
                                return Err(data_limit(st));
                            }
                            for (k, v) in pending {
                                vars.insert(k, v);
                            }
                            self.emit(EventType::StateExited, Some(st), |e| {
                                e.output = Some(out.clone());
                            });
                            return Ok((out, st.next.clone()));
                        }
                        Err(f) => f,
                    }
                }
                Err(Stop::Fail(f)) => f,
                Err(other) => return Err(other),
            };
            // States.Runtime is never retried nor caught, even by States.ALL.
            if failure.name() == "States.Runtime" {
                return Err(failure.into());
            }
            if let Some(i) = st
                .retry
                .iter()
                .position(|r| matches_error(&r.errors, failure.name()))
            {
                let r = &st.retry[i];
                if counts[i] < r.max_attempts {
                    let mut delay = r.interval * r.backoff.powi(counts[i] as i32);
                    if let Some(max) = r.max_delay {
                        delay = delay.min(max);
                    }
                    if r.full_jitter {
                        delay *= rand::random::<f64>();
                    }
                    counts[i] += 1;
                    retry_count += 1;
                    self.transitions.fetch_add(1, Ordering::Relaxed);
                    tokio::select! {
                        _ = self.clock.sleep(Duration::from_secs_f64(delay)) => {}
                        _ = self.cancel.cancelled() => return Err(Stop::Abort),
                    }
                    continue;
                }
            }
            if let Some(c) = st
                .catch
                .iter()
                .find(|c| matches_error(&c.errors, failure.name()))
            {
                return self.caught(
                    run,
                    c,
                    &raw,
                    &ctx_for(&self, st, entered_at, retry_count),
                    vars,
                    failure,
                );
            }
            return Err(failure.into());
        }
    }

    fn caught(
        &self,
        run: &Run,
        c: &Catcher,
        raw: &Value,
        ctx: &Value,
        vars: &mut Map<String, Value>,
        f: Failure,
    ) -> Result<(Value, Option<String>), Stop> {
        let mut err = Map::new();
        err.insert(
            "Error".into(),
            f.error.clone().map_or(Value::Null, Value::String),
        );
        err.insert(
            "Cause".into(),
            f.cause.clone().map_or(Value::Null, Value::String),
        );
        let err = Value::Object(err);
        let mut pending = Vec::new();
        run.assign(
            c.assign.as_ref(),
            &Env {
                input: &err,
                ctx,
                vars,
            },
            &mut pending,
        )?;
        let out = run.result_path(&c.result_path, raw, err)?;
        for (k, v) in pending {
            vars.insert(k, v);
        }
        self.emit(EventType::StateExited, Some(run.st), |e| {
            e.output = Some(out.clone());
        });
        Ok((out, Some(c.next.clone())))
    }

    async fn attempt(
        self: Arc<Self>,
        run: &Run<'_>,
        raw: &Value,
        ctx: &Value,
        vars: &Map<String, Value>,
        retry_count: u32,
    ) -> Result<Attempt, Stop> {
        let st = run.st;
        let env = Env {
            input: raw,
            ctx,
            vars,
        };
        let eff = run.select(&st.input_path, &env)?;
        let env = Env {
            input: &eff,
            ctx,
            vars,
        };
        let result = match &st.kind {
            Kind::Task {
                resource,
                timeout,
                heartbeat,
            } => {
                let secs = |f: &Option<IntOrPath>, name: &str| -> Result<Option<u64>, Failure> {
                    Ok(match f {
                        None => None,
                        Some(IntOrPath::Int(n)) => Some(*n as u64),
                        Some(IntOrPath::Path(p)) => {
                            let v = run.read(&env, p)?;
                            match v.as_u64() {
                                Some(n) if n > 0 => Some(n),
                                _ => {
                                    return Err(run.runtime(format!(
                                        "The {name}Path field refers to value {v} which is not a valid positive integer: {}",
                                        p.raw
                                    )))
                                }
                            }
                        }
                    })
                };
                let timeout = secs(timeout, "TimeoutSeconds")?.map(Duration::from_secs);
                let heartbeat = secs(heartbeat, "HeartbeatSeconds")?.map(Duration::from_secs);
                let mut ctx = ctx.clone();
                let task_token = resource.ends_with(".waitForTaskToken").then(|| {
                    let t = uuid::Uuid::new_v4().to_string();
                    ctx["Task"] = json!({"Token": t});
                    t
                });
                let env = Env {
                    input: &eff,
                    ctx: &ctx,
                    vars,
                };
                let params = match &st.parameters {
                    Some(p) => run.template(p, &env)?,
                    None => eff.clone(),
                };
                self.emit(EventType::TaskScheduled, Some(st), |e| {
                    e.resource = Some(resource.clone());
                    e.input = Some(params.clone());
                    e.retry_count = Some(retry_count);
                });
                self.emit(EventType::TaskStarted, Some(st), |e| {
                    e.resource = Some(resource.clone());
                });
                let req = TaskRequest {
                    resource: resource.clone(),
                    input: params,
                    state_name: st.name.clone(),
                    retry_count,
                    timeout,
                    deadline: timeout.map(|t| self.clock.now() + t),
                    heartbeat,
                    context: ctx.clone(),
                    task_token,
                };
                let call = self.handler.invoke(req);
                let timer = match timeout {
                    Some(t) => self.clock.timeout(t),
                    None => Box::pin(std::future::pending()),
                };
                let outcome = tokio::select! {
                    r = call => r,
                    _ = timer => Err(TaskError { error: "States.Timeout".into(), cause: None }),
                    _ = self.cancel.cancelled() => {
                        self.emit(EventType::StateAborted, Some(st), |_| {});
                        return Err(Stop::Abort);
                    }
                };
                match outcome {
                    Ok(v) => {
                        self.emit(EventType::TaskSucceeded, Some(st), |e| {
                            e.resource = Some(resource.clone());
                            e.output = Some(v.clone());
                        });
                        v
                    }
                    Err(te) => {
                        let ty = if te.error == "States.Timeout" {
                            EventType::TaskTimedOut
                        } else {
                            EventType::TaskFailed
                        };
                        self.emit(ty, Some(st), |e| {
                            e.resource = Some(resource.clone());
                            e.error = Some(te.error.clone());
                            e.cause = te.cause.clone();
                        });
                        return Err(Failure {
                            error: Some(te.error),
                            cause: te.cause,
                        }
                        .into());
                    }
                }
            }
            Kind::Parallel { branches } => {
                let input = match &st.parameters {
                    Some(p) => run.template(p, &env)?,
                    None => eff.clone(),
                };
                self.emit(EventType::ParallelStateStarted, Some(st), |e| {
                    e.retry_count = Some(retry_count);
                });
                let futs = branches.iter().map(|b| {
                    self.clone()
                        .run_graph(b.clone(), input.clone(), vars.clone())
                });
                match futures_util::future::try_join_all(futs).await {
                    Ok(outs) => {
                        self.emit(EventType::ParallelStateSucceeded, Some(st), |_| {});
                        Value::Array(outs.into_iter().map(|(v, _)| v).collect())
                    }
                    Err(e) => {
                        if let Stop::Fail(f) = &e {
                            self.emit(EventType::ParallelStateFailed, Some(st), |ev| {
                                ev.error = f.error.clone();
                                ev.cause = f.cause.clone();
                            });
                        }
                        return Err(e);
                    }
                }
            }
            Kind::Map(_) => self.clone().map(run, &eff, ctx, vars).await?,
            _ => unreachable!("only Task, Parallel and Map have attempts"),
        };
        let result = match &st.result_selector {
            Some(t) => run.template(
                t,
                &Env {
                    input: &result,
                    ctx,
                    vars,
                },
            )?,
            None => result,
        };
        Ok(Attempt { result })
    }

    async fn map(
        self: Arc<Self>,
        run: &Run<'_>,
        eff: &Value,
        ctx: &Value,
        vars: &Map<String, Value>,
    ) -> Result<Value, Stop> {
        let st = run.st;
        let Kind::Map(spec) = &st.kind else {
            unreachable!("map() is only called for Map states");
        };
        let MapSpec {
            processor,
            distributed,
            items_path,
            item_selector,
            max_concurrency,
            tolerated_count,
            tolerated_percentage,
        } = &**spec;
        let env = Env {
            input: eff,
            ctx,
            vars,
        };
        let items = match items_path {
            PathField::Default => eff.clone(),
            PathField::Null => json!({}),
            PathField::Path(p) => run.read(&env, p)?,
        };
        let Value::Array(items) = items else {
            return Err(run
                .runtime(format!(
                    "Invalid path '{}': Items must be an array, got {items}",
                    match items_path {
                        PathField::Path(p) => p.raw.as_str(),
                        _ => "$",
                    }
                ))
                .into());
        };
        let limit = match max_concurrency {
            None => 0,
            Some(IntOrPath::Int(n)) => *n as usize,
            Some(IntOrPath::Path(p)) => {
                let v = run.read(&env, p)?;
                match lenient_int(&v).filter(|n| *n >= 0) {
                    Some(n) => n as usize,
                    None => {
                        return Err(run
                            .runtime(format!(
                                "The MaxConcurrencyPath field refers to value {} which is not a valid integer: {}",
                                display_value(&v), p.raw
                            ))
                            .into())
                    }
                }
            }
        };
        let tol_count = match tolerated_count {
            None => None,
            Some(NumOrPath::Num(n)) => Some(*n),
            Some(NumOrPath::Path(p)) => {
                let v = run.read(&env, p)?;
                match lenient_int(&v) {
                    Some(n) if n < 0 => {
                        return Err(run.runtime("ToleratedFailureCount cannot be negative.").into())
                    }
                    Some(n) => Some(n as f64),
                    None => {
                        return Err(run
                            .runtime(format!(
                                "The ToleratedFailureCountPath field refers to value {} which is not a valid integer: {}",
                                display_value(&v), p.raw
                            ))
                            .into())
                    }
                }
            }
        };
        let tol_pct = match tolerated_percentage {
            None => None,
            Some(NumOrPath::Num(n)) => Some(*n),
            Some(NumOrPath::Path(p)) => {
                let v = run.read(&env, p)?;
                match lenient_float(&v) {
                    Some(n) if !(0.0..=100.0).contains(&n) => {
                        return Err(run
                            .runtime("ToleratedFailurePercentage must be between 0 and 100.")
                            .into())
                    }
                    Some(n) => Some(n),
                    None => {
                        return Err(run
                            .runtime(format!(
                                "The ToleratedFailurePercentagePath field refers to value {} which is not a valid float: {}",
                                display_value(&v), p.raw
                            ))
                            .into())
                    }
                }
            }
        };
        // Item inputs are computed up front: a failing ItemSelector fails the state.
        let mut inputs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let mut ictx = ctx.clone();
            ictx["Map"] = json!({"Item": {"Index": i, "Value": item}});
            let ienv = Env {
                input: eff,
                ctx: &ictx,
                vars,
            };
            inputs.push(match item_selector.as_ref().or(st.parameters.as_ref()) {
                Some(t) => run.template(t, &ienv)?,
                None => item.clone(),
            });
        }
        self.emit(EventType::MapStateStarted, Some(st), |e| {
            e.detail = Some(json!({"length": inputs.len()}));
        });
        if *distributed {
            self.emit(EventType::MapRunStarted, Some(st), |_| {});
        }
        let n = inputs.len();
        let limit = if limit == 0 { n.max(1) } else { limit };
        let tolerated = |failed: usize| -> bool {
            let by_count = tol_count.is_some_and(|c| failed as f64 <= c);
            let by_pct =
                tol_pct.is_some_and(|p| n > 0 && (failed as f64) * 100.0 / (n as f64) <= p);
            by_count || by_pct
        };
        let mut results: Vec<Value> = vec![Value::Null; n];
        let mut failed = 0usize;
        let mut stream = futures_util::stream::iter(inputs.into_iter().enumerate())
            .map(|(i, input)| {
                let me = self.clone();
                let g = processor.clone();
                let vars = vars.clone();
                async move {
                    me.emit(EventType::MapIterationStarted, None, |e| {
                        e.state_name = Some(run_name(st));
                        e.index = Some(i);
                    });
                    let r = me.clone().run_graph(g, input, vars).await;
                    (i, r)
                }
            })
            .buffer_unordered(limit);
        while let Some((i, r)) = stream.next().await {
            match r {
                Ok((v, _)) => {
                    self.emit(EventType::MapIterationSucceeded, None, |e| {
                        e.state_name = Some(run_name(st));
                        e.index = Some(i);
                    });
                    results[i] = v;
                }
                Err(Stop::Fail(f)) => {
                    self.emit(EventType::MapIterationFailed, None, |e| {
                        e.state_name = Some(run_name(st));
                        e.index = Some(i);
                        e.error = f.error.clone();
                        e.cause = f.cause.clone();
                    });
                    failed += 1;
                    if tol_count.is_none() && tol_pct.is_none() {
                        self.emit(EventType::MapStateFailed, Some(st), |_| {});
                        return Err(f.into());
                    }
                    if !tolerated(failed) {
                        self.emit(EventType::MapStateFailed, Some(st), |_| {});
                        return Err(Failure::new(
                            "States.ExceedToleratedFailureThreshold",
                            Some("The specified tolerated failure threshold was exceeded".into()),
                        )
                        .into());
                    }
                    results[i] = json!({"Error": f.error, "Cause": f.cause});
                }
                Err(other) => return Err(other),
            }
        }
        self.emit(EventType::MapStateSucceeded, Some(st), |_| {});
        Ok(Value::Array(results))
    }
}

/// An integer from a number or a numeric string (AWS accepts both in `…Path` fields).
fn lenient_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn lenient_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// AWS's limit on any state's input or output: 256 KiB of UTF-8 JSON.
const MAX_PAYLOAD: usize = 256 * 1024;

fn too_large(v: &Value) -> bool {
    serde_json::to_vec(v).is_ok_and(|b| b.len() > MAX_PAYLOAD)
}

fn data_limit(st: &State) -> Stop {
    Failure::new(
        "States.DataLimitExceeded",
        Some(format!(
            "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
            st.name
        )),
    )
    .into()
}

fn run_name(st: &State) -> String {
    st.name.clone()
}

fn ctx_for(e: &Engine, st: &State, entered: SystemTime, retry: u32) -> Value {
    e.context(st, entered, Some(retry))
}

/// Shows a value in an error message as AWS does: Java `toString` in double quotes.
fn display_value(v: &Value) -> String {
    format!("\"{}\"", intrinsics::java_string(v))
}

/// Adapter so the choice module can read paths and report errors in this state's terms.
pub(crate) struct Reader<'a, 'b> {
    env: &'a Env<'b>,
}

fn env_reader<'a, 'b>(env: &'a Env<'b>) -> Reader<'a, 'b> {
    Reader { env }
}

impl Reader<'_, '_> {
    /// `None` when the path does not exist.
    pub(crate) fn get(&self, p: &Path) -> Option<Value> {
        self.env.read(p).ok()
    }
}

impl Run<'_> {
    pub(crate) fn choice_missing(&self, p: &Path) -> Failure {
        self.runtime(format!(
            "Invalid path '{}': The choice state's condition path references an invalid value.",
            p.raw
        ))
    }
}
