//! One Parquet file being written to the store, the writer properties of every table,
//! and the statistics a finished file reports from its footer.

use std::{collections::HashSet, sync::Arc};

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use object_store::{ObjectStore, path::Path};
use parquet::{
    arrow::{ArrowSchemaConverter, ArrowWriter, arrow_writer::ArrowWriterOptions},
    basic::{Encoding, Type as PhysicalType},
    file::{
        metadata::ParquetMetaData,
        properties::{EnabledStatistics, WriterProperties},
        statistics::Statistics,
    },
};
use tokio::runtime::Handle;

use super::{ObjectWriter, ParquetConfig, SinkError};
use crate::{
    delta,
    schema::{LINEAGE_COLUMN, OVERFLOW_COLUMN, TEXT_SUFFIX, TIMESTAMP_SUFFIX},
    temporal,
    warehouse::{FileStats, Range, WrittenFile},
};

/// The writer properties of every table.
pub fn writer_properties(config: &ParquetConfig) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(config.compression)
        .set_max_row_group_row_count(Some(config.row_group_rows.get()))
        .set_max_row_group_bytes(Some(config.row_group_bytes))
        // Min/max per column chunk for every column; page statistics (the column
        // index) only for the columns queries filter on ([`pruned_by_pages`]): a page
        // index for each of a table's hundreds of leaves made footers ten times
        // pyarrow's and slowed small queries down.
        .set_statistics_enabled(EnabledStatistics::Chunk)
        // Dictionaries only where values repeat (`properties_for`): on ids, references
        // and date texts a dictionary is given up after its first MiB, and zstd finds
        // what repeats anyway.
        .set_dictionary_enabled(false)
        .set_created_by(format!("fhir-ingest {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Whether queries filter on the leaf at `path` often enough to deserve page
/// statistics: `id`, `subject.reference`, `meta.lastUpdated` and the timestamp
/// companions outside lists.
fn pruned_by_pages(path: &[String]) -> bool {
    match path {
        [id] if id == "id" => true,
        [subject, reference] if subject == "subject" && reference == "reference" => true,
        [.., last] => last.ends_with(TIMESTAMP_SUFFIX) && !path.iter().any(|p| p == "list"),
        [] => false,
    }
}

/// Whether the string leaf at `path` holds few distinct values: codes, systems,
/// displays, units, statuses, texts of codes, and the patient a row is about. Those are
/// dictionary-encoded (smaller, and engines filter and group them on the dictionary).
/// Unique per row, and so left plain: ids, other references, identifier and contact
/// values, the texts of dates and decimals (`dated`: those with a `_ts` companion),
/// narratives, attachments, the overflow.
fn coded(path: &[String], dated: bool) -> bool {
    let Some(last) = path.last() else {
        return false;
    };
    let parent = path.len().checked_sub(2).map(|i| path[i].as_str());
    match last.as_str() {
        "reference" => matches!(parent, Some("subject" | "patient")),
        "id" | "value" | "div" | "data" => false,
        OVERFLOW_COLUMN => false,
        last => !dated && !last.ends_with(TEXT_SUFFIX),
    }
}

/// The properties of a new file of `schema` (a table's schema pruned to the leaves
/// the file holds): page statistics for the leaves `pruned_by_pages` names, and the
/// lineage's line numbers (consecutive within a file) delta-encoded.
pub fn properties_for(
    base: &WriterProperties,
    schema: &Schema,
) -> Result<WriterProperties, SinkError> {
    let descriptor = ArrowSchemaConverter::new()
        .convert(schema)
        .map_err(|source| SinkError::Parquet {
            path: "<schema>".into(),
            source,
        })?;
    let paths: HashSet<String> = descriptor
        .columns()
        .iter()
        .map(|c| c.path().string())
        .collect();
    let mut builder = base.clone().into_builder();
    for column in descriptor.columns() {
        let path = column.path();
        if pruned_by_pages(path.parts()) {
            builder = builder.set_column_statistics_enabled(path.clone(), EnabledStatistics::Page);
        }
        match path.parts() {
            [lineage, line] if lineage == LINEAGE_COLUMN && line == "line" => {
                builder = builder.set_column_encoding(path.clone(), Encoding::DELTA_BINARY_PACKED);
            }
            // The same value in every row of a file or of long runs of rows: a one-entry
            // dictionary and runs of one index, cheap to write and to read back for
            // merges.
            [lineage, _] if lineage == LINEAGE_COLUMN => {
                builder = builder.set_column_dictionary_enabled(path.clone(), true);
            }
            parts
                if column.physical_type() == PhysicalType::BYTE_ARRAY
                    && coded(
                        parts,
                        paths.contains(&format!("{}{TIMESTAMP_SUFFIX}", path.string())),
                    ) =>
            {
                builder = builder.set_column_dictionary_enabled(path.clone(), true);
            }
            _ => {}
        }
    }
    Ok(builder.build())
}

/// One Parquet file being written.
pub struct ParquetFile {
    path: Path,
    writer: ArrowWriter<ObjectWriter>,
    rows: u64,
}

impl ParquetFile {
    /// Starts a file at `path` with `schema`.
    pub fn create(
        store: Arc<dyn ObjectStore>,
        path: Path,
        schema: SchemaRef,
        properties: WriterProperties,
        runtime: Handle,
    ) -> Result<Self, SinkError> {
        let out = ObjectWriter::new(store, path.clone(), runtime);
        // No ARROW:schema in the footer: the Parquet schema says all our types (the
        // serialized Arrow schema of a wide table was ~30 KB a file), and readers take
        // the table's schema from the Delta log.
        let options = ArrowWriterOptions::new()
            .with_properties(properties)
            .with_skip_arrow_metadata(true);
        let writer = ArrowWriter::try_new_with_options(out, schema, options).map_err(|source| {
            SinkError::Parquet {
                path: path.to_string(),
                source,
            }
        })?;
        Ok(Self {
            path,
            writer,
            rows: 0,
        })
    }

    /// Appends a batch (row groups are flushed by the writer's size limits).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.writer
            .write(batch)
            .map_err(|source| SinkError::Parquet {
                path: self.path.to_string(),
                source,
            })?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Memory of the row group in progress (its encoders, buffered pages and
    /// dictionaries), as the Parquet writer estimates it.
    pub fn memory_size(&self) -> usize {
        self.writer.memory_size()
    }

    /// Writes the row group in progress out now, ahead of the size limits.
    pub fn flush_row_group(&mut self) -> Result<(), SinkError> {
        self.writer.flush().map_err(|source| SinkError::Parquet {
            path: self.path.to_string(),
            source,
        })
    }

    /// Bytes written so far plus the row group in progress.
    pub fn size(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size()
    }

    /// Writes the footer and makes the file visible; its statistics come from the
    /// footer the writer returns.
    pub fn finish(mut self, partition: Option<&str>) -> Result<WrittenFile, SinkError> {
        let parquet_error = |source| SinkError::Parquet {
            path: self.path.to_string(),
            source,
        };
        let metadata = self.writer.finish().map_err(parquet_error)?;
        // The footer is written; the object is completed in place (the Parquet writer
        // cannot hand its output back once finished).
        let bytes = self.writer.inner_mut().complete()?;
        let mut stats = key_ranges(&metadata);
        stats.partition = partition.map(str::to_owned);
        Ok(WrittenFile {
            path: self.path.to_string(),
            rows: self.rows,
            bytes,
            stats: Some(stats),
            delta_stats: delta_stats(&metadata),
        })
    }
}

/// Columns whose ranges a Delta `add` records, so engines skip files: the resource id,
/// its last update (text and timestamp), and a view row's resource key.
const DELTA_STATS_COLUMNS: &[&str] = &[
    "id",
    "meta.lastUpdated",
    "meta.lastUpdated_ts",
    "_resource_key",
];

/// The Delta statistics of a file: its row count and the ranges of the
/// [`DELTA_STATS_COLUMNS`] it has.
fn delta_stats(metadata: &ParquetMetaData) -> Option<String> {
    let schema = metadata.file_metadata().schema_descr();
    let present: Vec<&str> = DELTA_STATS_COLUMNS
        .iter()
        .copied()
        .filter(|c| schema.columns().iter().any(|d| d.path().string() == *c))
        .collect();
    delta::stats_from_parquet(metadata, &present)
        .ok()
        .map(|s| s.to_json())
}

/// Leaf column of the resource id, and of the `meta.lastUpdated` timestamp companion.
const ID_COLUMN: &str = "id";
const LAST_UPDATED_COLUMN: &str = "meta.lastUpdated_ts";

/// The ranges of `id` and `meta.lastUpdated` over a file's row groups (tables without
/// those columns, views for instance, have none).
fn key_ranges(metadata: &ParquetMetaData) -> FileStats {
    let columns = metadata.file_metadata().schema_descr().columns();
    let index = |name: &str| columns.iter().position(|c| c.path().string() == name);
    let (id, last_updated) = (index(ID_COLUMN), index(LAST_UPDATED_COLUMN));
    let mut stats = FileStats::default();
    for row_group in metadata.row_groups() {
        let statistics = |i: Option<usize>| i.and_then(|i| row_group.column(i).statistics());
        if let Some(Statistics::ByteArray(s)) = statistics(id)
            && let (Some(min), Some(max)) = (s.min_opt(), s.max_opt())
            && let (Ok(min), Ok(max)) = (min.as_utf8(), max.as_utf8())
        {
            Range::merge(&mut stats.id, min.to_owned(), max.to_owned());
        }
        if let Some(Statistics::Int64(s)) = statistics(last_updated)
            && let (Some(min), Some(max)) = (s.min_opt(), s.max_opt())
        {
            Range::merge(
                &mut stats.last_updated,
                temporal::rfc3339_micros(*min),
                temporal::rfc3339_micros(*max),
            );
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionaries_for_coded_strings_only() {
        let owned = |path: &str| path.split('.').map(str::to_owned).collect::<Vec<_>>();
        for path in [
            "status",
            "code.coding.list.element.code",
            "code.coding.list.element.system",
            "code.text",
            "valueQuantity.unit",
            "subject.reference",
            "patient.reference",
        ] {
            assert!(coded(&owned(path), false), "{path}");
        }
        for path in [
            "id",
            "_overflow",
            "encounter.reference",
            "identifier.list.element.value",
            "text.div",
            "valueQuantity.value_text",
        ] {
            assert!(!coded(&owned(path), false), "{path}");
        }
        assert!(!coded(&owned("effectiveDateTime"), true));
    }

    #[test]
    fn page_statistics_only_where_queries_filter() {
        let owned = |path: &[&str]| path.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        for path in [
            &["id"][..],
            &["subject", "reference"],
            &["meta", "lastUpdated_ts"],
            &["effectiveDateTime_ts"],
            &["period", "start_ts"],
        ] {
            assert!(pruned_by_pages(&owned(path)), "{path:?}");
        }
        for path in [
            &["meta", "lastUpdated"][..],
            &["code", "coding", "list", "element", "code"],
            &["item", "list", "element", "servicedDate_ts"],
            &["status"],
            &["encounter", "id"],
        ] {
            assert!(!pruned_by_pages(&owned(path)), "{path:?}");
        }
    }
}
