//! Local mode speaks of local things. The step handlers are shared with the
//! Lambdas, and their messages give AWS advice (CloudWatch logs, function
//! timeouts, `ORPHAN_POLICY`); locally each such phrase is replaced by what
//! a person at this CLI can do. A test keeps every AWS phrase here present
//! in the shared messages, so a reworded message cannot slip through.

/// (AWS phrase, local phrase).
const LOCAL: &[(&str, &str)] = &[
    (
        "; see the task's CloudWatch logs and table statistics, fix the cause, and run the sync again",
        "; fix the cause and run the sync again",
    ),
    (
        "(or set ORPHAN_POLICY=delete / keep-not-valid) and rerun restore",
        "(or run again with --orphan-policy delete / keep-not-valid) and run the sync again",
    ),
    (
        "rename or drop them, then rerun restore",
        "rename or drop them, then run the sync again",
    ),
    (
        "raise the restore function's timeout or validate it by hand",
        "validate it by hand (ALTER TABLE … VALIDATE CONSTRAINT), then run the sync again",
    ),
    (
        "check the host, port, network path (VPC, security group) and that the server is up",
        "check the host, port and that the server is up",
    ),
    (
        "check the user and password (or the secret)",
        "check the user and password (PGPASSWORD, ~/.pgpass or the URL)",
    ),
    (" (or the secret)", ""),
    ("Stop Reason FULL_LOAD_ONLY_FINISHED", "every table was attempted"),
    ("Stop Reason STOPPED_BY_USER", "stopped on request"),
    ("the task is ", "the local copy is "),
];

/// `text` with the AWS phrases replaced by local ones.
pub fn local(text: &str) -> String {
    LOCAL
        .iter()
        .fold(text.to_owned(), |t, (aws, here)| t.replace(aws, here))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbsync_workflow::StepError;

    /// Every AWS phrase replaced here still occurs in the shared messages.
    #[test]
    fn every_replaced_phrase_is_still_said_on_aws() {
        let shared = [
            StepError::OrphanRows("x".into()).to_string(),
            StepError::ConstraintConflict("x".into()).to_string(),
            StepError::ValidationTimeout("x".into()).to_string(),
            StepError::DatabaseUnavailable("x".into()).to_string(),
            StepError::AuthenticationFailed("x".into()).to_string(),
            include_str!("../../shared/workflow/src/steps/poll_dms.rs").to_owned(),
            include_str!("../../shared/workflow/src/ports.rs").to_owned(),
            include_str!("../../shared/replicate/src/lib.rs").to_owned(),
            include_str!("../../shared/db/src/error.rs").to_owned(),
        ]
        .join("\n");
        for (aws, _) in LOCAL {
            let core = aws.trim_start_matches("; ").trim_end();
            assert!(
                shared.contains(core),
                "{aws:?} is no longer in any shared message: update local/src/wording.rs"
            );
        }
    }

    #[test]
    fn orphan_advice_names_the_flag() {
        let m = local(&StepError::OrphanRows("public.a.fk: 3 rows".into()).to_string());
        assert!(m.contains("--orphan-policy"), "{m}");
        assert!(
            !m.contains("ORPHAN_POLICY") && !m.contains("rerun restore"),
            "{m}"
        );
        let m = local("the task is stopped; Stop Reason STOPPED_BY_USER; 1 table(s) errored; see the task's CloudWatch logs and table statistics, fix the cause, and run the sync again");
        assert!(!m.contains("CloudWatch") && !m.contains("task"), "{m}");
    }
}
