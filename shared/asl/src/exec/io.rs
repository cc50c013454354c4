//! Input and output processing, as the ASL spec orders it: `InputPath`,
//! `Parameters`, `ResultSelector`, `ResultPath`, `OutputPath`, plus `Assign`. The
//! `Env` a path or payload template is evaluated against, and the `Run` methods
//! that read paths, fill templates and merge results, with AWS's error wording.

use super::failure::{Failure, Run};
use crate::definition::{Expr, PathField, Template, TemplateField};
use crate::intrinsics::{self, EvalError};
use crate::path::{self, Path, PathError, Root};
use serde_json::{json, Map, Value};

/// What a path or template is evaluated against.
pub(super) struct Env<'a> {
    pub(super) input: &'a Value,
    pub(super) ctx: &'a Value,
    pub(super) vars: &'a Map<String, Value>,
}

pub(super) enum ReadError {
    Path(PathError),
    NoVar(String),
}

impl Env<'_> {
    pub(super) fn read(&self, p: &Path) -> Result<Value, ReadError> {
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

impl Run<'_> {
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

    pub(super) fn read(&self, env: &Env, p: &Path) -> Result<Value, Failure> {
        env.read(p).map_err(|e| self.read_err(p, e))
    }

    /// Applies an `InputPath`/`OutputPath`-style field (`null` gives `{}`).
    pub(super) fn select(&self, field: &PathField, env: &Env) -> Result<Value, Failure> {
        match field {
            PathField::Default => Ok(env.input.clone()),
            PathField::Null => Ok(json!({})),
            PathField::Path(p) => self.read(env, p),
        }
    }

    pub(super) fn eval_expr(&self, expr: &Expr, field: &str, env: &Env) -> Result<Value, Failure> {
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

    pub(super) fn template(&self, t: &Template, env: &Env) -> Result<Value, Failure> {
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
    pub(super) fn result_path(
        &self,
        field: &PathField,
        raw: &Value,
        result: Value,
    ) -> Result<Value, Failure> {
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
    pub(super) fn assign(
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

    /// The effective input of a Task or Parallel state: `Parameters` filled from
    /// `env`, or `env.input` as is.
    pub(super) fn parameters(&self, env: &Env) -> Result<Value, Failure> {
        match &self.st.parameters {
            Some(p) => self.template(p, env),
            None => Ok(env.input.clone()),
        }
    }

    /// Applies `ResultSelector` to the raw result of a Task, Parallel or Map attempt.
    pub(super) fn result_selector(
        &self,
        result: Value,
        ctx: &Value,
        vars: &Map<String, Value>,
    ) -> Result<Value, Failure> {
        match &self.st.result_selector {
            Some(t) => self.template(
                t,
                &Env {
                    input: &result,
                    ctx,
                    vars,
                },
            ),
            None => Ok(result),
        }
    }
}
