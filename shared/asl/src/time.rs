//! Timestamps as ASL reads and writes them.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use std::time::SystemTime;

/// Parses an ISO-8601 extended offset date-time as AWS accepts it: `T` separator and a
/// zone (`Z` or `±hh:mm`) are required.
pub(crate) fn parse_timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    // chrono also accepts a space or a lower-case 't' as separator; AWS does not.
    if s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok()
}

/// Formats a time the way AWS writes `$$` timestamps (millisecond precision, `Z`).
pub(crate) fn format_time(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn to_system_time(t: DateTime<FixedOffset>) -> SystemTime {
    t.with_timezone(&Utc).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert!(parse_timestamp("2016-03-14T01:59:00Z").is_some());
        assert!(parse_timestamp("2016-03-14T01:59:00.123+02:00").is_some());
        assert!(parse_timestamp("2016-03-14 01:59:00Z").is_none());
        assert!(parse_timestamp("2016-03-14T01:59:00").is_none());
        assert!(parse_timestamp("2016-13-14T01:59:00Z").is_none());
    }
}
