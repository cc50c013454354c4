//! Sequences: DMS copies rows, not sequence positions. After a sync every
//! sequence behind a synced column is moved just past the data, in a constant
//! number of round trips whatever the number of sequences.

use std::collections::BTreeMap;

use dbsync_workflow::{io::FixSequencesOutput, StepError};
use tokio_postgres::{types::Type, Client};

use crate::{classify, selected_tables, sql, step_transaction, Budget, Selection, Timeouts};

/// A sequence and the columns whose data it must stay ahead of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceUse {
    pub oid: u32,
    /// `schema.sequence`, quoted.
    pub name: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    /// (`schema.table`, `column`), quoted.
    pub columns: Vec<(String, String)>,
}

impl SequenceUse {
    fn descending(&self) -> bool {
        self.increment < 0
    }

    /// The position the sequence must have given the extreme value of its
    /// data (max, or min when descending): `(value, is_called)`.
    pub fn target(&self, extreme: Option<i128>) -> Result<(i64, bool), String> {
        let start = (self.start, false);
        let Some(v) = extreme else { return Ok(start) };
        let (min, max) = (i128::from(self.min), i128::from(self.max));
        if self.descending() {
            if v < min {
                return Err(format!(
                    "{}: data reaches {v}, below MINVALUE {min}",
                    self.name
                ));
            }
            // Data above the range cannot collide with values the sequence will produce.
            Ok(if v > max { start } else { (v as i64, true) })
        } else {
            if v > max {
                return Err(format!(
                    "{}: data reaches {v}, beyond MAXVALUE {max}",
                    self.name
                ));
            }
            Ok(if v < min { start } else { (v as i64, true) })
        }
    }
}

/// The sequences a sync must fix (read-only; also used by `plan`).
pub async fn sequence_uses(
    client: &impl tokio_postgres::GenericClient,
    oids: &[u32],
) -> Result<Vec<SequenceUse>, StepError> {
    let rows = client
        .query_typed(sql::SEQUENCE_USES, &[(&oids, Type::OID_ARRAY)])
        .await
        .map_err(|e| classify(e, "finding sequences"))?;
    let mut by_oid: BTreeMap<u32, SequenceUse> = BTreeMap::new();
    for r in &rows {
        let oid: u32 = r.get("seq");
        by_oid
            .entry(oid)
            .or_insert_with(|| SequenceUse {
                oid,
                name: r.get("seq_name"),
                start: r.get("seqstart"),
                increment: r.get("seqincrement"),
                min: r.get("seqmin"),
                max: r.get("seqmax"),
                columns: Vec::new(),
            })
            .columns
            .push((r.get("table_name"), r.get("column_name")));
    }
    let mut uses: Vec<_> = by_oid.into_values().collect();
    uses.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(uses)
}

/// Sets every sequence behind the selected tables' columns past their data.
/// Checks all of them before moving any: out-of-range data changes nothing.
pub async fn fix_sequences(
    client: &mut Client,
    selection: &Selection,
    timeouts: Timeouts,
    budget: Budget,
) -> Result<FixSequencesOutput, StepError> {
    let ctx = "fixing sequences";
    let err = |e| classify(e, ctx);
    let tx = step_transaction(client, timeouts, budget, true, ctx).await?;
    let oids: Vec<u32> = selected_tables(&tx, selection)
        .await?
        .iter()
        .map(|t| t.oid)
        .collect();
    let uses = sequence_uses(&tx, &oids).await?;
    if uses.is_empty() {
        tx.commit().await.map_err(err)?;
        return Ok(FixSequencesOutput {
            sequences: 0,
            changed: 0,
        });
    }
    let (mut seq, mut tbl, mut col, mut desc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for u in &uses {
        for (t, c) in &u.columns {
            seq.push(u.oid);
            tbl.push(t.as_str());
            col.push(c.as_str());
            desc.push(u.descending());
        }
    }
    let rows = tx
        .query_typed(
            sql::SEQUENCE_EXTREMES,
            &[
                (&seq, Type::OID_ARRAY),
                (&tbl, Type::TEXT_ARRAY),
                (&col, Type::TEXT_ARRAY),
                (&desc, Type::BOOL_ARRAY),
            ],
        )
        .await
        .map_err(err)?;
    let by_oid: BTreeMap<u32, &SequenceUse> = uses.iter().map(|u| (u.oid, u)).collect();

    let (mut seqs, mut values, mut called) = (Vec::new(), Vec::new(), Vec::new());
    let mut out_of_range = Vec::new();
    for r in &rows {
        let oid: u32 = r.get(0);
        let current: (i64, bool) = (r.get(1), r.get(2));
        let extreme = r.get::<_, Option<&str>>(3).map(parse_integer_part);
        let u = by_oid[&oid];
        match extreme.transpose().and_then(|e| u.target(e)) {
            Ok(target) if target != current => {
                seqs.push(oid);
                values.push(target.0);
                called.push(target.1);
            }
            Ok(_) => {}
            Err(e) => out_of_range.push(e),
        }
    }
    if !out_of_range.is_empty() {
        return Err(StepError::SequenceOutOfRange(out_of_range.join("; ")));
    }
    if !seqs.is_empty() {
        tx.query_typed(
            sql::SET_SEQUENCES,
            &[
                (&seqs, Type::OID_ARRAY),
                (&values, Type::INT8_ARRAY),
                (&called, Type::BOOL_ARRAY),
            ],
        )
        .await
        .map_err(err)?;
    }
    tx.commit().await.map_err(err)?;
    Ok(FixSequencesOutput {
        sequences: uses.len() as u64,
        changed: seqs.len() as u64,
    })
}

/// The integer part of a numeric's text. Truncating toward zero keeps the next
/// value clear of the data in both directions.
fn parse_integer_part(text: &str) -> Result<i128, String> {
    let int = text.split('.').next().unwrap_or(text);
    int.parse::<i128>().map_err(|_| {
        format!(
            "a sequence column holds a value too large to compare ({} digits)",
            int.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(increment: i64, min: i64, max: i64, start: i64) -> SequenceUse {
        SequenceUse {
            oid: 1,
            name: "s".into(),
            start,
            increment,
            min,
            max,
            columns: vec![],
        }
    }

    #[test]
    fn targets() {
        let up = seq(1, 1, 32767, 1);
        assert_eq!(up.target(None), Ok((1, false)));
        assert_eq!(up.target(Some(41)), Ok((41, true)));
        assert_eq!(up.target(Some(32767)), Ok((32767, true)));
        assert!(up.target(Some(32768)).is_err());
        assert_eq!(up.target(Some(-5)), Ok((1, false)));
        let down = seq(-1, -1000, -1, -1);
        assert_eq!(down.target(None), Ok((-1, false)));
        assert_eq!(down.target(Some(-41)), Ok((-41, true)));
        assert!(down.target(Some(-1001)).is_err());
        assert_eq!(down.target(Some(3)), Ok((-1, false)));
    }

    #[test]
    fn integer_parts() {
        assert_eq!(parse_integer_part("42"), Ok(42));
        assert_eq!(parse_integer_part("-10.5"), Ok(-10));
        assert_eq!(
            parse_integer_part("99999999999999999999"),
            Ok(99_999_999_999_999_999_999)
        );
        assert!(parse_integer_part("1".repeat(60).as_str()).is_err());
    }
}
