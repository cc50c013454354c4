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
    quiet: bool,
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
fn summarize(state: &str, output: &Value) -> String {
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
                "DMS task fit for a sync; {warnings} warning(s){}",
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
        "StopReplication" => format!("task {}", r("status").as_str().unwrap_or("?")),
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
        "StartReplication" => "replication started".into(),
        "PollReplication" => format!(
            "{} — {}% · {} tables loaded · {} rows",
            r("status").as_str().unwrap_or("?"),
            r("progressPercent"),
            r("tablesLoaded"),
            r("rowsLoaded")
        ),
        "RestoreForeignKeys" | "CompensateRestoreForeignKeys" => format!(
            "{} re-added, {} validated, {} remaining",
            r("added"),
            r("validated"),
            r("remaining")
        ),
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
                    .map(|o| summarize(&name, o))
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
            EventType::TaskFailed => self.line(&format!(
                "{} {name:<30} failed: {} {}",
                self.elapsed(),
                e.error.as_deref().unwrap_or(""),
                e.cause.as_deref().unwrap_or("")
            )),
            _ => {}
        }
    }
}
