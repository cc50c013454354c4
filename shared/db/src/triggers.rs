//! User triggers switched off around dbsync's own writes (the local copy,
//! masking) and back to exactly the mode each had, in the same transaction:
//! a crash can never leave one disabled.

use tokio_postgres::{types::Type, GenericClient};

use crate::sql::ident;

/// A table's enabled user triggers and how each fires (`O` origin, `R`
/// replica, `A` always). Internal triggers (foreign keys) and constraint
/// triggers are left alone.
pub async fn user_triggers(
    target: &impl GenericClient,
    table: &str,
) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    Ok(target
        .query_typed(
            "SELECT t.tgname::text AS name, t.tgenabled::text AS mode
             FROM pg_catalog.pg_trigger t
             WHERE t.tgrelid = $1::text::pg_catalog.regclass
               AND NOT t.tgisinternal AND t.tgconstraint = 0 AND t.tgenabled <> 'D'
             ORDER BY 1",
            &[(&table, Type::TEXT)],
        )
        .await?
        .iter()
        .map(|r| (r.get("name"), r.get("mode")))
        .collect())
}

/// One `ALTER TABLE` switching the triggers off, or back to exactly how they fired.
pub fn triggers_statement(table: &str, triggers: &[(String, String)], on: bool) -> Option<String> {
    if triggers.is_empty() {
        return None;
    }
    let actions: Vec<String> = triggers
        .iter()
        .map(|(name, mode)| {
            let how = match (on, mode.as_str()) {
                (false, _) => "DISABLE",
                (true, "R") => "ENABLE REPLICA",
                (true, "A") => "ENABLE ALWAYS",
                (true, _) => "ENABLE",
            };
            format!("{how} TRIGGER {}", ident(name))
        })
        .collect();
    Some(format!("ALTER TABLE {table} {}", actions.join(", ")))
}
