//! The files of one table (in one partition) written by one run: opened when the first
//! batch comes, rolled over at a size, recorded for the run manifest. Ingest and
//! compaction both write through it.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use object_store::ObjectStore;
use parquet::file::properties::WriterProperties;
use tokio::runtime::Handle;

use super::{ParquetFile, SinkError, properties_for};
use crate::{
    schema::sparse::{self, Leaves},
    warehouse::{TableId, TableManifest, layout},
};

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

/// Rows held before a file is opened, so that its leaves are those of more than one
/// batch (see [`sparse`]): at most this much Arrow memory, or a row group's rows.
const SAMPLE_BYTES: usize = 16 << 20;

/// The files of one table of a run, in one partition.
///
/// Each file holds only the leaves with a value in it ([`sparse`]): the first batches
/// of a file are held (up to 16 MiB) until the file is opened with the leaves
/// they fill (and those of the files before it); a later batch with a value in a leaf
/// the open file lacks finishes it, and the next file gets the leaves of both.
pub struct TableWriter {
    files: RunFiles,
    table: TableId,
    partition: Option<String>,
    schema: Option<SchemaRef>,
    properties: WriterProperties,
    max_file_bytes: usize,
    max_sample_rows: usize,
    current: Option<OpenFile>,
    /// Batches not yet in a file (only while no file is open), and their leaves.
    sample: Vec<RecordBatch>,
    sample_leaves: Leaves,
    sample_bytes: usize,
    sample_rows: usize,
    /// The leaves of the files written so far: the next file has them too, so that a
    /// leaf that appears late finishes one file, not every file after it.
    seen: Leaves,
    manifest: TableManifest,
}

/// The open file, with its leaves and its pruned schema.
struct OpenFile {
    file: ParquetFile,
    leaves: Leaves,
    schema: SchemaRef,
}

impl OpenFile {
    /// Writes the leaves of `batch` this file has.
    fn write(&mut self, batch: &RecordBatch, table: &TableId) -> Result<(), SinkError> {
        let pruned =
            sparse::prune(batch, &self.leaves, &self.schema).map_err(|e| arrow_error(table, e))?;
        self.file.write(&pruned)
    }
}

fn arrow_error(table: &TableId, source: ArrowError) -> SinkError {
    SinkError::Arrow {
        table: table.to_string(),
        source,
    }
}

impl TableWriter {
    /// A writer of `table`'s files in `partition`, each up to `max_file_bytes`, with
    /// `schema` (or, when none is given, the schema of the first batch of each file).
    /// Batches of fewer leaves than `schema` are filled up with nulls first.
    pub fn new(
        files: RunFiles,
        table: TableId,
        partition: Option<String>,
        schema: Option<SchemaRef>,
        properties: WriterProperties,
        max_file_bytes: usize,
    ) -> Self {
        let max_sample_rows = properties.max_row_group_row_count().unwrap_or(usize::MAX);
        Self {
            files,
            table,
            partition,
            schema,
            properties,
            max_file_bytes,
            max_sample_rows,
            current: None,
            sample: Vec::new(),
            sample_leaves: Leaves::default(),
            sample_bytes: 0,
            sample_rows: 0,
            seen: Leaves::default(),
            manifest: TableManifest::default(),
        }
    }

    /// The table written.
    pub fn table(&self) -> &TableId {
        &self.table
    }

    /// Appends a batch: to the open file if it has the batch's leaves, else to the
    /// sample of the next file, which is opened once the sample is large enough.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let batch = match &self.schema {
            Some(schema) => {
                sparse::conform(batch, schema).map_err(|e| arrow_error(&self.table, e))?
            }
            None => batch.clone(),
        };
        let leaves = Leaves::of(&batch);
        if let Some(open) = &mut self.current {
            if leaves.is_subset(&open.leaves) {
                open.write(&batch, &self.table)?;
                if open.file.size() >= self.max_file_bytes {
                    self.close_file()?;
                }
                return Ok(());
            }
            self.close_file()?;
        }
        self.sample_bytes += batch.get_array_memory_size();
        self.sample_rows += batch.num_rows();
        self.sample_leaves.union(&leaves);
        self.sample.push(batch);
        if self.sample_bytes >= SAMPLE_BYTES || self.sample_rows >= self.max_sample_rows {
            self.open_file()?;
        }
        Ok(())
    }

    /// Opens a file with the leaves of the sample and writes the sample into it.
    fn open_file(&mut self) -> Result<(), SinkError> {
        let Some(first) = self.sample.first() else {
            return Ok(());
        };
        let mut leaves = std::mem::take(&mut self.sample_leaves);
        leaves.union(&self.seen);
        self.seen.clone_from(&leaves);
        let schema = leaves.prune_schema(first.schema_ref());
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
            schema.clone(),
            properties_for(&self.properties, &schema)?,
            self.files.runtime.clone(),
        )?;
        let open = self.current.insert(OpenFile {
            file,
            leaves,
            schema,
        });
        for batch in std::mem::take(&mut self.sample) {
            open.write(&batch, &self.table)?;
        }
        (self.sample_bytes, self.sample_rows) = (0, 0);
        if open.file.size() >= self.max_file_bytes {
            self.close_file()?;
        }
        Ok(())
    }

    /// Finishes the open file, if any, or writes the sample into one; the next batch
    /// starts another. An open file holds a row group with a writer (and a codec) per
    /// column: a table whose input is done should not hold that memory to the end of
    /// the run.
    pub fn close_file(&mut self) -> Result<(), SinkError> {
        if self.current.is_none() {
            self.open_file()?;
        }
        if let Some(open) = self.current.take() {
            self.manifest
                .push(open.file.finish(self.partition.as_deref())?);
        }
        Ok(())
    }

    /// Memory held for the table: the Arrow memory of the sample not yet in a file, and
    /// the open file's row group in progress.
    pub fn memory_size(&self) -> usize {
        self.sample_bytes
            + self
                .current
                .as_ref()
                .map_or(0, |open| open.file.memory_size())
    }

    /// Gives back the memory of the table: the open file's row group in progress is
    /// written out, or the sample written into a new file.
    pub fn flush_row_group(&mut self) -> Result<(), SinkError> {
        match &mut self.current {
            Some(open) => open.file.flush_row_group(),
            None => self.open_file(),
        }
    }

    /// Finishes the open file and returns what was written.
    pub fn finish(mut self) -> Result<TableManifest, SinkError> {
        self.close_file()?;
        Ok(std::mem::take(&mut self.manifest))
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{ArrayRef, Int32Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use bytes::Bytes;
    use object_store::{ObjectStoreExt, memory::InMemory, path::Path};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn batch(schema: &SchemaRef, id: &str, a: Option<&str>, b: Option<i32>) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![id])),
            Arc::new(StringArray::from(vec![a])),
            Arc::new(Int32Array::from(vec![b])),
        ];
        RecordBatch::try_new(schema.clone(), columns).unwrap()
    }

    /// A file opens with the leaves of its first batches; a batch with a value in a
    /// leaf the file lacks starts the next file; both read back whole in the schema.
    #[test]
    fn a_new_leaf_after_the_file_opened_starts_the_next_file() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = Arc::new(InMemory::new());
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Int32, true),
        ]));
        let files = RunFiles {
            store: store.clone(),
            runtime: runtime.handle().clone(),
            run_id: "r".into(),
            attempt: "t".into(),
        };
        // Row groups of two rows: the sample is full after two rows.
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut writer = TableWriter::new(
            files,
            TableId::history("Patient"),
            None,
            Some(schema.clone()),
            properties,
            usize::MAX,
        );
        let batches = [
            batch(&schema, "x", Some("1"), None),
            batch(&schema, "y", None, None),
            batch(&schema, "z", None, Some(5)),
        ];
        for b in &batches {
            writer.write(b).unwrap();
        }
        let manifest = writer.finish().unwrap();
        assert_eq!(manifest.files.len(), 2);
        let mut read = Vec::new();
        let mut leaves = Vec::new();
        for file in &manifest.files {
            let bytes: Bytes = runtime
                .block_on(async {
                    store
                        .get(&Path::from(file.path.as_str()))
                        .await?
                        .bytes()
                        .await
                })
                .unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .unwrap()
                .build()
                .unwrap();
            for b in reader {
                let b = b.unwrap();
                leaves.push(
                    b.schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect::<Vec<_>>(),
                );
                read.push(sparse::conform(&b, &schema).unwrap());
            }
        }
        assert_eq!(leaves, [vec!["id", "a"], vec!["id", "a", "b"]]);
        let concat = |b: &[RecordBatch]| arrow_select::concat::concat_batches(&schema, b).unwrap();
        assert_eq!(concat(&read), concat(&batches));
    }
}
