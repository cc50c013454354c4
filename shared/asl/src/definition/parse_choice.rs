//! Choice states: `Choices` (each a rule with `Next` and optional `Assign`) and
//! `Default`; rules nest through `And`, `Or` and `Not` down to comparisons of a
//! `Variable` with a literal or, for the `…Path` operators, another path.

use super::model::{ChoiceBranch, Comparable, Comparison, Kind, Op, Operand, Relation, Rule};
use super::parser::{loc, Cx};
use crate::path::Path;
use serde_json::{Map, Value};

impl Cx {
    pub(super) fn choice(&mut self, name: &str, o: &Map<String, Value>) -> Kind {
        let default = match o.get("Default") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(format!("{}: must be a string", loc(name, "Default")));
                None
            }
        };
        let mut choices = Vec::new();
        match o.get("Choices") {
            Some(Value::Array(cs)) if !cs.is_empty() => {
                for (i, c) in cs.iter().enumerate() {
                    let at = format!("State '{name}', field Choices[{i}]");
                    let Some(co) = c.as_object() else {
                        self.err(format!("{at}: must be an object"));
                        continue;
                    };
                    let next = match co.get("Next") {
                        Some(Value::String(n)) => n.clone(),
                        _ => {
                            self.err(format!("{at}: a top-level choice rule needs 'Next'"));
                            String::new()
                        }
                    };
                    let assign = if co.contains_key("Assign") {
                        self.template(name, co, "Assign")
                    } else {
                        None
                    };
                    if let Some(rule) = self.rule(&at, co, true) {
                        choices.push(ChoiceBranch { rule, next, assign });
                    }
                }
            }
            _ => self.err(format!(
                "{}: required, a non-empty array of choice rules",
                loc(name, "Choices")
            )),
        }
        Kind::Choice { choices, default }
    }

    fn rule(&mut self, at: &str, o: &Map<String, Value>, top: bool) -> Option<Rule> {
        let mut extra = vec!["Comment"];
        if top {
            extra.extend(["Next", "Assign"]);
        } else if o.contains_key("Next") {
            self.err(format!(
                "{at}: 'Next' is only allowed on top-level choice rules"
            ));
        }
        let ops: Vec<&String> = o
            .keys()
            .filter(|k| !extra.contains(&k.as_str()) && *k != "Variable")
            .collect();
        if ops.len() != 1 {
            self.err(format!(
                "{at}: a choice rule needs exactly one comparison or And/Or/Not, found {}",
                if ops.is_empty() {
                    "none".to_string()
                } else {
                    ops.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
            return None;
        }
        let op = ops[0].as_str();
        let arg = &o[op];
        match op {
            "And" | "Or" => {
                if o.contains_key("Variable") {
                    self.err(format!("{at}: '{op}' cannot have a 'Variable'"));
                }
                let Some(items) = arg.as_array().filter(|a| !a.is_empty()) else {
                    self.err(format!("{at}.{op}: must be a non-empty array of rules"));
                    return None;
                };
                let mut rules = Vec::new();
                for (i, r) in items.iter().enumerate() {
                    let sub = format!("{at}.{op}[{i}]");
                    match r.as_object() {
                        Some(ro) => rules.extend(self.rule(&sub, ro, false)),
                        None => self.err(format!("{sub}: must be an object")),
                    }
                }
                Some(if op == "And" {
                    Rule::And(rules)
                } else {
                    Rule::Or(rules)
                })
            }
            "Not" => {
                let Some(ro) = arg.as_object() else {
                    self.err(format!("{at}.Not: must be an object"));
                    return None;
                };
                Some(Rule::Not(Box::new(self.rule(
                    &format!("{at}.Not"),
                    ro,
                    false,
                )?)))
            }
            _ => {
                let Some(var) = o.get("Variable") else {
                    self.err(format!("{at}: comparison '{op}' needs a 'Variable'"));
                    return None;
                };
                let Some(var) = var.as_str() else {
                    self.err(format!("{at}.Variable: must be a string path"));
                    return None;
                };
                let variable = match Path::parse(var) {
                    Ok(p) => p,
                    Err(e) => {
                        self.err(format!("{at}.Variable: {e}"));
                        return None;
                    }
                };
                let base = op.strip_suffix("Path").unwrap_or(op);
                let is_path = base != op;
                let Some(cmp_op) = parse_op(base) else {
                    self.err(format!("{at}: unknown comparison operator '{op}'"));
                    return None;
                };
                if is_path && !has_path_form(cmp_op) {
                    self.err(format!("{at}: unknown comparison operator '{op}'"));
                    return None;
                }
                let operand = if is_path {
                    match arg.as_str().map(Path::parse) {
                        Some(Ok(p)) => Operand::Path(p),
                        Some(Err(e)) => {
                            self.err(format!("{at}.{op}: {e}"));
                            return None;
                        }
                        None => {
                            self.err(format!("{at}.{op}: must be a path string"));
                            return None;
                        }
                    }
                } else {
                    let expect = literal_type(cmp_op);
                    let ok = match expect {
                        "string" => arg.is_string(),
                        "number" => arg.is_number(),
                        _ => arg.is_boolean(),
                    };
                    if !ok {
                        self.err(format!("{at}.{op}: must be a {expect}, got {arg}"));
                        return None;
                    }
                    if matches!(cmp_op, Op::Compare(Comparable::Timestamp, _))
                        && crate::time::parse_timestamp(arg.as_str().unwrap_or_default()).is_none()
                    {
                        self.err(format!("{at}.{op}: {arg} is not an ISO-8601 timestamp"));
                        return None;
                    }
                    Operand::Lit(arg.clone())
                };
                Some(Rule::Cmp(Box::new(Comparison {
                    variable,
                    op: cmp_op,
                    operand,
                })))
            }
        }
    }
}

/// Every comparison operator by name (without the `Path` suffix).
const OPERATORS: &[(&str, Op)] = &[
    ("IsPresent", Op::IsPresent),
    ("IsNull", Op::IsNull),
    ("IsNumeric", Op::IsNumeric),
    ("IsString", Op::IsString),
    ("IsBoolean", Op::IsBoolean),
    ("IsTimestamp", Op::IsTimestamp),
    ("BooleanEquals", Op::BooleanEquals),
    ("StringMatches", Op::StringMatches),
    (
        "StringEquals",
        Op::Compare(Comparable::String, Relation::Equals),
    ),
    (
        "StringLessThan",
        Op::Compare(Comparable::String, Relation::LessThan),
    ),
    (
        "StringGreaterThan",
        Op::Compare(Comparable::String, Relation::GreaterThan),
    ),
    (
        "StringLessThanEquals",
        Op::Compare(Comparable::String, Relation::LessThanEquals),
    ),
    (
        "StringGreaterThanEquals",
        Op::Compare(Comparable::String, Relation::GreaterThanEquals),
    ),
    (
        "NumericEquals",
        Op::Compare(Comparable::Numeric, Relation::Equals),
    ),
    (
        "NumericLessThan",
        Op::Compare(Comparable::Numeric, Relation::LessThan),
    ),
    (
        "NumericGreaterThan",
        Op::Compare(Comparable::Numeric, Relation::GreaterThan),
    ),
    (
        "NumericLessThanEquals",
        Op::Compare(Comparable::Numeric, Relation::LessThanEquals),
    ),
    (
        "NumericGreaterThanEquals",
        Op::Compare(Comparable::Numeric, Relation::GreaterThanEquals),
    ),
    (
        "TimestampEquals",
        Op::Compare(Comparable::Timestamp, Relation::Equals),
    ),
    (
        "TimestampLessThan",
        Op::Compare(Comparable::Timestamp, Relation::LessThan),
    ),
    (
        "TimestampGreaterThan",
        Op::Compare(Comparable::Timestamp, Relation::GreaterThan),
    ),
    (
        "TimestampLessThanEquals",
        Op::Compare(Comparable::Timestamp, Relation::LessThanEquals),
    ),
    (
        "TimestampGreaterThanEquals",
        Op::Compare(Comparable::Timestamp, Relation::GreaterThanEquals),
    ),
];

/// The operator named `name` (a comparison key without its `Path` suffix).
fn parse_op(name: &str) -> Option<Op> {
    OPERATORS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, op)| op)
}

/// Whether `op` also has a `…Path` form (the type tests and `StringMatches` do not).
fn has_path_form(op: Op) -> bool {
    matches!(op, Op::BooleanEquals | Op::Compare(..))
}

/// What a literal operand of `op` must be: "string", "number" or "boolean".
fn literal_type(op: Op) -> &'static str {
    match op {
        Op::StringMatches | Op::Compare(Comparable::String | Comparable::Timestamp, _) => "string",
        Op::Compare(Comparable::Numeric, _) => "number",
        Op::BooleanEquals
        | Op::IsPresent
        | Op::IsNull
        | Op::IsNumeric
        | Op::IsString
        | Op::IsBoolean
        | Op::IsTimestamp => "boolean",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_parse_by_name() {
        assert_eq!(parse_op("IsPresent"), Some(Op::IsPresent));
        assert_eq!(
            parse_op("NumericLessThanEquals"),
            Some(Op::Compare(Comparable::Numeric, Relation::LessThanEquals))
        );
        assert_eq!(parse_op("TimestampMatches"), None);
        assert_eq!(parse_op("StringEqualsPath"), None);
        assert_eq!(OPERATORS.len(), 23);
    }
}
