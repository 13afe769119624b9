//! Writing to the warehouse's object store: Parquet tables and the quarantine.
//!
//! [`ObjectWriter`] is a blocking `Write` over `object_store`: it buffers one part
//! (8 MiB, within S3's multipart limits), uploads it as a multipart part, and completes
//! the upload on [`ObjectWriter::finish`]; small objects are written with one put. Memory
//! per open file is one part plus the row group being built by the Parquet writer.
//! The local store stages multipart uploads and renames them into place on completion,
//! so a file either exists whole or not at all.

use std::{
    io::{self, Write},
    sync::Arc,
};

use arrow_array::{Array, RecordBatch, cast::AsArray};
use arrow_schema::{DataType, SchemaRef};
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload, path::Path};
use parquet::{
    arrow::{ArrowSchemaConverter, ArrowWriter},
    basic::Compression,
    errors::ParquetError,
    file::properties::{EnabledStatistics, WriterProperties},
    schema::types::ColumnPath,
};
use tokio::runtime::Handle;

use crate::config::ParquetConfig;

/// Size of one multipart part (S3 wants 5 MiB to 5 GiB, all but the last).
pub const PART_BYTES: usize = 8 << 20;

/// Errors of writing objects.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The store refused or failed a write.
    #[error("writing {path}: {source}")]
    Store {
        /// The object.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// Parquet encoding failed.
    #[error("writing Parquet {path}: {source}")]
    Parquet {
        /// The object.
        path: String,
        /// The encoder's error.
        source: ParquetError,
    },
}

/// A blocking, buffered writer of one object.
#[derive(Debug)]
pub struct ObjectWriter {
    store: Arc<dyn ObjectStore>,
    path: Path,
    runtime: Handle,
    buffer: Vec<u8>,
    upload: Option<Box<dyn MultipartUpload>>,
    written: u64,
}

impl ObjectWriter {
    /// A writer of `path`; the object appears only when [`finish`](Self::finish) succeeds.
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, runtime: Handle) -> Self {
        Self {
            store,
            path,
            runtime,
            buffer: Vec::with_capacity(1 << 16),
            upload: None,
            written: 0,
        }
    }

    /// Bytes accepted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn upload_part(&mut self) -> Result<(), object_store::Error> {
        let part = PutPayload::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(PART_BYTES),
        ));
        let (store, path) = (&self.store, &self.path);
        self.runtime.block_on(async {
            if self.upload.is_none() {
                self.upload = Some(store.put_multipart(path).await?);
            }
            let upload = self.upload.as_mut().expect("created above");
            upload.put_part(part).await
        })
    }

    /// Writes what is buffered and makes the object visible; returns its size.
    pub fn finish(mut self) -> Result<u64, SinkError> {
        let store_error = |source| SinkError::Store {
            path: self.path.to_string(),
            source,
        };
        match self.upload.take() {
            None => {
                let payload = PutPayload::from(std::mem::take(&mut self.buffer));
                self.runtime
                    .block_on(self.store.put(&self.path, payload))
                    .map_err(store_error)?;
            }
            Some(mut upload) => {
                let last = PutPayload::from(std::mem::take(&mut self.buffer));
                self.runtime
                    .block_on(async {
                        if last.content_length() > 0 {
                            upload.put_part(last).await?;
                        }
                        upload.complete().await
                    })
                    .map_err(store_error)?;
            }
        }
        Ok(self.written)
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        self.written += data.len() as u64;
        if self.buffer.len() >= PART_BYTES {
            self.upload_part().map_err(io::Error::other)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // An unfinished multipart upload is abandoned, not completed.
        if let Some(mut upload) = self.upload.take() {
            let _ = self.runtime.block_on(upload.abort());
        }
    }
}

/// The writer properties of every table.
pub fn writer_properties(config: &ParquetConfig) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(config.compression)
        .set_max_row_group_row_count(Some(config.row_group_rows.get()))
        .set_max_row_group_bytes(Some(config.row_group_bytes))
        .set_statistics_enabled(EnabledStatistics::Page)
        // Measured on Synthea: without dictionaries files are smaller (zstd finds the
        // repeats) and writing is cheaper; most FHIR strings are ids and references.
        .set_dictionary_enabled(false)
        .set_created_by(format!("fhir-ingest {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The properties of a new file whose first batch is `first`: leaf columns without a
/// value in it are written with Snappy instead of zstd or gzip.
///
/// parquet-rs gives every column writer its own codec, and a zstd codec holds a
/// compression and a decompression context (~100 KB together) for as long as the row
/// group is open. Most of a FHIR table's typed columns are empty in any given export,
/// so those contexts were most of the writer's memory (170 MB of a 480 MB peak on
/// Synthea) and 5% of its time. An empty column compresses to nothing with any codec;
/// if it gets values later in the file they are still compressed, with Snappy.
pub fn properties_for(
    base: &WriterProperties,
    first: &RecordBatch,
) -> Result<WriterProperties, SinkError> {
    let default = base.compression(&ColumnPath::new(Vec::new()));
    if !matches!(
        default,
        Compression::ZSTD(_) | Compression::GZIP(_) | Compression::BROTLI(_)
    ) {
        return Ok(base.clone());
    }
    let descriptor = ArrowSchemaConverter::new()
        .convert(&first.schema())
        .map_err(|source| SinkError::Parquet {
            path: "<schema>".into(),
            source,
        })?;
    let mut has_values = Vec::with_capacity(descriptor.num_columns());
    for column in first.columns() {
        leaves_with_values(column, &mut has_values);
    }
    let mut builder = base.clone().into_builder();
    for (column, has_values) in descriptor.columns().iter().zip(has_values) {
        if !has_values {
            builder = builder.set_column_compression(column.path().clone(), Compression::SNAPPY);
        }
    }
    Ok(builder.build())
}

/// Pushes, for each leaf of `array` in schema order, whether it holds any value.
fn leaves_with_values(array: &dyn Array, out: &mut Vec<bool>) {
    match array.data_type() {
        DataType::Struct(_) => {
            for child in array.as_struct().columns() {
                leaves_with_values(child, out);
            }
        }
        DataType::List(_) => leaves_with_values(array.as_list::<i32>().values(), out),
        _ => out.push(array.null_count() < array.len()),
    }
}

/// One Parquet file being written.
pub struct ParquetFile {
    path: Path,
    writer: ArrowWriter<ObjectWriter>,
    rows: u64,
}

/// What a finished Parquet file holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct WrittenFile {
    /// The object path, relative to the warehouse root.
    pub path: String,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
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
        let writer = ArrowWriter::try_new(out, schema, Some(properties)).map_err(|source| {
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

    /// Bytes written so far plus the row group in progress.
    pub fn size(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size()
    }

    /// Writes the footer and makes the file visible.
    pub fn finish(self) -> Result<WrittenFile, SinkError> {
        let parquet_error = |source| SinkError::Parquet {
            path: self.path.to_string(),
            source,
        };
        let out = self.writer.into_inner().map_err(parquet_error)?;
        let bytes = out.finish()?;
        Ok(WrittenFile {
            path: self.path.to_string(),
            rows: self.rows,
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        ArrayRef, Int32Array, StringArray, StructArray,
        builder::{ListBuilder, StringBuilder},
    };
    use arrow_schema::{Field, Fields, Schema};
    use parquet::basic::ZstdLevel;

    use super::*;

    #[test]
    fn empty_leaves_get_snappy_and_the_others_keep_zstd() {
        let zstd = Compression::ZSTD(ZstdLevel::try_new(1).unwrap());
        let base = WriterProperties::builder().set_compression(zstd).build();
        let inner = Fields::from(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Int32, true),
        ]);
        let strukt = StructArray::new(
            inner.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("x"), None])) as ArrayRef,
                Arc::new(Int32Array::from(vec![None, None])),
            ],
            None,
        );
        let mut list = ListBuilder::new(StringBuilder::new());
        list.append_null();
        list.append(true);
        let list = list.finish();
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Struct(inner), true),
            Field::new("l", list.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(strukt), Arc::new(list)]).unwrap();
        let properties = properties_for(&base, &batch).unwrap();
        let codec = |path: &[&str]| {
            properties.compression(&ColumnPath::new(
                path.iter().map(|p| p.to_string()).collect(),
            ))
        };
        assert_eq!(codec(&["s", "a"]), zstd);
        assert_eq!(codec(&["s", "b"]), Compression::SNAPPY);
        assert_eq!(codec(&["l", "list", "item"]), Compression::SNAPPY);
    }
}
