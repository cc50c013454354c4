//! Intrinsic functions (`States.Format(...)` and friends): parser and evaluator.
//!
//! - `syntax`: the parsed form of a call and the parser;
//! - `eval`: evaluating a call, plus the value helpers the functions share.

mod eval;
mod syntax;

pub(crate) use eval::{eval, java_string, json_eq, EvalError};
pub(crate) use syntax::{looks_like_call, parse, Call};
