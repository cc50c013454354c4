//! Shared vocabulary of the dbsync steps: the input/output documents that
//! travel through the state machine, and the stable error names.
//!
//! Payloads stay small on purpose (Step Functions caps them at 256 KB): lists
//! of foreign keys live in the target database, never in these documents.

mod error;
pub mod io;
pub mod ports;

pub use error::StepError;

/// The naming chain that ties the pieces together:
/// step `drop-fks` → binary `drop-fks` → `DropFksFunction` → `${DropFksFunctionArn}`.
pub mod naming {
    /// The seven steps, as package = binary names.
    pub const STEPS: [&str; 7] = [
        "version-check",
        "drop-fks",
        "start-dms",
        "poll-dms",
        "restore-fks",
        "fix-sequences",
        "trigger",
    ];

    /// `drop-fks` → `DropFks` (the SAM logical id is this + `Function`).
    pub fn pascal(step: &str) -> String {
        step.split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
            })
            .collect()
    }

    /// `DropFksFunctionArn` → `drop-fks`, for the steps that exist.
    pub fn step_of_substitution(name: &str) -> Option<&'static str> {
        let base = name.strip_suffix("FunctionArn")?;
        STEPS.iter().copied().find(|s| pascal(s) == base)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn chain() {
            assert_eq!(pascal("fix-sequences"), "FixSequences");
            assert_eq!(step_of_substitution("PollDmsFunctionArn"), Some("poll-dms"));
            assert_eq!(step_of_substitution("NopeFunctionArn"), None);
            assert_eq!(step_of_substitution("FailureTopicArn"), None);
        }
    }
}
