//! The executor: runs a validated [`StateMachine`] against a [`TaskHandler`].
//!
//! This module holds the public API ([`run`], [`RunOptions`], [`ExecutionResult`],
//! [`Status`], and the caller's plug-ins from `callbacks`). The rest:
//! - `engine`: the per-execution `Engine`, the graph loop and the entry/exit of
//!   one state;
//! - `failure`: `Failure`, `Stop` and the state being run (`Run`);
//! - `io`: input and output processing (`InputPath` … `OutputPath`, `Assign`);
//! - `flow_states`: Pass, Succeed, Fail, Choice, Wait;
//! - `retry_catch`: the attempt/Retry/Catch loop of Task, Parallel and Map;
//! - `task`: Task states (calling the handler);
//! - `parallel_map`: Parallel and Map states.

mod callbacks;
mod engine;
mod failure;
mod flow_states;
mod io;
mod parallel_map;
mod retry_catch;
mod task;

pub use callbacks::{lambda_invoke_output, NoTasks, Observer, TaskError, TaskHandler, TaskRequest};

use crate::clock::{Clock, TokioClock};
use crate::definition::StateMachine;
use crate::history::{EventType, HistoryEvent};
use crate::time;
use engine::Engine;
use failure::{Failure, Stop};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
