//! The writer threads of a run: each writes the batches it gets through a
//! [`TableWriter`] per table. A table has a writer of its own, and its full batches
//! go to another writer when that one is behind (see `worker::send_to_writers`); the
//! file names of writer `i > 0` carry `w<i>` after the attempt token.
//!
//! The row groups a writer builds share one memory budget: when its open tables
//! together hold more, the largest row group is written out. A per-table limit alone
//! let each open table grow to it, so the writer's memory grew with the number of
//! large tables open at once.

use std::{collections::BTreeMap, sync::mpsc::Receiver};

use arrow_array::RecordBatch;
use parquet::file::properties::WriterProperties;
use tokio_util::sync::CancellationToken;

use super::{IngestError, worker::Batch};
use crate::{
    schema::Registry,
    sink::{RunFiles, TableWriter},
    warehouse::{TableId, TableKind, TableManifest},
};

/// Batches of other tables after which a writer finishes a table's open file.
const IDLE_BATCHES: u64 = 2;

/// The tables of one writer thread.
pub(super) struct Writer<'a> {
    pub files: RunFiles,
    pub registry: &'a Registry,
    pub properties: WriterProperties,
    pub max_file_bytes: usize,
    /// Memory the row groups of all open tables may hold together.
    pub memory_budget: usize,
    pub partition: Option<String>,
    pub cancel: &'a CancellationToken,
    tables: BTreeMap<TableId, OpenTable>,
    /// Batches written so far, of any table.
    batches_seen: u64,
}

struct OpenTable {
    writer: TableWriter,
    /// `Writer::batches_seen` when this table last got a batch.
    last_batch: u64,
}

impl<'a> Writer<'a> {
    /// A writer thread's state.
    pub fn new(
        files: RunFiles,
        registry: &'a Registry,
        properties: WriterProperties,
        max_file_bytes: usize,
        memory_budget: usize,
        partition: Option<String>,
        cancel: &'a CancellationToken,
    ) -> Self {
        Self {
            files,
            registry,
            properties,
            max_file_bytes,
            memory_budget,
            partition,
            cancel,
            tables: BTreeMap::new(),
            batches_seen: 0,
        }
    }

    /// Writes batches until the decoders are done; returns what each table wrote. On
    /// cancellation the open files are dropped unfinished (their uploads aborted).
    pub fn run(
        mut self,
        batches: Receiver<Batch>,
    ) -> Result<BTreeMap<TableId, TableManifest>, IngestError> {
        for (table, batch) in batches {
            if self.cancel.is_cancelled() {
                return Ok(BTreeMap::new());
            }
            self.write(table, &batch)?;
            self.close_idle_tables()?;
            self.keep_within_budget()?;
        }
        let mut out = BTreeMap::new();
        for (table, open) in std::mem::take(&mut self.tables) {
            out.insert(table, open.writer.finish()?);
        }
        Ok(out)
    }

    fn write(&mut self, table: TableId, batch: &RecordBatch) -> Result<(), IngestError> {
        let seen = self.batches_seen;
        let open = self.tables.entry(table).or_insert_with_key(|table| {
            let schema = table
                .resource_type()
                .and_then(|t| self.registry.get(t))
                .map(|s| s.arrow_schema());
            OpenTable {
                // Only history is partitioned; current and view tables are merged.
                writer: TableWriter::new(
                    self.files.clone(),
                    table.clone(),
                    matches!(table.kind(), TableKind::History(_))
                        .then(|| self.partition.clone())
                        .flatten(),
                    schema,
                    self.properties.clone(),
                    self.max_file_bytes,
                ),
                last_batch: seen,
            }
        });
        open.last_batch = seen;
        open.writer.write(batch)?;
        Ok(())
    }

    /// Writes out the largest row groups until the open tables hold no more than the
    /// budget.
    fn keep_within_budget(&mut self) -> Result<(), IngestError> {
        // Each round empties one table; bounded by their number.
        for _ in 0..self.tables.len() {
            let mut total = 0;
            let mut largest: Option<(&mut OpenTable, usize)> = None;
            for open in self.tables.values_mut() {
                let size = open.writer.memory_size();
                total += size;
                if largest.as_ref().is_none_or(|(_, most)| size > *most) {
                    largest = Some((open, size));
                }
            }
            match largest {
                Some((open, _)) if total > self.memory_budget => open.writer.flush_row_group()?,
                _ => break,
            }
        }
        Ok(())
    }

    /// Finishes the open files of tables that got no batch lately: with single-type
    /// input files, a table whose input is done would otherwise hold a row group of
    /// column writers to the end of the run. A table that gets rows again starts a new
    /// file.
    fn close_idle_tables(&mut self) -> Result<(), IngestError> {
        self.batches_seen += 1;
        for open in self.tables.values_mut() {
            if self.batches_seen - open.last_batch > IDLE_BATCHES {
                open.writer.close_file()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, mpsc::sync_channel};

    use arrow_array::{ArrayRef, StringArray};
    use bytes::Bytes;
    use object_store::{ObjectStoreExt, memory::InMemory, path::Path};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    fn batch(value: &str) -> RecordBatch {
        let column: ArrayRef = Arc::new(StringArray::from(vec![value; 100]));
        RecordBatch::try_from_iter([("id", column)]).unwrap()
    }

    /// Row groups per file of each table, after writing `a b a b` through a writer
    /// with `memory_budget`.
    fn row_groups_with_budget(memory_budget: usize) -> Vec<usize> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = Arc::new(InMemory::new());
        let files = RunFiles {
            store: store.clone(),
            runtime: runtime.handle().clone(),
            run_id: "r".into(),
            attempt: "t".into(),
        };
        let registry = Registry::embedded().unwrap();
        let cancel = CancellationToken::new();
        let writer = Writer::new(
            files,
            &registry,
            WriterProperties::builder().build(),
            usize::MAX,
            memory_budget,
            None,
            &cancel,
        );
        let (tx, rx) = sync_channel(8);
        for name in ["a", "b", "a", "b"] {
            tx.send((TableId::view(name), batch(name))).unwrap();
        }
        drop(tx);
        let tables = writer.run(rx).unwrap();
        let mut row_groups = Vec::new();
        for manifest in tables.values() {
            for file in &manifest.files {
                let path = Path::from(file.path.as_str());
                let bytes: Bytes = runtime
                    .block_on(async { store.get(&path).await?.bytes().await })
                    .unwrap();
                let reader = SerializedFileReader::new(bytes).unwrap();
                row_groups.push(reader.metadata().num_row_groups());
            }
        }
        row_groups
    }

    /// The open tables share the budget: past it the largest row group is written
    /// out, so each batch ends in a row group of its own; within it, each table's
    /// rows stay in one row group.
    #[test]
    fn open_tables_past_the_memory_budget_flush_their_row_groups() {
        assert_eq!(row_groups_with_budget(usize::MAX), [1, 1]);
        assert_eq!(row_groups_with_budget(0), [2, 2]);
    }
}
