//! The writer threads of a run: each owns the tables assigned to it (a table always
//! goes to the same writer) and writes their batches through a [`TableWriter`].

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
        partition: Option<String>,
        cancel: &'a CancellationToken,
    ) -> Self {
        Self {
            files,
            registry,
            properties,
            max_file_bytes,
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
