//! The sync configuration file (YAML), the same for both modes: `dbsync run
//! --config FILE` locally, `SYNC_CONFIG` (the file `make build` packages) on
//! AWS.
//!
//! ```yaml
//! data_rules:                 # pgsync's syntax and meaning
//!   email: unique_email       # any table's `email` column
//!   users.phone: unique_phone # table.column
//!   billing.cards.number: null
//!   "*.last_login_ip": random_ip
//!   users.note: {value: "redacted"}
//!   users.name: {statement: "'user ' || id"}
//! after_sync:                 # run in order, each in its own transaction
//!   - UPDATE public.webhooks SET enabled = false
//! allow_lossless_casts: false # copy a column whose staging type is wider
//!                             # (int → bigint, varchar(5) → text) through a cast
//! strict: true                # every column of every synced table classified
//!                             # (a rule, `untouched`, or a key column)
//! deterministic: true         # unique_*/random_* rules: a keyed function of the
//!                             # original value (salt: DBSYNC_MASK_SALT locally,
//!                             # MaskSaltSecretArn on AWS)
//! ```
//!
//! Matching follows pgsync: a key is `column`, `table.column` or
//! `schema.table.column`; `*` matches any characters within one part; the
//! first key in file order that matches a column wins. This module only
//! parses and matches; turning rules into SQL against a real catalog (and
//! refusing key columns) is `dbsync_db::mask`.

use std::path::Path;

use serde_yaml_ng::Value;

use crate::StepError;

/// Where the functions find the packaged file.
pub const CONFIG_ENV: &str = crate::vars::SYNC_CONFIG;

/// What one data rule does to a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `'email' || <primary key> || '@example.org'`.
    UniqueEmail,
    /// `<primary key> + 1000000000` as text (an integer primary key).
    UniquePhone,
    /// `'secret' || <primary key>`.
    UniqueSecret,
    /// One capital letter.
    RandomLetter,
    /// An integer in 0..=100.
    RandomInt,
    /// A date between 1970 and 1997.
    RandomDate,
    /// A time within the last ~3 years.
    RandomTime,
    /// `n.0.0.1` with n in 1..=255.
    RandomIp,
    /// Ten hex characters.
    RandomString,
    Null,
    /// Copied as it is (a later, broader key cannot touch it).
    Untouched,
    /// A constant (the YAML scalar's text; `None` for YAML null).
    Value(Option<String>),
    /// An SQL expression, evaluated per row.
    Statement(String),
}

impl Rule {
    /// The rule as the file names it (`unique_email`, `value`, `statement`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::UniqueEmail => "unique_email",
            Self::UniquePhone => "unique_phone",
            Self::UniqueSecret => "unique_secret",
            Self::RandomLetter => "random_letter",
            Self::RandomInt => "random_int",
            Self::RandomDate => "random_date",
            Self::RandomTime => "random_time",
            Self::RandomIp => "random_ip",
            Self::RandomString => "random_string",
            Self::Null | Self::Value(None) => "null",
            Self::Untouched => "untouched",
            Self::Value(Some(_)) => "value",
            Self::Statement(_) => "statement",
        }
    }

    /// Whether the rule derives its value from the table's primary key.
    pub fn needs_primary_key(&self) -> bool {
        matches!(
            self,
            Self::UniqueEmail | Self::UniquePhone | Self::UniqueSecret
        )
    }

    fn parse(key: &str, v: &Value) -> Result<Self, String> {
        let named = |s: &str| {
            Ok(match s {
                "unique_email" => Self::UniqueEmail,
                "unique_phone" => Self::UniquePhone,
                "unique_secret" => Self::UniqueSecret,
                "random_letter" => Self::RandomLetter,
                "random_int" | "random_number" => Self::RandomInt,
                "random_date" => Self::RandomDate,
                "random_time" => Self::RandomTime,
                "random_ip" => Self::RandomIp,
                "random_string" => Self::RandomString,
                "null" => Self::Null,
                "untouched" => Self::Untouched,
                other => {
                    return Err(format!(
                        "data_rules.{key}: unknown rule {other:?}; use unique_email, unique_phone, unique_secret, \
                         random_letter, random_int, random_date, random_time, random_ip, random_string, null, untouched, \
                         {{value: …}} or {{statement: …}}"
                    ))
                }
            })
        };
        match v {
            Value::Null => Ok(Self::Null),
            Value::String(s) => named(s),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, inner) = m.iter().next().expect("one entry");
                match k.as_str() {
                    Some("value") => Ok(Self::Value(scalar_text(inner).ok_or_else(|| {
                        format!("data_rules.{key}: value must be a string, number, boolean or null")
                    })?)),
                    Some("statement") => match inner.as_str() {
                        Some(s) if !s.trim().is_empty() => Ok(Self::Statement(s.to_owned())),
                        _ => Err(format!(
                            "data_rules.{key}: statement must be a non-empty SQL expression"
                        )),
                    },
                    _ => Err(format!(
                        "data_rules.{key}: a rule object has one key, value or statement"
                    )),
                }
            }
            _ => Err(format!(
                "data_rules.{key}: a rule is a name (unique_email, null, …), {{value: …}} or {{statement: …}}"
            )),
        }
    }
}

/// A YAML scalar as SQL literal text; `Some(None)` is YAML null.
fn scalar_text(v: &Value) -> Option<Option<String>> {
    match v {
        Value::Null => Some(None),
        Value::String(s) => Some(Some(s.clone())),
        Value::Number(n) => Some(Some(n.to_string())),
        Value::Bool(b) => Some(Some(b.to_string())),
        _ => None,
    }
}

/// One `data_rules` entry: its key as written, split into parts, and its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRule {
    pub key: String,
    parts: Vec<String>,
    pub rule: Rule,
}

impl DataRule {
    /// Whether this key covers `schema.table.column` (pgsync: the key may name
    /// the column alone, the table and column, or all three).
    pub fn matches(&self, schema: &str, table: &str, column: &str) -> bool {
        let full = [schema, table, column];
        let tail = &full[3 - self.parts.len()..];
        self.parts.iter().zip(tail).all(|(p, s)| glob(p, s))
    }

    /// Whether the key has no wildcard.
    pub fn is_exact(&self) -> bool {
        !self.key.contains('*')
    }
}

/// `*` matches any run of characters (within one part: parts never hold dots).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncConfig {
    /// In file order: the first match wins.
    pub data_rules: Vec<DataRule>,
    /// SQL statements run on the target after the load, in order.
    pub after_sync: Vec<String>,
    /// Where it came from, for messages.
    pub origin: String,
    /// A column whose staging type holds every production value (a wider
    /// integer, a longer varchar, …) is copied through a cast instead of
    /// refusing the run.
    pub allow_lossless_casts: bool,
    /// Every column of every synced table must be classified (a rule,
    /// `untouched`, or a primary/foreign-key column): a column no rule names
    /// refuses the run before any change.
    pub strict: bool,
    /// `unique_*` and `random_*` rules give a keyed function of the original
    /// value and the salt instead of a random draw.
    pub deterministic: bool,
    /// The deterministic rules' key (never printed); filled by the caller
    /// from `DBSYNC_MASK_SALT` or a secret, not from the file.
    pub mask_salt: Option<MaskSalt>,
}

/// Where the CLI (and a Lambda without a salt secret) finds the salt.
pub const SALT_ENV: &str = "DBSYNC_MASK_SALT";

/// The key of the deterministic rules. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct MaskSalt(String);

impl std::fmt::Debug for MaskSalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaskSalt(<redacted>)")
    }
}

impl MaskSalt {
    /// A salt of at least 16 characters (shorter ones are guessable).
    pub fn new(value: &str, origin: &str) -> Result<Self, StepError> {
        let value = value.trim_end_matches(['\n', '\r']);
        if value.chars().count() < 16 {
            return Err(StepError::SyncConfigInvalid(format!(
                "the masking salt ({origin}) must be at least 16 characters; use a random string kept the same across runs, e.g. `openssl rand -hex 32`"
            )));
        }
        Ok(Self(value.to_owned()))
    }

    /// The value, for the one place that hands it to PostgreSQL (a bind parameter).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl SyncConfig {
    /// Parses the YAML text; `origin` names the file in messages.
    pub fn parse(origin: &str, text: &str) -> Result<Self, StepError> {
        let bad = |m: String| StepError::SyncConfigInvalid(format!("{origin}: {m}"));
        let doc: Value =
            serde_yaml_ng::from_str(text).map_err(|e| bad(format!("not YAML: {e}")))?;
        let mut out = SyncConfig {
            origin: origin.to_owned(),
            ..Default::default()
        };
        let top = match doc {
            Value::Null => return Ok(out),
            Value::Mapping(m) => m,
            _ => {
                return Err(bad(
                    "expected a mapping with data_rules and after_sync".into()
                ))
            }
        };
        for (k, v) in &top {
            match k.as_str() {
                Some("data_rules") => {
                    let rules = match v {
                        Value::Null => continue,
                        Value::Mapping(m) => m,
                        _ => return Err(bad("data_rules must map column keys to rules".into())),
                    };
                    for (key, rule) in rules {
                        let key = key
                            .as_str()
                            .ok_or_else(|| bad("data_rules: every key is a column name".into()))?;
                        let parts: Vec<String> = key.split('.').map(str::to_owned).collect();
                        if parts.len() > 3 || parts.iter().any(String::is_empty) {
                            return Err(bad(format!(
                                "data_rules.{key}: a key is column, table.column or schema.table.column"
                            )));
                        }
                        out.data_rules.push(DataRule {
                            key: key.to_owned(),
                            parts,
                            rule: Rule::parse(key, rule).map_err(bad)?,
                        });
                    }
                }
                Some("after_sync") => {
                    let list = match v {
                        Value::Null => continue,
                        Value::Sequence(s) => s,
                        _ => return Err(bad("after_sync must be a list of SQL statements".into())),
                    };
                    for (i, s) in list.iter().enumerate() {
                        match s.as_str() {
                            Some(sql) if !sql.trim().is_empty() => {
                                out.after_sync.push(sql.to_owned())
                            }
                            _ => {
                                return Err(bad(format!(
                                    "after_sync item {}: expected a non-empty SQL statement",
                                    i + 1
                                )))
                            }
                        }
                    }
                }
                Some(flag @ ("allow_lossless_casts" | "strict" | "deterministic")) => {
                    let on = v
                        .as_bool()
                        .ok_or_else(|| bad(format!("{flag} must be true or false")))?;
                    match flag {
                        "strict" => out.strict = on,
                        "deterministic" => out.deterministic = on,
                        _ => out.allow_lossless_casts = on,
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown key {}; the file holds data_rules, after_sync, strict, deterministic and allow_lossless_casts",
                        other.map_or_else(|| format!("{k:?}"), |s| format!("{s:?}"))
                    )))
                }
            }
        }
        Ok(out)
    }

    /// Reads and parses a file; a missing or unreadable file is refused by name.
    pub fn load(path: &Path) -> Result<Self, StepError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            StepError::SyncConfigInvalid(format!("cannot read {}: {e}", path.display()))
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// `SYNC_CONFIG` when set (the file must then exist), else no rules.
    pub fn from_env() -> Result<Self, StepError> {
        match crate::config::var(CONFIG_ENV) {
            Some(path) => Self::load(Path::new(&path)),
            None => Ok(Self::default()),
        }
    }

    /// The first rule covering a column, pgsync's way (file order).
    pub fn rule_for(&self, schema: &str, table: &str, column: &str) -> Option<&DataRule> {
        self.data_rules
            .iter()
            .find(|r| r.matches(schema, table, column))
    }

    pub fn is_empty(&self) -> bool {
        self.data_rules.is_empty() && self.after_sync.is_empty()
    }

    /// With `deterministic: true`, takes the salt from `value` (`origin`
    /// names where it came from); a missing one is refused by name.
    pub fn with_salt(mut self, value: Option<&str>, origin: &str) -> Result<Self, StepError> {
        match (self.deterministic, value) {
            (false, _) => Ok(self),
            (true, Some(v)) => {
                self.mask_salt = Some(MaskSalt::new(v, origin)?);
                Ok(self)
            }
            (true, None) => Err(StepError::SyncConfigInvalid(format!(
                "{}: deterministic: true needs a salt ({origin}): a random string of 16 or more characters, the same on every run",
                self.origin
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PGSYNC: &str = r#"
data_rules:
  email: unique_email
  phone: unique_phone
  last_name: random_letter
  birthday: random_date
  users.auth_token:
    value: secret
  visits_count: random_int
  encrypted_*: null
  "*.ip": random_ip
  app.users.created_at: random_time
  users.bio: {statement: "'bio of ' || id"}
  users.secret: unique_secret
  users.name: untouched
after_sync:
  - UPDATE app.webhooks SET enabled = false
  - "DELETE FROM app.sessions"
"#;

    #[test]
    fn pgsync_rules_parse_in_file_order() {
        let c = SyncConfig::parse("t.yml", PGSYNC).unwrap();
        let rules: Vec<_> = c
            .data_rules
            .iter()
            .map(|r| (r.key.as_str(), &r.rule))
            .collect();
        assert_eq!(rules[0], ("email", &Rule::UniqueEmail));
        assert_eq!(
            rules[4],
            ("users.auth_token", &Rule::Value(Some("secret".into())))
        );
        assert_eq!(rules[6], ("encrypted_*", &Rule::Null));
        assert_eq!(
            rules[9],
            ("users.bio", &Rule::Statement("'bio of ' || id".into()))
        );
        assert_eq!(rules[11], ("users.name", &Rule::Untouched));
        assert_eq!(c.after_sync.len(), 2);
    }

    #[test]
    fn keys_match_pgsync_style_and_the_first_match_wins() {
        let c = SyncConfig::parse("t.yml", PGSYNC).unwrap();
        let key = |s, t, col| c.rule_for(s, t, col).map(|r| r.key.as_str());
        assert_eq!(key("app", "users", "email"), Some("email"));
        assert_eq!(key("other", "accounts", "email"), Some("email"));
        assert_eq!(key("app", "users", "auth_token"), Some("users.auth_token"));
        assert_eq!(key("app", "admins", "auth_token"), None);
        assert_eq!(
            key("app", "users", "encrypted_password"),
            Some("encrypted_*")
        );
        assert_eq!(key("app", "logins", "ip"), Some("*.ip"));
        assert_eq!(
            key("app", "users", "created_at"),
            Some("app.users.created_at")
        );
        assert_eq!(key("other", "users", "created_at"), None);
        assert_eq!(
            key("app", "users", "emails"),
            None,
            "no implicit prefix match"
        );
        // A wildcard never crosses a dot: `*.ip` is table.column, not schema.table.column.
        assert!(glob("a*b", "ab") && glob("a*b", "axxb") && !glob("a*b", "axxbc"));
        assert!(glob("*", "") && glob("**x", "x") && !glob("x*", "y"));
    }

    #[test]
    fn bad_files_are_named_with_where() {
        for (text, says) in [
            (
                "data_rules:\n  email: scramble\n",
                "data_rules.email: unknown rule \"scramble\"",
            ),
            (
                "data_rules:\n  a.b.c.d: null\n",
                "data_rules.a.b.c.d: a key is",
            ),
            ("data_rules:\n  email: {value: [1]}\n", "value must be"),
            (
                "data_rules:\n  email: {statement: \"\"}\n",
                "statement must be",
            ),
            (
                "data_rules:\n  email: {values: 1}\n",
                "one key, value or statement",
            ),
            ("after_sync: DELETE FROM x\n", "after_sync must be a list"),
            ("after_sync:\n  - \"\"\n", "after_sync item 1"),
            ("from: postgres://prod\n", "unknown key \"from\""),
            ("data_rules: [\n", "not YAML"),
        ] {
            let e = SyncConfig::parse("dbsync.yml", text).unwrap_err();
            assert_eq!(e.name(), "SyncConfigInvalid");
            assert!(e.to_string().contains(says), "{text:?}: {e}");
            assert!(e.to_string().contains("dbsync.yml"), "{e}");
        }
        let e = SyncConfig::load(Path::new("/nonexistent/dbsync.yml")).unwrap_err();
        assert_eq!(e.name(), "SyncConfigInvalid");
        assert!(SyncConfig::parse("empty.yml", "").unwrap().is_empty());
    }
}
