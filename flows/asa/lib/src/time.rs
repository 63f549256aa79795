//! Timestamps: RFC 3339 in, epoch milliseconds and the Workflows "isoString" form out.
//!
//! ASA writes nanosecond timestamps (`2020-11-18T18:05:08.277119888Z`); the Audit Events table
//! keeps the millisecond "isoString" a Workflows Date card produces (`2020-11-18T18:05:08.277Z`,
//! truncated, in UTC). Any precision and any UTC offset are accepted.

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp (`T`/`t`/space separator,
/// optional fraction of any length, `Z`/`z` or `±HH:MM`); `None` if it does not parse.
pub fn epoch_ms(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(digits.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        // Milliseconds, truncated: the first three digits, padded.
        millis = (0..3).fold(0, |m, k| {
            m * 10 + b.get(start + k).filter(|_| start + k < i).map_or(0, |d| i64::from(d - b'0'))
        });
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        &sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 60 + om;
            if sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_min * 60;
    Some(secs * 1_000 + millis)
}

/// Seconds since the Unix epoch, with the milliseconds as the fraction (`1709600523.123`), of an
/// RFC 3339 timestamp (Splunk HEC's `time`); `None` if it does not parse.
pub fn epoch_seconds(s: &str) -> Option<f64> {
    epoch_ms(s).map(|ms| ms as f64 / 1_000.0)
}

/// The "isoString" of epoch milliseconds: `YYYY-MM-DDTHH:MM:SS.mmmZ` (years 0000–9999).
pub fn iso_from_epoch_ms(ms: i64) -> Option<String> {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let (h, min, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1_000 % 60, rem % 1_000);
    // Written digit by digit: `format!` was most of the cost of an event's timestamp.
    let mut out = String::with_capacity(24);
    let parts: [(i64, u32, char); 7] = [
        (y, 4, '-'),
        (m, 2, '-'),
        (d, 2, 'T'),
        (h, 2, ':'),
        (min, 2, ':'),
        (s, 2, '.'),
        (milli, 3, 'Z'),
    ];
    for (value, width, after) in parts {
        push_digits(&mut out, value, width);
        out.push(after);
    }
    Some(out)
}

/// `value` (0 ..= 10^width - 1) as exactly `width` decimal digits.
fn push_digits(out: &mut String, value: i64, width: u32) {
    let mut unit = 10i64.pow(width.saturating_sub(1));
    while unit > 0 {
        let digit = (value / unit).rem_euclid(10) as u8;
        out.push(char::from(b'0' + digit));
        unit /= 10;
    }
}

/// An RFC 3339 timestamp as the millisecond "isoString" in UTC; `None` if it does not parse.
pub fn iso_ms(s: &str) -> Option<String> {
    iso_from_epoch_ms(epoch_ms(s)?)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_string_truncates_to_milliseconds() {
        assert_eq!(
            iso_ms("2020-11-18T18:05:08.277119888Z").as_deref(),
            Some("2020-11-18T18:05:08.277Z")
        );
        assert_eq!(
            iso_ms("2024-03-05T01:02:03.123456789Z").as_deref(),
            Some("2024-03-05T01:02:03.123Z")
        );
        assert_eq!(
            iso_ms("2024-03-05T01:10:00.000000001Z").as_deref(),
            Some("2024-03-05T01:10:00.000Z")
        );
        assert_eq!(
            iso_ms("2024-03-05T01:11:12.250000000Z").as_deref(),
            Some("2024-03-05T01:11:12.250Z")
        );
        assert_eq!(
            iso_ms("2024-03-05T01:02:04.999999999Z").as_deref(),
            Some("2024-03-05T01:02:04.999Z")
        );
    }

    #[test]
    fn any_precision_and_offset() {
        assert_eq!(iso_ms("2016-10-18T17:26:30Z").as_deref(), Some("2016-10-18T17:26:30.000Z"));
        assert_eq!(iso_ms("2016-10-18T17:26:30.5Z").as_deref(), Some("2016-10-18T17:26:30.500Z"));
        assert_eq!(iso_ms("2016-10-18t17:26:30.12z").as_deref(), Some("2016-10-18T17:26:30.120Z"));
        assert_eq!(
            iso_ms("2024-03-05T11:02:03.123+10:00").as_deref(),
            Some("2024-03-05T01:02:03.123Z")
        );
        assert_eq!(
            iso_ms("2024-03-04T23:30:00-01:45").as_deref(),
            Some("2024-03-05T01:15:00.000Z")
        );
        assert_eq!(iso_ms("2024-02-29 00:00:00Z").as_deref(), Some("2024-02-29T00:00:00.000Z"));
    }

    #[test]
    fn epoch_values() {
        assert_eq!(epoch_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(epoch_ms("2025-02-02T16:03:08.015338722Z"), Some(1_738_512_188_015));
        assert_eq!(epoch_ms("1969-12-31T23:59:59.999Z"), Some(-1));
        assert_eq!(iso_from_epoch_ms(-1).as_deref(), Some("1969-12-31T23:59:59.999Z"));
        assert_eq!(
            iso_from_epoch_ms(1_738_512_188_015).as_deref(),
            Some("2025-02-02T16:03:08.015Z")
        );
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for s in [
            "",
            "2020",
            "2020-11-18",
            "2020-11-18T18:05:08",
            "2020-13-18T18:05:08Z",
            "2023-02-29T00:00:00Z",
            "2020-11-18T24:00:00Z",
            "2020-11-18T18:05:08.Z",
            "2020-11-18T18:05:08.1",
            "2020-11-18T18:05:08+1000",
            "2020-11-18T18:05:08Zjunk",
            "2020-11-1xT18:05:08Z",
            "２020-11-18T18:05:08Z",
            "2020-11-18T18:05:08.277119888",
        ] {
            assert_eq!(iso_ms(s), None, "{s}");
        }
    }
}
