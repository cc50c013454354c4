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
//! Output: [`TriggerOutput`]. Configuration: see [`sfn`] (`STATE_MACHINE_ARN`).

use std::{
    fmt,
    future::Future,
    time::{SystemTime, UNIX_EPOCH},
};

use dbsync_workflow::{io::parse_input, StepError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(feature = "aws")]
pub mod sfn;

/// What starting an execution did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Started {
        execution_arn: String,
    },
    /// The name is taken (by a running or a finished execution).
    AlreadyExists,
}

/// Something that can list running executions and start one (a state machine).
pub trait Executions: Send + Sync {
    /// Names of the executions currently running.
    fn running(&self) -> impl Future<Output = Result<Vec<String>, StepError>> + Send;
    fn start(
        &self,
        name: &str,
        input: &str,
    ) -> impl Future<Output = Result<Start, StepError>> + Send;
}

/// An instant in UTC, to the second (what execution names and inputs carry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl UtcTime {
    /// EventBridge's `time`: `2026-01-01T08:00:00Z` (fractional seconds dropped).
    pub fn parse(s: &str) -> Result<Self, StepError> {
        let bad = || {
            StepError::InvalidInput(format!(
                "time {:?} is not a UTC timestamp like 2026-01-01T08:00:00Z",
                s.chars().take(40).collect::<String>()
            ))
        };
        let b = s.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(bad());
        }
        let tail = &s[19..];
        let fraction_ok = match tail.strip_prefix('.') {
            Some(f) => f
                .strip_suffix('Z')
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())),
            None => tail == "Z",
        };
        let num = |r: std::ops::Range<usize>| -> Result<u32, StepError> {
            let part = &s[r];
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let t = UtcTime {
            year: i64::from(num(0..4)?),
            month: num(5..7)?,
            day: num(8..10)?,
            hour: num(11..13)?,
            minute: num(14..16)?,
            second: num(17..19)?,
        };
        let valid = fraction_ok
            && (1..=12).contains(&t.month)
            && (1..=days_in_month(t.year, t.month)).contains(&t.day)
            && t.hour < 24
            && t.minute < 60
            && t.second < 60;
        if valid {
            Ok(t)
        } else {
            Err(bad())
        }
    }

    pub fn from_system_time(t: SystemTime) -> Self {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0) as i64;
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        UtcTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// `20260101T080000Z`: sortable, and free of the `:` execution names may not contain.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The execution name for a sync at `time`.
pub fn execution_name(time: &UtcTime) -> String {
    format!("sync-{}", time.compact())
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
        Some(t) => UtcTime::parse(t)?,
        None => UtcTime::from_system_time(now),
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

    let payload = serde_json::json!({ "source": source, "time": time.to_string() }).to_string();
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
    use std::time::Duration;

    #[test]
    fn times_and_names() {
        let t = UtcTime::parse("2026-01-01T08:00:00Z").unwrap();
        assert_eq!(execution_name(&t), "sync-20260101T080000Z");
        assert_eq!(t.to_string(), "2026-01-01T08:00:00Z");
        assert_eq!(
            UtcTime::parse("2024-02-29T23:59:59.123Z")
                .unwrap()
                .compact(),
            "20240229T235959Z"
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
            assert_eq!(
                UtcTime::parse(bad).unwrap_err().name(),
                "InvalidInput",
                "{bad}"
            );
        }
        let epoch = UNIX_EPOCH + Duration::from_secs(1_767_225_600 + 8 * 3600 + 61);
        assert_eq!(
            UtcTime::from_system_time(epoch).to_string(),
            "2026-01-01T08:01:01Z"
        );
        assert_eq!(
            UtcTime::from_system_time(UNIX_EPOCH + Duration::from_secs(951_782_400)).to_string(),
            "2000-02-29T00:00:00Z"
        );
        // Every name is a valid Step Functions execution name.
        let n = execution_name(&UtcTime::from_system_time(SystemTime::now()));
        assert!(n.len() <= 80 && !n.contains(':') && !n.contains(' '), "{n}");
    }
}
