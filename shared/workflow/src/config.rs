//! Reading a step's configuration from its environment: one style for every
//! step. Each step has a configuration struct with a `from_env()` built from
//! these helpers, read once per cold start; a bad value becomes a named
//! `ConfigurationError` that every invocation answers with (the runtime never
//! crashes on it, so Step Functions sees a name).

use std::{str::FromStr, time::Duration};

use crate::StepError;

/// The variable's value, trimmed; unset and blank are the same.
pub fn var(name: &str) -> Option<String> {
    // (This module's own tests read made-up names.)
    debug_assert!(
        cfg!(test) || crate::vars::known(name),
        "{name} is read but not defined in vars::ALL"
    );
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A variable that must be set; `what` tells the user what to put there.
pub fn required(name: &str, what: &str) -> Result<String, StepError> {
    var(name).ok_or_else(|| StepError::Configuration(format!("set {name} to {what}")))
}

/// A required ARN (`arn:…`); `what` names the resource.
pub fn arn(name: &str, what: &str) -> Result<String, StepError> {
    let v = required(name, &format!("{what}'s ARN"))?;
    if v.starts_with("arn:") {
        Ok(v)
    } else {
        Err(StepError::Configuration(format!(
            "{name} must be {what}'s ARN (arn:…)"
        )))
    }
}

/// A positive whole number of `unit`s, or `default` when unset.
fn positive(
    name: &str,
    default: Duration,
    unit: &str,
    make: fn(u64) -> Duration,
) -> Result<Duration, StepError> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(make)
            .ok_or_else(|| {
                StepError::Configuration(format!("{name} must be a positive number of {unit}"))
            }),
    }
}

/// A positive number of seconds.
pub fn seconds(name: &str, default: Duration) -> Result<Duration, StepError> {
    positive(name, default, "seconds", Duration::from_secs)
}

/// A positive number of milliseconds.
pub fn millis(name: &str, default: Duration) -> Result<Duration, StepError> {
    positive(name, default, "milliseconds", Duration::from_millis)
}

/// `true` or `false`.
pub fn flag(name: &str, default: bool) -> Result<bool, StepError> {
    match var(name).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(StepError::Configuration(format!(
            "{name} must be true or false"
        ))),
    }
}

/// A whole number from 1 to `max`, or `default` when unset.
pub fn number(name: &str, default: u64, max: u64) -> Result<u64, StepError> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                StepError::Configuration(format!("{name} must be a whole number from 1 to {max}"))
            }),
    }
}

/// The table-mapping JSON from `TABLE_MAPPINGS` (the text) or
/// `TABLE_MAPPINGS_FILE` (a path); `None` when neither is set.
pub fn table_mappings() -> Result<Option<String>, StepError> {
    if let Some(text) = var(crate::vars::TABLE_MAPPINGS) {
        return Ok(Some(text));
    }
    match var(crate::vars::TABLE_MAPPINGS_FILE) {
        Some(path) => std::fs::read_to_string(&path).map(Some).map_err(|e| {
            StepError::Configuration(format!("cannot read TABLE_MAPPINGS_FILE {path}: {e}"))
        }),
        None => Ok(None),
    }
}

/// How staging is loaded (`COPY_ENGINE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyEngine {
    /// A DMS task or serverless config; the local replicator in local runs.
    #[default]
    Dms,
    /// The copy-piece Lambdas: a plan, then workers copying pieces, masks applied in flight.
    Lambda,
}

impl FromStr for CopyEngine {
    type Err = StepError;
    fn from_str(s: &str) -> Result<Self, StepError> {
        match s {
            "dms" => Ok(Self::Dms),
            "lambda" => Ok(Self::Lambda),
            other => Err(StepError::Configuration(format!(
                "COPY_ENGINE must be dms or lambda, not {other:?}"
            ))),
        }
    }
}

impl CopyEngine {
    /// The value `COPY_ENGINE` and the definition's `${CopyEngine}` take.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dms => "dms",
            Self::Lambda => "lambda",
        }
    }

    /// `COPY_ENGINE`, `dms` when unset.
    pub fn from_env() -> Result<Self, StepError> {
        Ok(parsed(crate::vars::COPY_ENGINE)?.unwrap_or_default())
    }
}

/// A value parsed by its type (whose error already names what is allowed).
pub fn parsed<T>(name: &str) -> Result<Option<T>, StepError>
where
    T: FromStr<Err = StepError>,
{
    var(name).map(|v| v.parse()).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test uses its own variable names: tests run in parallel threads.
    #[test]
    fn values_defaults_and_errors() {
        std::env::set_var("DBSYNC_CFG_T1", " 42 ");
        std::env::set_var("DBSYNC_CFG_T2", "0");
        std::env::set_var("DBSYNC_CFG_T3", "  ");
        std::env::set_var("DBSYNC_CFG_T4", "task");
        let d = Duration::from_secs(7);
        assert_eq!(
            seconds("DBSYNC_CFG_T1", d).unwrap(),
            Duration::from_secs(42)
        );
        assert_eq!(
            millis("DBSYNC_CFG_T1", d).unwrap(),
            Duration::from_millis(42)
        );
        let e = seconds("DBSYNC_CFG_T2", d).unwrap_err();
        assert_eq!(e.name(), "ConfigurationError");
        assert!(e.to_string().contains("DBSYNC_CFG_T2"), "{e}");
        assert_eq!(seconds("DBSYNC_CFG_T3", d).unwrap(), d, "blank is unset");
        assert_eq!(var("DBSYNC_CFG_T3"), None);
        assert!(required("DBSYNC_CFG_UNSET", "x").is_err());
        let e = arn("DBSYNC_CFG_T4", "the DMS task").unwrap_err();
        assert!(e.to_string().contains("the DMS task's ARN"), "{e}");
        assert!(flag("DBSYNC_CFG_T1", false).is_err());
        assert!(!flag("DBSYNC_CFG_UNSET", false).unwrap());
    }
}
