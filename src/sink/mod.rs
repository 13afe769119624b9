//! Writing to the warehouse's store: Parquet tables and the quarantine.
//!
//! - [`ObjectWriter`]: a blocking `Write` over `object_store`, in multipart parts of
//!   8 MiB, so memory per open file is one part plus the row group being built;
//! - [`ParquetFile`]: one Parquet file, and [`writer_properties`] of every table;
//! - [`TableWriter`]: the files of one table of a run, opened lazily and rolled over at
//!   a size (ingest and compaction share it);
//! - [`Quarantine`]: the rejected lines of a run.
//!
//! Paths come from [`crate::warehouse::layout`]; what was written is recorded as the
//! warehouse's [`WrittenFile`](crate::warehouse::WrittenFile)s.

pub mod config;
mod object_writer;
mod parquet_file;
mod quarantine;
mod table_writer;

pub use self::{
    config::{Codec, ParquetConfig, RawParquet},
    object_writer::{ObjectWriter, PART_BYTES},
    parquet_file::{ParquetFile, properties_for, writer_properties},
    quarantine::Quarantine,
    table_writer::{RunFiles, TableWriter},
};

/// Errors of writing objects.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The store refused or failed a write.
    #[error("writing {path}")]
    Store {
        /// The object.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// Parquet encoding failed.
    #[error("writing Parquet {path}")]
    Parquet {
        /// The object.
        path: String,
        /// The encoder's error.
        source: parquet::errors::ParquetError,
    },
    /// A batch does not fit its table's schema.
    #[error("rows of table {table} do not fit its schema")]
    Arrow {
        /// The table.
        table: String,
        /// Arrow's error.
        source: arrow_schema::ArrowError,
    },
}
