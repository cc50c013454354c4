//! `dbsync config init`: a starter sync configuration listing every synced
//! column of production, with a suggested rule where the column's name or
//! type suggests personal data and `untouched` elsewhere, `strict: true` on,
//! for a person to review before the first masked sync.

use dbsync_db::mask::ColumnFacts;

/// A suggested rule and why, from a column's name and type.
fn suggest(c: &ColumnFacts) -> Option<(&'static str, &'static str)> {
    let name = c.column.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| name.contains(w));
    let single_pk = c.pk.as_ref().is_some_and(|pk| pk.len() == 1);
    let integer_pk = single_pk
        && c.pk_type
            .as_deref()
            .is_some_and(|t| ["smallint", "integer", "bigint"].contains(&t));
    let ty = c.type_name.as_str();
    let textual = ty == "text" || ty.starts_with("character") || ty == "citext";
    Some(
        if ty == "inet"
            || ty == "cidr"
            || has(&["ip_addr", "ipaddr"])
            || name == "ip"
            || name.ends_with("_ip")
        {
            ("random_ip", "an IP address")
        } else if has(&["email", "e_mail"]) {
            if single_pk {
                ("unique_email", "an email address")
            } else {
                (
                    "random_string",
                    "an email address (no single-column primary key for unique_email)",
                )
            }
        } else if has(&["phone", "mobile", "fax", "msisdn"]) || name == "tel" {
            if integer_pk {
                ("unique_phone", "a phone number")
            } else {
                (
                    "random_string",
                    "a phone number (no integer primary key for unique_phone)",
                )
            }
        } else if has(&["birth", "dob"]) {
            ("random_date", "a birth date")
        } else if has(&[
            "iban",
            "card_number",
            "credit_card",
            "cc_number",
            "ssn",
            "tax_id",
            "taxid",
            "vat",
            "passport",
            "national_id",
            "nin",
            "bsn",
            "account_number",
            "routing",
        ]) || name == "tin"
        {
            if single_pk {
                ("unique_secret", "an account, card or tax identifier")
            } else {
                ("random_string", "an account, card or tax identifier")
            }
        } else if has(&["password", "passwd", "secret", "token", "api_key"]) {
            ("random_string", "a credential")
        } else if textual
            && has(&[
                "first_name",
                "last_name",
                "full_name",
                "middle_name",
                "surname",
                "given_name",
                "family_name",
                "maiden",
                "display_name",
                "username",
                "user_name",
                "contact_name",
                "nickname",
            ])
        {
            ("random_letter", "a person's name")
        } else if textual
            && has(&[
                "address", "street", "city", "zip", "postal", "postcode", "house",
            ])
        {
            ("random_string", "part of an address")
        } else if textual
            && has(&[
                "note",
                "comment",
                "remark",
                "bio",
                "message",
                "description_private",
            ])
        {
            ("{value: redacted}", "free text that may hold anything")
        } else {
            return None;
        },
    )
}

/// A YAML double-quoted scalar.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The starter file's text. `origin` says where the columns were read.
pub fn render(columns: &[ColumnFacts], origin: &str) -> String {
    let mut out = format!(
        "# dbsync sync configuration: a starter written by `dbsync config init` from {origin}.\n\
         # Review every line before the first sync. A suggested rule is only a guess from the\n\
         # column's name or type; `untouched` copies the column as it is.\n\
         # strict: a synced column no rule names (a column added to production later, say)\n\
         # refuses the run before anything changes. Key columns are never masked.\n\
         strict: true\n\
         # deterministic: the same value masks the same way on every run and in every table\n\
         # (needs a salt: DBSYNC_MASK_SALT locally, MaskSaltSecretArn on AWS).\n\
         deterministic: false\n\
         data_rules:\n"
    );
    let mut table = None;
    let mut suggested = 0;
    for c in columns {
        let here = (c.schema.as_str(), c.table.as_str());
        if table != Some(here) {
            out.push_str(&format!("  # {}.{}\n", c.schema, c.table));
            table = Some(here);
        }
        let key = format!("{}.{}.{}", c.schema, c.table, c.column);
        if [&c.schema, &c.table, &c.column]
            .iter()
            .any(|p| p.contains('.'))
        {
            out.push_str(&format!(
                "  # {key}: a name with a dot cannot be written as a key; classify it with a wildcard\n"
            ));
            continue;
        }
        if c.is_key {
            out.push_str(&format!("  # {key}: key column (never masked)\n"));
            continue;
        }
        if c.generated {
            out.push_str(&format!(
                "  # {key}: generated column (staging computes it)\n"
            ));
            continue;
        }
        match suggest(c) {
            Some((rule, why)) => {
                suggested += 1;
                out.push_str(&format!(
                    "  {}: {rule}    # suggested: looks like {why} ({})\n",
                    quoted(&key),
                    c.type_name
                ));
            }
            None => out.push_str(&format!("  {}: untouched\n", quoted(&key))),
        }
    }
    out.push_str(&format!(
        "# {} column(s) listed, {suggested} with a suggested rule.\n",
        columns.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(table: &str, column: &str, ty: &str) -> ColumnFacts {
        ColumnFacts {
            oid: 1,
            schema: "public".into(),
            table: table.into(),
            column: column.into(),
            type_name: ty.into(),
            generated: false,
            is_key: column == "id",
            pk: Some(vec!["id".into()]),
            pk_type: Some("bigint".into()),
        }
    }

    #[test]
    fn personal_columns_get_a_rule_and_the_rest_untouched() {
        let text = render(
            &[
                col("users", "id", "bigint"),
                col("users", "email", "text"),
                col("users", "mobile_phone", "character varying(20)"),
                col("users", "last_name", "text"),
                col("users", "date_of_birth", "date"),
                col("users", "last_login_ip", "inet"),
                col("users", "iban", "text"),
                col("users", "notes", "text"),
                col("users", "created_at", "timestamp with time zone"),
                col("products", "name", "text"),
            ],
            "prod",
        );
        for line in [
            "strict: true",
            "\"public.users.email\": unique_email",
            "\"public.users.mobile_phone\": unique_phone",
            "\"public.users.last_name\": random_letter",
            "\"public.users.date_of_birth\": random_date",
            "\"public.users.last_login_ip\": random_ip",
            "\"public.users.iban\": unique_secret",
            "\"public.users.notes\": {value: redacted}",
            "\"public.users.created_at\": untouched",
            "\"public.products.name\": untouched",
            "# public.users.id: key column",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
        let parsed =
            dbsync_workflow::sync_config::SyncConfig::parse("starter", &text).expect("valid YAML");
        assert!(parsed.strict);
        assert_eq!(parsed.data_rules.len(), 9);
    }
}
