//! Classic single-file checkpoints: `_delta_log/<v>.checkpoint.parquet` holds the state
//! at version `v`, one row per action, in struct columns `txn`, `add`, `remove`,
//! `metaData`, `protocol` (exactly one non-null per row). Maps are Parquet MAPs
//! (`partitionValues`, `configuration`, and `format.options`, an empty map, not null);
//! adds have `dataChange` false; remove tombstones and txns are kept; no `commitInfo`.
//! Then `_delta_log/_last_checkpoint` is overwritten with
//! `{"version":v,"size":rows,"sizeInBytes":..,"numOfAddFiles":..}`.
//!
//! The checkpoint is written with a create-only put: if it exists, another writer made
//! it (from the same log, so the same state) and that is fine.

use std::{collections::BTreeMap, sync::Arc};

use arrow_array::{
    Array, ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray, StructArray,
    builder::{ListBuilder, MapBuilder, MapFieldNames, StringBuilder},
};
use arrow_buffer::NullBuffer;
use arrow_schema::{ArrowError, Field, Fields, Schema};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::{arrow::ArrowWriter, basic::Compression, file::properties::WriterProperties};

use super::{
    Add, DeltaError, DeltaTable, Remove, Snapshot, Txn, checkpoint_file_name, log::LastCheckpoint,
};

/// Checkpoint every this many commits unless told otherwise.
pub const DEFAULT_CHECKPOINT_INTERVAL: i64 = 10;

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
    /// False when the checkpoint file existed already (written by another writer).
    pub written: bool,
}

impl DeltaTable {
    /// Writes the checkpoint of `snapshot` and points `_last_checkpoint` at it (unless it
    /// names a newer checkpoint already).
    pub async fn checkpoint(&self, snapshot: &Snapshot) -> Result<CheckpointInfo, DeltaError> {
        let path = self.log_file(&checkpoint_file_name(snapshot.version()));
        let (bytes, rows) =
            encode(snapshot).map_err(|e| e.into_delta(self.name(), path.as_ref()))?;
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

    /// Checkpoints `snapshot` when its version is a multiple of `every_n` (not at
    /// version 0; never when `every_n` is 0). Use
    /// [`Snapshot::checkpoint_interval`] or [`DEFAULT_CHECKPOINT_INTERVAL`] for `every_n`.
    pub async fn maybe_checkpoint(
        &self,
        snapshot: &Snapshot,
        every_n: i64,
    ) -> Result<Option<CheckpointInfo>, DeltaError> {
        let v = snapshot.version();
        if every_n <= 0 || v == 0 || v % every_n != 0 {
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

/// The checkpoint Parquet of a snapshot, and its number of rows.
fn encode(snapshot: &Snapshot) -> Result<(Vec<u8>, i64), CodecError> {
    let metadata = snapshot.metadata();
    let txns: Vec<&Txn> = snapshot.txns().values().collect();
    let adds: Vec<&Add> = snapshot.files().values().collect();
    let removes: Vec<&Remove> = snapshot.tombstones().values().collect();
    let n = 2 + txns.len() + adds.len() + removes.len();
    // Row order: protocol, metaData, txns, adds, removes.
    let at = |start: usize, len: usize| move |i: usize| i >= start && i < start + len;
    let (is_txn, is_add, is_remove) = (
        at(2, txns.len()),
        at(2 + txns.len(), adds.len()),
        at(2 + txns.len() + adds.len(), removes.len()),
    );
    let pick = |i: usize, pred: &dyn Fn(usize) -> bool, start: usize| pred(i).then(|| i - start);
    let txn = |i| pick(i, &is_txn, 2).map(|j| txns[j]);
    let add = |i| pick(i, &is_add, 2 + txns.len()).map(|j| adds[j]);
    let remove = |i| pick(i, &is_remove, 2 + txns.len() + adds.len()).map(|j| removes[j]);
    let meta = |i: usize| (i == 1).then_some(metadata);
    let protocol = |i: usize| (i == 0).then_some(snapshot.protocol());
    let rows = || 0..n;

    let txn_col = structure(
        vec![
            (
                "appId",
                strings(rows().map(|i| txn(i).map(|t| t.app_id.as_str()))),
            ),
            ("version", longs(rows().map(|i| txn(i).map(|t| t.version)))),
            (
                "lastUpdated",
                longs(rows().map(|i| txn(i).and_then(|t| t.last_updated))),
            ),
        ],
        rows().map(|i| txn(i).is_some()),
    )?;
    let add_col = structure(
        vec![
            (
                "path",
                strings(rows().map(|i| add(i).map(|a| a.path.as_str()))),
            ),
            (
                "partitionValues",
                maps(rows().map(|i| add(i).map(|a| &a.partition_values)))?,
            ),
            ("size", longs(rows().map(|i| add(i).map(|a| a.size)))),
            (
                "modificationTime",
                longs(rows().map(|i| add(i).map(|a| a.modification_time))),
            ),
            ("dataChange", bools(rows().map(|i| add(i).map(|_| false)))),
            (
                "stats",
                strings(rows().map(|i| add(i).and_then(|a| a.stats.as_deref()))),
            ),
            ("tags", maps(rows().map(|_| None))?),
        ],
        rows().map(|i| add(i).is_some()),
    )?;
    let remove_col = structure(
        vec![
            (
                "path",
                strings(rows().map(|i| remove(i).map(|r| r.path.as_str()))),
            ),
            (
                "deletionTimestamp",
                longs(rows().map(|i| remove(i).and_then(|r| r.deletion_timestamp))),
            ),
            (
                "dataChange",
                bools(rows().map(|i| remove(i).map(|_| false))),
            ),
            (
                "extendedFileMetadata",
                bools(rows().map(|i| remove(i).and_then(|r| r.extended_file_metadata))),
            ),
            (
                "partitionValues",
                maps(rows().map(|i| remove(i).and_then(|r| r.partition_values.as_ref())))?,
            ),
            (
                "size",
                longs(rows().map(|i| remove(i).and_then(|r| r.size))),
            ),
        ],
        rows().map(|i| remove(i).is_some()),
    )?;
    let options: Vec<Option<BTreeMap<String, Option<String>>>> = rows()
        .map(|i| {
            meta(i).map(|m| {
                m.format
                    .options
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect()
            })
        })
        .collect();
    let configuration: Vec<Option<BTreeMap<String, Option<String>>>> = rows()
        .map(|i| {
            meta(i).map(|m| {
                m.configuration
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect()
            })
        })
        .collect();
    let format_col = structure(
        vec![
            (
                "provider",
                strings(rows().map(|i| meta(i).map(|m| m.format.provider.as_str()))),
            ),
            ("options", maps(options.iter().map(Option::as_ref))?),
        ],
        rows().map(|i| meta(i).is_some()),
    )?;
    let mut partition_columns = ListBuilder::new(StringBuilder::new()).with_field(Field::new(
        "element",
        arrow_schema::DataType::Utf8,
        true,
    ));
    for i in rows() {
        match meta(i) {
            Some(m) => {
                for c in &m.partition_columns {
                    partition_columns.values().append_value(c);
                }
                partition_columns.append(true);
            }
            None => partition_columns.append(false),
        }
    }
    let meta_col = structure(
        vec![
            (
                "id",
                strings(rows().map(|i| meta(i).map(|m| m.id.as_str()))),
            ),
            (
                "name",
                strings(rows().map(|i| meta(i).and_then(|m| m.name.as_deref()))),
            ),
            (
                "description",
                strings(rows().map(|i| meta(i).and_then(|m| m.description.as_deref()))),
            ),
            ("format", format_col),
            (
                "schemaString",
                strings(rows().map(|i| meta(i).map(|m| m.schema_string.as_str()))),
            ),
            ("partitionColumns", Arc::new(partition_columns.finish())),
            (
                "configuration",
                maps(configuration.iter().map(Option::as_ref))?,
            ),
            (
                "createdTime",
                longs(rows().map(|i| meta(i).and_then(|m| m.created_time))),
            ),
        ],
        rows().map(|i| meta(i).is_some()),
    )?;
    let protocol_col = structure(
        vec![
            (
                "minReaderVersion",
                Arc::new(Int32Array::from_iter(
                    rows().map(|i| protocol(i).map(|p| p.min_reader_version)),
                )),
            ),
            (
                "minWriterVersion",
                Arc::new(Int32Array::from_iter(
                    rows().map(|i| protocol(i).map(|p| p.min_writer_version)),
                )),
            ),
        ],
        rows().map(|i| protocol(i).is_some()),
    )?;
    let columns = [
        ("txn", txn_col),
        ("add", add_col),
        ("remove", remove_col),
        ("metaData", meta_col),
        ("protocol", protocol_col),
    ];
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props))?;
    writer.write(&batch)?;
    let bytes = writer.into_inner()?;
    Ok((bytes, n as i64))
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn longs(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from_iter(values))
}

fn bools(values: impl Iterator<Item = Option<bool>>) -> ArrayRef {
    Arc::new(BooleanArray::from_iter(values))
}

fn maps<'a>(
    values: impl Iterator<Item = Option<&'a BTreeMap<String, Option<String>>>>,
) -> Result<ArrayRef, ArrowError> {
    let names = MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    };
    let mut builder = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
    for value in values {
        if let Some(map) = value {
            for (k, v) in map {
                builder.keys().append_value(k);
                builder.values().append_option(v.as_deref());
            }
        }
        builder.append(value.is_some())?;
    }
    Ok(Arc::new(builder.finish()))
}

/// A struct column of nullable fields, null where `valid` is false.
fn structure(
    children: Vec<(&str, ArrayRef)>,
    valid: impl Iterator<Item = bool>,
) -> Result<ArrayRef, ArrowError> {
    let fields: Fields = children
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let arrays = children.into_iter().map(|(_, a)| a).collect();
    let nulls = NullBuffer::from_iter(valid);
    Ok(Arc::new(StructArray::try_new(fields, arrays, Some(nulls))?))
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
