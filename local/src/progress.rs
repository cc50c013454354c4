//! Live progress of a local run: a spinner on a terminal, plain lines otherwise.

use std::{
    io::IsTerminal,
    sync::Mutex,
    time::{Duration, Instant},
};

use dbsync_asl::{EventType, HistoryEvent, Observer};
use indicatif::{ProgressBar, ProgressStyle};
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
}

impl Restored {
    /// Adds one invocation's output (`restore-fks`'s document).
    pub fn add(&mut self, result: &Value) {
        let n = |k: &str| result[k].as_u64().unwrap_or(0);
        self.added += n("added");
        self.validated += n("validated");
        self.existing += n("skippedExisting");
        self.kept_not_valid += n("keptNotValidTotal");
        self.deleted_orphans += n("deletedOrphanRows");
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

/// What a step's result says, in a few words.
fn summarize(state: &str, output: &Value, restored: Option<&mut Restored>) -> String {
    // Where each state keeps its result (its ResultPath in the definition).
    let at = match state {
        "Preflight" => "preflight",
        "AcquireLease" | "TakeOverLease" => "lease",
        "StopReplication" => "stop",
        "FixSequencesAfterFailure" => "sequencesAfterFailure",
        "RefreshViews" => "views",
        "CheckSchemaVersions" => "versions",
        "DropForeignKeys" => "dropFks",
        "StartReplication" | "PollReplication" => "replication",
        "RestoreForeignKeys" => "restore",
        "CompensateRestoreForeignKeys" => "compensation",
        "FixSequences" => "sequences",
        _ => return String::new(),
    };
    // A state whose task failed (and was caught) has no result to summarize.
    if output.pointer(&format!("/{at}/result")).is_none() {
        return String::new();
    }
    let r = |k: &str| {
        output
            .pointer(&format!("/{at}/result/{k}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    match state {
        "Preflight" => {
            let warnings = r("warnings").as_array().map_or(0, Vec::len);
            format!(
                "copy set up for a sync; {warnings} warning(s){}",
                if warnings > 0 { " (see --json)" } else { "" }
            )
        }
        "AcquireLease" | "TakeOverLease" => {
            if r("done") == Value::Bool(true) {
                format!("run lease taken; {} tables selected", r("tables"))
            } else {
                format!("held by {}", r("holder").as_str().unwrap_or("?"))
            }
        }
        "RefreshViews" => {
            if r("disabled") == Value::Bool(true) {
                "switched off".into()
            } else {
                format!(
                    "{} of {} materialized views refreshed ({} concurrently), {} remaining",
                    r("refreshed"),
                    r("views"),
                    r("concurrently"),
                    r("remaining")
                )
            }
        }
        "StopReplication" => format!("copy {}", r("status").as_str().unwrap_or("?")),
        "FixSequencesAfterFailure" => {
            format!("{} sequences, {} moved", r("sequences"), r("changed"))
        }
        "CheckSchemaVersions" => format!(
            "production {} / staging {}",
            r("prodVersion"),
            r("stagingVersion")
        ),
        "DropForeignKeys" => format!(
            "{} tables, {} FKs dropped and saved",
            r("tables"),
            r("dropped")
        ),
        "StartReplication" => "copy started".into(),
        "PollReplication" => {
            // Fields DMS does not report yet (while starting) are left out, never printed as null.
            let mut parts = vec![r("status").as_str().unwrap_or("?").to_owned()];
            if let Some(p) = r("progressPercent").as_i64() {
                parts.push(format!("{p}%"));
            }
            parts.push(format!(
                "{} tables loaded",
                r("tablesLoaded").as_i64().unwrap_or(0)
            ));
            if let Some(rows) = r("rowsLoaded").as_i64() {
                parts.push(format!("{rows} rows"));
            }
            parts.join(" · ")
        }
        "RestoreForeignKeys" | "CompensateRestoreForeignKeys" => {
            let mut result = Value::Null;
            if let Some(v) = output.pointer(&format!("/{at}/result")) {
                result = v.clone();
            }
            let total = restored.map(|t| {
                t.add(&result);
                *t
            });
            let t = total.unwrap_or_default();
            let mut line = format!(
                "{} re-added, {} validated, {} already there so far; {} remaining",
                t.added,
                t.validated,
                t.existing,
                r("remaining")
            );
            if t.kept_not_valid > 0 {
                line.push_str(&format!("; {} left NOT VALID", t.kept_not_valid));
            }
            if t.deleted_orphans > 0 {
                line.push_str(&format!("; {} orphan rows deleted", t.deleted_orphans));
            }
            line
        }
        "FixSequences" => format!("{} sequences, {} moved", r("sequences"), r("changed")),
        _ => String::new(),
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
        let first = json!({"restore": {"result": {"added": 10, "validated": 2, "skippedExisting": 0, "remaining": 8}}});
        let second = json!({"restore": {"result": {"added": 0, "validated": 8, "skippedExisting": 0, "remaining": 0}}});
        summarize("RestoreForeignKeys", &first, Some(&mut total));
        let line = summarize("RestoreForeignKeys", &second, Some(&mut total));
        assert_eq!(
            line,
            "10 re-added, 10 validated, 0 already there so far; 0 remaining"
        );
        // Caught failure: the state's output holds the error, not a result.
        let failed = json!({"error": {"Error": "OrphanRowsFound"}});
        assert_eq!(
            summarize("CompensateRestoreForeignKeys", &failed, Some(&mut total)),
            ""
        );
        assert_eq!(summarize("DropForeignKeys", &failed, None), "");
        assert!(!summarize(
            "PollReplication",
            &json!({"replication": {"result": {"status": "running"}}}),
            None
        )
        .contains("null%"));
    }
}
