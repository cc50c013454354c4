//! A local Amazon States Language (AWS Step Functions) engine.
//!
//! Local runs and end-to-end tests execute the very definition deployed to AWS, so this
//! crate reads `ResultPath`, Choice rules, Retry and the rest as AWS does.
//!
//! # API
//! - [`StateMachine::from_json`]`(&str) -> Result<StateMachine, ValidationError>`:
//!   parse and validate (unknown types/fields, missing or dangling `Next`/`Default`,
//!   unreachable states, `End` with `Next`, bad paths and intrinsics, reserved
//!   `States.` error names, `States.ALL` placement, JSONata…). Messages name the state
//!   and the field.
//! - [`run`]`(&machine, input, Arc<dyn TaskHandler>, RunOptions) -> ExecutionResult`
//!   (async, tokio). [`RunOptions`] carries the execution and state machine names,
//!   the [`Clock`] ([`TokioClock`], [`ScaledClock`], [`InstantClock`]), a
//!   cancellation token and an optional [`Observer`] that sees each
//!   [`HistoryEvent`] live.
//! - [`TaskHandler`]: the caller's Task implementation; gets a [`TaskRequest`]
//!   (resource, effective input, state name, retry count, timeout/deadline, `$$`) and
//!   returns output JSON or a [`TaskError`] (error name + cause).
//! - [`ExecutionResult`]: status, output, error, cause, history and
//!   `state_transitions` (one per state entered plus one per retry, as AWS bills);
//!   [`ExecutionResult::to_json`] renders `{"status": "SUCCEEDED", "output": …}` or
//!   `{"status": "FAILED", "error": …, "cause": …}`.
//!
//! ```
//! use dbsync_asl::{run, InstantClock, NoTasks, RunOptions, StateMachine};
//! use std::sync::Arc;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let sm = StateMachine::from_json(r#"{"StartAt": "P", "States": {
//!     "P": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.r", "End": true}}}"#)
//!     .unwrap();
//! let opts = RunOptions::default().with_clock(Arc::new(InstantClock::new()));
//! let res = run(&sm, serde_json::json!({"a": 0}), Arc::new(NoTasks), opts).await;
//! assert_eq!(res.to_json(), serde_json::json!({"status": "SUCCEEDED", "output": {"a": 0, "r": {"x": 1}}}));
//! # });
//! ```
//!
//! # Where this deviates from AWS
//! - JSONPath: *reference paths* (`ResultPath`, catcher `ResultPath`, and any path made
//!   only of `.name`, `['name']`, `[n]` steps) are walked by this crate, so they can be
//!   written and their errors worded as AWS words them. Other paths (wildcards,
//!   slices, filters, `..`) go through `serde_json_path` (RFC 9535), whose syntax is
//!   close to, but not identical with, the Jayway syntax AWS uses (e.g. Jayway's
//!   `length()` function is not available). Indefinite paths yield an array.
//! - `QueryLanguage: "JSONata"`, distributed Map `ItemReader`/`ItemBatcher`/
//!   `ResultWriter` are rejected at validation. A distributed Map without them runs
//!   like an inline one.
//! - History events follow AWS names and numbering closely but carry fewer details
//!   (no Lambda-specific event types, no heartbeats).
//! - Task `HeartbeatSeconds` is passed to the handler, not enforced.
//! - `serde_json` is built with `preserve_order`: `States.JsonToString`, `States.Format`
//!   and outputs keep the key order of the input, as AWS does.
//! - [`InstantClock`] never lets a Task timeout fire: no virtual time passes while a
//!   handler runs. A handler can report `States.Timeout` itself.

// Where things are: `definition` parses and validates a definition into the model
// the executor walks; `exec` runs it (public API in exec/mod.rs, one file per family
// of state types); `choice` evaluates Choice rules; `intrinsics` parses and evaluates
// `States.*` calls; `path` reads and writes JSONPath; `clock`, `history` and `time`
// are the clock, the history events and timestamp helpers.
mod choice;
mod clock;
mod definition;
mod exec;
mod history;
mod intrinsics;
mod path;
mod time;

pub use clock::{BoxFuture, Clock, InstantClock, ScaledClock, TokioClock};
pub use definition::{StateMachine, ValidationError};
pub use exec::{
    lambda_invoke_output, run, ExecutionResult, NoTasks, Observer, RunOptions, Status, TaskError,
    TaskHandler, TaskRequest,
};
pub use history::{EventType, HistoryEvent};
pub use tokio_util::sync::CancellationToken;
