//! `[parquet]`: how Parquet files are written.

use std::num::NonZeroUsize;

use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use serde::Deserialize;

/// A key of `[parquet]` with a value that makes no sense, and why.
#[derive(Debug, thiserror::Error)]
#[error("`parquet.{key}`: {reason}")]
pub struct ParquetConfigError {
    /// The key, under `parquet.`.
    pub key: &'static str,
    /// What is wrong and what is allowed.
    pub reason: String,
}

/// `[parquet]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParquet {
    /// `zstd` (default), `snappy`, `lz4`, `gzip` or `none`.
    #[serde(default)]
    pub compression: Codec,
    /// Level for zstd (1-22, default 1, as Arrow C++) or gzip (0-9, default 6); ignored by
    /// the others.
    pub compression_level: Option<i32>,
    /// Rows per row group at most. Default 100000.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Memory of the row groups one writer thread builds, over all its open tables, in
    /// MiB: past it the largest is flushed (and no row group's encoded size exceeds
    /// it). Default 64.
    #[serde(default = "default_row_group_mib")]
    pub row_group_mib: usize,
    /// Size of a Parquet file, in MiB, after which the next one is started. Default 512.
    #[serde(default = "default_max_file_mib")]
    pub max_file_mib: usize,
}

impl Default for RawParquet {
    fn default() -> Self {
        Self {
            compression: Codec::default(),
            compression_level: None,
            row_group_rows: default_row_group_rows(),
            row_group_mib: default_row_group_mib(),
            max_file_mib: default_max_file_mib(),
        }
    }
}

fn default_row_group_rows() -> usize {
    100_000
}
fn default_row_group_mib() -> usize {
    64
}
fn default_max_file_mib() -> usize {
    512
}

/// A Parquet compression codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// Zstandard (level 1 unless `compression_level` says otherwise).
    #[default]
    Zstd,
    /// Snappy.
    Snappy,
    /// LZ4 (raw).
    Lz4,
    /// Gzip (level 6 unless `compression_level` says otherwise).
    Gzip,
    /// No compression.
    None,
}

/// Validated `[parquet]`.
#[derive(Debug, Clone)]
pub struct ParquetConfig {
    /// Codec and level.
    pub compression: Compression,
    /// Rows per row group at most.
    pub row_group_rows: NonZeroUsize,
    /// Bytes of the row groups in progress of one writer thread (and of one row group
    /// encoded) before the largest is flushed.
    pub row_group_bytes: usize,
    /// Bytes of a file after which another is started.
    pub max_file_bytes: usize,
}

impl Default for ParquetConfig {
    fn default() -> Self {
        RawParquet::default()
            .validate()
            .expect("the defaults are valid")
    }
}

impl ParquetConfig {
    /// The defaults with another codec (at its default level).
    pub fn with_codec(codec: Codec) -> Self {
        RawParquet {
            compression: codec,
            ..RawParquet::default()
        }
        .validate()
        .expect("every codec's default level is valid")
    }
}

impl RawParquet {
    /// Validates the table.
    pub fn validate(&self) -> Result<ParquetConfig, ParquetConfigError> {
        let invalid = |key, reason: String| ParquetConfigError { key, reason };
        let level_error =
            |e: parquet::errors::ParquetError| invalid("compression_level", e.to_string());
        let compression = match self.compression {
            Codec::Zstd => Compression::ZSTD(
                ZstdLevel::try_new(self.compression_level.unwrap_or(1)).map_err(level_error)?,
            ),
            Codec::Gzip => {
                let level = u32::try_from(self.compression_level.unwrap_or(6))
                    .map_err(|_| invalid("compression_level", "must be 0 to 9 for gzip".into()))?;
                Compression::GZIP(GzipLevel::try_new(level).map_err(level_error)?)
            }
            Codec::Snappy => Compression::SNAPPY,
            Codec::Lz4 => Compression::LZ4_RAW,
            Codec::None => Compression::UNCOMPRESSED,
        };
        let positive = |key, v: usize| {
            NonZeroUsize::new(v).ok_or_else(|| invalid(key, "must be at least 1".into()))
        };
        Ok(ParquetConfig {
            compression,
            row_group_rows: positive("row_group_rows", self.row_group_rows)?,
            row_group_bytes: positive("row_group_mib", self.row_group_mib)?.get() << 20,
            max_file_bytes: positive("max_file_mib", self.max_file_mib)?.get() << 20,
        })
    }
}
