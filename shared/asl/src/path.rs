//! JSONPath handling as ASL uses it.
//!
//! ASL paths come in two flavours. *Reference paths* (`ResultPath`, and every path
//! that must name exactly one node) only use `.name`, `['name']` and `[index]`; they are
//! walked here directly so they can also be *written* (ResultPath) and so errors can
//! name the missing step the way AWS does. Every other path (wildcards, slices,
//! filters, recursive descent) is evaluated with `serde_json_path` (RFC 9535) and yields
//! the array of matches, as AWS's Jayway-based engine does for indefinite paths.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

/// What a path is evaluated against.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Root {
    /// `$` — the state's current data.
    Input,
    /// `$$` — the context object.
    Context,
    /// `$name` — a workflow variable.
    Var(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Key(String),
    Index(i64),
}

/// A parsed ASL path.
#[derive(Debug, Clone)]
pub(crate) struct Path {
    pub raw: String,
    pub root: Root,
    /// Present when the path names at most one node (a reference path).
    pub steps: Option<Vec<Step>>,
    /// Compiled query (with the root rewritten to `$`) for indefinite paths.
    query: Option<JsonPath>,
}

/// Why a path could not be read: a step was missing. Carries the bracketed prefix up
/// to and including that step (e.g. `$['no']`) and whether it was the last step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PathError {
    pub at: String,
    pub leaf: bool,
}

impl PathError {
    /// The detail AWS appends after `Invalid path '<path>' : `.
    pub fn detail(&self) -> String {
        // Jayway (behind AWS) reports a missing leaf and a missing inner step apart.
        if self.leaf {
            format!("No results for path: {}", self.at)
        } else {
            format!("Missing property in path {}", self.at)
        }
    }
}

fn is_var_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

impl Path {
    /// Parses any ASL path (`$…`, `$$…`, `$var…`).
    pub fn parse(raw: &str) -> Result<Path, String> {
        let (root, rest) = if let Some(rest) = raw.strip_prefix("$$") {
            (Root::Context, rest)
        } else if let Some(rest) = raw.strip_prefix('$') {
            if rest.chars().next().is_some_and(is_var_start) {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (Root::Var(rest[..end].to_string()), &rest[end..])
            } else {
                (Root::Input, rest)
            }
        } else {
            return Err(format!(
                "'{raw}' is not a valid path: it must start with '$'"
            ));
        };
        let steps = parse_steps(rest);
        let query = if steps.is_some() {
            None
        } else {
            let q = format!("${rest}");
            Some(JsonPath::parse(&q).map_err(|e| format!("'{raw}' is not a valid JSONPath: {e}"))?)
        };
        Ok(Path {
            raw: raw.to_string(),
            root,
            steps,
            query,
        })
    }

    /// Parses a reference path: must be definite and rooted at `$`.
    pub fn parse_reference(raw: &str) -> Result<Path, String> {
        let p = Path::parse(raw)?;
        if p.root != Root::Input || p.steps.is_none() {
            return Err(format!(
                "'{raw}' is not a valid reference path: only '.name', ['name'] and [index] steps from '$' are allowed"
            ));
        }
        Ok(p)
    }

    /// Reads the path from `subject` (already chosen by root).
    pub fn read(&self, subject: &Value) -> Result<Value, PathError> {
        match (&self.steps, &self.query) {
            (Some(steps), _) => read_steps(subject, steps).cloned(),
            (None, Some(q)) => Ok(Value::Array(
                q.query(subject).all().into_iter().cloned().collect(),
            )),
            (None, None) => unreachable!("a path is either definite or compiled"),
        }
    }
}

fn bracket(steps: &[Step]) -> String {
    let mut s = String::from("$");
    for st in steps {
        match st {
            Step::Key(k) => s.push_str(&format!("['{k}']")),
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn read_steps<'a>(mut v: &'a Value, steps: &[Step]) -> Result<&'a Value, PathError> {
    for (i, st) in steps.iter().enumerate() {
        let next = match (st, v) {
            (Step::Key(k), Value::Object(m)) => m.get(k),
            (Step::Index(n), Value::Array(a)) => {
                let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                usize::try_from(idx).ok().and_then(|i| a.get(i))
            }
            _ => None,
        };
        v = next.ok_or_else(|| PathError {
            at: bracket(&steps[..=i]),
            leaf: i + 1 == steps.len(),
        })?;
    }
    Ok(v)
}

/// Writes `value` at `steps` inside `target`, creating objects on the way
/// (ResultPath semantics). Fails when an existing step is not an object/array.
pub(crate) fn write(target: &mut Value, steps: &[Step], value: Value) -> Result<(), String> {
    let Some((last, prefix)) = steps.split_last() else {
        *target = value;
        return Ok(());
    };
    let mut cur = target;
    for (i, st) in prefix.iter().enumerate() {
        cur = match st {
            Step::Key(k) => {
                let Value::Object(m) = cur else {
                    return Err(bracket(&steps[..=i]));
                };
                m.entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()))
            }
            Step::Index(n) => {
                let Value::Array(a) = cur else {
                    return Err(bracket(&steps[..=i]));
                };
                let len = a.len() as i64;
                let idx = if *n < 0 { len + n } else { *n };
                match usize::try_from(idx).ok().and_then(|i| a.get_mut(i)) {
                    Some(v) => v,
                    None => return Err(bracket(&steps[..=i])),
                }
            }
        };
    }
    match (last, cur) {
        (Step::Key(k), Value::Object(m)) => {
            m.insert(k.clone(), value);
            Ok(())
        }
        (Step::Index(n), Value::Array(a)) => {
            let len = a.len() as i64;
            let idx = if *n < 0 { len + n } else { *n };
            match usize::try_from(idx).ok().and_then(|i| a.get_mut(i)) {
                Some(v) => {
                    *v = value;
                    Ok(())
                }
                None => Err(bracket(steps)),
            }
        }
        _ => Err(bracket(steps)),
    }
}

/// Parses the part after the root as simple steps; `None` if it uses anything else.
fn parse_steps(s: &str) -> Option<Vec<Step>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                    j += 1;
                }
                let name = &s[start..j];
                if name.is_empty() || name == "*" || name.contains(|c: char| c.is_whitespace()) {
                    return None;
                }
                out.push(Step::Key(name.to_string()));
                i = j;
            }
            b'[' => {
                let rest = &s[i + 1..];
                let quote = rest.chars().next()?;
                if quote == '\'' || quote == '"' {
                    // Quoted names are taken literally up to the matching `']` (AWS does
                    // not unescape inside them).
                    let end = rest[1..].find(&format!("{quote}]"))?;
                    out.push(Step::Key(rest[1..1 + end].to_string()));
                    i += 1 + 1 + end + 2;
                } else {
                    let close = rest.find(']')?;
                    out.push(Step::Index(rest[..close].trim().parse::<i64>().ok()?));
                    i += 1 + close + 1;
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_roots() {
        assert_eq!(Path::parse("$$.Execution.Id").unwrap().root, Root::Context);
        assert_eq!(
            Path::parse("$foo.bar").unwrap().root,
            Root::Var("foo".into())
        );
        assert_eq!(Path::parse("$.foo").unwrap().root, Root::Input);
        assert!(Path::parse("foo").is_err());
    }

    #[test]
    fn definite_and_indefinite() {
        let v = json!({"a": [{"b": 1}, {"b": 2}], "c d": 3});
        assert_eq!(Path::parse("$.a[1].b").unwrap().read(&v).unwrap(), json!(2));
        assert_eq!(Path::parse("$['c d']").unwrap().read(&v).unwrap(), json!(3));
        assert_eq!(
            Path::parse("$.a[*].b").unwrap().read(&v).unwrap(),
            json!([1, 2])
        );
        let p = Path::parse("$.x.y").unwrap();
        assert_eq!(
            p.read(&v).unwrap_err().detail(),
            "Missing property in path $['x']"
        );
    }

    #[test]
    fn write_creates_objects() {
        let mut v = json!({"a": 1});
        let p = Path::parse_reference("$.b.c").unwrap();
        write(&mut v, p.steps.as_ref().unwrap(), json!(2)).unwrap();
        assert_eq!(v, json!({"a": 1, "b": {"c": 2}}));
        let p = Path::parse_reference("$.a.c").unwrap();
        assert!(write(&mut v, p.steps.as_ref().unwrap(), json!(2)).is_err());
    }
}
