//! Times as text, through the SDK's own date-time type (`aws_smithy_types::DateTime`) rather
//! than hand-written calendar arithmetic. Always UTC.

use std::time::SystemTime;

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

/// RFC 3339, e.g. `2026-01-02T03:04:05Z` or `2026-01-02T03:04:05.123Z`: the fraction of a
/// second has as many digits as it needs (up to microseconds), none for a whole second.
pub fn rfc3339(t: DateTime) -> String {
    // Only years outside 1..=9999 cannot be written so.
    t.fmt(Format::DateTime)
        .unwrap_or_else(|_| format!("{} s since 1970-01-01T00:00:00Z", t.secs()))
}

/// Now, in RFC 3339.
pub fn now_rfc3339() -> String {
    rfc3339(DateTime::from(SystemTime::now()))
}

/// Now's time of day to the second, as RFC 3339 writes it: `03:04:05Z`.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "for the progress lines' times in output.rs, which switch to it in the restructuring; remove this then"
    )
)]
pub fn now_time_of_day() -> String {
    let whole_second = DateTime::from_secs(DateTime::from(SystemTime::now()).secs());
    let text = rfc3339(whole_second);
    match text.split_once('T') {
        Some((_, time)) => time.to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_in_utc() {
        assert_eq!(rfc3339(DateTime::from_secs(0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(DateTime::from_millis(1_767_323_045_123)),
            "2026-01-02T03:04:05.123Z"
        );
        let now = now_rfc3339();
        assert!(now.len() >= 20 && now.ends_with('Z'), "{now}");
        assert_eq!(now.as_bytes()[10], b'T', "{now}");
    }

    #[test]
    fn time_of_day_is_whole_seconds_with_the_zone() {
        let t = now_time_of_day();
        assert_eq!(t.len(), 9, "{t}");
        assert!(
            t.ends_with('Z') && t.as_bytes()[2] == b':' && t.as_bytes()[5] == b':',
            "{t}"
        );
    }
}
