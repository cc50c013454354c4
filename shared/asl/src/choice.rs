//! Choice rule evaluation.
//!
//! The evaluator knows nothing of the executor: it reads paths through a closure and
//! reports a path that is not there as [`MissingPath`], which the executor words as
//! AWS does.

use crate::definition::{Comparable, Op, Operand, Relation, Rule};
use crate::intrinsics::json_eq;
use crate::path::Path;
use crate::time::parse_timestamp;
use serde_json::Value;
use std::cmp::Ordering;

/// A path a rule compares (its `Variable` or a `…Path` operand) that does not exist.
#[derive(Debug)]
pub(crate) struct MissingPath<'r>(pub &'r Path);

/// Whether `rule` matches; `read` gives a path's value, `None` when there is none.
pub(crate) fn eval<'r>(
    rule: &'r Rule,
    read: &dyn Fn(&Path) -> Option<Value>,
) -> Result<bool, MissingPath<'r>> {
    match rule {
        Rule::And(rs) => {
            for x in rs {
                if !eval(x, read)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Rule::Or(rs) => {
            for x in rs {
                if eval(x, read)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Rule::Not(x) => Ok(!eval(x, read)?),
        Rule::Cmp(cmp) => {
            let (variable, op, operand) = (&cmp.variable, &cmp.op, &cmp.operand);
            let value = read(variable);
            if *op == Op::IsPresent {
                return Ok(value.is_some() == (operand_lit(operand) == Some(&Value::Bool(true))));
            }
            let Some(value) = value else {
                return Err(MissingPath(variable));
            };
            let want = match operand {
                Operand::Lit(v) => v.clone(),
                Operand::Path(p) => read(p).ok_or(MissingPath(p))?,
            };
            Ok(compare(*op, &value, &want))
        }
    }
}

fn operand_lit(o: &Operand) -> Option<&Value> {
    match o {
        Operand::Lit(v) => Some(v),
        Operand::Path(_) => None,
    }
}

fn compare(op: Op, v: &Value, want: &Value) -> bool {
    let flag = want.as_bool() == Some(true);
    match op {
        // Only reached with a value: `eval` answers IsPresent for an absent one.
        Op::IsPresent => flag,
        Op::IsNull => v.is_null() == flag,
        Op::IsNumeric => v.is_number() == flag,
        Op::IsString => v.is_string() == flag,
        Op::IsBoolean => v.is_boolean() == flag,
        Op::IsTimestamp => v.as_str().and_then(parse_timestamp).is_some() == flag,
        Op::BooleanEquals => matches!((v, want), (Value::Bool(a), Value::Bool(b)) if a == b),
        Op::StringMatches => match (v, want) {
            (Value::String(s), Value::String(p)) => glob(p, s),
            _ => false,
        },
        Op::Compare(ty, rel) => {
            let Some(ord) = ordering(ty, v, want) else {
                return false;
            };
            match rel {
                Relation::Equals => ord == Ordering::Equal,
                Relation::LessThan => ord == Ordering::Less,
                Relation::GreaterThan => ord == Ordering::Greater,
                Relation::LessThanEquals => ord != Ordering::Greater,
                Relation::GreaterThanEquals => ord != Ordering::Less,
            }
        }
    }
}

/// Orders `v` against `want` as the operator's type; `None` on a type mismatch
/// (AWS then simply does not match).
fn ordering(ty: Comparable, v: &Value, want: &Value) -> Option<Ordering> {
    match ty {
        Comparable::String => Some(v.as_str()?.cmp(want.as_str()?)),
        Comparable::Numeric => {
            if !v.is_number() {
                return None;
            }
            if json_eq(v, want) {
                return Some(Ordering::Equal);
            }
            v.as_f64()?.partial_cmp(&want.as_f64()?)
        }
        Comparable::Timestamp => {
            let a = parse_timestamp(v.as_str()?)?;
            let b = parse_timestamp(want.as_str()?)?;
            Some(a.cmp(&b))
        }
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` and `\\` are literals.
fn glob(pattern: &str, s: &str) -> bool {
    enum Tok {
        Star,
        Ch(char),
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => toks.push(Tok::Ch(it.next().unwrap_or('\\'))),
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Ch(c)),
        }
    }
    let s: Vec<char> = s.chars().collect();
    // Classic two-pointer wildcard match with backtracking to the last star.
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match toks.get(p) {
            Some(Tok::Ch(c)) if *c == s[i] => {
                p += 1;
                i += 1;
            }
            Some(Tok::Star) => {
                star = Some((p, i));
                p += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|t| matches!(t, Tok::Star))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globbing() {
        assert!(glob("log-*.txt", "log-2024.txt"));
        assert!(glob("*", ""));
        assert!(!glob("a*b", "ac"));
        assert!(glob(r"a\*b", "a*b"));
        assert!(!glob(r"a\*b", "axb"));
    }

    #[test]
    fn numeric_and_types() {
        let op = |ty, rel| Op::Compare(ty, rel);
        assert!(compare(
            op(Comparable::Numeric, Relation::Equals),
            &json!(1),
            &json!(1.0)
        ));
        assert!(!compare(
            op(Comparable::Numeric, Relation::Equals),
            &json!("1"),
            &json!(1)
        ));
        assert!(compare(
            op(Comparable::String, Relation::LessThan),
            &json!("a"),
            &json!("b")
        ));
        assert!(compare(
            op(Comparable::Timestamp, Relation::LessThan),
            &json!("2020-01-01T00:00:00Z"),
            &json!("2020-01-01T00:00:01+00:00")
        ));
    }
}
