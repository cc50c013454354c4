//! Evaluation of a parsed intrinsic call, and the value helpers AWS's functions
//! need: Java-style `toString` ([`java_string`]) and number-aware JSON equality
//! ([`json_eq`]).

use super::syntax::{Arg, Call};
use crate::path::Path;
use base64::Engine as _;
use serde_json::{Map, Value};

/// Errors from evaluating a call: either a path failed (reported by the resolver) or
/// the function itself failed (`States.IntrinsicFailure`).
pub(crate) enum EvalError<E> {
    Path(E),
    Intrinsic(String),
}

type R<E> = Result<Value, EvalError<E>>;

fn fail<E>(msg: impl Into<String>) -> EvalError<E> {
    EvalError::Intrinsic(msg.into())
}

pub(crate) fn eval<E>(call: &Call, resolve: &dyn Fn(&Path) -> Result<Value, E>) -> R<E> {
    let mut vals = Vec::with_capacity(call.args.len());
    for a in &call.args {
        vals.push(match a {
            Arg::Str { value, .. } => Value::String(value.clone()),
            Arg::Lit(v) => v.clone(),
            Arg::Path(p) => resolve(p).map_err(EvalError::Path)?,
            Arg::Call(c) => eval(c, resolve)?,
        });
    }
    let name = call.name.as_str();
    let v = &vals;
    match name {
        "States.Format" => format(call, v),
        "States.StringToJson" => {
            let s = want_str(name, &v[0])?;
            // AWS turns an empty (or blank) string into null rather than failing.
            if s.trim().is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_str(s)
                .map_err(|e| fail(format!("{name}: the argument is not valid JSON: {e}")))
        }
        "States.JsonToString" => Ok(Value::String(v[0].to_string())),
        "States.Array" => Ok(Value::Array(vals.clone())),
        "States.ArrayPartition" => {
            let arr = want_arr(name, &v[0])?;
            let size = want_int(name, &v[1])?;
            if size <= 0 {
                return Err(fail(format!("{name}: the chunk size must be positive")));
            }
            Ok(Value::Array(
                arr.chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        "States.ArrayContains" => {
            let arr = want_arr(name, &v[0])?;
            Ok(Value::Bool(arr.iter().any(|x| json_eq(x, &v[1]))))
        }
        "States.ArrayRange" => {
            let (a, b, step) = (
                want_int(name, &v[0])?,
                want_int(name, &v[1])?,
                want_int(name, &v[2])?,
            );
            if step == 0 {
                return Err(fail(format!("{name}: the step must not be 0")));
            }
            let mut out = Vec::new();
            let mut x = a;
            while (step > 0 && x <= b) || (step < 0 && x >= b) {
                out.push(Value::from(x));
                if out.len() > 1000 {
                    return Err(fail(format!(
                        "{name}: the range would have more than 1000 items"
                    )));
                }
                x += step;
            }
            Ok(Value::Array(out))
        }
        "States.ArrayGetItem" => {
            let arr = want_arr(name, &v[0])?;
            let i = want_int(name, &v[1])?;
            usize::try_from(i)
                .ok()
                .and_then(|i| arr.get(i))
                .cloned()
                .ok_or_else(|| fail(format!("{name}: index {i} is out of bounds")))
        }
        "States.ArrayLength" => Ok(Value::from(want_arr(name, &v[0])?.len())),
        "States.ArrayUnique" => {
            let arr = want_arr(name, &v[0])?;
            let mut out: Vec<Value> = Vec::new();
            for x in arr {
                if !out.iter().any(|y| json_eq(x, y)) {
                    out.push(x.clone());
                }
            }
            Ok(Value::Array(out))
        }
        "States.Base64Encode" => {
            let s = want_str(name, &v[0])?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
            ))
        }
        "States.Base64Decode" => {
            let s = want_str(name, &v[0])?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|e| fail(format!("{name}: invalid base64: {e}")))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| fail(format!("{name}: the decoded data is not UTF-8")))
        }
        "States.Hash" => hash(name, &v[0], &v[1]),
        "States.JsonMerge" => {
            let (Value::Object(a), Value::Object(b)) = (&v[0], &v[1]) else {
                return Err(fail(format!("{name}: both inputs must be JSON objects")));
            };
            let deep = match &v[2] {
                Value::Bool(b) => *b,
                _ => {
                    return Err(fail(format!(
                        "{name}: the third argument must be a boolean"
                    )))
                }
            };
            let mut out = a.clone();
            merge(&mut out, b, deep);
            Ok(Value::Object(out))
        }
        "States.MathRandom" => {
            use rand::{Rng, SeedableRng};
            let (lo, hi) = (want_rounded(name, &v[0])?, want_rounded(name, &v[1])?);
            if lo >= hi {
                return Err(fail(format!(
                    "{name}: the start must be lower than the end"
                )));
            }
            let n = match v.get(2) {
                Some(seed) => {
                    let seed = want_int(name, seed)?;
                    rand::rngs::StdRng::seed_from_u64(seed as u64).random_range(lo..hi)
                }
                None => rand::rng().random_range(lo..hi),
            };
            Ok(Value::from(n))
        }
        "States.MathAdd" => {
            let (a, b) = (want_rounded(name, &v[0])?, want_rounded(name, &v[1])?);
            a.checked_add(b)
                .map(Value::from)
                .ok_or_else(|| fail(format!("{name}: overflow")))
        }
        "States.StringSplit" => {
            let s = want_str(name, &v[0])?;
            let d = want_str(name, &v[1])?;
            // Every character of the delimiter argument separates, and empty pieces are
            // dropped (AWS behaves like a tokenizer here, not like `split`).
            let parts = s
                .split(|c| d.contains(c))
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_string()))
                .collect();
            Ok(Value::Array(parts))
        }
        "States.UUID" => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
        other => Err(fail(format!("unknown intrinsic function '{other}'"))),
    }
}

fn merge(a: &mut Map<String, Value>, b: &Map<String, Value>, deep: bool) {
    for (k, bv) in b {
        match (a.get_mut(k), bv) {
            (Some(Value::Object(ao)), Value::Object(bo)) if deep => merge(ao, bo, deep),
            _ => {
                a.insert(k.clone(), bv.clone());
            }
        }
    }
}

fn format<E>(call: &Call, v: &[Value]) -> R<E> {
    // A literal template keeps its escapes (`\{` is not a placeholder); a template read
    // from a path or variable has none.
    let (raw, escapes) = match call.args.first() {
        Some(Arg::Str { raw, .. }) => (raw.clone(), true),
        _ => match &v[0] {
            Value::String(s) => (s.clone(), false),
            other => {
                return Err(fail(format!(
                    "States.Format: the template must be a string, got {other}"
                )))
            }
        },
    };
    let mut out = String::new();
    let mut next = 1;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if escapes => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                let Some(val) = v.get(next) else {
                    return Err(fail("States.Format: more placeholders than arguments"));
                };
                next += 1;
                out.push_str(&java_string(val));
            }
            c => out.push(c),
        }
    }
    if next != v.len() {
        return Err(fail(
            "States.Format: the number of arguments does not match the placeholders",
        ));
    }
    Ok(Value::String(out))
}

/// Renders a value as AWS's `States.Format` does: strings bare, objects and arrays in
/// Java `Map`/`List` `toString` style (`{a=1, b=[x, y]}`).
pub(crate) fn java_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(java_string).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, x)| format!("{k}={}", java_string(x)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn hash<E>(name: &str, data: &Value, algo: &Value) -> R<E> {
    use sha2::Digest;
    let data = want_str(name, data)?.as_bytes();
    let algo = want_str(name, algo)?;
    let bytes: Vec<u8> = match algo {
        "MD5" => md5::Md5::digest(data).to_vec(),
        "SHA-1" => sha1::Sha1::digest(data).to_vec(),
        "SHA-256" => sha2::Sha256::digest(data).to_vec(),
        "SHA-384" => sha2::Sha384::digest(data).to_vec(),
        "SHA-512" => sha2::Sha512::digest(data).to_vec(),
        other => {
            return Err(fail(format!(
                "{name}: unsupported algorithm '{other}' (MD5, SHA-1, SHA-256, SHA-384, SHA-512)"
            )))
        }
    };
    Ok(Value::String(
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

/// JSON equality with numbers compared by value (1 == 1.0).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn want_str<'a, E>(name: &str, v: &'a Value) -> Result<&'a str, EvalError<E>> {
    v.as_str()
        .ok_or_else(|| fail(format!("{name}: expected a string, got {v}")))
}

fn want_arr<'a, E>(name: &str, v: &'a Value) -> Result<&'a Vec<Value>, EvalError<E>> {
    v.as_array()
        .ok_or_else(|| fail(format!("{name}: expected an array, got {v}")))
}

/// An integer argument of the Math functions: AWS rounds decimals half up, like
/// Java's `Math.round` (1.5 -> 2, -1.5 -> -1).
fn want_rounded<E>(name: &str, v: &Value) -> Result<i64, EvalError<E>> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        Some(f) if f.is_finite() && f.abs() < 9.0e15 => Ok((f + 0.5).floor() as i64),
        _ => Err(fail(format!("{name}: expected a number, got {v}"))),
    }
}

fn want_int<E>(name: &str, v: &Value) -> Result<i64, EvalError<E>> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err(fail(format!("{name}: expected an integer, got {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intrinsics::syntax::parse;
    use serde_json::json;

    fn run(expr: &str, input: Value) -> Value {
        let call = parse(expr).unwrap();
        let r = eval(&call, &|p: &Path| p.read(&input).map_err(|_| ()));
        match r {
            Ok(v) => v,
            Err(_) => panic!("{expr} failed"),
        }
    }

    #[test]
    fn format_and_escapes() {
        assert_eq!(
            run(r"States.Format('a {} \{\} {}', $.x, 3)", json!({"x": "b"})),
            json!("a b {} 3")
        );
    }

    #[test]
    fn nested_calls() {
        assert_eq!(
            run(
                "States.ArrayGetItem(States.StringSplit('a-b-c', '-'), States.MathAdd(States.ArrayLength(States.StringSplit('a-b-c', '-')), -1))",
                json!({})
            ),
            json!("c")
        );
    }

    #[test]
    fn hashes() {
        assert_eq!(
            run("States.Hash('abc', 'SHA-1')", json!({})),
            json!("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            run("States.Hash('', 'MD5')", json!({})),
            json!("d41d8cd98f00b204e9800998ecf8427e")
        );
    }

    #[test]
    fn arrays() {
        assert_eq!(
            run("States.ArrayPartition(States.Array(1,2,3), 2)", json!({})),
            json!([[1, 2], [3]])
        );
        assert_eq!(
            run("States.ArrayRange(1, 9, 3)", json!({})),
            json!([1, 4, 7])
        );
        assert_eq!(
            run("States.ArrayUnique(States.Array(1,1.0,'a','a'))", json!({})),
            json!([1, "a"])
        );
    }
}
