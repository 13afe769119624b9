//! The decode workers of a run (one per core): chunks of lines in, record batches of one
//! table at a time out to the writer that owns that table.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        Mutex,
        mpsc::{Receiver, SyncSender},
    },
};

use arrow_array::RecordBatch;

use super::{IngestError, Progress, read::Work, report::Report};
use crate::{
    decode::{LineDecoder, LineOrigin, Rejection},
    input::{self, Chunk},
    warehouse::TableId,
};

/// Decoded bytes of one type after which its batch is handed over even if not full.
const BATCH_BYTES: usize = 8 << 20;

/// Rows of one table for its writer.
pub(super) type Batch = (TableId, RecordBatch);

/// A decoding thread's state.
pub(super) struct DecodeWorker<'a> {
    pub decoder: LineDecoder,
    pub batch_txs: Vec<SyncSender<Batch>>,
    pub report_tx: SyncSender<Report>,
    pub recycle_tx: SyncSender<Vec<u8>>,
    pub batch_rows: usize,
    pub max_line_bytes: u64,
    pub progress: &'a Progress,
    /// Finished view batches (a buffer reused between calls).
    pub views: Vec<(String, RecordBatch)>,
}

impl DecodeWorker<'_> {
    /// Decodes chunks until the readers are done, handing full batches to the writers.
    pub fn run(mut self, work_rx: &Mutex<Receiver<Work>>) -> Result<(), IngestError> {
        let mut types = Vec::new();
        loop {
            let work = work_rx
                .lock()
                .map_err(|_| IngestError::Panicked("decoder"))?
                .recv();
            let Ok((origin, chunk)) = work else { break };
            if !self.decode_chunk(&origin, &chunk) {
                return Ok(());
            }
            // Sent back only if the reader has room for it; otherwise dropped.
            let _ = self.recycle_tx.try_send(chunk.data);
            self.decoder
                .ready_types(self.batch_rows, BATCH_BYTES, &mut types);
            for resource_type in &types {
                self.send_batch(resource_type)?;
            }
            self.report_view_failures();
        }
        self.decoder.types(&mut types);
        for resource_type in &types {
            self.send_batch(resource_type)?;
        }
        let skipped = self.decoder.take_skipped();
        if skipped > 0 {
            let _ = self.report_tx.send(Report::Skipped(skipped));
        }
        self.report_view_failures();
        Ok(())
    }

    /// Hands the resources whose view rows failed to the report thread.
    fn report_view_failures(&mut self) {
        for failure in self.decoder.take_view_failures() {
            let _ = self.report_tx.send(Report::ViewFailed(failure));
        }
    }

    /// Decodes the lines of a chunk; false when the run is being torn down.
    fn decode_chunk(&mut self, origin: &LineOrigin, chunk: &Chunk) -> bool {
        let mut decoded = 0;
        for (line_no, line) in input::lines(chunk) {
            decoded += 1;
            let result = match line.len() as u64 {
                length if length > self.max_line_bytes => Err(Rejection::LineTooLong {
                    length,
                    limit: self.max_line_bytes,
                }),
                _ => self.decoder.decode_line(line, origin, line_no),
            };
            if let Err(rejection) = result {
                let mut sample = line.to_vec();
                if matches!(rejection, Rejection::LineTooLong { .. }) {
                    sample.truncate(input::SAMPLE_BYTES);
                }
                let report = Report::Rejected {
                    file: origin.file.clone(),
                    line: line_no,
                    rejection,
                    sample,
                };
                if self.report_tx.send(report).is_err() {
                    return false;
                }
            }
        }
        Progress::add(&self.progress.lines, decoded);
        true
    }

    fn send_batch(&mut self, resource_type: &str) -> Result<(), IngestError> {
        let batch = self
            .decoder
            .finish(resource_type)
            .map_err(|source| IngestError::Batch {
                table: resource_type.to_owned(),
                source,
            })?;
        if let Some(batch) = batch {
            self.send(TableId::history(resource_type), batch);
        }
        let mut views = std::mem::take(&mut self.views);
        self.decoder
            .finish_views(resource_type, &mut views)
            .map_err(|source| IngestError::Batch {
                table: resource_type.to_owned(),
                source,
            })?;
        for (name, batch) in views.drain(..) {
            self.send(TableId::view(&name), batch);
        }
        self.views = views;
        Ok(())
    }

    /// Sends a batch to the writer of its table: a table always goes to the same
    /// writer, so it has one open file at a time. A send fails only when the writer
    /// died; its error is reported when it is joined.
    fn send(&self, table: TableId, batch: RecordBatch) {
        let mut hasher = DefaultHasher::new();
        table.hash(&mut hasher);
        let writer = (hasher.finish() % self.batch_txs.len() as u64) as usize;
        let _ = self.batch_txs[writer].send((table, batch));
    }
}
