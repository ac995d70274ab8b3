//! The JSON forms of the messages that are not objects of their fields: times, durations.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use super::CodecError;

/// `metav1.Time` as JSON: RFC 3339 in UTC, whole seconds (upstream drops the nanoseconds of
/// a protobuf time, so JSON and protobuf clients see the same value).
pub(super) fn format_time(seconds: i64) -> Result<String, CodecError> {
    let t =
        OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| CodecError::Malformed("time"))?;
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .map_err(|_| CodecError::Malformed("time"))
}

/// `metav1.MicroTime` as JSON: RFC 3339 in UTC with six fractional digits.
pub(super) fn format_micro_time(seconds: i64, nanos: i64) -> Result<String, CodecError> {
    let t = OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.replace_nanosecond(u32::try_from(nanos).ok()?).ok())
        .ok_or(CodecError::Malformed("time"))?;
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    ))
    .map_err(|_| CodecError::Malformed("time"))
}

/// Seconds and nanoseconds of an RFC 3339 time.
pub(super) fn parse_time(text: &str) -> Result<(i64, i32), CodecError> {
    let t = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| CodecError::Expected("an RFC 3339 time"))?;
    Ok((t.unix_timestamp(), t.nanosecond() as i32))
}

const UNITS: &[(&str, f64)] = &[
    ("ns", 1.0),
    ("us", 1e3),
    ("µs", 1e3),
    ("μs", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("m", 60e9),
    ("h", 3600e9),
];

/// Nanoseconds of a Go duration string (`1h2m3.5s`, `300ms`, `-1.5h`, `0`).
pub(super) fn parse_duration(text: &str) -> Result<i64, CodecError> {
    let bad = || CodecError::Expected("a duration such as 1h2m3s");
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, s)| *s)
            .ok_or_else(bad)?;
        total += value * scale;
        rest = tail;
    }
    if !total.is_finite() || total > i64::MAX as f64 {
        return Err(bad());
    }
    let nanos = total.round() as i64;
    Ok(if negative { -nanos } else { nanos })
}

/// `whole.fraction` of `value / 10^digits`, without trailing zeros (as Go prints durations).
fn decimal(value: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// A duration as Go's `time.Duration.String` prints it.
pub(super) fn format_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let u = u128::from(nanos.unsigned_abs());
    if u == 0 {
        return "0s".to_owned();
    }
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}µs", decimal(u, 3));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", decimal(u, 6));
    }
    let secs = u / 1_000_000_000;
    let seconds = decimal(u % 60_000_000_000, 9);
    let (hours, minutes) = (secs / 3600, (secs / 60) % 60);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_prints_them() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_500_000, "1.5ms"),
            (1_000_000_000, "1s"),
            (61_500_000_000, "1m1.5s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_000_000_000, "1h2m3s"),
            (-90_000_000_000, "-1m30s"),
        ] {
            assert_eq!(format_duration(nanos), text);
            assert_eq!(parse_duration(text).unwrap(), nanos, "{text}");
        }
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("1.5h").unwrap(), 5_400_000_000_000);
        for bad in ["", "h", "1", "1x", "1..5s", "-", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(format_time(1_199_149_261).unwrap(), "2008-01-01T01:01:01Z");
        assert_eq!(
            parse_time("2008-01-01T01:01:01Z").unwrap(),
            (1_199_149_261, 0)
        );
        assert_eq!(
            format_micro_time(1_199_149_261, 123_456_789).unwrap(),
            "2008-01-01T01:01:01.123456Z"
        );
        assert!(parse_time("yesterday").is_err());
        assert!(format_time(i64::MAX).is_err());
    }
}
