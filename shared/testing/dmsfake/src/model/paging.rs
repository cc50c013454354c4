//! Reading requests as DMS does: filters, page sizes, opaque markers, and
//! the selection rules a resumed load gets.

use super::*;

pub(super) fn is_run_fault(f: &Fault) -> bool {
    matches!(f, Fault::Stuck | Fault::FailMidLoad(_))
}

/// Selection rules for these tables (`None`: no table): `explicit` rules,
/// or, for a name holding DMS's only wildcard `%` (which explicit rules
/// refuse), an `include` rule — that may also take similarly named tables.
pub(super) fn explicit(tables: &[(String, String)]) -> Option<Selection> {
    if tables.is_empty() {
        return None;
    }
    let rules: Vec<Value> = tables
        .iter()
        .enumerate()
        .map(|(i, (schema, table))| {
            let action = if schema.contains('%') || table.contains('%') {
                "include"
            } else {
                "explicit"
            };
            json!({"rule-type": "selection", "rule-id": (i + 1).to_string(), "rule-name": format!("resume-{i}"),
                   "object-locator": {"schema-name": schema, "table-name": table}, "rule-action": action})
        })
        .collect();
    Some(
        Selection::from_json(&json!({ "rules": rules }).to_string())
            .expect("selection rules made for a resume"),
    )
}

/// `Filters`: [(name, values)].
pub(super) fn filters(req: &Value) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    let Some(list) = req.get("Filters").filter(|f| !f.is_null()) else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| ApiError::invalid("Filters must be a list"))?;
    list.iter()
        .map(|f| {
            let name = f["Name"]
                .as_str()
                .ok_or_else(|| ApiError::invalid("a filter needs a Name"))?;
            let values = f["Values"]
                .as_array()
                .ok_or_else(|| ApiError::invalid("a filter needs Values"))?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            Ok((name.to_owned(), values))
        })
        .collect()
}

/// `MaxRecords` (default 100), within DMS's bounds for the operation.
pub(super) fn page_size(req: &Value, min: u64, max: u64) -> Result<usize, ApiError> {
    match req.get("MaxRecords").filter(|v| !v.is_null()) {
        None => Ok(100.min(max) as usize),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(n as usize),
            _ => Err(ApiError::invalid(format!(
                "MaxRecords must be between {min} and {max}, got {v}"
            ))),
        },
    }
}

/// One page from `Marker` (an opaque offset), and the next marker.
pub(super) fn paginate(
    rows: Vec<Value>,
    req: &Value,
    size: usize,
) -> Result<(Vec<Value>, Option<String>), ApiError> {
    let start = match req["Marker"].as_str() {
        None | Some("") => 0,
        Some(m) => m
            .strip_prefix("fake-marker-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= rows.len())
            .ok_or_else(|| ApiError::invalid(format!("Invalid Marker: {m}")))?,
    };
    let end = (start + size).min(rows.len());
    let next = (end < rows.len()).then(|| format!("fake-marker-{end}"));
    Ok((rows[start..end].to_vec(), next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_opaque_markers_and_dms_bounds() {
        let rows: Vec<Value> = (0..23).map(|i| json!(i)).collect();
        let (first, m) = paginate(rows.clone(), &json!({}), 10).unwrap();
        assert_eq!((first.len(), m.as_deref()), (10, Some("fake-marker-10")));
        let (last, m) = paginate(rows.clone(), &json!({"Marker": "fake-marker-20"}), 10).unwrap();
        assert_eq!((last, m), (vec![json!(20), json!(21), json!(22)], None));
        assert!(paginate(rows, &json!({"Marker": "garbage"}), 10).is_err());
        assert_eq!(page_size(&json!({}), 10, 500).unwrap(), 100);
        assert_eq!(
            page_size(&json!({"MaxRecords": 500}), 10, 500).unwrap(),
            500
        );
        let e = page_size(&json!({"MaxRecords": 501}), 10, 500).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValueException");
    }

    #[test]
    fn a_resume_selects_exactly_the_tables_left() {
        let left = [
            ("app".to_owned(), "orders".to_owned()),
            ("x".to_owned(), "Odd%Name".to_owned()),
        ];
        let s = explicit(&left).unwrap();
        assert!(s.matches("app", "orders") && s.matches("x", "Odd%Name"));
        assert!(!s.matches("app", "customers") && !s.matches("app", "orders2"));
        // `%` is DMS's wildcard: the rule for Odd%Name takes OddName too.
        assert!(s.matches("x", "OddName"));
        assert!(explicit(&[]).is_none());
    }

    #[test]
    fn filters_are_read_as_dms_sends_them() {
        let req = json!({"Filters": [{"Name": "endpoint-arn", "Values": ["a", "b"]}]});
        assert_eq!(
            filters(&req).unwrap(),
            [(
                "endpoint-arn".to_owned(),
                vec!["a".to_owned(), "b".to_owned()]
            )]
        );
        assert!(filters(&json!({})).unwrap().is_empty());
        assert!(filters(&json!({"Filters": [{"Values": []}]})).is_err());
    }
}
