//! The end-of-run report: what the load copied against what staging holds,
//! table by table, with masking and `after_sync` in a line each. Read from
//! the execution's output, the same document an AWS execution ends with.

use std::fmt::Write;

use dbsync_workflow::io::{AfterSyncOutput, MaskOutput, VerifyOutput};
use serde_json::Value;

fn part<T: serde::de::DeserializeOwned>(output: &Value, key: &str) -> Option<T> {
    serde_json::from_value(output.get(key)?.get("result")?.clone()).ok()
}

/// The report as text (empty when the output holds no verification).
pub fn render(output: &Value) -> String {
    let mut s = String::new();
    if let Some(m) = part::<MaskOutput>(output, "masking") {
        if m.columns > 0 {
            let how = if m.in_flight {
                "while copying (no raw value reached staging)".to_owned()
            } else {
                format!("after the load ({} rows updated)", m.rows_total)
            };
            let _ = writeln!(
                s,
                "masked {} column(s) in {} table(s) {how}",
                m.columns, m.tables
            );
        }
    }
    if let Some(v) = part::<VerifyOutput>(output, "verification") {
        let width = v
            .counts
            .iter()
            .map(|c| c.table.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let num = |n: Option<i64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let _ = writeln!(
            s,
            "{:width$}  {:>12}  {:>12}",
            "table", "copied", "in staging"
        );
        for c in &v.counts {
            let flag = if v.per_table_unavailable || c.copied == c.target {
                ""
            } else {
                "  MISMATCH"
            };
            let _ = writeln!(
                s,
                "{:width$}  {:>12}  {:>12}{flag}",
                c.table,
                num(c.copied),
                num(c.target)
            );
        }
        if v.tables as usize > v.counts.len() {
            let _ = writeln!(
                s,
                "… and {} more table(s)",
                v.tables as usize - v.counts.len()
            );
        }
        let _ = writeln!(
            s,
            "{} table(s): {} row(s) copied, {} in staging; {}",
            v.tables,
            num(v.rows_copied),
            v.rows_in_target,
            match v.flagged_total {
                0 if v.per_table_unavailable => "per-table counts were not reported".to_owned(),
                0 => "every table matches".to_owned(),
                n => format!(
                    "{n} table(s) flagged: {}",
                    v.flagged
                        .iter()
                        .map(|f| f.table.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        );
    }
    if let Some(a) = part::<AfterSyncOutput>(output, "afterSync") {
        if a.statements > 0 {
            let _ = writeln!(s, "after_sync: {} statement(s) run", a.statements);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_report_lists_tables_and_flags_mismatches() {
        let out = json!({
            "masking": {"result": {"tables": 1, "columns": 2, "rows": 0, "rowsTotal": 0, "remaining": 0, "inFlight": true}},
            "verification": {"result": {"tables": 2, "rowsCopied": 15, "rowsInTarget": 14, "flaggedTotal": 1, "remaining": 0,
                "flagged": [{"table": "app.b", "copied": 5, "target": 4}],
                "counts": [{"table": "app.a", "copied": 10, "target": 10}, {"table": "app.b", "copied": 5, "target": 4}]}},
            "afterSync": {"result": {"statements": 3, "ran": 3, "remaining": 0}}
        });
        let text = render(&out);
        assert!(
            text.contains("masked 2 column(s) in 1 table(s) while copying"),
            "{text}"
        );
        assert!(
            text.contains(&format!("app.a  {:>12}  {:>12}\n", 10, 10)),
            "{text}"
        );
        assert!(
            text.contains(&format!("app.b  {:>12}  {:>12}  MISMATCH\n", 5, 4)),
            "{text}"
        );
        assert!(text.contains("1 table(s) flagged: app.b"), "{text}");
        assert!(text.contains("after_sync: 3 statement(s) run"), "{text}");
        assert_eq!(render(&json!({})), "");
    }
}
