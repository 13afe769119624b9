//! Instants: FHIR `date`, `dateTime` and `instant` text to a UTC timestamp (the `_ts`
//! companion columns, transactionTime ordering), and the present time as RFC 3339.
//!
//! Partial dates (`2020`, `2020-03`) give the start of the period; a time without an
//! offset is taken as UTC. Text that does not parse gives no timestamp (the exact text
//! is kept either way).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The current time as RFC 3339 UTC with seconds (`2026-11-28T22:54:17Z`).
pub fn now_rfc3339() -> String {
    rfc3339(unix_now())
}

/// Seconds since the Unix epoch as RFC 3339 UTC (`2026-11-28T22:54:17Z`).
pub fn rfc3339(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Microseconds since the Unix epoch as RFC 3339 UTC, with the fraction only when there
/// is one (`2026-11-28T22:54:17.25Z`).
pub fn rfc3339_micros(micros: i64) -> String {
    let text = rfc3339(micros.div_euclid(1_000_000));
    match micros.rem_euclid(1_000_000) {
        0 => text,
        fraction => {
            let digits = format!("{fraction:06}");
            format!(
                "{}.{}Z",
                text.trim_end_matches('Z'),
                digits.trim_end_matches('0')
            )
        }
    }
}

/// Seconds since the Unix epoch as `yyyymmddThhmmssZ` (run ids: sortable, path-safe).
pub fn compact_utc(secs: i64) -> String {
    rfc3339(secs).replace(['-', ':'], "")
}

/// Microseconds since the Unix epoch, UTC, of a FHIR date/dateTime/instant text.
pub fn parse_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let year = digits(b, 0, 4)? as i64;
    let (month, day) = match b.len() {
        4 => (1, 1),
        7 if b[4] == b'-' => (digits(b, 5, 2)?, 1),
        _ if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' => (digits(b, 5, 2)?, digits(b, 8, 2)?),
        _ => return None,
    };
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if b.len() <= 10 {
        return Some(days * 86_400_000_000);
    }
    if b[10] != b'T' || b.len() < 16 || b[13] != b':' {
        return None;
    }
    let (hour, minute) = (digits(b, 11, 2)? as i64, digits(b, 14, 2)? as i64);
    let mut pos = 16;
    let mut second = 0;
    if b.get(pos) == Some(&b':') {
        second = digits(b, pos + 1, 2)? as i64;
        pos += 3;
    }
    let mut micros = 0i64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            if pos - start < 6 {
                micros = micros * 10 + i64::from(b[pos] - b'0');
            }
            pos += 1;
        }
        if pos == start {
            return None;
        }
        for _ in (pos - start)..6 {
            micros *= 10;
        }
    }
    let offset_minutes = match b.get(pos) {
        None => 0,
        Some(b'Z') if pos + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == pos + 6 && b[pos + 3] == b':' => {
            let minutes = digits(b, pos + 1, 2)? as i64 * 60 + digits(b, pos + 4, 2)? as i64;
            if sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    if hour > 24 || minute > 59 || second > 60 {
        return None;
    }
    let seconds = days * 86_400 + hour * 3600 + (minute - offset_minutes) * 60 + second;
    Some(seconds * 1_000_000 + micros)
}

/// `len` ASCII digits at `at` as a number.
fn digits(b: &[u8], at: usize, len: usize) -> Option<u32> {
    let slice = b.get(at..at + len)?;
    slice.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_dates_are_period_starts() {
        assert_eq!(parse_micros("1970"), Some(0));
        assert_eq!(parse_micros("1970-02"), Some(31 * 86_400_000_000));
        assert_eq!(
            parse_micros("2000-02-29"),
            Some(days_from_civil(2000, 2, 29) * 86_400_000_000)
        );
    }

    #[test]
    fn offsets_convert_to_utc_and_fractions_are_kept() {
        let utc = parse_micros("2020-01-01T10:00:00Z").unwrap();
        assert_eq!(parse_micros("2020-01-01T12:00:00+02:00"), Some(utc));
        assert_eq!(parse_micros("2020-01-01T05:30:00-04:30"), Some(utc));
        assert_eq!(parse_micros("2020-01-01T10:00:00.5Z"), Some(utc + 500_000));
        assert_eq!(
            parse_micros("2020-01-01T10:00:00.1234567Z"),
            Some(utc + 123_456)
        );
        assert_eq!(parse_micros("2020-01-01T10:00:00"), Some(utc));
    }

    #[test]
    fn garbage_gives_none() {
        for bad in [
            "",
            "20",
            "2020-13",
            "2020-02-30",
            "2020-01-01X",
            "2020-01-01T10",
            "abcd",
            "2020-01-01T10:00:00+0200",
        ] {
            assert_eq!(parse_micros(bad), None, "{bad}");
        }
    }

    #[test]
    fn instants_format_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(compact_utc(86_399), "19700101T235959Z");
        let micros = parse_micros("2026-01-02T03:04:05.25Z").unwrap();
        assert_eq!(rfc3339_micros(micros), "2026-01-02T03:04:05.25Z");
        assert_eq!(rfc3339_micros(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn civil_round_trips() {
        for days in [-800_000, -1, 0, 1, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
