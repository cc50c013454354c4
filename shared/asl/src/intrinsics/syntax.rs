//! The syntax of intrinsic calls: the parsed form ([`Call`], [`Arg`]), the known
//! functions with their argument counts, and the parser.

use crate::path::Path;
use serde_json::{Number, Value};

/// One argument of an intrinsic call.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// A string literal; `raw` keeps the escapes so `States.Format` can tell an escaped
    /// `\{` from a placeholder.
    Str {
        value: String,
        raw: String,
    },
    Lit(Value),
    Path(Path),
    Call(Call),
}

#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub name: String,
    pub args: Vec<Arg>,
}

const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("States.Format", 1, usize::MAX),
    ("States.StringToJson", 1, 1),
    ("States.JsonToString", 1, 1),
    ("States.Array", 0, usize::MAX),
    ("States.ArrayPartition", 2, 2),
    ("States.ArrayContains", 2, 2),
    ("States.ArrayRange", 3, 3),
    ("States.ArrayGetItem", 2, 2),
    ("States.ArrayLength", 1, 1),
    ("States.ArrayUnique", 1, 1),
    ("States.Base64Encode", 1, 1),
    ("States.Base64Decode", 1, 1),
    ("States.Hash", 2, 2),
    ("States.JsonMerge", 3, 3),
    ("States.MathRandom", 2, 3),
    ("States.MathAdd", 2, 2),
    ("States.StringSplit", 2, 2),
    ("States.UUID", 0, 0),
];

/// Whether a string looks like an intrinsic call (so it is parsed as one).
pub(crate) fn looks_like_call(s: &str) -> bool {
    s.starts_with("States.") && s.contains('(')
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.i += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn call(&mut self) -> Result<Call, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.')
        {
            self.i += 1;
        }
        let name = self.s[start..self.i].to_string();
        let Some(&(_, min, max)) = FUNCTIONS.iter().find(|f| f.0 == name) else {
            return Err(format!("unknown intrinsic function '{name}'"));
        };
        self.skip_ws();
        if !self.eat('(') {
            return Err(format!("expected '(' after '{name}'"));
        }
        let mut args = Vec::new();
        self.skip_ws();
        if !self.eat(')') {
            loop {
                self.skip_ws();
                args.push(self.arg()?);
                self.skip_ws();
                if self.eat(')') {
                    break;
                }
                if !self.eat(',') {
                    return Err(format!("expected ',' or ')' in arguments of '{name}'"));
                }
            }
        }
        if args.len() < min || args.len() > max {
            return Err(format!(
                "'{name}' takes {} argument(s), {} given",
                if min == max {
                    min.to_string()
                } else if max == usize::MAX {
                    format!("at least {min}")
                } else {
                    format!("{min} to {max}")
                },
                args.len()
            ));
        }
        Ok(Call { name, args })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        let rest = &self.s[self.i..];
        if rest.starts_with('\'') {
            return self.string();
        }
        if rest.starts_with('$') {
            // A path runs to the next ',' or ')' outside brackets and quotes.
            let mut depth = 0;
            let mut quote = None;
            let mut end = rest.len();
            for (k, c) in rest.char_indices() {
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, '\'' | '"') => quote = Some(c),
                    (None, '[' | '(') => depth += 1,
                    (None, ']') => depth -= 1,
                    (None, ')') if depth > 0 => depth -= 1,
                    (None, ',' | ')') if depth == 0 => {
                        end = k;
                        break;
                    }
                    _ => {}
                }
            }
            let raw = rest[..end].trim_end();
            self.i += end;
            return Ok(Arg::Path(Path::parse(raw)?));
        }
        if rest.starts_with("States.") {
            return Ok(Arg::Call(self.call()?));
        }
        let end = rest.find([',', ')']).unwrap_or(rest.len());
        let tok = rest[..end].trim();
        self.i += end;
        match tok {
            "true" => Ok(Arg::Lit(Value::Bool(true))),
            "false" => Ok(Arg::Lit(Value::Bool(false))),
            "null" => Ok(Arg::Lit(Value::Null)),
            _ => serde_json::from_str::<Number>(tok)
                .map(|n| Arg::Lit(Value::Number(n)))
                .map_err(|_| format!("invalid argument '{tok}'")),
        }
    }

    fn string(&mut self) -> Result<Arg, String> {
        self.i += 1;
        let start = self.i;
        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err("unterminated string literal".into());
            };
            self.i += c.len_utf8();
            match c {
                '\\' => {
                    let Some(n) = self.peek() else {
                        return Err("unterminated string literal".into());
                    };
                    self.i += n.len_utf8();
                    value.push(n);
                }
                '\'' => break,
                c => value.push(c),
            }
        }
        Ok(Arg::Str {
            value,
            raw: self.s[start..self.i - 1].to_string(),
        })
    }
}

/// Parses a whole intrinsic expression such as `States.Format('{}', $.a)`.
pub(crate) fn parse(s: &str) -> Result<Call, String> {
    let mut p = Parser { s, i: 0 };
    let c = p.call()?;
    p.skip_ws();
    if p.i != s.len() {
        return Err(format!("unexpected text after the call: '{}'", &s[p.i..]));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_calls_are_rejected() {
        assert!(parse("States.Nope(1)").is_err());
        assert!(parse("States.UUID(1)").is_err());
        assert!(parse("States.Format('x'").is_err());
    }
}
