//! The states that do no work of their own: Pass, Succeed, Fail and Choice (as
//! `Run` methods) and Wait (an `Engine` method, since it sleeps on the clock).
//! Each returns the state's output and next state; `Engine::run_state` does the
//! rest.

use super::engine::{Engine, Exit, Vars};
use super::failure::{Failure, Run, Stop};
use super::io::Env;
use crate::choice;
use crate::definition::{ChoiceBranch, Expr, StrOrExpr, WaitFor};
use crate::path::Path;
use crate::time;
use serde_json::Value;
use std::time::{Duration, SystemTime};

impl Run<'_> {
    pub(super) fn pass(
        &self,
        result: Option<&Value>,
        raw: &Value,
        ctx: &Value,
        vars: &Vars,
        pending: &mut Vec<(String, Value)>,
    ) -> Result<Exit, Failure> {
        let st = self.st;
        let env = Env {
            input: raw,
            ctx,
            vars,
        };
        let eff = self.select(&st.input_path, &env)?;
        let env = Env {
            input: &eff,
            ctx,
            vars,
        };
        // `Result` wins over `Parameters` when both are given (as on AWS).
        let res = match (result, &st.parameters) {
            (Some(r), _) => r.clone(),
            (None, Some(p)) => self.template(p, &env)?,
            (None, None) => eff.clone(),
        };
        let env = Env {
            input: &res,
            ctx,
            vars,
        };
        self.assign(st.assign.as_ref(), &env, pending)?;
        let merged = self.result_path(&st.result_path, raw, res)?;
        let out = self.select(
            &st.output_path,
            &Env {
                input: &merged,
                ctx,
                vars,
            },
        )?;
        Ok((out, st.next.clone()))
    }

    pub(super) fn succeed(&self, raw: &Value, ctx: &Value, vars: &Vars) -> Result<Exit, Failure> {
        let st = self.st;
        let env = Env {
            input: raw,
            ctx,
            vars,
        };
        let eff = self.select(&st.input_path, &env)?;
        let out = self.select(
            &st.output_path,
            &Env {
                input: &eff,
                ctx,
                vars,
            },
        )?;
        Ok((out, None))
    }

    /// The failure a Fail state ends the execution with (`Ok`), or the error met
    /// while evaluating its `ErrorPath`/`CausePath` (`Err`).
    pub(super) fn fail(
        &self,
        error: Option<&StrOrExpr>,
        cause: Option<&StrOrExpr>,
        raw: &Value,
        ctx: &Value,
        vars: &Vars,
    ) -> Result<Failure, Failure> {
        let env = Env {
            input: raw,
            ctx,
            vars,
        };
        let eval = |f: Option<&StrOrExpr>, field: &str| -> Result<Option<String>, Failure> {
            Ok(match f {
                None => None,
                Some(StrOrExpr::Lit(s)) => Some(s.clone()),
                Some(StrOrExpr::Expr(Expr::Path(p))) => match env.read(p) {
                    Ok(Value::String(s)) => Some(s),
                    Ok(other) => Some(other.to_string()),
                    Err(_) => {
                        return Err(self.runtime(format!(
                            "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
                            p.raw, raw
                        )))
                    }
                },
                Some(StrOrExpr::Expr(e)) => match self.eval_expr(e, field, &env)? {
                    Value::String(s) => Some(s),
                    other => Some(other.to_string()),
                },
            })
        };
        let error = eval(error, "ErrorPath")?;
        let cause = eval(cause, "CausePath")?;
        Ok(Failure { error, cause })
    }

    pub(super) fn choice(
        &self,
        choices: &[ChoiceBranch],
        default: Option<&String>,
        raw: &Value,
        ctx: &Value,
        vars: &Vars,
        pending: &mut Vec<(String, Value)>,
    ) -> Result<Exit, Failure> {
        let st = self.st;
        let env = Env {
            input: raw,
            ctx,
            vars,
        };
        let eff = self.select(&st.input_path, &env)?;
        let env = Env {
            input: &eff,
            ctx,
            vars,
        };
        let read = |p: &Path| env.read(p).ok();
        let mut next = None;
        for c in choices {
            let matched = choice::eval(&c.rule, &read).map_err(|m| self.choice_missing(m.0))?;
            if matched {
                self.assign(c.assign.as_ref(), &env, pending)?;
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
                ))
            }
        };
        self.assign(st.assign.as_ref(), &env, pending)?;
        let out = self.select(&st.output_path, &env)?;
        Ok((out, Some(next)))
    }

    /// A choice rule read a path that is not there.
    fn choice_missing(&self, p: &Path) -> Failure {
        self.runtime(format!(
            "Invalid path '{}': The choice state's condition path references an invalid value.",
            p.raw
        ))
    }
}

impl Engine {
    pub(super) async fn wait(
        &self,
        run: &Run<'_>,
        w: &WaitFor,
        raw: &Value,
        ctx: &Value,
        vars: &Vars,
        pending: &mut Vec<(String, Value)>,
    ) -> Result<Exit, Stop> {
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
        let delay = self.wait_delay(run, w, &env)?;
        run.assign(st.assign.as_ref(), &env, pending)?;
        let out = run.select(&st.output_path, &env)?;
        tokio::select! {
            _ = self.clock.sleep(delay) => {}
            _ = self.cancel.cancelled() => return Err(Stop::Abort),
        }
        Ok((out, st.next.clone()))
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
}
