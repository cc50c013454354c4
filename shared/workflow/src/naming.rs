//! The naming chain that ties the pieces together, checked by a test:
//! step `drop-fks` → binary `drop-fks` → `DropFksFunction` →
//! `${DropFksFunctionArn}` → state `DropForeignKeys`.
//!
//! [`substitute`] is the one implementation of the template's
//! `DefinitionSubstitutions` outside AWS: local runs and the linters
//! (`dbsync asl substitute`) both use it.

/// One step: everything the pieces that name it must agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Package = binary = Lambda name.
    pub name: &'static str,
    /// The function's `Timeout` in template.yaml, in seconds (the local and
    /// scenario runs give the step the same budget).
    pub timeout_seconds: u64,
    /// It connects to a database (the Makefile packages the CA bundle and
    /// the state machine retries dropped connections and lock timeouts).
    pub database: bool,
    /// The state that first runs it (`None`: the trigger starts the machine).
    pub state: Option<&'static str>,
}

const fn step(
    name: &'static str,
    timeout_seconds: u64,
    database: bool,
    state: Option<&'static str>,
) -> Step {
    Step {
        name,
        timeout_seconds,
        database,
        state,
    }
}

/// **The** step table; tests hold template.yaml, the Makefile, the state
/// machine and both dispatch tables to it.
pub const STEP_TABLE: [Step; 13] = [
    step("preflight", 60, false, Some("Preflight")),
    step("lease", 60, true, Some("AcquireLease")),
    step("version-check", 120, true, Some("CheckSchemaVersions")),
    step("drop-fks", 300, true, Some("DropForeignKeys")),
    step("start-dms", 120, false, Some("StartReplication")),
    step("poll-dms", 120, false, Some("PollReplication")),
    step("plan-copy", 300, true, Some("PlanCopy")),
    step("copy-piece", 900, true, Some("CopyPiece")),
    step("after-load", 900, true, Some("MaskPersonalData")),
    step("restore-fks", 900, true, Some("RestoreForeignKeys")),
    step("fix-sequences", 300, true, Some("FixSequences")),
    step("refresh-views", 900, true, Some("RefreshViews")),
    step("trigger", 30, false, None),
];

/// The steps' names, in the table's order.
pub const STEPS: [&str; STEP_TABLE.len()] = {
    let mut out = [""; STEP_TABLE.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = STEP_TABLE[i].name;
        i += 1;
    }
    out
};

/// A step by name.
pub fn step_named(name: &str) -> Option<&'static Step> {
    STEP_TABLE.iter().find(|s| s.name == name)
}

/// A step's Lambda time limit (local runs and scenarios give it the same).
pub fn timeout(name: &str) -> std::time::Duration {
    let step = step_named(name).unwrap_or_else(|| panic!("no step named {name}"));
    std::time::Duration::from_secs(step.timeout_seconds)
}

/// `drop-fks` → `DropFks` (the SAM logical id is this + `Function`).
pub fn pascal(step: &str) -> String {
    step.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `DropFksFunctionArn` → `drop-fks`, for the steps that exist.
pub fn step_of_substitution(name: &str) -> Option<&'static str> {
    let base = name.strip_suffix("FunctionArn")?;
    STEPS.iter().copied().find(|s| pascal(s) == base)
}

/// Fills a definition's `${…}` DefinitionSubstitutions the way the template
/// does, with ARNs in `region:account` (e.g. `local:000000000000`).
pub fn substitute(definition: &str, region_account: &str) -> Result<String, crate::StepError> {
    substitute_for(definition, region_account, crate::config::CopyEngine::Dms)
}

/// [`substitute`] for a deployment with this `CopyEngine`.
pub fn substitute_for(
    definition: &str,
    region_account: &str,
    engine: crate::config::CopyEngine,
) -> Result<String, crate::StepError> {
    let mut out = String::with_capacity(definition.len());
    let mut rest = definition;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').ok_or_else(|| {
            crate::StepError::Configuration("unterminated ${…} in the definition".into())
        })?;
        let name = &rest[start + 2..start + end];
        let value = if let Some(step) = step_of_substitution(name) {
            format!("arn:aws:lambda:{region_account}:function:{step}")
        } else if name == "CopyEngine" {
            engine.as_str().to_owned()
        } else if let Some(topic) = name.strip_suffix("TopicArn") {
            format!("arn:aws:sns:{region_account}:dbsync-{topic}")
        } else {
            return Err(crate::StepError::Configuration(format!(
                "no value for ${{{name}}}"
            )));
        };
        out.push_str(&value);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution() {
        let d = substitute(
            r#"{"a": "${DropFksFunctionArn}", "b": "${FailureTopicArn}"}"#,
            "r:1",
        )
        .unwrap();
        assert_eq!(
            d,
            r#"{"a": "arn:aws:lambda:r:1:function:drop-fks", "b": "arn:aws:sns:r:1:dbsync-Failure"}"#
        );
        assert!(substitute("${Nope}", "r:1").is_err());
    }

    #[test]
    fn chain() {
        assert_eq!(pascal("fix-sequences"), "FixSequences");
        assert_eq!(step_of_substitution("PollDmsFunctionArn"), Some("poll-dms"));
        assert_eq!(step_of_substitution("NopeFunctionArn"), None);
        assert_eq!(step_of_substitution("FailureTopicArn"), None);
    }
}
