//! `[decode]` and `[quarantine]`: how a run reads and decodes, and how many bad lines
//! it tolerates; together with `[parquet]` and the partitioning, a run's settings.

use std::num::NonZeroUsize;

use serde::Deserialize;

use crate::{sink::ParquetConfig, warehouse::PartitionBy};

/// A key of `[decode]` or `[quarantine]` with a value that makes no sense, and why.
#[derive(Debug, thiserror::Error)]
#[error("`{key}`: {reason}")]
pub struct IngestConfigError {
    /// The dotted key (`decode.batch_rows`).
    pub key: &'static str,
    /// What is wrong and what is allowed.
    pub reason: String,
}

/// `[decode]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecode {
    /// Decoding threads; 0 (default) means one per CPU core.
    #[serde(default)]
    pub workers: usize,
    /// Rows of one resource type decoded before they are handed to the writer. Default 4096.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Longest accepted line, in MiB; longer lines are quarantined. Default 64.
    #[serde(default = "default_max_line_mib")]
    pub max_line_mib: usize,
    /// Largest decompressed size of one input file, in GiB. Default 256.
    #[serde(default = "default_max_file_gib")]
    pub max_decompressed_gib: usize,
}

impl Default for RawDecode {
    fn default() -> Self {
        Self {
            workers: 0,
            batch_rows: default_batch_rows(),
            max_line_mib: default_max_line_mib(),
            max_decompressed_gib: default_max_file_gib(),
        }
    }
}

fn default_batch_rows() -> usize {
    4096
}
fn default_max_line_mib() -> usize {
    64
}
fn default_max_file_gib() -> usize {
    256
}

/// Validated `[decode]`.
#[derive(Debug, Clone)]
pub struct DecodeConfig {
    /// Decoding threads.
    pub workers: NonZeroUsize,
    /// Rows per batch handed to a writer.
    pub batch_rows: NonZeroUsize,
    /// Longest accepted line, in bytes.
    pub max_line_bytes: u64,
    /// Largest decompressed size of one input file, in bytes.
    pub max_decompressed_bytes: u64,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        RawDecode::default()
            .validate()
            .expect("the defaults are valid")
    }
}

impl RawDecode {
    /// Validates the table.
    pub fn validate(&self) -> Result<DecodeConfig, IngestConfigError> {
        let invalid = |key, reason: &str| IngestConfigError {
            key,
            reason: reason.into(),
        };
        let workers = match self.workers {
            0 => std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            n => NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN),
        };
        let batch_rows = NonZeroUsize::new(self.batch_rows)
            .ok_or_else(|| invalid("decode.batch_rows", "must be at least 1"))?;
        if !(1..=1024).contains(&self.max_line_mib) {
            return Err(invalid("decode.max_line_mib", "must be 1 to 1024"));
        }
        if self.max_decompressed_gib == 0 {
            return Err(invalid("decode.max_decompressed_gib", "must be at least 1"));
        }
        Ok(DecodeConfig {
            workers,
            batch_rows,
            max_line_bytes: (self.max_line_mib as u64) << 20,
            max_decompressed_bytes: (self.max_decompressed_gib as u64) << 30,
        })
    }
}

/// `[quarantine]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuarantine {
    /// Fraction of rejected lines (0.0-1.0) above which a run fails and commits nothing.
    /// Default 0.01 (1 %). Rejected lines are kept under `_quarantine/<run id>/` either way.
    #[serde(default = "default_max_rejected_fraction")]
    pub max_rejected_fraction: f64,
}

impl Default for RawQuarantine {
    fn default() -> Self {
        Self {
            max_rejected_fraction: default_max_rejected_fraction(),
        }
    }
}

fn default_max_rejected_fraction() -> f64 {
    0.01
}

impl RawQuarantine {
    /// Validates the table: the rejected fraction above which a run fails.
    pub fn validate(&self) -> Result<f64, IngestConfigError> {
        let fraction = self.max_rejected_fraction;
        if !(0.0..=1.0).contains(&fraction) {
            return Err(IngestConfigError {
                key: "quarantine.max_rejected_fraction",
                reason: format!("{fraction}: expected 0.0 to 1.0"),
            });
        }
        Ok(fraction)
    }
}

/// How every run decodes and writes, whatever its source.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Decoding limits and parallelism.
    pub decode: DecodeConfig,
    /// Parquet settings.
    pub parquet: ParquetConfig,
    /// Table partitioning.
    pub partition_by: PartitionBy,
    /// Rejected fraction above which a run is not committed.
    pub max_rejected_fraction: f64,
    /// Resources one pass of a merge into `current/<Type>` holds in memory.
    pub merge_max_keys: NonZeroUsize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            decode: DecodeConfig::default(),
            parquet: ParquetConfig::default(),
            partition_by: PartitionBy::default(),
            max_rejected_fraction: default_max_rejected_fraction(),
            merge_max_keys: crate::warehouse::config::DEFAULT_MERGE_MAX_KEYS,
        }
    }
}
