//! How a state or an execution stops early: `Failure` (an error name and cause,
//! which Retry and Catch see), `Stop` (a failure, an abort or the execution
//! timeout), and `Run`, the state being run, which words `States.Runtime` errors
//! as AWS does.

use crate::definition::State;

/// An error name and cause, as a failed state reports them.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Failure {
    pub(super) fn new(error: &str, cause: Option<String>) -> Failure {
        Failure {
            error: Some(error.to_string()),
            cause,
        }
    }
    pub(super) fn name(&self) -> &str {
        self.error.as_deref().unwrap_or("")
    }
}

/// Why a state (and so its graph) did not produce an output.
#[derive(Debug)]
pub(super) enum Stop {
    Fail(Failure),
    Abort,
    TimedOut,
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Stop {
        Stop::Fail(f)
    }
}

/// One state being run: for error messages that name the state and its entry event.
pub(super) struct Run<'a> {
    pub(super) st: &'a State,
    pub(super) entered_id: u64,
}

impl Run<'_> {
    /// A `States.Runtime` failure, worded as AWS words it.
    pub(super) fn runtime(&self, msg: impl std::fmt::Display) -> Failure {
        Failure::new(
            "States.Runtime",
            Some(format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). {msg}",
                self.st.name, self.entered_id
            )),
        )
    }
}
