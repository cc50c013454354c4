//! Field shapes several state types share: reference and ordinary paths
//! (`InputPath`, `ItemsPath`…), literal-or-path pairs (`TimeoutSeconds` /
//! `TimeoutSecondsPath`, `Error` / `ErrorPath`…), and payload templates
//! (`Parameters`, `ResultSelector`, `ItemSelector`, `Assign`) with their `.$`
//! expressions (paths or intrinsic functions).

use super::model::{Expr, IntOrPath, NumOrPath, PathField, StrOrExpr, Template, TemplateField};
use super::parser::{loc, Cx};
use crate::intrinsics;
use crate::path::Path;
use serde_json::{Map, Value};

impl Cx {
    pub(super) fn str_or_path(
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

    pub(super) fn path_value(&mut self, name: &str, field: &str, v: &Value) -> Option<Path> {
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

    pub(super) fn path_field(
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

    pub(super) fn int_or_path(
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

    pub(super) fn num_or_path(
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

    pub(super) fn template(
        &mut self,
        name: &str,
        o: &Map<String, Value>,
        field: &str,
    ) -> Option<Template> {
        let v = o.get(field)?;
        let mut problems = Vec::new();
        let t = compile_template(v, &mut problems);
        for p in problems {
            self.err(format!("{}: {p}", loc(name, field)));
        }
        Some(t)
    }
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
