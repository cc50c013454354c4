//! What Task, Parallel and Map states share: one attempt (`InputPath`, the work,
//! `ResultSelector`), then `Retry` with backoff and jitter, then `Catch`, and the
//! state's exit through `ResultPath`/`OutputPath`.

use super::engine::{data_limit, too_large, Engine, Exit};
use super::failure::{Failure, Run, Stop};
use super::io::Env;
use crate::definition::{Catcher, Kind, State};
use crate::history::EventType;
use serde_json::{Map, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
    /// Task, Parallel and Map: attempts with Retry, then Catch.
    pub(super) async fn run_with_recovery(
        self: Arc<Self>,
        run: &Run<'_>,
        raw: Value,
        vars: &mut Map<String, Value>,
        entered_at: SystemTime,
    ) -> Result<Exit, Stop> {
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
    ) -> Result<Exit, Stop> {
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
        let result = match &st.kind {
            Kind::Task { .. } => self.task(run, &eff, ctx, vars, retry_count).await?,
            Kind::Parallel { .. } => {
                self.clone()
                    .parallel(run, &eff, ctx, vars, retry_count)
                    .await?
            }
            Kind::Map(_) => self.clone().map(run, &eff, ctx, vars).await?,
            _ => unreachable!("only Task, Parallel and Map have attempts"),
        };
        let result = run.result_selector(result, ctx, vars)?;
        Ok(Attempt { result })
    }
}

fn ctx_for(e: &Engine, st: &State, entered: SystemTime, retry: u32) -> Value {
    e.context(st, entered, Some(retry))
}
