//! Task states: one attempt of the caller's [`TaskHandler`](super::TaskHandler),
//! with `TimeoutSeconds`, `HeartbeatSeconds` and `.waitForTaskToken`, recorded as
//! the Task history events. Retry and Catch are in `retry_catch`.

use super::callbacks::{TaskError, TaskRequest};
use super::engine::{Engine, Vars};
use super::failure::{Failure, Run, Stop};
use super::io::Env;
use crate::definition::{IntOrPath, Kind};
use crate::history::EventType;
use serde_json::{json, Value};
use std::time::Duration;

impl Engine {
    /// One attempt of a Task state on its effective input `eff`: the task's raw
    /// result, before `ResultSelector`.
    pub(super) async fn task(
        &self,
        run: &Run<'_>,
        eff: &Value,
        ctx: &Value,
        vars: &Vars,
        retry_count: u32,
    ) -> Result<Value, Stop> {
        let st = run.st;
        let Kind::Task {
            resource,
            timeout,
            heartbeat,
        } = &st.kind
        else {
            unreachable!("task() is only called for Task states");
        };
        let env = Env {
            input: eff,
            ctx,
            vars,
        };
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
            input: eff,
            ctx: &ctx,
            vars,
        };
        let params = run.parameters(&env)?;
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
                Ok(v)
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
                Err(Failure {
                    error: Some(te.error),
                    cause: te.cause,
                }
                .into())
            }
        }
    }
}
