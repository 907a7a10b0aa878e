//! Time as people read it, through the SDK's own date type rather than hand-written
//! calendar arithmetic.

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

/// Now, in RFC 3339 (`2026-12-02T01:02:03Z`).
pub fn now_rfc3339() -> String {
    rfc3339(DateTime::from(std::time::SystemTime::now()))
}

/// A time in RFC 3339, to the second.
pub fn rfc3339(t: DateTime) -> String {
    DateTime::from_secs(t.secs())
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| t.secs().to_string())
}

/// The time of day, UTC (`01:02:03Z`), for progress lines.
pub fn time_of_day() -> String {
    after_date(now_rfc3339())
}

/// The time of day, UTC, of a time given in milliseconds since the epoch
/// (`01:02:03.456Z`), as CloudWatch Logs gives them.
pub fn time_of_day_millis(ms: i64) -> String {
    let t = DateTime::from_millis(ms);
    after_date(t.fmt(Format::DateTime).unwrap_or_else(|_| ms.to_string()))
}

fn after_date(rfc3339: String) -> String {
    match rfc3339.split_once('T') {
        Some((_, time)) => time.to_owned(),
        None => rfc3339,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day() {
        assert_eq!(
            time_of_day_millis(1_000 * 86_400 + 3_723_456),
            "01:02:03.456Z"
        );
        assert_eq!(rfc3339(DateTime::from_secs(86_400)), "1970-01-02T00:00:00Z");
        assert!(time_of_day().ends_with('Z'));
    }
}
