//! The files of one table (in one partition) written by one run: opened when the first
//! batch comes, rolled over at a size, recorded for the run manifest. Ingest and
//! compaction both write through it.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use object_store::ObjectStore;
use parquet::file::properties::WriterProperties;
use tokio::runtime::Handle;

use super::{ParquetFile, SinkError, properties_for};
use crate::warehouse::{TableId, TableManifest, layout};

/// Where a run's files go: the store, and the run id and attempt token their names carry.
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// The warehouse's store.
    pub store: Arc<dyn ObjectStore>,
    /// The runtime the store runs on (the writer blocks on it).
    pub runtime: Handle,
    /// The run id.
    pub run_id: String,
    /// The attempt token.
    pub attempt: String,
}

/// The files of one table of a run, in one partition.
pub struct TableWriter {
    files: RunFiles,
    table: TableId,
    partition: Option<String>,
    schema: Option<SchemaRef>,
    properties: WriterProperties,
    max_file_bytes: usize,
    current: Option<ParquetFile>,
    manifest: TableManifest,
}

impl TableWriter {
    /// A writer of `table`'s files in `partition`, each up to `max_file_bytes`, with
    /// `schema` (or, when none is given, the schema of the first batch of each file).
    pub fn new(
        files: RunFiles,
        table: TableId,
        partition: Option<String>,
        schema: Option<SchemaRef>,
        properties: WriterProperties,
        max_file_bytes: usize,
    ) -> Self {
        Self {
            files,
            table,
            partition,
            schema,
            properties,
            max_file_bytes,
            current: None,
            manifest: TableManifest::default(),
        }
    }

    /// The table written.
    pub fn table(&self) -> &TableId {
        &self.table
    }

    /// Appends a batch, starting a file if none is open and finishing it once it
    /// reaches the size limit.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let file = match &mut self.current {
            Some(file) => file,
            None => {
                let path = layout::data_file(
                    &self.table,
                    self.partition.as_deref(),
                    &self.files.run_id,
                    &self.files.attempt,
                    self.manifest.files.len(),
                );
                let file = ParquetFile::create(
                    self.files.store.clone(),
                    path,
                    self.schema.clone().unwrap_or_else(|| batch.schema()),
                    properties_for(&self.properties, batch)?,
                    self.files.runtime.clone(),
                )?;
                self.current.insert(file)
            }
        };
        file.write(batch)?;
        if file.size() >= self.max_file_bytes {
            self.close_file()?;
        }
        Ok(())
    }

    /// Finishes the open file, if any; the next batch starts another. An open file
    /// holds a row group with a writer (and a codec) per column: a table whose input is
    /// done should not hold that memory to the end of the run.
    pub fn close_file(&mut self) -> Result<(), SinkError> {
        if let Some(file) = self.current.take() {
            self.manifest.push(file.finish(self.partition.as_deref())?);
        }
        Ok(())
    }

    /// Finishes the open file and returns what was written.
    pub fn finish(mut self) -> Result<TableManifest, SinkError> {
        self.close_file()?;
        Ok(std::mem::take(&mut self.manifest))
    }
}
