//! What the caller plugs into an execution: the [`TaskHandler`] that runs Task
//! states (with its [`TaskRequest`] and [`TaskError`]), the [`NoTasks`] stand-in, and
//! the [`Observer`] that sees history events live.

use crate::clock::BoxFuture;
use crate::history::HistoryEvent;
use serde_json::Value;
use std::time::{Duration, SystemTime};

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

    /// A function's error as the `lambda:invoke` integration reports it:
    /// `Error` is the function's `errorType`, `Cause` its error document as JSON text.
    pub fn from_lambda(error_type: &str, error_message: &str) -> TaskError {
        TaskError::new(
            error_type,
            serde_json::json!({"errorType": error_type, "errorMessage": error_message}).to_string(),
        )
    }
}

/// A function's answer as the `lambda:invoke` integration returns it (the
/// definition's `ResultSelector` takes `$.Payload`).
pub fn lambda_invoke_output(payload: Value) -> Value {
    serde_json::json!({"ExecutedVersion": "$LATEST", "Payload": payload, "StatusCode": 200})
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
