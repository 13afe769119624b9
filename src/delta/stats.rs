//! Per-file statistics, the `stats` JSON string of an `add`:
//! `{"numRecords":N,"minValues":{...},"maxValues":{...},"nullCount":{...}}`, with nested
//! objects for nested columns (`{"meta":{"lastUpdated":...}}`).
//!
//! Values: strings as they are, numbers and booleans as JSON, dates as `2026-01-02`,
//! timestamps as `2026-01-02T03:04:05.123Z`. Timestamps have millisecond precision in
//! Delta stats: the minimum is floored to the millisecond (still a lower bound); the
//! maximum is floored too, which may make it up to 999 µs *lower* than the true maximum.
//! This is what Delta writers do and readers account for it: Spark, delta-rs and the
//! kernel widen a timestamp `maxValues` by 1 ms before skipping files.
//!
//! [`Stats`] builds the JSON from (column path, min, max, null count) entries;
//! [`stats_from_parquet`] computes it for chosen leaf columns from a Parquet footer.
//! Column paths are dotted (`meta.lastUpdated`), so names must not contain dots.

use parquet::{
    basic::{LogicalType, TimeUnit, Type as PhysicalType},
    file::{metadata::ParquetMetaData, statistics::Statistics},
};
use serde_json::{Map, Value};

use super::DeltaError;

/// A minimum or maximum value of a column.
#[derive(Debug, Clone, PartialEq)]
pub enum StatValue {
    /// A string, as it is.
    String(String),
    /// An integer (`integer`, `long`).
    Long(i64),
    /// A floating point number; a non-finite one is left out of the stats.
    Double(f64),
    /// A boolean.
    Boolean(bool),
    /// A timestamp, microseconds since the Unix epoch, written floored to milliseconds.
    TimestampMicros(i64),
    /// A date, days since the Unix epoch.
    Date(i32),
}

impl StatValue {
    fn to_json(&self) -> Option<Value> {
        Some(match self {
            Self::String(s) => Value::String(s.clone()),
            Self::Long(n) => Value::from(*n),
            Self::Double(x) if x.is_finite() => Value::from(*x),
            Self::Double(_) => return None,
            Self::Boolean(b) => Value::Bool(*b),
            Self::TimestampMicros(us) => Value::String(format_timestamp_micros(*us)),
            Self::Date(days) => {
                let (y, m, d) = crate::temporal::civil_from_days(i64::from(*days));
                Value::String(format!("{y:04}-{m:02}-{d:02}"))
            }
        })
    }
}

/// Microseconds since the Unix epoch as `2026-01-02T03:04:05.123Z`, floored to the
/// millisecond.
pub fn format_timestamp_micros(micros: i64) -> String {
    let millis = micros.div_euclid(1000);
    let secs = millis.div_euclid(1000);
    let (y, m, d) = crate::temporal::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        millis.rem_euclid(1000)
    )
}

/// A builder of the `stats` JSON of one file.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    num_records: i64,
    min: Map<String, Value>,
    max: Map<String, Value>,
    null_count: Map<String, Value>,
}

impl Stats {
    /// Stats of a file of `num_records` rows, without column stats yet.
    pub fn new(num_records: i64) -> Self {
        Self {
            num_records,
            ..Self::default()
        }
    }

    /// Adds the stats of the leaf column at dotted `path`; `None`s are left out.
    pub fn column(
        &mut self,
        path: &str,
        min: Option<StatValue>,
        max: Option<StatValue>,
        null_count: Option<i64>,
    ) -> &mut Self {
        if let Some(v) = min.as_ref().and_then(StatValue::to_json) {
            insert_nested(&mut self.min, path, v);
        }
        if let Some(v) = max.as_ref().and_then(StatValue::to_json) {
            insert_nested(&mut self.max, path, v);
        }
        if let Some(n) = null_count {
            insert_nested(&mut self.null_count, path, Value::from(n));
        }
        self
    }

    /// The JSON string for `add.stats`.
    pub fn to_json(&self) -> String {
        let mut out = Map::new();
        out.insert("numRecords".into(), Value::from(self.num_records));
        out.insert("minValues".into(), Value::Object(self.min.clone()));
        out.insert("maxValues".into(), Value::Object(self.max.clone()));
        out.insert("nullCount".into(), Value::Object(self.null_count.clone()));
        Value::Object(out).to_string()
    }
}

fn insert_nested(map: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = map
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(child) = child {
                insert_nested(child, rest, value);
            }
        }
    }
}

/// The stats of a Parquet file from its footer, for the leaf columns at the dotted
/// `columns` paths (not inside lists). Row groups are combined: the least minimum, the
/// greatest maximum, the sum of null counts. A column gets no min/max when a row group
/// that has non-null values lacks them (row groups of nulls only have none and count
/// as nulls), and no null count when a row group lacks one. INT64 timestamps (UTC) are
/// formatted as timestamps, INT32 dates as dates, UTF-8 byte arrays as strings,
/// INT32/INT64/DOUBLE/FLOAT/BOOLEAN as JSON numbers and booleans; a column of another
/// type, or a path that is not a leaf column, is an error.
pub fn stats_from_parquet(
    metadata: &ParquetMetaData,
    columns: &[&str],
) -> Result<Stats, DeltaError> {
    let schema = metadata.file_metadata().schema_descr();
    let mut stats = Stats::new(metadata.file_metadata().num_rows());
    for &path in columns {
        let parts: Vec<&str> = path.split('.').collect();
        let index = (0..schema.num_columns())
            .find(|&i| schema.column(i).path().parts() == parts.as_slice())
            .ok_or_else(|| stats_error(path, "not a leaf column of the file (or inside a list)"))?;
        let descr = schema.column(index);
        let kind = Kind::of(descr.physical_type(), descr.logical_type_ref())
            .ok_or_else(|| stats_error(path, "no Delta stats for this column type"))?;
        let (mut min, mut max, mut nulls) = (None::<StatValue>, None::<StatValue>, Some(0i64));
        let mut min_max_ok = true;
        for row_group in metadata.row_groups() {
            let rows = row_group.num_rows();
            let Some(s) = row_group.column(index).statistics() else {
                min_max_ok = false;
                nulls = None;
                continue;
            };
            let rg_nulls = s
                .null_count_opt()
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
            nulls = nulls.zip(rg_nulls).map(|(a, b)| a.saturating_add(b));
            match (kind.value(s, true), kind.value(s, false)) {
                (Some(lo), Some(hi)) => {
                    min = Some(match min {
                        Some(m) if !less(&lo, &m) => m,
                        _ => lo,
                    });
                    max = Some(match max {
                        Some(m) if !less(&m, &hi) => m,
                        _ => hi,
                    });
                }
                // A row group of nulls only has no min/max.
                _ if rg_nulls == Some(rows) => {}
                _ => min_max_ok = false,
            }
        }
        if !min_max_ok {
            (min, max) = (None, None);
        }
        stats.column(path, min, max, nulls);
    }
    Ok(stats)
}

/// How a column's Parquet values become stat values.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Int32,
    Date,
    Int64,
    Timestamp(i64),
    Float,
    Double,
    Utf8,
}

impl Kind {
    fn of(physical: PhysicalType, logical: Option<&LogicalType>) -> Option<Self> {
        Some(match (physical, logical) {
            (PhysicalType::BOOLEAN, None) => Self::Bool,
            (PhysicalType::INT32, Some(LogicalType::Date)) => Self::Date,
            (PhysicalType::INT32, None) => Self::Int32,
            (PhysicalType::INT32, Some(LogicalType::Integer(t))) if t.is_signed => Self::Int32,
            (PhysicalType::INT64, Some(LogicalType::Timestamp(t))) if t.is_adjusted_to_u_t_c => {
                Self::Timestamp(match t.unit {
                    TimeUnit::MILLIS => 1000,
                    TimeUnit::MICROS => 1,
                    TimeUnit::NANOS => -1000,
                })
            }
            (PhysicalType::INT64, None) => Self::Int64,
            (PhysicalType::INT64, Some(LogicalType::Integer(t))) if t.is_signed => Self::Int64,
            (PhysicalType::FLOAT, None) => Self::Float,
            (PhysicalType::DOUBLE, None) => Self::Double,
            (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)) => Self::Utf8,
            _ => return None,
        })
    }

    /// The min (`min` true) or max of a column chunk's statistics.
    fn value(self, s: &Statistics, min: bool) -> Option<StatValue> {
        macro_rules! pick {
            ($v:expr) => {
                if min { $v.min_opt() } else { $v.max_opt() }
            };
        }
        Some(match (self, s) {
            (Self::Bool, Statistics::Boolean(v)) => StatValue::Boolean(*pick!(v)?),
            (Self::Int32, Statistics::Int32(v)) => StatValue::Long(i64::from(*pick!(v)?)),
            (Self::Date, Statistics::Int32(v)) => StatValue::Date(*pick!(v)?),
            (Self::Int64, Statistics::Int64(v)) => StatValue::Long(*pick!(v)?),
            (Self::Timestamp(scale), Statistics::Int64(v)) => {
                let raw = *pick!(v)?;
                StatValue::TimestampMicros(if scale > 0 {
                    raw.saturating_mul(scale)
                } else {
                    raw.div_euclid(-scale)
                })
            }
            (Self::Float, Statistics::Float(v)) => StatValue::Double(f64::from(*pick!(v)?)),
            (Self::Double, Statistics::Double(v)) => StatValue::Double(*pick!(v)?),
            (Self::Utf8, Statistics::ByteArray(v)) => {
                StatValue::String(pick!(v)?.as_utf8().ok()?.to_owned())
            }
            _ => return None,
        })
    }
}

/// `a < b` for two values of one column.
fn less(a: &StatValue, b: &StatValue) -> bool {
    match (a, b) {
        (StatValue::String(a), StatValue::String(b)) => a.as_bytes() < b.as_bytes(),
        (StatValue::Long(a), StatValue::Long(b)) => a < b,
        (StatValue::Double(a), StatValue::Double(b)) => a < b,
        (StatValue::Boolean(a), StatValue::Boolean(b)) => a < b,
        (StatValue::TimestampMicros(a), StatValue::TimestampMicros(b)) => a < b,
        (StatValue::Date(a), StatValue::Date(b)) => a < b,
        _ => false,
    }
}

fn stats_error(column: &str, reason: &str) -> DeltaError {
    DeltaError::Stats {
        column: column.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
