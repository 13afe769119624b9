//! Classic single-file checkpoints: `_delta_log/<v>.checkpoint.parquet` holds the state
//! at version `v`, one row per action, in struct columns `txn`, `add`, `remove`,
//! `metaData`, `protocol` (exactly one non-null per row). Maps are Parquet MAPs
//! (`partitionValues`, `configuration`, and `format.options`, an empty map, not null);
//! adds have `dataChange` false; txns are kept; no `commitInfo`. A remove tombstone is
//! kept until it is older than the table's retention
//! ([`Snapshot::deleted_file_retention`], at least the handle's
//! [`DeltaTable::with_min_tombstone_retention`]), then left out: without that, the
//! checkpoint of a table rewritten every night grows by its removed files forever. A
//! tombstone without a `deletionTimestamp` is always kept.
//! Then `_delta_log/_last_checkpoint` is overwritten with
//! `{"version":v,"size":rows,"sizeInBytes":..,"numOfAddFiles":..}`.
//!
//! The checkpoint is written with a create-only put: if it exists, another writer made
//! it (from the same log, so the same state) and that is fine.
//!
//! Checkpoints written by other engines are read too (`decode`): columns and fields this
//! module does not use are ignored.

mod decode;
mod encode;

use std::time::Duration;

use arrow_schema::ArrowError;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub(crate) use self::decode::read_actions;
use self::encode::encode;
use super::{DeltaError, DeltaTable, Snapshot, checkpoint_file_name, log::LastCheckpoint, now_ms};

/// Checkpoint every this many commits unless told otherwise.
pub const DEFAULT_CHECKPOINT_INTERVAL: i64 = 10;

/// How long a tombstone stays in checkpoints unless the table says otherwise
/// (`delta.deletedFileRetentionDuration`): one week, as in the Delta protocol.
pub const DEFAULT_DELETED_FILE_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// What [`DeltaTable::checkpoint`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The version checkpointed.
    pub version: i64,
    /// Rows (actions) in the checkpoint.
    pub rows: i64,
    /// The checkpoint file's size.
    pub size_in_bytes: u64,
    /// Live files.
    pub num_add_files: i64,
    /// Tombstones of the snapshot left out as older than the retention.
    pub expired_tombstones: i64,
    /// False when the checkpoint file existed already (written by another writer).
    pub written: bool,
}

impl DeltaTable {
    /// Writes the checkpoint of `snapshot` and points `_last_checkpoint` at it (unless it
    /// names a newer checkpoint already).
    pub async fn checkpoint(&self, snapshot: &Snapshot) -> Result<CheckpointInfo, DeltaError> {
        let path = self.log_file(&checkpoint_file_name(snapshot.version()));
        let expired_before = self.tombstones_expired_before(snapshot, now_ms());
        let (bytes, rows, expired_tombstones) = encode(snapshot, expired_before)
            .map_err(|e| e.into_delta(self.name(), path.as_ref()))?;
        let mut size_in_bytes = bytes.len() as u64;
        let options = PutOptions::from(PutMode::Create);
        let written = match self
            .store
            .put_opts(&path, PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => true,
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                size_in_bytes = self
                    .store
                    .head(&path)
                    .await
                    .map_err(self.store_error(&path))?
                    .size;
                false
            }
            Err(e) => return Err(self.store_error(&path)(e)),
        };
        let info = CheckpointInfo {
            version: snapshot.version(),
            rows,
            size_in_bytes,
            num_add_files: snapshot.files().len() as i64,
            expired_tombstones,
            written,
        };
        if self
            .last_checkpoint()
            .await?
            .is_some_and(|h| h.version > info.version)
        {
            return Ok(info);
        }
        let hint = LastCheckpoint {
            version: info.version,
            size: info.rows,
            parts: None,
            size_in_bytes: Some(i64::try_from(size_in_bytes).unwrap_or(i64::MAX)),
            num_of_add_files: Some(info.num_add_files),
        };
        let hint_path = self.log_file("_last_checkpoint");
        let body = serde_json::to_vec(&hint).map_err(|source| DeltaError::Json {
            table: self.name().to_owned(),
            path: hint_path.to_string(),
            line: 1,
            source,
        })?;
        self.store
            .put(&hint_path, PutPayload::from(body))
            .await
            .map_err(self.store_error(&hint_path))?;
        Ok(info)
    }

    /// The time (ms since the epoch) before which a tombstone of `snapshot` has expired at
    /// `now_ms`; `None` when none expires (the table's retention cannot be read).
    fn tombstones_expired_before(&self, snapshot: &Snapshot, now_ms: i64) -> Option<i64> {
        let retention = snapshot
            .deleted_file_retention()?
            .max(self.min_tombstone_retention);
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        Some(now_ms.saturating_sub(retention_ms))
    }

    /// Checkpoints `snapshot` when its version is a multiple of `every_n` (not at
    /// version 0, nor when the snapshot was read from that checkpoint; never when
    /// `every_n` is 0). Use
    /// [`Snapshot::checkpoint_interval`] or [`DEFAULT_CHECKPOINT_INTERVAL`] for `every_n`.
    pub async fn maybe_checkpoint(
        &self,
        snapshot: &Snapshot,
        every_n: i64,
    ) -> Result<Option<CheckpointInfo>, DeltaError> {
        let v = snapshot.version();
        // A snapshot read from the checkpoint of its own version needs no other.
        if every_n <= 0 || v == 0 || v % every_n != 0 || snapshot.checkpoint_version() == Some(v) {
            return Ok(None);
        }
        self.checkpoint(snapshot).await.map(Some)
    }
}

/// Errors while encoding or decoding a checkpoint, before they get their context.
pub(crate) enum CodecError {
    Parquet(parquet::errors::ParquetError),
    Arrow(ArrowError),
    Invalid(String),
}

impl CodecError {
    pub(crate) fn into_delta(self, table: &str, path: &str) -> DeltaError {
        let (table, path) = (table.to_owned(), path.to_owned());
        match self {
            Self::Parquet(source) => DeltaError::Parquet {
                table,
                path,
                source,
            },
            Self::Arrow(source) => DeltaError::Arrow {
                table,
                path,
                source,
            },
            Self::Invalid(reason) => DeltaError::Corrupt {
                table,
                path,
                reason,
            },
        }
    }
}

impl From<parquet::errors::ParquetError> for CodecError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Self::Parquet(e)
    }
}

impl From<ArrowError> for CodecError {
    fn from(e: ArrowError) -> Self {
        Self::Arrow(e)
    }
}

#[cfg(test)]
mod tests;
