//! Parallel and Map states: run nested graphs (all branches at once, or one
//! iteration per item with `MaxConcurrency` and the tolerated-failure thresholds)
//! and gather their outputs into an array.

use super::engine::{Engine, Vars};
use super::failure::{Failure, Run, Stop};
use super::io::Env;
use crate::definition::{IntOrPath, Kind, MapSpec, NumOrPath, PathField, State};
use crate::history::EventType;
use crate::intrinsics;
use futures_util::stream::StreamExt;
use serde_json::{json, Map, Value};
use std::sync::Arc;

impl Engine {
    /// One attempt of a Parallel state on its effective input `eff`: the array of
    /// branch outputs, before `ResultSelector`.
    pub(super) async fn parallel(
        self: Arc<Self>,
        run: &Run<'_>,
        eff: &Value,
        ctx: &Value,
        vars: &Vars,
        retry_count: u32,
    ) -> Result<Value, Stop> {
        let st = run.st;
        let Kind::Parallel { branches } = &st.kind else {
            unreachable!("parallel() is only called for Parallel states");
        };
        let env = Env {
            input: eff,
            ctx,
            vars,
        };
        let input = run.parameters(&env)?;
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
                Ok(Value::Array(outs.into_iter().map(|(v, _)| v).collect()))
            }
            Err(e) => {
                if let Stop::Fail(f) = &e {
                    self.emit(EventType::ParallelStateFailed, Some(st), |ev| {
                        ev.error = f.error.clone();
                        ev.cause = f.cause.clone();
                    });
                }
                Err(e)
            }
        }
    }

    /// One attempt of a Map state on its effective input `eff`: the array of
    /// iteration outputs, before `ResultSelector`.
    pub(super) async fn map(
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

fn run_name(st: &State) -> String {
    st.name.clone()
}

/// Shows a value in an error message as AWS does: Java `toString` in double quotes.
fn display_value(v: &Value) -> String {
    format!("\"{}\"", intrinsics::java_string(v))
}
