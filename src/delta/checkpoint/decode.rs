//! Reading checkpoints written here or by another engine (Spark, delta-rs, the kernel):
//! the struct columns `protocol`, `metaData`, `txn`, `add`, `remove` row by row, each
//! non-null one an action. Columns and fields this module does not use are not read or
//! ignored; integers may be INT32 or INT64; the Arrow schema hint of the file is skipped,
//! so strings read as Utf8 and maps as Map whoever wrote the file.

use std::collections::BTreeMap;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Int32Array, Int64Array, ListArray, MapArray, StringArray,
    StructArray,
};
use bytes::Bytes;
use parquet::arrow::{
    ProjectionMask,
    arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder},
};

use super::CodecError;
use crate::delta::{Action, Add, DeltaError, Metadata, Protocol, Remove, Txn, actions::Format};

/// The actions of a checkpoint file (written here or by another engine: columns and
/// fields this module does not use are ignored).
pub(crate) fn read_actions(
    bytes: Bytes,
    table: &str,
    path: &str,
) -> Result<Vec<Action>, DeltaError> {
    decode(bytes).map_err(|e| e.into_delta(table, path))
}

const COLUMNS: [&str; 5] = ["protocol", "metaData", "txn", "add", "remove"];

fn decode(bytes: Bytes) -> Result<Vec<Action>, CodecError> {
    // Without the Arrow schema hint, strings read as Utf8 and maps as Map whoever wrote it.
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, options)?;
    let roots: Vec<usize> = builder
        .parquet_schema()
        .root_schema()
        .get_fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| COLUMNS.contains(&f.name()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()?;
    let mut actions = Vec::new();
    for batch in reader {
        let batch = batch?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StructArray>())
        };
        let cols: Vec<_> = COLUMNS.iter().map(|name| column(name)).collect();
        for i in 0..batch.num_rows() {
            for (kind, col) in COLUMNS.iter().zip(&cols) {
                let Some(s) = col.filter(|s| s.is_valid(i)) else {
                    continue;
                };
                actions.push(decode_row(kind, &Row { s, i })?);
            }
        }
    }
    Ok(actions)
}

fn decode_row(kind: &str, r: &Row) -> Result<Action, CodecError> {
    Ok(match kind {
        "protocol" => Action::Protocol(Protocol {
            min_reader_version: r.int("minReaderVersion")?,
            min_writer_version: r.int("minWriterVersion")?,
            reader_features: r.list("readerFeatures"),
            writer_features: r.list("writerFeatures"),
        }),
        "metaData" => {
            let format = r.child_struct("format").map(|s| Row { s, i: r.i });
            Action::MetaData(Metadata {
                id: r.string("id")?,
                name: r.opt_string("name"),
                description: r.opt_string("description"),
                format: Format {
                    provider: format
                        .as_ref()
                        .and_then(|f| f.opt_string("provider"))
                        .unwrap_or_else(|| "parquet".into()),
                    options: format
                        .and_then(|f| f.map("options"))
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|(k, v)| Some((k, v?)))
                        .collect(),
                },
                schema_string: r.string("schemaString")?,
                partition_columns: r.list("partitionColumns").unwrap_or_default(),
                configuration: r
                    .map("configuration")
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v?)))
                    .collect(),
                created_time: r.opt_long("createdTime"),
            })
        }
        "txn" => Action::Txn(Txn {
            app_id: r.string("appId")?,
            version: r.long("version")?,
            last_updated: r.opt_long("lastUpdated"),
        }),
        "add" => Action::Add(Add {
            path: r.string("path")?,
            partition_values: r.map("partitionValues").unwrap_or_default(),
            size: r.long("size")?,
            modification_time: r.opt_long("modificationTime").unwrap_or(0),
            data_change: r.opt_bool("dataChange").unwrap_or(false),
            stats: r.opt_string("stats"),
        }),
        _ => Action::Remove(Remove {
            path: r.string("path")?,
            deletion_timestamp: r.opt_long("deletionTimestamp"),
            data_change: r.opt_bool("dataChange").unwrap_or(false),
            extended_file_metadata: r.opt_bool("extendedFileMetadata"),
            partition_values: r.map("partitionValues"),
            size: r.opt_long("size"),
        }),
    })
}

/// Row `i` of a struct column.
struct Row<'a> {
    s: &'a StructArray,
    i: usize,
}

impl<'a> Row<'a> {
    fn field(&self, name: &str) -> Option<&'a ArrayRef> {
        self.s.column_by_name(name).filter(|c| c.is_valid(self.i))
    }

    fn child_struct(&self, name: &str) -> Option<&'a StructArray> {
        self.field(name)?.as_any().downcast_ref()
    }

    fn opt_string(&self, name: &str) -> Option<String> {
        let a: &StringArray = self.field(name)?.as_any().downcast_ref()?;
        Some(a.value(self.i).to_owned())
    }

    fn opt_long(&self, name: &str) -> Option<i64> {
        let c = self.field(name)?.as_any();
        c.downcast_ref::<Int64Array>()
            .map(|a| a.value(self.i))
            .or_else(|| {
                c.downcast_ref::<Int32Array>()
                    .map(|a| i64::from(a.value(self.i)))
            })
    }

    fn opt_bool(&self, name: &str) -> Option<bool> {
        let a: &BooleanArray = self.field(name)?.as_any().downcast_ref()?;
        Some(a.value(self.i))
    }

    fn missing(&self, name: &str) -> CodecError {
        CodecError::Invalid(format!(
            "row {}: required field {name} missing or of another type",
            self.i
        ))
    }

    fn string(&self, name: &str) -> Result<String, CodecError> {
        self.opt_string(name).ok_or_else(|| self.missing(name))
    }

    fn long(&self, name: &str) -> Result<i64, CodecError> {
        self.opt_long(name).ok_or_else(|| self.missing(name))
    }

    fn int(&self, name: &str) -> Result<i32, CodecError> {
        self.opt_long(name)
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| self.missing(name))
    }

    fn map(&self, name: &str) -> Option<BTreeMap<String, Option<String>>> {
        let a: &MapArray = self.field(name)?.as_any().downcast_ref()?;
        let entries = a.value(self.i);
        let keys: &StringArray = entries.column(0).as_any().downcast_ref()?;
        let values: &StringArray = entries.column(1).as_any().downcast_ref()?;
        Some(
            (0..entries.len())
                .map(|j| {
                    (
                        keys.value(j).to_owned(),
                        values.is_valid(j).then(|| values.value(j).to_owned()),
                    )
                })
                .collect(),
        )
    }

    fn list(&self, name: &str) -> Option<Vec<String>> {
        let a: &ListArray = self.field(name)?.as_any().downcast_ref()?;
        let items = a.value(self.i);
        let items: &StringArray = items.as_any().downcast_ref()?;
        Some(items.iter().flatten().map(str::to_owned).collect())
    }
}
