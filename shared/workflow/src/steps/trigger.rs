//! `trigger`: starts a sync when the schedule fires (EventBridge scheduled
//! event) or by hand (`{}`).
//!
//! - The execution name comes from the event's `time` (`sync-20260101T080000Z`;
//!   a manual `{}` uses the current time, to the second). Step Functions keeps
//!   names unique for 90 days, so a second delivery of the same event cannot
//!   start a second run: `ExecutionAlreadyExists` is reported as a duplicate
//!   delivery (success, nothing started).
//! - When an execution is already running, nothing is started either (two
//!   syncs at once would fight over the target); the output says which.
//! - The execution's input is small: `{"source": …, "time": …}`.
//!
//! Output: [`TriggerOutput`]. Configuration: [`TriggerConfig`].

use std::time::SystemTime;

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    config,
    io::parse_input,
    ports::{Executions, Start},
    StepError,
};

/// The trigger's configuration.
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `STATE_MACHINE_ARN` | the sync state machine | required |
///
/// Plus the SDK's own variables (`AWS_REGION`, `AWS_ENDPOINT_URL`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerConfig {
    pub state_machine_arn: String,
}

impl TriggerConfig {
    pub fn from_env() -> Result<Self, StepError> {
        Ok(Self {
            state_machine_arn: config::arn(
                crate::vars::STATE_MACHINE_ARN,
                "the sync state machine",
            )?,
        })
    }
}

/// EventBridge's `time`: `2026-01-01T08:00:00Z`, to the second (fractional
/// seconds dropped). Only UTC with `Z` is accepted: names must not depend on
/// how an offset was written.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, StepError> {
    let bad = || {
        StepError::InvalidInput(format!(
            "time {:?} is not a UTC timestamp like 2026-01-01T08:00:00Z",
            s.chars().take(40).collect::<String>()
        ))
    };
    // chrono's %Y also reads signed and short years; EventBridge writes four digits.
    if !s
        .get(..4)
        .is_some_and(|y| y.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.fZ").map_err(|_| bad())?;
    Ok(t.and_utc()
        .with_nanosecond(0)
        .expect("zero nanoseconds is valid"))
}

/// `2026-01-01T08:00:00Z`, what execution inputs carry.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The execution name for a sync at `time`.
/// `sync-20260101T080000Z`: sortable, and free of the `:` execution names may not contain.
pub fn execution_name(time: &DateTime<Utc>) -> String {
    format!("sync-{}", time.format("%Y%m%dT%H%M%SZ"))
}

/// The parts of a scheduled event (or a hand-made object) the trigger reads.
#[derive(Debug, Default, Deserialize)]
struct TriggerInput {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    time: Option<String>,
}

/// What the trigger did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Started,
    /// The same event was delivered before: its execution exists.
    DuplicateDelivery,
    /// Another execution is running: nothing started.
    AlreadyRunning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerOutput {
    pub outcome: Outcome,
    pub started: bool,
    pub execution_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    /// Executions found running (at most a few).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub running: Vec<String>,
    pub message: String,
}

pub async fn handle(
    machine: &impl Executions,
    event: Value,
    now: SystemTime,
) -> Result<TriggerOutput, StepError> {
    let input: TriggerInput = parse_input(event)?;
    let time = match &input.time {
        Some(t) => parse_time(t)?,
        None => DateTime::<Utc>::from(now)
            .with_nanosecond(0)
            .expect("zero nanoseconds is valid"),
    };
    let source: String = input
        .source
        .as_deref()
        .unwrap_or("manual")
        .chars()
        .take(100)
        .collect();
    let name = execution_name(&time);
    let out = |outcome, execution_arn, running, message| TriggerOutput {
        outcome,
        started: outcome == Outcome::Started,
        execution_name: name.clone(),
        execution_arn,
        running,
        message,
    };

    let running = machine.running().await?;
    if running.contains(&name) {
        return Ok(out(
            Outcome::DuplicateDelivery,
            None,
            running,
            format!("{name} is already running: a duplicate delivery of the same event; nothing started"),
        ));
    }
    if let Some(other) = running.first() {
        let message = format!("{other} is still running; not starting another sync (the next schedule will try again)");
        tracing::warn!(execution = %name, running = %other, "skipped: a sync is running");
        return Ok(out(Outcome::AlreadyRunning, None, running, message));
    }

    let payload = serde_json::json!({ "source": source, "time": format_time(&time) }).to_string();
    match machine.start(&name, &payload).await? {
        Start::Started { execution_arn } => {
            tracing::info!(execution = %name, source = %source, "sync started");
            Ok(out(Outcome::Started, Some(execution_arn), Vec::new(), format!("started {name}")))
        }
        Start::AlreadyExists => Ok(out(
            Outcome::DuplicateDelivery,
            None,
            Vec::new(),
            format!("an execution named {name} exists already: a duplicate delivery of the same event; nothing started"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_and_names() {
        let t = parse_time("2026-01-01T08:00:00Z").unwrap();
        assert_eq!(execution_name(&t), "sync-20260101T080000Z");
        assert_eq!(format_time(&t), "2026-01-01T08:00:00Z");
        assert_eq!(
            execution_name(&parse_time("2024-02-29T23:59:59.123Z").unwrap()),
            "sync-20240229T235959Z"
        );
        for bad in [
            "",
            "2026-01-01",
            "2026-01-01T08:00:00",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T08:00:00+01:00",
            "2026-01-01T08:00:00.Z",
            "+026-01-01T08:00:00Z",
        ] {
            assert_eq!(parse_time(bad).unwrap_err().name(), "InvalidInput", "{bad}");
        }
        let at = |secs| DateTime::<Utc>::from(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(
            format_time(&at(1_767_225_600 + 8 * 3600 + 61)),
            "2026-01-01T08:01:01Z"
        );
        assert_eq!(format_time(&at(951_782_400)), "2000-02-29T00:00:00Z");
        // Every name is a valid Step Functions execution name.
        let n = execution_name(&DateTime::<Utc>::from(SystemTime::now()));
        assert!(n.len() <= 80 && !n.contains(':') && !n.contains(' '), "{n}");
    }
}
