//! [`HumaneDuration`]: a length of time as a person writes it in `pipeline.toml`, a
//! number of seconds (`21600`, `0.5`) or a text with units (`"6h"`, `"1h30m"`, `"90s"`,
//! `"2d"`).

use std::{fmt, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A duration read from seconds or from a text with units `d`, `h`, `m`, `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumaneDuration(pub Duration);

impl HumaneDuration {
    /// Parses `"6h"`, `"1h30m"`, `"45m"`, `"90s"`, `"0.5s"`, `"2d"` or a number of
    /// seconds (`"3600"`); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(secs) = text.parse::<f64>() {
            return Self::from_secs(secs);
        }
        let mut total = 0.0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let number: f64 = rest[..digits].parse().ok()?;
            rest = rest[digits..].trim_start();
            let unit_len = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let unit = match &rest[..unit_len] {
                "d" => 86_400.0,
                "h" => 3_600.0,
                "m" | "min" => 60.0,
                "s" => 1.0,
                _ => return None,
            };
            total += number * unit;
            rest = rest[unit_len..].trim_start();
        }
        Self::from_secs(total)
    }

    fn from_secs(secs: f64) -> Option<Self> {
        (secs.is_finite() && secs > 0.0 && secs < 1e12).then(|| Self(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for HumaneDuration {
    /// `6h`, `1h30m`, `90s` → `1m30s`, `0.3s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_secs();
        let fraction = self.0.subsec_millis();
        if total < 60 && fraction > 0 {
            return write!(f, "{}s", self.0.as_secs_f64());
        }
        let (d, h, m, s) = (
            total / 86_400,
            total / 3_600 % 24,
            total / 60 % 60,
            total % 60,
        );
        let mut written = false;
        for (value, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
            if value > 0 {
                write!(f, "{value}{unit}")?;
                written = true;
            }
        }
        if !written {
            f.write_str("0s")?;
        }
        Ok(())
    }
}

impl Serialize for HumaneDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for HumaneDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = HumaneDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a positive number of seconds, or a duration such as \"6h\", \"1h30m\", \"90s\"",
                )
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<HumaneDuration, E> {
                HumaneDuration::from_secs(v)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumaneDuration, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumaneDuration, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumaneDuration, E> {
                HumaneDuration::parse(v)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humane_forms_and_seconds() {
        let secs = |t: &str| HumaneDuration::parse(t).map(|d| d.0.as_secs_f64());
        assert_eq!(secs("6h"), Some(21_600.0));
        assert_eq!(secs("1h30m"), Some(5_400.0));
        assert_eq!(secs("1h 30m"), Some(5_400.0));
        assert_eq!(secs("90s"), Some(90.0));
        assert_eq!(secs("0.5s"), Some(0.5));
        assert_eq!(secs("2d"), Some(172_800.0));
        assert_eq!(secs("3600"), Some(3_600.0));
        for bad in ["", "0", "-1h", "6 hours", "h", "1x"] {
            assert_eq!(secs(bad), None, "{bad:?}");
        }
        #[derive(Deserialize)]
        struct Table {
            wait: HumaneDuration,
        }
        let read = |toml: &str| toml::from_str::<Table>(toml).map(|t| t.wait);
        assert_eq!(read("wait = 0.3").unwrap().0, Duration::from_millis(300));
        assert_eq!(read("wait = 60").unwrap().0, Duration::from_secs(60));
        assert_eq!(read("wait = \"6h\"").unwrap().to_string(), "6h");
        assert!(read("wait = 0").is_err());
        assert_eq!(
            HumaneDuration(Duration::from_secs(5_430)).to_string(),
            "1h30m30s"
        );
        assert_eq!(
            HumaneDuration(Duration::from_millis(300)).to_string(),
            "0.3s"
        );
        assert!(read("wait = \"soon\"").is_err());
    }
}
