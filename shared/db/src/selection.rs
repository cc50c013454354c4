//! Which tables a sync covers, written as AWS DMS table-mapping selection rules,
//! so the DMS task and the database steps read the same document.
//!
//! A table is selected when an `include` (or `explicit`) rule matches it and
//! no `exclude` rule does. `%` matches any run of characters (DMS's only
//! wildcard); names compare case-sensitively, as PostgreSQL stores them.
//! Rules of other types (transformation, table-settings) do not change which
//! tables are copied and are ignored here.

use dbsync_workflow::{config, StepError};

use crate::sql::PROJECT_SCHEMA;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Include,
    Exclude,
    Explicit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    id: String,
    action: Action,
    schema: String,
    table: String,
}

/// Parsed selection rules; `Selection::all()` when no mappings are configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    rules: Option<Vec<Rule>>,
}

impl Selection {
    /// Every user table.
    pub fn all() -> Self {
        Self { rules: None }
    }

    /// Parses a DMS table-mapping document (`{"rules": [...]}`).
    pub fn from_json(text: &str) -> Result<Self, StepError> {
        let bad = |m: String| StepError::InvalidTableMappings(m);
        let doc: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let rules = doc
            .get("rules")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("expected an object with a \"rules\" array".into()))?;
        let mut parsed = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let id = rule
                .get("rule-id")
                .map(|v| v.to_string().trim_matches('"').to_owned())
                .unwrap_or_else(|| (i + 1).to_string());
            let field = |name: &str| rule.get(name).and_then(Value::as_str);
            match field("rule-type") {
                Some("selection") => {}
                Some(_) => continue,
                None => return Err(bad(format!("rule {id}: missing \"rule-type\""))),
            }
            let action = match field("rule-action") {
                Some("include") => Action::Include,
                Some("exclude") => Action::Exclude,
                Some("explicit") => Action::Explicit,
                other => {
                    return Err(bad(format!(
                        "rule {id}: \"rule-action\" must be include, exclude or explicit, got {other:?}"
                    )))
                }
            };
            let loc = rule
                .get("object-locator")
                .ok_or_else(|| bad(format!("rule {id}: missing \"object-locator\"")))?;
            let name = |key: &str| {
                loc.get(key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        bad(format!(
                            "rule {id}: object-locator needs a non-empty \"{key}\""
                        ))
                    })
            };
            let (schema, table) = (name("schema-name")?, name("table-name")?);
            if action == Action::Explicit && (schema.contains('%') || table.contains('%')) {
                return Err(bad(format!(
                    "rule {id}: explicit rules cannot use the % wildcard"
                )));
            }
            if rule
                .get("filters")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty())
            {
                // Row filters would leave a partial copy the FK and sequence steps cannot reason about.
                return Err(bad(format!(
                    "rule {id}: row filters are not supported by dbsync"
                )));
            }
            parsed.push(Rule {
                id,
                action,
                schema,
                table,
            });
        }
        if !parsed.iter().any(|r| r.action != Action::Exclude) {
            return Err(bad(
                "no include or explicit selection rule: nothing would be synced".into(),
            ));
        }
        Ok(Self {
            rules: Some(parsed),
        })
    }

    /// Reads `TABLE_MAPPINGS` (the JSON itself) or `TABLE_MAPPINGS_FILE` (a path);
    /// neither means every table.
    pub fn from_env() -> Result<Self, StepError> {
        match config::table_mappings()? {
            Some(text) => Self::from_json(&text),
            None => Ok(Self::all()),
        }
    }

    /// Whether a table takes part in the sync.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        if is_reserved(schema, table) {
            return false;
        }
        let Some(rules) = &self.rules else {
            return true;
        };
        rules
            .iter()
            .any(|r| r.action != Action::Exclude && r.hits(schema, table))
            && !rules
                .iter()
                .any(|r| r.action == Action::Exclude && r.hits(schema, table))
    }

    /// The include and explicit rules that select none of `tables` (a typo
    /// in a name, a schema that is not there), as `rule ID (schema.table)`.
    pub fn unmatched_rules(&self, tables: &[(String, String)]) -> Vec<String> {
        let Some(rules) = &self.rules else {
            return Vec::new();
        };
        rules
            .iter()
            .filter(|r| r.action != Action::Exclude)
            .filter(|r| {
                !tables
                    .iter()
                    .any(|(s, t)| !is_reserved(s, t) && r.hits(s, t))
            })
            .map(|r| format!("rule {} ({}.{})", r.id, r.schema, r.table))
            .collect()
    }
}

impl Rule {
    fn hits(&self, schema: &str, table: &str) -> bool {
        match self.action {
            Action::Explicit => self.schema == schema && self.table == table,
            _ => like(&self.schema, schema) && like(&self.table, table),
        }
    }
}

/// System schemas, the project's own schema and DMS's control tables.
pub fn is_reserved(schema: &str, table: &str) -> bool {
    matches!(
        schema,
        "pg_catalog" | "information_schema" | "pg_toast" | PROJECT_SCHEMA
    ) || schema.starts_with("pg_temp_")
        || schema.starts_with("pg_toast_temp_")
        || table.starts_with("awsdms_")
}

/// `%`-pattern match over characters (not bytes, so multibyte names work).
fn like(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Greedy match with backtracking to the last `%`: linear for DMS's patterns.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(rules: &str) -> Selection {
        Selection::from_json(&format!(r#"{{"rules": {rules}}}"#)).unwrap()
    }

    #[test]
    fn wildcards() {
        assert!(like("%", ""));
        assert!(like("%", "orders"));
        assert!(like("ord%", "orders"));
        assert!(like("%ers", "orders"));
        assert!(like("o%d%s", "orders"));
        assert!(!like("o%x%s", "orders"));
        assert!(!like("Orders", "orders"));
        assert!(like("ta_le", "ta_le"));
        assert!(!like("ta_le", "table"), "_ is literal in DMS patterns");
        assert!(like("日%", "日本"));
    }

    #[test]
    fn include_exclude_explicit() {
        let s = sel(r#"[
            {"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"public","table-name":"%"},"rule-action":"include"},
            {"rule-type":"selection","rule-id":"2","rule-name":"2","object-locator":{"schema-name":"public","table-name":"audit%"},"rule-action":"exclude"},
            {"rule-type":"selection","rule-id":"3","rule-name":"3","object-locator":{"schema-name":"Sales","table-name":"Big Table"},"rule-action":"explicit"},
            {"rule-type":"transformation","rule-id":"4","rule-name":"4","rule-target":"schema","object-locator":{"schema-name":"%"},"rule-action":"convert-lowercase"}
        ]"#);
        assert!(s.matches("public", "orders"));
        assert!(!s.matches("public", "audit_log"));
        assert!(s.matches("Sales", "Big Table"));
        assert!(!s.matches("sales", "Big Table"));
        assert!(!s.matches("other", "orders"));
        assert!(!s.matches("public", "awsdms_apply_exceptions"));
        let tables = [("public".to_owned(), "orders".to_owned())];
        assert_eq!(s.unmatched_rules(&tables), vec!["rule 3 (Sales.Big Table)"]);
        assert!(Selection::all().unmatched_rules(&[]).is_empty());
    }

    #[test]
    fn default_is_every_user_table() {
        let s = Selection::all();
        assert!(s.matches("public", "t"));
        assert!(s.matches("another schema", "T"));
        for (schema, table) in [
            ("pg_catalog", "pg_class"),
            ("information_schema", "x"),
            ("dbsync", "saved_fk"),
            ("public", "awsdms_status"),
            ("pg_temp_3", "x"),
        ] {
            assert!(!s.matches(schema, table), "{schema}.{table}");
        }
    }

    #[test]
    fn bad_documents_are_named() {
        for doc in [
            "nope",
            "{}",
            r#"{"rules": [{"rule-type":"selection","rule-action":"include"}]}"#,
            r#"{"rules": [{"rule-type":"selection","rule-action":"maybe","object-locator":{"schema-name":"a","table-name":"b"}}]}"#,
            r#"{"rules": [{"rule-type":"selection","rule-action":"exclude","object-locator":{"schema-name":"a","table-name":"b"}}]}"#,
            r#"{"rules": [{"rule-type":"selection","rule-action":"explicit","object-locator":{"schema-name":"a","table-name":"b%"}}]}"#,
            r#"{"rules": [{"rule-type":"selection","rule-action":"include","object-locator":{"schema-name":"a","table-name":"b"},"filters":[{"filter-type":"source"}]}]}"#,
            r#"{"rules": []}"#,
        ] {
            let e = Selection::from_json(doc).unwrap_err();
            assert_eq!(e.name(), "InvalidTableMappings", "{doc}: {e}");
        }
    }
}
