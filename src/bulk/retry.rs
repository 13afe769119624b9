//! `Retry-After` parsing and exponential backoff with jitter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Numbers of seconds above this are taken as a Unix timestamp, not a delay (one real server
/// sends `Retry-After: <epoch seconds>`).
const EPOCH_THRESHOLD: f64 = 1_000_000_000.0;

/// Parses a `Retry-After` value into a delay from `now`: delay-seconds (integer or decimal),
/// an HTTP date, or (non-standard) a Unix timestamp in seconds. Dates in the past give zero.
/// Returns `None` for anything else. The result is not clamped.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        if secs >= EPOCH_THRESHOLD {
            let at = UNIX_EPOCH + Duration::from_secs_f64(secs);
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
        return Some(Duration::from_secs_f64(secs.min(1e9)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of a response, clamped to `[min, max]`.
pub(crate) fn retry_after(headers: &HeaderMap, min: Duration, max: Duration) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, SystemTime::now()).map(|d| d.clamp(min, max))
}

/// Exponential backoff: `base * 2^attempt` (attempt 0 = first retry), capped at `max`, with
/// ±25 % jitter, never below `min`.
pub(crate) fn backoff(attempt: u32, base: Duration, min: Duration, max: Duration) -> Duration {
    let exp = base.as_secs_f64() * 2f64.powi(attempt.min(30) as i32);
    let capped = exp.min(max.as_secs_f64());
    // jitter factor in [0.75, 1.25)
    let r = (crate::auth::random_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let jittered = capped * (0.75 + r * 0.5);
    Duration::from_secs_f64(jittered).clamp(min, max.max(min))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after("1800000030", now),
            Some(Duration::from_secs(30))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn backoff_is_clamped() {
        let min = Duration::from_secs(1);
        let max = Duration::from_secs(300);
        for a in 0..40 {
            let d = backoff(a, Duration::from_secs(1), min, max);
            assert!(d >= min && d <= max, "{d:?}");
        }
    }
}
