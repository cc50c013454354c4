//! `poll-dms`: reports where the DMS full load stands and how long the state
//! machine should wait before asking again.
//!
//! Input: any object; `replication` (the previous [`ReplicationOutput`]) carries
//! the run's start time and poll count from one poll to the next. Output: a
//! [`ReplicationOutput`] with `status` `running` (then `waitSeconds`) or
//! `succeeded`. Success is `stopped` with `Stop Reason FULL_LOAD_ONLY_FINISHED`,
//! no table errored and no failure message; any other end is
//! `ReplicationFailed` (the state machine compensates). Past
//! `MAX_REPLICATION_SECONDS` the task is stopped and the step fails with
//! `ReplicationTimedOut`.
//!
//! Configuration: [`ReplicationConfig`](super::replication::ReplicationConfig).
//!
//!
//! Each poll costs three state transitions (Wait, Task, Choice); [`next_wait`]
//! keeps a whole execution near 40 transitions for loads up to 8 hours while
//! noticing the end within about 5% of the load's duration — provided
//! `POLL_MAX_SECONDS` lets it (with 1800, an 8-hour load needs 16+ polls).

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{
    replication::{epoch_seconds, output, PollConfig, RunInfo},
    start_dms::run_is_since,
};
use crate::{
    io::{execution_start, parse_input, PollInput, PollMode, ReplicationOutput, ReplicationStatus},
    ports::{DescribeTask, StopTask, TaskState, TaskStatus, FULL_LOAD_FINISHED},
    StepError,
};

/// One reading of DMS's (integer) `FullLoadProgressPercent` while running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Time since the run started.
    pub elapsed: Duration,
    pub percent: i32,
}

/// How long to wait before the next poll, from the current reading (if DMS
/// reports progress yet) and the previous poll's reading.
///
/// - No progress yet (DMS starting, or under 1% of a long load): wait twice
///   the time the load has run, so short loads are seen quickly and long ones
///   reach a usable percentage in a few polls.
/// - Progress, previous reading too: a percentage `p` means a true fraction
///   in `[p, p+1)`, so the fastest rate consistent with both readings is
///   `(p + 1 − p₀) / (t − t₀)` and the load ends no earlier than
///   `(99 − p) / rate` from now. The estimate from the run's start is also an
///   upper bound on that (DMS's start-up time makes it pessimistic); the
///   smaller wins. Wait until that earliest end plus 2% of the expected total:
///   a steady load is seen within ~2–3% of its duration; an optimistic
///   estimate costs one more poll, never a late detection.
/// - Progress, no usable previous reading: the rate is unknown (start-up time
///   is mixed in), so wait at most the time run so far, to get a second reading.
/// - At 100% (DMS finishing up): the minimum.
///
/// Bounded by `min_wait`/`max_wait`, and never past the time limit by more
/// than a second (so the poll after the limit stops the task).
pub fn next_wait(
    current: Option<Reading>,
    previous: Option<Reading>,
    elapsed: Duration,
    config: &PollConfig,
) -> Duration {
    let t = elapsed.as_secs_f64().max(1.0);
    let raw = match current {
        Some(r) if r.percent >= 100 => 0.0,
        Some(r) if r.percent >= 0 => {
            let p = f64::from(r.percent);
            let from_start = t * 100.0 / (p + 1.0) - t;
            let from_previous = previous
                .filter(|q| q.percent <= r.percent && q.elapsed < elapsed)
                .map(|q| {
                    let rate = (p + 1.0 - f64::from(q.percent)) / (t - q.elapsed.as_secs_f64());
                    (99.0 - p).max(0.0) / rate
                });
            match from_previous {
                Some(rp) => {
                    let remaining = rp.min(from_start).max(0.0);
                    remaining + 0.02 * (t + remaining)
                }
                None => from_start.max(0.0).min(t),
            }
        }
        _ => 2.0 * t,
    };
    let wait = Duration::from_secs_f64(raw.ceil()).clamp(config.min_wait, config.max_wait);
    let left = config.max_duration.saturating_sub(elapsed) + Duration::from_secs(1);
    wait.min(left).max(Duration::from_secs(1))
}

/// The longest wait while DMS Serverless provisions (it takes minutes to tens
/// of minutes): the load is noticed at most this long after it begins.
pub const PROVISIONING_MAX_WAIT: Duration = Duration::from_secs(300);

/// While provisioning: half the time spent so far, between the minimum wait
/// and [`PROVISIONING_MAX_WAIT`], never past the time limit. A 30-minute
/// provisioning costs about a dozen polls.
pub fn provisioning_wait(elapsed: Duration, config: &PollConfig) -> Duration {
    let left = config.max_duration.saturating_sub(elapsed) + Duration::from_secs(1);
    (elapsed / 2)
        .clamp(config.min_wait, PROVISIONING_MAX_WAIT.max(config.min_wait))
        .min(config.max_wait)
        .min(left)
        .max(Duration::from_secs(1))
}

/// Why a stopped or failed task did not succeed, for the execution's `Cause`.
fn failure_reason(state: &TaskState) -> String {
    let mut parts = vec![format!("the task is {}", state.status)];
    if let Some(r) = &state.stop_reason {
        parts.push(r.clone());
    }
    if state.tables_errored > 0 {
        parts.push(format!("{} table(s) errored", state.tables_errored));
    }
    if !state.failed_tables.is_empty() {
        const SHOWN: usize = 10;
        let mut t = state
            .failed_tables
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if state.failed_tables.len() > SHOWN {
            t.push_str(&format!(" and {} more", state.failed_tables.len() - SHOWN));
        }
        parts.push(format!("failed tables: {t}"));
    }
    if let Some(m) = &state.last_failure_message {
        parts.push(format!("last failure: {m}"));
    }
    parts.push("see the task's CloudWatch logs and table statistics, fix the cause, and run the sync again".into());
    parts.join("; ")
}

/// How long after the execution started a task may still show its previous
/// run before the start counts as lost (DMS shows `starting` within seconds).
const START_GRACE: Duration = Duration::from_secs(120);

/// Stop mode: at most this many polls (about half an hour at the usual wait)
/// before giving up with `ReplicationStillRunning`.
pub const MAX_STOP_POLLS: u32 = 60;

/// One poll, at the current time.
pub async fn handle(
    task: &(impl DescribeTask + StopTask),
    task_arn: &str,
    config: &PollConfig,
    event: Value,
) -> Result<ReplicationOutput, StepError> {
    handle_at(task, task_arn, config, event, SystemTime::now()).await
}

pub async fn handle_at(
    task: &(impl DescribeTask + StopTask),
    task_arn: &str,
    config: &PollConfig,
    event: Value,
    now: SystemTime,
) -> Result<ReplicationOutput, StepError> {
    let input: PollInput = parse_input(event)?;
    let since = execution_start(input.execution_start_time.as_deref())?;
    let prev = input.replication.unwrap_or_default();
    let state = task.describe(task_arn).await?;
    let started_at = prev
        .started_at
        .or(state.started_at.map(epoch_seconds))
        .unwrap_or_else(|| epoch_seconds(now));
    let elapsed = Duration::from_secs(epoch_seconds(now).saturating_sub(started_at));
    // The load's own clock, when DMS says when it began (within this run).
    let load_elapsed = state
        .load_started_at
        .and_then(|t| now.duration_since(t).ok())
        .filter(|d| *d <= elapsed && state.status == TaskStatus::Running);
    let polls = prev.polls.unwrap_or(0).saturating_add(1);
    let span = tracing::info_span!("poll", task = task_arn, status = %state.status, polls, elapsed = elapsed.as_secs());
    let _enter = span.enter();
    let run = RunInfo {
        task_arn: task_arn.to_owned(),
        start_kind: prev.start_kind.clone(),
        started_at,
        elapsed,
        load_elapsed,
        polls,
    };
    // A run that began before this execution is not this execution's load;
    // once a poll has seen ours, it stays ours.
    let ours = prev.run_seen || since.is_none() || run_is_since(&state, since);
    let out = |status, wait| ReplicationOutput {
        run_seen: ours,
        ..output(&run, &state, status, wait)
    };

    if input.mode == PollMode::Stop {
        return match &state.status {
            TaskStatus::Starting | TaskStatus::Running | TaskStatus::Stopping => {
                if polls > MAX_STOP_POLLS {
                    return Err(StepError::ReplicationStillRunning(state.status.to_string()));
                }
                if state.status != TaskStatus::Stopping {
                    task.stop(task_arn).await?;
                }
                tracing::info!("waiting for the task to stop before restoring foreign keys");
                Ok(out(
                    ReplicationStatus::Stopping,
                    config
                        .min_wait
                        .clamp(Duration::from_secs(5), Duration::from_secs(60)),
                ))
            }
            // Not writing: stopped, failed, ready, or being changed by someone.
            _ => Ok(out(ReplicationStatus::Stopped, Duration::ZERO)),
        };
    }

    let since_execution = since
        .and_then(|t0| now.duration_since(t0).ok())
        .unwrap_or_default();
    match &state.status {
        TaskStatus::Stopped | TaskStatus::Failed | TaskStatus::Ready if !ours => {
            if since_execution < START_GRACE {
                return Ok(out(ReplicationStatus::Running, config.min_wait));
            }
            Err(StepError::ReplicationFailed(format!(
                "the task is {} and its last run began before this execution started: this execution's start did not take effect; check the task in the DMS console and run the sync again",
                state.status
            )))
        }
        TaskStatus::Stopped
            if state.stop_reason.as_deref() == Some(FULL_LOAD_FINISHED)
                && state.tables_errored == 0
                && state.failed_tables.is_empty() =>
        {
            tracing::info!(tables = state.tables_loaded, rows = ?state.rows_loaded, "full load finished");
            Ok(out(ReplicationStatus::Succeeded, Duration::ZERO))
        }
        TaskStatus::Stopped | TaskStatus::Failed => {
            Err(StepError::ReplicationFailed(failure_reason(&state)))
        }
        // Still working ("ready" only in the instant after the start request).
        TaskStatus::Starting | TaskStatus::Running | TaskStatus::Stopping | TaskStatus::Ready => {
            if elapsed > config.max_duration {
                task.stop(task_arn).await?;
                return Err(StepError::ReplicationTimedOut(format!(
                    "still {} after {} s (limit {} s, provisioning included), {}% loaded",
                    state.detail.as_deref().unwrap_or(state.status.as_str()),
                    elapsed.as_secs(),
                    config.max_duration.as_secs(),
                    state.full_load_progress_percent.unwrap_or(0)
                )));
            }
            if state.provisioning {
                // DMS Serverless getting capacity: nothing to read a rate from.
                return Ok(out(ReplicationStatus::Running, provisioning_wait(elapsed, config)));
            }
            // Readings on the load's own clock when both this and the previous
            // one have it, else on the run's.
            let clock = load_elapsed.unwrap_or(elapsed);
            let current = state
                .full_load_progress_percent
                .filter(|_| state.status == TaskStatus::Running)
                .map(|percent| Reading { elapsed: clock, percent });
            let prev_clock = if load_elapsed.is_some() {
                prev.progress_elapsed_seconds
            } else {
                prev.elapsed_seconds
            };
            let previous = prev_clock.zip(prev.progress_percent).map(|(e, percent)| Reading {
                elapsed: Duration::from_secs(e),
                percent,
            });
            let left = config.max_duration.saturating_sub(elapsed) + Duration::from_secs(1);
            let wait = next_wait(current, previous, clock, config).min(left);
            Ok(out(ReplicationStatus::Running, wait))
        }
        other => Err(StepError::ReplicationFailed(format!(
            "the task is {other} in the middle of a load; check who changed it (DMS console, CloudTrail) and run the sync again"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(min: u64, max: u64) -> PollConfig {
        PollConfig {
            min_wait: Duration::from_secs(min),
            max_wait: Duration::from_secs(max),
            max_duration: Duration::from_secs(12 * 3600),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn at(s: u64, percent: i32) -> Option<Reading> {
        Some(Reading {
            elapsed: secs(s),
            percent,
        })
    }

    /// Simulates one load: DMS needs `startup` seconds before it reports any
    /// progress, then the floored linear percentage until `duration`. Returns
    /// (polls, seconds between the end and the poll that sees it).
    fn simulate(duration: u64, startup: u64, config: &PollConfig) -> (u32, u64) {
        let mut t = config.min_wait.as_secs(); // start-dms's first wait
        let (mut polls, mut previous) = (0, None);
        loop {
            polls += 1;
            if t >= duration {
                return (polls, t - duration);
            }
            let current = (t >= startup).then(|| Reading {
                elapsed: secs(t),
                percent: ((t - startup) * 100 / (duration - startup)) as i32,
            });
            t += next_wait(current, previous, secs(t), config).as_secs();
            previous = current;
            assert!(polls < 500, "runaway polling");
        }
    }

    #[test]
    fn long_loads_fit_the_transition_budget_and_are_noticed_promptly() {
        let c = PollConfig::default();
        // Up to 8 hours: ≤ 10 polls (30 transitions, leaving 10 for the other
        // states), and seen within 5% of the duration.
        for minutes in [10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 360, 420, 480] {
            let d = minutes * 60;
            for startup in [0, 15, 60, 120] {
                let (polls, late) = simulate(d, startup, &c);
                assert!(
                    polls <= 10,
                    "{minutes} min load (start-up {startup}s): {polls} polls"
                );
                assert!(
                    late * 20 <= d,
                    "{minutes} min load (start-up {startup}s): seen {late}s late"
                );
            }
        }
    }

    #[test]
    fn short_loads_are_noticed_within_the_minimum_wait() {
        let c = PollConfig::default();
        for seconds in [20, 45, 90, 150, 300] {
            let (polls, late) = simulate(seconds, 15.min(seconds / 2), &c);
            assert!(
                late <= c.min_wait.as_secs(),
                "{seconds}s load: seen {late}s late"
            );
            assert!(polls <= 6, "{seconds}s load: {polls} polls");
        }
    }

    #[test]
    fn waits_follow_the_readings() {
        let c = cfg(30, 600);
        // Nothing known: twice the time run so far, within the bounds.
        assert_eq!(next_wait(None, None, secs(5), &c), secs(30));
        assert_eq!(next_wait(None, None, secs(100), &c), secs(200));
        assert_eq!(next_wait(None, None, secs(3000), &c), secs(600));
        // Finishing up.
        assert_eq!(
            next_wait(at(3000, 100), at(2000, 90), secs(3000), &c),
            secs(30)
        );
        // One reading: at most the time run so far (start-up time blurs the rate).
        assert_eq!(next_wait(at(200, 10), None, secs(200), &c), secs(200));
        // Two readings: 40% → 60% in 100 s; the end is no earlier than
        // 39 × 100/21 ≈ 186 s away, plus 2% of the ~486 s total.
        let w = next_wait(at(300, 60), at(200, 40), secs(300), &c).as_secs();
        assert!((190..=197).contains(&w), "{w}");
        // Progress that went backwards is not trusted.
        assert_eq!(
            next_wait(at(300, 20), at(200, 40), secs(300), &c),
            secs(300)
        );
    }

    #[test]
    fn waits_respect_the_time_limit() {
        let near = PollConfig {
            max_duration: secs(1000),
            ..cfg(30, 600)
        };
        assert_eq!(next_wait(None, None, secs(990), &near), secs(11));
        assert_eq!(next_wait(None, None, secs(1200), &near), secs(1));
    }

    #[test]
    fn failure_reasons_say_what_happened() {
        let s = TaskState {
            status: TaskStatus::Stopped,
            stop_reason: Some("Stop Reason FULL_LOAD_ONLY_FINISHED".into()),
            tables_errored: 2,
            last_failure_message: Some("table x: duplicate key".into()),
            ..Default::default()
        };
        let r = failure_reason(&s);
        assert!(
            r.contains("2 table(s) errored")
                && r.contains("duplicate key")
                && r.contains("stopped"),
            "{r}"
        );
    }

    /// DMS Serverless after deprovisioning: no start date any more. The load
    /// is still this execution's when an earlier poll saw it (`runSeen`), or
    /// when it stopped after the execution began.
    #[tokio::test]
    async fn a_finished_load_without_start_dates_is_still_ours() {
        struct Released(TaskState);
        impl DescribeTask for Released {
            async fn describe(&self, _: &str) -> Result<TaskState, StepError> {
                Ok(self.0.clone())
            }
        }
        impl StopTask for Released {
            async fn stop(&self, _: &str) -> Result<(), StepError> {
                Ok(())
            }
        }
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let now = t0 + Duration::from_secs(3600);
        let finished = |stopped_at| {
            Released(TaskState {
                status: TaskStatus::Stopped,
                stop_reason: Some(FULL_LOAD_FINISHED.into()),
                stopped_at,
                ever_started: true,
                ..Default::default()
            })
        };
        let event = |seen: bool| {
            serde_json::json!({"executionStartTime": "2027-01-15T08:00:00Z",
                               "replication": {"startedAt": 1_800_000_100u64, "polls": 3, "runSeen": seen}})
        };
        let c = cfg(30, 600);
        // Seen by an earlier poll: succeeded, whatever DMS forgot since.
        let out = handle_at(&finished(None), "arn", &c, event(true), now)
            .await
            .unwrap();
        assert_eq!(out.status, ReplicationStatus::Succeeded);
        assert!(out.run_seen);
        // Never seen, but stopped after the execution began: ours too.
        let out = handle_at(&finished(Some(now)), "arn", &c, event(false), now)
            .await
            .unwrap();
        assert_eq!(out.status, ReplicationStatus::Succeeded);
        // Neither: a run of before this execution, not its load.
        let e = handle_at(
            &finished(Some(t0 - Duration::from_secs(60))),
            "arn",
            &c,
            event(false),
            now,
        )
        .await
        .unwrap_err();
        assert_eq!(e.name(), "ReplicationFailed");
    }

    #[test]
    #[ignore = "prints the poll schedule of many loads; run with --ignored --nocapture"]
    fn schedules() {
        let c = PollConfig::default();
        for d in [
            20u64, 45, 90, 150, 300, 600, 1200, 1800, 2700, 3600, 5400, 7200, 14400, 21600, 28800,
        ] {
            for startup in [0u64, 15, 60, 120] {
                if startup * 2 > d {
                    continue;
                }
                let (polls, late) = simulate(d, startup, &c);
                println!(
                    "load {d:>6}s start-up {startup:>3}s: {polls:>2} polls, seen {late:>4}s late"
                );
            }
        }
    }
}
