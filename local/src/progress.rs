//! Live progress of a local run: a spinner on a terminal, plain lines otherwise.

use std::{
    io::IsTerminal,
    sync::Mutex,
    time::{Duration, Instant},
};

use dbsync_asl::{EventType, HistoryEvent, Observer};
use dbsync_replicate::pieces::{LaneOutput, PlanOutput, StopOutput};
use dbsync_workflow::io::{
    DropFksOutput, FixSequencesOutput, LeaseOutput, PreflightOutput, RefreshViewsOutput,
    ReplicationOutput, ReplicationStatus, RestoreFksOutput, VersionCheckOutput,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    state_started: Mutex<Option<(String, Instant)>>,
    /// Restore counts summed over the invocations of this run (the step reports per invocation).
    restored: Mutex<Restored>,
    quiet: bool,
}

/// What the restore invocations of a run did, together.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    pub added: u64,
    pub validated: u64,
    pub existing: u64,
    pub kept_not_valid: u64,
    pub deleted_orphans: u64,
    pub indexes: u64,
}

impl Restored {
    /// Adds one invocation's output.
    pub fn add(&mut self, r: &RestoreFksOutput) {
        self.added += r.added;
        self.validated += r.validated;
        self.existing += r.skipped_existing;
        self.kept_not_valid += r.kept_not_valid_total;
        self.deleted_orphans += r.deleted_orphan_rows;
        self.indexes += r.indexes_rebuilt;
    }
}

impl Progress {
    /// `quiet` prints nothing (for `--json`).
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .expect("valid template"),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Self {
            bar,
            started: Instant::now(),
            state_started: Mutex::new(None),
            restored: Mutex::new(Restored::default()),
            quiet,
        }
    }

    /// A line that stays (state finished, notification…).
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn status(&self, text: String) {
        if let Some(b) = &self.bar {
            b.set_message(text);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn elapsed(&self) -> String {
        format!("{:>6.1}s", self.started.elapsed().as_secs_f64())
    }
}

/// The key a state's `ResultPath` (`$.key`) writes, read from the definition
/// the run executes (one source: a renamed path cannot print blanks).
fn result_key(state: &str) -> Option<&'static String> {
    static KEYS: std::sync::OnceLock<std::collections::BTreeMap<String, String>> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let definition: Value =
            serde_json::from_str(crate::config::DEFINITION).expect("the definition is JSON");
        // The machine's states and those of its Map's iterations (CopyPiece).
        let mut keys = std::collections::BTreeMap::new();
        let mut graphs = vec![&definition];
        while let Some(g) = graphs.pop() {
            for (name, st) in g["States"].as_object().into_iter().flatten() {
                graphs.extend(st.get("ItemProcessor"));
                let Some(path) = st["ResultPath"].as_str().and_then(|p| p.strip_prefix("$."))
                else {
                    continue;
                };
                if !path.contains('.') {
                    keys.insert(name.clone(), path.to_owned());
                }
            }
        }
        keys
    })
    .get(state)
}

/// What a step's result says, in a few words.
fn summarize(state: &str, output: &Value, restored: Option<&mut Restored>) -> String {
    // Where the state keeps its result: its ResultPath in the definition.
    let Some(at) = result_key(state) else {
        return String::new();
    };
    let at = at.as_str();
    // A state whose task failed (and was caught) has no result to summarize;
    // each result is read as the step's own output type, so a renamed field
    // cannot print blanks.
    fn part<T: DeserializeOwned>(output: &Value, at: &str) -> Option<T> {
        serde_json::from_value(output.get(at)?.get("result")?.clone()).ok()
    }
    let line = match state {
        "Preflight" => part::<PreflightOutput>(output, at).map(|p| {
            let warnings = p.warnings.len();
            format!(
                "copy set up for a sync; {warnings} warning(s){}",
                if warnings > 0 { " (see --json)" } else { "" }
            )
        }),
        "AcquireLease" | "TakeOverLease" => part::<LeaseOutput>(output, at).map(|l| {
            if l.done {
                format!("run lease taken; {} tables selected", l.tables)
            } else {
                format!("held by {}", l.holder.as_deref().unwrap_or("?"))
            }
        }),
        "RefreshViews" => part::<RefreshViewsOutput>(output, at).map(|v| {
            if v.disabled {
                "switched off".into()
            } else {
                format!(
                    "{} of {} materialized views refreshed ({} concurrently), {} remaining",
                    v.refreshed, v.views, v.concurrently, v.remaining
                )
            }
        }),
        "StopReplication" => {
            part::<ReplicationOutput>(output, at).map(|r| format!("copy {}", status_word(r.status)))
        }
        "FixSequencesAfterFailure" | "FixSequences" => part::<FixSequencesOutput>(output, at)
            .map(|f| format!("{} sequences, {} moved", f.sequences, f.changed)),
        "CheckSchemaVersions" => part::<VersionCheckOutput>(output, at).map(|v| {
            format!(
                "production {:?} / staging {:?}",
                v.prod_version, v.staging_version
            )
        }),
        "DropForeignKeys" => part::<DropFksOutput>(output, at).map(|d| {
            let mut line = format!("{} tables, {} FKs dropped and saved", d.tables, d.dropped);
            if d.indexes_dropped > 0 {
                line.push_str(&format!(
                    ", {} indexes dropped for the load",
                    d.indexes_dropped
                ));
            }
            line
        }),
        "StartReplication" => Some("copy started".into()),
        "PlanCopy" => part::<PlanOutput>(output, at).map(|p| {
            format!(
                "{} tables in {} pieces ({} cut by key ranges, {} by block ranges), {} lanes",
                p.tables, p.pieces, p.key_ranged, p.block_ranged, p.concurrency
            )
        }),
        "CopyPiece" => part::<LaneOutput>(output, at).map(|l| {
            format!(
                "lane {}: {} pieces, {} rows{}",
                l.lane,
                l.pieces,
                l.rows,
                if l.more { "; more to take" } else { "" }
            )
        }),
        "FinishCopy" => part::<ReplicationOutput>(output, at).map(|r| match r.status {
            ReplicationStatus::Succeeded => format!(
                "every piece copied · {} tables · {} rows",
                r.tables_loaded,
                r.rows_loaded.unwrap_or(0)
            ),
            _ => r
                .detail
                .unwrap_or_else(|| "pieces left; another round".into()),
        }),
        "StopCopy" => part::<StopOutput>(output, at).map(|s| {
            if s.stopped {
                "copy stopped: no piece is loading, none will be taken".into()
            } else {
                "waiting for the pieces being loaded".into()
            }
        }),
        "PollReplication" => part::<ReplicationOutput>(output, at).map(|r| {
            // Fields DMS does not report yet (while starting) are left out.
            let mut parts = vec![status_word(r.status).to_owned()];
            if let Some(p) = r.progress_percent {
                parts.push(format!("{p}%"));
            }
            parts.push(format!("{} tables loaded", r.tables_loaded));
            if let Some(rows) = r.rows_loaded {
                parts.push(format!("{rows} rows"));
            }
            parts.join(" · ")
        }),
        "RestoreForeignKeys" | "CompensateRestoreForeignKeys" => {
            part::<RestoreFksOutput>(output, at).map(|r| {
                let t = match restored {
                    Some(total) => {
                        total.add(&r);
                        *total
                    }
                    None => {
                        let mut t = Restored::default();
                        t.add(&r);
                        t
                    }
                };
                let mut line = String::new();
                if t.indexes > 0 {
                    line.push_str(&format!("{} indexes rebuilt, ", t.indexes));
                }
                line.push_str(&format!(
                    "{} re-added, {} validated, {} already there so far; {} remaining",
                    t.added, t.validated, t.existing, r.remaining
                ));
                if t.kept_not_valid > 0 {
                    line.push_str(&format!("; {} left NOT VALID", t.kept_not_valid));
                }
                if t.deleted_orphans > 0 {
                    line.push_str(&format!("; {} orphan rows deleted", t.deleted_orphans));
                }
                line
            })
        }
        _ => None,
    };
    line.unwrap_or_default()
}

fn status_word(s: ReplicationStatus) -> &'static str {
    match s {
        ReplicationStatus::Starting => "starting",
        ReplicationStatus::Running => "running",
        ReplicationStatus::Succeeded => "succeeded",
        ReplicationStatus::Stopping => "stopping",
        ReplicationStatus::Stopped => "stopped",
    }
}

impl Observer for Progress {
    fn on_event(&self, e: &HistoryEvent) {
        if self.quiet {
            return;
        }
        let name = e.state_name.clone().unwrap_or_default();
        match e.event_type {
            EventType::StateEntered => {
                self.status(format!("{name}…"));
                *self.state_started.lock().expect("lock") = Some((name, Instant::now()));
            }
            EventType::StateExited => {
                let took = self
                    .state_started
                    .lock()
                    .expect("lock")
                    .take()
                    .map(|(_, t)| t.elapsed())
                    .unwrap_or_default();
                let detail = e
                    .output
                    .as_ref()
                    .map(|o| {
                        let mut restored = self.restored.lock().expect("lock");
                        summarize(&name, o, Some(&mut restored))
                    })
                    .unwrap_or_default();
                // The poll loop repeats: keep it on the spinner, print the rest.
                if name == "PollReplication" && self.bar.is_some() {
                    self.status(format!("{name}: {detail}"));
                } else if !name.ends_with('?') && name != "WaitForReplication" {
                    self.line(&format!(
                        "{} {name:<30} {:>7.2}s  {detail}",
                        self.elapsed(),
                        took.as_secs_f64()
                    ));
                }
            }
            // The name only: the cause is the run's last line (or the next state's).
            EventType::TaskFailed => self.line(&format!(
                "{} {name:<30} failed: {}",
                self.elapsed(),
                e.error.as_deref().unwrap_or(""),
            )),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn restore_lines_add_up_over_invocations_and_failed_states_say_nothing() {
        let mut total = Restored::default();
        let doc = |r: RestoreFksOutput| json!({"restore": {"result": r}});
        let first = doc(RestoreFksOutput {
            indexes_rebuilt: 3,
            added: 10,
            validated: 2,
            remaining: 8,
            ..Default::default()
        });
        let second = doc(RestoreFksOutput {
            validated: 8,
            ..Default::default()
        });
        summarize("RestoreForeignKeys", &first, Some(&mut total));
        let line = summarize("RestoreForeignKeys", &second, Some(&mut total));
        assert_eq!(
            line,
            "3 indexes rebuilt, 10 re-added, 10 validated, 0 already there so far; 0 remaining"
        );
        // Caught failure: the state's output holds the error, not a result.
        let failed = json!({"error": {"Error": "OrphanRowsFound"}});
        assert_eq!(
            summarize("CompensateRestoreForeignKeys", &failed, Some(&mut total)),
            ""
        );
        assert_eq!(summarize("DropForeignKeys", &failed, None), "");
    }

    #[test]
    fn every_summarized_state_writes_where_it_is_read() {
        for state in [
            "Preflight",
            "AcquireLease",
            "TakeOverLease",
            "StopReplication",
            "FixSequencesAfterFailure",
            "RefreshViews",
            "CheckSchemaVersions",
            "DropForeignKeys",
            "StartReplication",
            "PollReplication",
            "RestoreForeignKeys",
            "CompensateRestoreForeignKeys",
            "FixSequences",
        ] {
            assert!(result_key(state).is_some(), "{state} has no ResultPath");
        }
        assert_eq!(result_key("DropForeignKeys").unwrap(), "dropFks");
    }

    #[test]
    fn poll_lines_leave_out_what_dms_does_not_report_yet() {
        let poll = ReplicationOutput {
            task_arn: "arn:aws:dms:us-east-1:1:task:T".into(),
            status: ReplicationStatus::Running,
            start_kind: None,
            started_at: 0,
            elapsed_seconds: 5,
            wait_seconds: 30,
            polls: 1,
            progress_percent: None,
            progress_elapsed_seconds: None,
            detail: None,
            tables_loaded: 2,
            tables_loading: 1,
            tables_queued: 0,
            tables_errored: 0,
            rows_loaded: None,
            table_rows: None,
            run_seen: false,
        };
        let line = summarize(
            "PollReplication",
            &json!({"replication": {"result": poll}}),
            None,
        );
        assert_eq!(line, "running · 2 tables loaded");
        let drop = DropFksOutput {
            tables: 4,
            dropped: 3,
            saved: 3,
            checks_dropped: 0,
            triggers_disabled: 0,
            indexes_dropped: 5,
        };
        assert_eq!(
            summarize(
                "DropForeignKeys",
                &json!({"dropFks": {"result": drop}}),
                None
            ),
            "4 tables, 3 FKs dropped and saved, 5 indexes dropped for the load"
        );
    }
}
