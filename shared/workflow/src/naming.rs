//! The naming chain that ties the pieces together, checked by a test:
//! step `drop-fks` → binary `drop-fks` → `DropFksFunction` →
//! `${DropFksFunctionArn}` → state `DropForeignKeys`.
//!
//! [`substitute`] is the one implementation of the template's
//! `DefinitionSubstitutions` outside AWS: local runs and the linters
//! (`dbsync asl substitute`) both use it.

/// The steps, as package = binary names.
pub const STEPS: [&str; 11] = [
    "preflight",
    "lease",
    "version-check",
    "drop-fks",
    "start-dms",
    "poll-dms",
    "after-load",
    "restore-fks",
    "fix-sequences",
    "refresh-views",
    "trigger",
];

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
