//! Encoding a snapshot as a classic checkpoint: one row per action, struct columns
//! `txn`, `add`, `remove`, `metaData`, `protocol` (all fields nullable, as Spark writes
//! them), maps as Parquet MAPs, Snappy compression.

use std::{collections::BTreeMap, sync::Arc};

use arrow_array::{
    Array, ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray, StructArray,
    builder::{ListBuilder, MapBuilder, MapFieldNames, StringBuilder},
};
use arrow_buffer::NullBuffer;
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema};
use parquet::{arrow::ArrowWriter, basic::Compression, file::properties::WriterProperties};

use super::CodecError;
use crate::delta::{Add, Metadata, Protocol, Remove, Snapshot, Txn};

/// One row of a checkpoint: one action.
#[derive(Clone, Copy)]
enum Row<'a> {
    Protocol(&'a Protocol),
    MetaData(&'a Metadata),
    Txn(&'a Txn),
    Add(&'a Add),
    Remove(&'a Remove),
}

impl<'a> Row<'a> {
    fn protocol(self) -> Option<&'a Protocol> {
        if let Self::Protocol(p) = self {
            Some(p)
        } else {
            None
        }
    }

    fn metadata(self) -> Option<&'a Metadata> {
        if let Self::MetaData(m) = self {
            Some(m)
        } else {
            None
        }
    }

    fn txn(self) -> Option<&'a Txn> {
        if let Self::Txn(t) = self {
            Some(t)
        } else {
            None
        }
    }

    fn add(self) -> Option<&'a Add> {
        if let Self::Add(a) = self {
            Some(a)
        } else {
            None
        }
    }

    fn remove(self) -> Option<&'a Remove> {
        if let Self::Remove(r) = self {
            Some(r)
        } else {
            None
        }
    }
}

/// The checkpoint Parquet of a snapshot, its number of rows, and the number of
/// tombstones left out: those deleted before `expired_before` (ms since the epoch).
pub(super) fn encode(
    snapshot: &Snapshot,
    expired_before: Option<i64>,
) -> Result<(Vec<u8>, i64, i64), CodecError> {
    let expired = |r: &Remove| {
        expired_before.is_some_and(|cutoff| r.deletion_timestamp.is_some_and(|t| t < cutoff))
    };
    let kept_tombstones = snapshot.tombstones().values().filter(|r| !expired(r));
    let rows: Vec<Row> = [
        Row::Protocol(snapshot.protocol()),
        Row::MetaData(snapshot.metadata()),
    ]
    .into_iter()
    .chain(snapshot.txns().values().map(Row::Txn))
    .chain(snapshot.files().values().map(Row::Add))
    .chain(kept_tombstones.map(Row::Remove))
    .collect();
    let expired_tombstones = snapshot
        .tombstones()
        .values()
        .filter(|r| expired(r))
        .count();
    // The values of one field over all rows (null in rows of other actions).
    let each = |f: fn(Row) -> bool| rows.iter().map(move |&r| f(r));

    let txn_col = structure(
        vec![
            (
                "appId",
                strings(rows.iter().map(|r| r.txn().map(|t| t.app_id.as_str()))),
            ),
            (
                "version",
                longs(rows.iter().map(|r| r.txn().map(|t| t.version))),
            ),
            (
                "lastUpdated",
                longs(rows.iter().map(|r| r.txn().and_then(|t| t.last_updated))),
            ),
        ],
        each(|r| r.txn().is_some()),
    )?;
    let add_col = structure(
        vec![
            (
                "path",
                strings(rows.iter().map(|r| r.add().map(|a| a.path.as_str()))),
            ),
            (
                "partitionValues",
                maps(
                    rows.iter()
                        .map(|r| r.add().map(|a| values(&a.partition_values))),
                )?,
            ),
            ("size", longs(rows.iter().map(|r| r.add().map(|a| a.size)))),
            (
                "modificationTime",
                longs(rows.iter().map(|r| r.add().map(|a| a.modification_time))),
            ),
            (
                "dataChange",
                bools(rows.iter().map(|r| r.add().map(|_| false))),
            ),
            (
                "stats",
                strings(
                    rows.iter()
                        .map(|r| r.add().and_then(|a| a.stats.as_deref())),
                ),
            ),
            (
                "tags",
                maps(rows.iter().map(|_| None::<Vec<(&str, Option<&str>)>>))?,
            ),
        ],
        each(|r| r.add().is_some()),
    )?;
    let remove_col = structure(
        vec![
            (
                "path",
                strings(rows.iter().map(|r| r.remove().map(|x| x.path.as_str()))),
            ),
            (
                "deletionTimestamp",
                longs(
                    rows.iter()
                        .map(|r| r.remove().and_then(|x| x.deletion_timestamp)),
                ),
            ),
            (
                "dataChange",
                bools(rows.iter().map(|r| r.remove().map(|_| false))),
            ),
            (
                "extendedFileMetadata",
                bools(
                    rows.iter()
                        .map(|r| r.remove().and_then(|x| x.extended_file_metadata)),
                ),
            ),
            (
                "partitionValues",
                maps(rows.iter().map(|r| {
                    r.remove()
                        .and_then(|x| x.partition_values.as_ref())
                        .map(values)
                }))?,
            ),
            (
                "size",
                longs(rows.iter().map(|r| r.remove().and_then(|x| x.size))),
            ),
        ],
        each(|r| r.remove().is_some()),
    )?;
    let format_col = structure(
        vec![
            (
                "provider",
                strings(
                    rows.iter()
                        .map(|r| r.metadata().map(|m| m.format.provider.as_str())),
                ),
            ),
            // An empty map in the metaData row, not null.
            (
                "options",
                maps(
                    rows.iter()
                        .map(|r| r.metadata().map(|m| strict(&m.format.options))),
                )?,
            ),
        ],
        each(|r| r.metadata().is_some()),
    )?;
    let mut partition_columns = ListBuilder::new(StringBuilder::new()).with_field(Field::new(
        "element",
        DataType::Utf8,
        true,
    ));
    for m in rows.iter().map(|r| r.metadata()) {
        for c in m.iter().flat_map(|m| &m.partition_columns) {
            partition_columns.values().append_value(c);
        }
        partition_columns.append(m.is_some());
    }
    let meta_col = structure(
        vec![
            (
                "id",
                strings(rows.iter().map(|r| r.metadata().map(|m| m.id.as_str()))),
            ),
            (
                "name",
                strings(
                    rows.iter()
                        .map(|r| r.metadata().and_then(|m| m.name.as_deref())),
                ),
            ),
            (
                "description",
                strings(
                    rows.iter()
                        .map(|r| r.metadata().and_then(|m| m.description.as_deref())),
                ),
            ),
            ("format", format_col),
            (
                "schemaString",
                strings(
                    rows.iter()
                        .map(|r| r.metadata().map(|m| m.schema_string.as_str())),
                ),
            ),
            ("partitionColumns", Arc::new(partition_columns.finish())),
            (
                "configuration",
                maps(
                    rows.iter()
                        .map(|r| r.metadata().map(|m| strict(&m.configuration))),
                )?,
            ),
            (
                "createdTime",
                longs(
                    rows.iter()
                        .map(|r| r.metadata().and_then(|m| m.created_time)),
                ),
            ),
        ],
        each(|r| r.metadata().is_some()),
    )?;
    let versions = |f: fn(&Protocol) -> i32| -> ArrayRef {
        Arc::new(Int32Array::from_iter(
            rows.iter().map(|r| r.protocol().map(f)),
        ))
    };
    let protocol_col = structure(
        vec![
            ("minReaderVersion", versions(|p| p.min_reader_version)),
            ("minWriterVersion", versions(|p| p.min_writer_version)),
        ],
        each(|r| r.protocol().is_some()),
    )?;

    let columns = [
        ("txn", txn_col),
        ("add", add_col),
        ("remove", remove_col),
        ("metaData", meta_col),
        ("protocol", protocol_col),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props))?;
    writer.write(&batch)?;
    Ok((
        writer.into_inner()?,
        rows.len() as i64,
        expired_tombstones as i64,
    ))
}

/// The entries of a map of nullable strings.
fn values(map: &BTreeMap<String, Option<String>>) -> Vec<(&str, Option<&str>)> {
    map.iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect()
}

/// The entries of a map of strings.
fn strict(map: &BTreeMap<String, String>) -> Vec<(&str, Option<&str>)> {
    map.iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .collect()
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

/// A MAP<string, string> column (Parquet names `key_value`, `key`, `value`); null where
/// the entries are `None`.
fn maps<'a>(
    rows: impl Iterator<Item = Option<Vec<(&'a str, Option<&'a str>)>>>,
) -> Result<ArrayRef, ArrowError> {
    let names = MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    };
    let mut builder = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
    for row in rows {
        let valid = row.is_some();
        for (k, v) in row.into_iter().flatten() {
            builder.keys().append_value(k);
            builder.values().append_option(v);
        }
        builder.append(valid)?;
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
