//! The handlers of the steps that reach the world only through ports. Each
//! is a plain `async fn` taking its typed configuration, the ports it needs
//! and the event; the Lambdas (`functions/<step>/src/main.rs`) and the local
//! CLI call the same functions.

pub mod poll_dms;
pub mod preflight;
pub mod replication;
pub mod start_dms;
pub mod trigger;
pub mod version_check;
