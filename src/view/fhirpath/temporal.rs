//! Dates, date-times and times as FHIRPath compares them: partial values with a
//! precision, compared component by component, and their low and high boundaries.

use std::{cmp::Ordering, fmt::Write as _};

use super::types::Ty;

/// Whether `text` is a valid value of the temporal type `ty`.
pub(crate) fn valid(text: &str, ty: Ty) -> bool {
    let kind = match ty {
        Ty::Date => Kind::Date,
        Ty::Time => Kind::Time,
        _ => Kind::DateTime,
    };
    Temporal::parse(text, kind).is_some()
}

/// Which of the three temporal kinds a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Date,
    DateTime,
    Time,
}

/// How much of a value is given, coarsest first. Seconds with or without a fraction
/// are one precision for comparisons (FHIRPath treats them alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Precision {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

/// A parsed partial date, date-time or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Temporal {
    pub kind: Kind,
    pub precision: Precision,
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
    /// Offset from UTC in minutes, when given.
    offset: Option<i32>,
}

impl Temporal {
    /// Parses FHIR/FHIRPath text: `YYYY[-MM[-DD]]` (a date), the same followed by
    /// `T[hh[:mm[:ss[.fff]]]][Z|±hh:mm]` (a date-time), or `hh[:mm[:ss[.fff]]]` when
    /// `kind` is [`Kind::Time`]. A date alone may be read as a date-time.
    pub(crate) fn parse(text: &str, kind: Kind) -> Option<Self> {
        let mut t = Temporal {
            kind,
            precision: Precision::Year,
            year: 0,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            millis: 0,
            offset: None,
        };
        if kind == Kind::Time {
            let rest = t.parse_time(text)?;
            return rest.is_empty().then_some(t);
        }
        let b = text.as_bytes();
        if b.len() < 4 || !b[..4].iter().all(u8::is_ascii_digit) {
            return None;
        }
        t.year = text[..4].parse().ok()?;
        let mut rest = &text[4..];
        if let Some(r) = rest.strip_prefix('-') {
            t.month = two_digits(r, 1, 12)?;
            t.precision = Precision::Month;
            rest = &r[2..];
            if let Some(r) = rest.strip_prefix('-') {
                t.day = two_digits(r, 1, days_in_month(t.year, t.month))?;
                t.precision = Precision::Day;
                rest = &r[2..];
            }
        }
        if let Some(r) = rest.strip_prefix('T') {
            if kind == Kind::Date || t.precision != Precision::Day {
                return None;
            }
            // `@2020-01-01T` (a date-time of day precision) is allowed in FHIRPath.
            rest = if r.is_empty() || r.starts_with(['Z', '+', '-']) {
                r
            } else {
                t.parse_time(r)?
            };
            rest = t.parse_offset(rest)?;
        } else if kind == Kind::DateTime {
            rest = t.parse_offset(rest)?;
        }
        rest.is_empty().then_some(t)
    }

    /// Parses `hh[:mm[:ss[.fff]]]`, returning what follows.
    fn parse_time<'a>(&mut self, text: &'a str) -> Option<&'a str> {
        self.hour = two_digits(text, 0, 23)?;
        self.precision = Precision::Hour;
        let mut rest = &text[2..];
        if let Some(r) = rest.strip_prefix(':') {
            self.minute = two_digits(r, 0, 59)?;
            self.precision = Precision::Minute;
            rest = &r[2..];
            if let Some(r) = rest.strip_prefix(':') {
                // 60 for a leap second is accepted by FHIR's regex.
                self.second = two_digits(r, 0, 60)?;
                self.precision = Precision::Second;
                rest = &r[2..];
                if let Some(r) = rest.strip_prefix('.') {
                    let digits = r.bytes().take_while(u8::is_ascii_digit).count();
                    if digits == 0 {
                        return None;
                    }
                    let mut millis = 0;
                    for (i, d) in r.bytes().take(3).enumerate() {
                        if i < digits {
                            millis = millis * 10 + u32::from(d - b'0');
                        }
                    }
                    for _ in digits..3 {
                        millis *= 10;
                    }
                    self.millis = millis;
                    self.precision = Precision::Millisecond;
                    rest = &r[digits..];
                }
            }
        }
        Some(rest)
    }

    /// Parses an optional `Z` or `±hh:mm`, returning what follows.
    fn parse_offset<'a>(&mut self, text: &'a str) -> Option<&'a str> {
        if let Some(r) = text.strip_prefix('Z') {
            self.offset = Some(0);
            return Some(r);
        }
        let sign = match text.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Some(text),
        };
        let r = &text[1..];
        let hours = two_digits(r, 0, 14)?;
        let r = r[2..].strip_prefix(':')?;
        let minutes = two_digits(r, 0, 59)?;
        self.offset = Some(sign * (hours * 60 + minutes) as i32);
        Some(&r[2..])
    }

    /// Whether the value has a time part (a date-time of hour precision or finer).
    fn has_time(&self) -> bool {
        self.kind == Kind::DateTime && self.precision >= Precision::Hour
    }

    /// The value shifted to UTC when it has a time and an offset.
    fn to_utc(self) -> Self {
        let Some(offset) = self.offset.filter(|_| self.has_time()) else {
            return self;
        };
        let minutes = days_from_civil(self.year, self.month, self.day) * 1440
            + i64::from(self.hour * 60 + self.minute)
            - i64::from(offset);
        let (year, month, day) = civil_from_days(minutes.div_euclid(1440));
        let in_day = minutes.rem_euclid(1440) as u32;
        Self {
            year,
            month,
            day,
            hour: in_day / 60,
            minute: in_day % 60,
            offset: Some(0),
            ..self
        }
    }

    /// FHIRPath comparison: `None` when the values are equal as far as both are given
    /// but one is more precise (the result is then empty). Times compare only with
    /// times; dates with date-times.
    pub(crate) fn compare(&self, other: &Self) -> Option<Ordering> {
        let (a, b) = if self.offset.is_some() && other.offset.is_some() {
            (self.to_utc(), other.to_utc())
        } else {
            (*self, *other)
        };
        let components = |t: &Self| {
            [
                t.year as i64,
                i64::from(t.month),
                i64::from(t.day),
                i64::from(t.hour),
                i64::from(t.minute),
                i64::from(t.second * 1000 + t.millis),
            ]
        };
        let level = |p: Precision| match p {
            Precision::Millisecond => Precision::Second as usize,
            p => p as usize,
        };
        let (skip, la, lb) = match a.kind {
            // A time's components start at the hour.
            Kind::Time => (3, level(a.precision), level(b.precision)),
            _ => (0, level(a.precision), level(b.precision)),
        };
        let (ca, cb) = (components(&a), components(&b));
        for i in skip..=la.min(lb) {
            match ca[i].cmp(&cb[i]) {
                Ordering::Equal => {}
                other => return Some(other),
            }
        }
        (la == lb).then_some(Ordering::Equal)
    }

    /// Whether the two values can be compared at all (times with times).
    pub(crate) fn comparable(&self, other: &Self) -> bool {
        (self.kind == Kind::Time) == (other.kind == Kind::Time)
    }

    /// The low (`high` false) or high boundary at `precision` digits (FHIRPath
    /// `lowBoundary`/`highBoundary`), written as text into `out`. Dates default to 8
    /// digits (a day), date-times to 17 (a millisecond), times to 9.
    pub(crate) fn boundary(&self, high: bool, digits: Option<i64>, out: &mut Vec<u8>) -> bool {
        let mut t = *self;
        let (lo, hi) = (self.precision, Precision::Millisecond);
        let fill = |p: Precision| lo < p && p <= hi;
        if fill(Precision::Month) {
            t.month = if high { 12 } else { 1 };
        }
        if fill(Precision::Day) {
            t.day = if high {
                days_in_month(t.year, t.month)
            } else {
                1
            };
        }
        if fill(Precision::Hour) {
            t.hour = if high { 23 } else { 0 };
        }
        if fill(Precision::Minute) {
            t.minute = if high { 59 } else { 0 };
        }
        if fill(Precision::Second) {
            t.second = if high { 59 } else { 0 };
        }
        if fill(Precision::Millisecond) {
            t.millis = if high { 999 } else { 0 };
        }
        let target = match (self.kind, digits) {
            (Kind::Date, None | Some(8)) => Precision::Day,
            (Kind::Date | Kind::DateTime, Some(4)) => Precision::Year,
            (Kind::Date | Kind::DateTime, Some(6)) => Precision::Month,
            (Kind::DateTime, Some(8)) => Precision::Day,
            (Kind::DateTime, Some(10)) => Precision::Hour,
            (Kind::DateTime, Some(12)) => Precision::Minute,
            (Kind::DateTime, Some(14)) => Precision::Second,
            (Kind::DateTime, None | Some(17)) => Precision::Millisecond,
            (Kind::Time, Some(2)) => Precision::Hour,
            (Kind::Time, Some(4)) => Precision::Minute,
            (Kind::Time, Some(6)) => Precision::Second,
            (Kind::Time, None | Some(9)) => Precision::Millisecond,
            _ => return false,
        };
        if t.kind == Kind::DateTime && target >= Precision::Hour && t.offset.is_none() {
            // The widest range of offsets: +14:00 is the earliest instant of a local
            // time, -12:00 the latest.
            t.offset = Some(if high { -12 * 60 } else { 14 * 60 });
        }
        t.write(target, out);
        true
    }

    /// Writes the value at `precision` as FHIR text.
    fn write(&self, precision: Precision, out: &mut Vec<u8>) {
        let mut s = String::new();
        if self.kind != Kind::Time {
            let _ = write!(s, "{:04}", self.year);
            if precision >= Precision::Month {
                let _ = write!(s, "-{:02}", self.month);
            }
            if precision >= Precision::Day {
                let _ = write!(s, "-{:02}", self.day);
            }
        }
        let timed = self.kind == Kind::Time
            || (self.kind == Kind::DateTime && precision >= Precision::Hour);
        if timed {
            if self.kind == Kind::DateTime {
                s.push('T');
            }
            let _ = write!(s, "{:02}", self.hour);
            if precision >= Precision::Minute {
                let _ = write!(s, ":{:02}", self.minute);
            }
            if precision >= Precision::Second {
                let _ = write!(s, ":{:02}", self.second);
            }
            if precision >= Precision::Millisecond {
                let _ = write!(s, ".{:03}", self.millis);
            }
            if self.kind == Kind::DateTime
                && let Some(offset) = self.offset
            {
                let sign = if offset < 0 { '-' } else { '+' };
                let abs = offset.unsigned_abs();
                let _ = write!(s, "{sign}{:02}:{:02}", abs / 60, abs % 60);
            }
        }
        out.extend_from_slice(s.as_bytes());
    }
}

/// Two ASCII digits at the start of `text`, within `min..=max`.
fn two_digits(text: &str, min: u32, max: u32) -> Option<u32> {
    let b = text.as_bytes();
    if b.len() < 2 || !b[0].is_ascii_digit() || !b[1].is_ascii_digit() {
        return None;
    }
    let v = u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0');
    (min..=max).contains(&v).then_some(v)
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(text: &str) -> Temporal {
        Temporal::parse(text, Kind::DateTime).unwrap()
    }

    fn bound(text: &str, kind: Kind, high: bool) -> String {
        let mut out = Vec::new();
        assert!(
            Temporal::parse(text, kind)
                .unwrap()
                .boundary(high, None, &mut out)
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn parses_partial_values_and_rejects_garbage() {
        assert_eq!(dt("2020").precision, Precision::Year);
        assert_eq!(dt("2020-02-29").precision, Precision::Day);
        assert_eq!(dt("2020-01-01T10:00:00.5+02:00").millis, 500);
        assert!(Temporal::parse("2021-02-29", Kind::Date).is_none());
        assert!(Temporal::parse("2020-01-01T10:00", Kind::Date).is_none());
        assert!(Temporal::parse("20-01", Kind::Date).is_none());
        assert!(Temporal::parse("12:3", Kind::Time).is_none());
        assert_eq!(
            Temporal::parse("12:34:56.789", Kind::Time)
                .unwrap()
                .precision,
            Precision::Millisecond
        );
    }

    #[test]
    fn compares_by_precision_and_offset() {
        assert_eq!(
            dt("2020-01-01").compare(&dt("2020-01-02")),
            Some(Ordering::Less)
        );
        assert_eq!(dt("2020-01").compare(&dt("2020-01-02")), None);
        assert_eq!(
            dt("2020-01").compare(&dt("2020-02-02")),
            Some(Ordering::Less)
        );
        assert_eq!(
            dt("2020-01-01T10:00:00+02:00").compare(&dt("2020-01-01T08:00:00Z")),
            Some(Ordering::Equal)
        );
        assert_eq!(
            dt("2020-01-01T00:30:00+01:00").compare(&dt("2019-12-31T23:30:00Z")),
            Some(Ordering::Equal)
        );
        assert_eq!(
            dt("2020-01-01T10:00:00").compare(&dt("2020-01-01T10:00:00.000")),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn boundaries_fill_the_missing_components() {
        assert_eq!(bound("1970-06", Kind::Date, false), "1970-06-01");
        assert_eq!(bound("1970-06", Kind::Date, true), "1970-06-30");
        assert_eq!(bound("2000-02", Kind::Date, true), "2000-02-29");
        assert_eq!(
            bound("2010-10-10", Kind::DateTime, false),
            "2010-10-10T00:00:00.000+14:00"
        );
        assert_eq!(
            bound("2010-10-10", Kind::DateTime, true),
            "2010-10-10T23:59:59.999-12:00"
        );
        assert_eq!(
            bound("2010-10-10T10:00:00Z", Kind::DateTime, true),
            "2010-10-10T10:00:00.999+00:00"
        );
        assert_eq!(bound("12:34:00", Kind::Time, false), "12:34:00.000");
        assert_eq!(bound("12:34", Kind::Time, true), "12:34:59.999");
    }

    #[test]
    fn civil_day_counts_round_trip() {
        for days in [-800_000, -1, 0, 1, 18_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }
}
