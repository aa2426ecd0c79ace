//! Unix-millisecond timestamps: the range the sink accepts, RFC 3339 rendering and parsing.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

/// Earliest accepted timestamp: `0000-01-01T00:00:00.000Z`, the first instant RFC 3339 can write.
pub const MIN_MS: i64 = -62_167_219_200_000;

/// Latest accepted timestamp: `9999-12-31T23:59:59.999Z`, the last instant RFC 3339 can write.
pub const MAX_MS: i64 = 253_402_300_799_999;

/// Whether `ts_ms` lies in [`MIN_MS`]`..=`[`MAX_MS`], i.e. can be written as RFC 3339.
pub fn in_range(ts_ms: i64) -> bool {
    (MIN_MS..=MAX_MS).contains(&ts_ms)
}

/// The UTC date-time of `ts_ms`, or `None` outside [`in_range`].
pub fn to_datetime(ts_ms: i64) -> Option<OffsetDateTime> {
    if !in_range(ts_ms) {
        return None;
    }
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ms) * 1_000_000).ok()
}

/// The UTC date and hour (0..=23) of `ts_ms`, or `None` outside [`in_range`].
pub fn date_hour(ts_ms: i64) -> Option<(Date, u8)> {
    to_datetime(ts_ms).map(|dt| (dt.date(), dt.hour()))
}

/// `YYYY-MM-DD`.
pub fn format_date(date: Date) -> String {
    let format = format_description!("[year]-[month]-[day]");
    // A four-digit year always formats; fall back to Display (same text) rather than panic.
    date.format(format).unwrap_or_else(|_| date.to_string())
}

/// RFC 3339 in UTC with exactly three fractional digits, e.g. `2026-11-23T22:57:58.123Z`.
///
/// A value outside [`in_range`] is clamped to the range first; ingest rejects such values, so
/// only a hand-edited database can hold one.
pub fn format_ms(ts_ms: i64) -> String {
    let clamped = ts_ms.clamp(MIN_MS, MAX_MS);
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    match to_datetime(clamped).map(|dt| dt.format(format)) {
        Some(Ok(text)) => text,
        // Unreachable for clamped values; keep the number rather than lose it.
        _ => clamped.to_string(),
    }
}

/// Parse an RFC 3339 timestamp (any offset) into unix milliseconds, rounding up, so that
/// `ts_ms >= parse_rfc3339_ms(s)` means "at or after `s`".
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, time::error::Parse> {
    let dt = OffsetDateTime::parse(text, &Rfc3339)?;
    let nanos = dt.unix_timestamp_nanos();
    let ms = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
    // |unix time| of a year in -9999..=9999 in ms is far below i64::MAX.
    Ok(i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX }))
}

/// The current time in unix milliseconds (the only clock read of the sink, done by the fronts).
pub fn now_ms() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos.div_euclid(1_000_000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_exactly_three_fraction_digits() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_795_474_678_123), "2026-11-23T22:57:58.123Z");
        assert_eq!(format_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn range_ends_format_and_one_past_is_rejected() {
        assert_eq!(format_ms(MIN_MS), "0000-01-01T00:00:00.000Z");
        assert_eq!(format_ms(MAX_MS), "9999-12-31T23:59:59.999Z");
        assert!(to_datetime(MIN_MS - 1).is_none());
        assert!(to_datetime(MAX_MS + 1).is_none());
        assert!(date_hour(i64::MAX).is_none());
    }

    #[test]
    fn parse_rounds_up_to_the_next_millisecond() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00.0001Z").unwrap(), 1);
        assert_eq!(parse_rfc3339_ms("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert_eq!(
            parse_rfc3339_ms("2026-11-23T22:57:58.123Z").unwrap(),
            1_795_474_678_123
        );
        assert!(parse_rfc3339_ms("yesterday").is_err());
    }

    #[test]
    fn date_hour_is_utc() {
        let (date, hour) = date_hour(1_795_474_678_123).unwrap();
        assert_eq!(format_date(date), "2026-11-23");
        assert_eq!(hour, 22);
    }
}
