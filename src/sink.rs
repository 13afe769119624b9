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

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload, path::Path};
use parquet::{
    arrow::ArrowWriter,
    errors::ParquetError,
    file::properties::{EnabledStatistics, WriterProperties},
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
