//! The core of dbsync: what every step shares, with no I/O of its own.
//!
//! - [`io`]: the input/output documents that travel through the state machine.
//! - [`StepError`]: every failure, each with a stable Step Functions name.
//! - [`ports`]: the capabilities the steps use (DMS task, version source,
//!   executions, secrets), each as narrow as the step using it.
//! - [`steps`]: the handlers of the steps that talk to the world only through
//!   ports (version-check, start-dms, poll-dms, trigger); the database steps'
//!   handlers live in `dbsync-db`.
//! - [`config`]: reading a step's configuration from its environment.
//! - [`naming`]: the naming chain and the template's substitutions.
//! - [`sync_config`]: the sync configuration file (data rules, after-sync SQL).
//! - `lambda` (feature `lambda`): the Lambda glue — the error's `Diagnostic`
//!   and the one `serve` every function's `main.rs` calls. The local CLI builds
//!   without it and links no Lambda runtime.
//!
//! Dependency rule of the workspace: entry points (`functions/*`, `local/`)
//! depend on this crate and on adapters (`dbsync-db`, `dbsync-aws`,
//! `dbsync-replicate`, `dbsync-asl`); adapters depend only on this crate;
//! nothing depends on an entry point.
//!
//! Payloads stay small on purpose (Step Functions caps them at 256 KB): lists
//! of foreign keys live in the target database, never in these documents.

pub mod config;
mod error;
pub mod io;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod naming;
pub mod ports;
pub mod steps;
pub mod sync_config;
pub mod vars;

pub use error::StepError;
