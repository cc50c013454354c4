//! Shared vocabulary of the dbsync steps: the input/output documents that
//! travel through the state machine, and the stable error names.
//!
//! Payloads stay small on purpose (Step Functions caps them at 256 KB): lists
//! of foreign keys live in the target database, never in these documents.

mod error;
pub mod io;
pub mod ports;

pub use error::StepError;
