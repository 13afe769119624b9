//! Delta Lake tables whose log this crate writes and reads by hand: the small subset of
//! the protocol (reader 1 / writer 2, no table features) that every engine reads
//! (Spark, Trino, Athena, DuckDB `delta_scan`, Python `deltalake`, polars).
//!
//! The data files (Parquet) are written elsewhere; this module owns `_delta_log/`:
//!
//! - [`actions`]: `protocol`, `metaData`, `add`, `remove`, `txn` as serde types, and the
//!   percent-encoding of paths;
//! - [`schema`]: Arrow schemas to Delta's `schemaString`;
//! - [`stats`]: the `stats` JSON of an `add`, built by hand or from a Parquet footer;
//! - [`log`]: reading a table: `_last_checkpoint`, the checkpoint, the commits after it,
//!   replayed into a [`Snapshot`];
//! - [`commit`]: create-only commits (`_delta_log/<20-digit version>.json`), table
//!   creation and a retry helper for conflicts;
//! - [`checkpoint`]: classic single-file Parquet checkpoints and `_last_checkpoint`;
//! - [`vacuum`]: deleting the files of expired tombstones and old orphans.
//!
//! A commit is a create-only put: of two writers of one version exactly one wins, the
//! other gets [`CommitResult::Conflict`], re-reads the snapshot and decides again
//! ([`DeltaTable::commit_with_retry`]). A table whose protocol is anything but 1/2 without
//! features is refused for reading and writing ([`DeltaError::UnsupportedProtocol`]).
//!
//! A writer's round, for one table:
//!
//! 1. write the data files under the table root, with names unique to the attempt
//!    (`export_date=2026-01-02/part-<uuid>.parquet`), without the partition columns;
//! 2. make their adds: [`Add::new`] with the key below the root, the partition values,
//!    size, time, and [`stats_from_parquet`]`(footer, columns).to_json()`;
//! 3. commit with [`DeltaTable::commit_with_retry`]: the closure returns `None` when the
//!    snapshot's [`Snapshot::txn_version`] shows the work is committed already, else the
//!    adds, the removes of the files rewritten (copy-on-write: [`Add::remove_now`] of the
//!    snapshot's live adds) and a [`Txn`]; the first commit is [`DeltaTable::create`];
//! 4. read the snapshot again and [`DeltaTable::maybe_checkpoint`] it with
//!    [`Snapshot::checkpoint_interval`];
//! 5. now and then, [`DeltaTable::vacuum`] with a retention longer than any write takes.
//!
//! Paths in the log are percent-encoded URIs relative to the root; [`Snapshot::files`]
//! and [`Snapshot::tombstones`] are keyed by the decoded key below the root, which
//! [`DeltaTable::object`] turns into the object's [`Path`].

pub mod actions;
pub mod checkpoint;
pub mod commit;
pub mod log;
pub mod schema;
pub mod stats;
#[cfg(test)]
mod testing;
pub mod vacuum;

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use object_store::{ObjectStore, ObjectStoreExt, path::Path};

pub use self::{
    actions::{Action, Add, Metadata, PartitionValues, Protocol, Remove, Txn},
    checkpoint::{CheckpointInfo, DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_DELETED_FILE_RETENTION},
    commit::{CommitResult, RetryOutcome},
    log::Snapshot,
    schema::{data_schema, schema_string},
    stats::{StatValue, Stats, stats_from_parquet},
    vacuum::{VacuumOptions, VacuumReport},
};

/// The log directory under the table root.
pub const LOG_DIR: &str = "_delta_log";
/// Largest commit file read.
pub const MAX_COMMIT_BYTES: u64 = 256 << 20;
/// Largest checkpoint file read.
pub const MAX_CHECKPOINT_BYTES: u64 = 1 << 30;

/// Errors of Delta tables. Each names the table (`<store>/<root>`) and, where there is
/// one, the log file or version; the underlying error is the `source()`.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// A store operation failed.
    #[error("Delta table {table}: store operation on {path} failed")]
    Store {
        /// The table.
        table: String,
        /// The object.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A line of a commit file (or `_last_checkpoint`) is not valid JSON of an action.
    #[error("Delta table {table}: {path} line {line} is not a valid action")]
    Json {
        /// The table.
        table: String,
        /// The log file.
        path: String,
        /// The line (1-based; 0 when the action could not be written).
        line: usize,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A checkpoint does not read or write as Parquet.
    #[error("Delta table {table}: checkpoint {path} is not valid Parquet")]
    Parquet {
        /// The table.
        table: String,
        /// The checkpoint file.
        path: String,
        /// The Parquet error.
        source: parquet::errors::ParquetError,
    },
    /// A checkpoint's columns cannot be built.
    #[error("Delta table {table}: checkpoint {path} columns cannot be built")]
    Arrow {
        /// The table.
        table: String,
        /// The checkpoint file.
        path: String,
        /// The Arrow error.
        source: arrow_schema::ArrowError,
    },
    /// A log file is larger than this module reads.
    #[error("Delta table {table}: {path} is {size} bytes, more than the {limit} read")]
    TooLarge {
        /// The table.
        table: String,
        /// The log file.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The log is not a valid Delta log (missing commits, no protocol, bad checkpoint).
    #[error("Delta table {table}: invalid log at {path}: {reason}")]
    Corrupt {
        /// The table.
        table: String,
        /// The log file (or version) where the problem shows.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The table's protocol is not reader 1 / writer 2 without features.
    #[error(
        "Delta table {table} has protocol {protocol}; only reader 1 / writer 2 without table \
         features is supported, refusing to read or write it"
    )]
    UnsupportedProtocol {
        /// The table.
        table: String,
        /// The protocol (`reader/writer [features]`).
        protocol: String,
    },
    /// The actions given to a commit are not valid for the table.
    #[error("Delta table {table}: invalid commit of version {version}: {reason}")]
    InvalidCommit {
        /// The table.
        table: String,
        /// The version the commit was for.
        version: i64,
        /// What is wrong.
        reason: String,
    },
    /// The table does not exist (no commit in `_delta_log/`).
    #[error("Delta table {table} does not exist")]
    NotFound {
        /// The table.
        table: String,
    },
    /// Every attempt of [`DeltaTable::commit_with_retry`] lost to another writer.
    #[error(
        "Delta table {table}: {attempts} commit attempts lost to other writers (last at version {version})"
    )]
    TooManyConflicts {
        /// The table.
        table: String,
        /// Attempts made.
        attempts: usize,
        /// The version of the last conflict.
        version: i64,
    },
    /// A schema field has no Delta type here.
    #[error("field {field}: {reason}")]
    Schema {
        /// The field's path (`meta.tag[].code`).
        field: String,
        /// Why.
        reason: String,
    },
    /// Stats cannot be computed for a column.
    #[error("stats of column {column}: {reason}")]
    Stats {
        /// The column's dotted path.
        column: String,
        /// Why.
        reason: String,
    },
    /// A path of an `add` or `remove` is not a valid relative, percent-encoded path.
    #[error("Delta path {path}: {reason}")]
    InvalidPath {
        /// The path as in the log.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A Delta table: a root in an object store, with its log under `<root>/_delta_log/`.
#[derive(Debug, Clone)]
pub struct DeltaTable {
    store: Arc<dyn ObjectStore>,
    root: Path,
    name: String,
    min_tombstone_retention: Duration,
}

impl DeltaTable {
    /// The table at `root` in `store` (nothing is read yet).
    pub fn new(store: Arc<dyn ObjectStore>, root: Path) -> Self {
        let name = if root.is_root() {
            store.to_string()
        } else {
            format!("{store}/{root}")
        };
        Self {
            store,
            root,
            name,
            min_tombstone_retention: Duration::ZERO,
        }
    }

    /// Keeps tombstones younger than `retention` in the checkpoints this handle writes,
    /// even when the table's [`Snapshot::deleted_file_retention`] is shorter. A vacuum
    /// with a retention up to this one then finds every tombstone it would keep a file
    /// for (a file whose tombstone is gone is an orphan to it, judged by its age).
    pub fn with_min_tombstone_retention(mut self, retention: Duration) -> Self {
        self.min_tombstone_retention = retention;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The table root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The table's name in messages: `<store>/<root>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The object of a path relative to the root (a decoded `add` path, or a log file
    /// such as `_delta_log/00000000000000000000.json`).
    pub fn object(&self, relative_path: &str) -> Result<Path, DeltaError> {
        let full = if self.root.as_ref().is_empty() {
            relative_path.to_owned()
        } else {
            format!("{}/{relative_path}", self.root)
        };
        let invalid = |reason: String| DeltaError::InvalidPath {
            path: relative_path.to_owned(),
            reason,
        };
        if relative_path.is_empty() || relative_path.starts_with('/') {
            return Err(invalid("not a relative path".to_owned()));
        }
        if relative_path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(invalid("empty, `.` or `..` segment".to_owned()));
        }
        Path::parse(&full).map_err(|e| invalid(e.to_string()))
    }

    /// `_delta_log/` of the table.
    pub(crate) fn log_dir(&self) -> Path {
        self.root.clone().join(LOG_DIR)
    }

    /// The object of a log file name (`00000000000000000003.json`).
    pub(crate) fn log_file(&self, file_name: &str) -> Path {
        self.log_dir().join(file_name)
    }

    pub(crate) fn store_error(&self, path: &Path) -> impl Fn(object_store::Error) -> DeltaError {
        let (table, path) = (self.name.clone(), path.to_string());
        move |source| DeltaError::Store {
            table: table.clone(),
            path: path.clone(),
            source,
        }
    }

    /// The bytes of a log file, or `None` if it does not exist; larger than `limit` is
    /// an error.
    pub(crate) async fn read_bounded(
        &self,
        path: &Path,
        limit: u64,
    ) -> Result<Option<bytes::Bytes>, DeltaError> {
        let result = match self.store.get(path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.store_error(path)(e)),
        };
        if result.meta.size > limit {
            return Err(DeltaError::TooLarge {
                table: self.name.clone(),
                path: path.to_string(),
                size: result.meta.size,
                limit,
            });
        }
        result
            .bytes()
            .await
            .map(Some)
            .map_err(self.store_error(path))
    }
}

/// The name of the commit file of `version`: `00000000000000000003.json`.
pub fn commit_file_name(version: i64) -> String {
    format!("{version:020}.json")
}

/// The name of the classic checkpoint of `version`: `00000000000000000010.checkpoint.parquet`.
pub fn checkpoint_file_name(version: i64) -> String {
    format!("{version:020}.checkpoint.parquet")
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
