//! The decode workers of a run (one per core): chunks of lines in, record batches of one
//! table at a time out to the writer that owns that table.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        Mutex,
        mpsc::{Receiver, SyncSender, TrySendError},
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

/// Which writers may take a batch.
#[derive(Clone, Copy)]
enum Route {
    /// The table's own writer, or another one when that one is behind: for the full
    /// batches of a large table.
    AnyWriter,
    /// Only the table's own writer: for the last, partial batches of each table at the
    /// end of the input, so that a small table stays in one file.
    OwnWriter,
}

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
                self.send_batch(resource_type, Route::AnyWriter)?;
            }
            self.report_view_failures();
        }
        self.decoder.types(&mut types);
        for resource_type in &types {
            self.send_batch(resource_type, Route::OwnWriter)?;
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

    fn send_batch(&mut self, resource_type: &str, route: Route) -> Result<(), IngestError> {
        let batch = self
            .decoder
            .finish(resource_type)
            .map_err(|source| IngestError::Batch {
                table: resource_type.to_owned(),
                source,
            })?;
        if let Some(batch) = batch {
            self.send(TableId::history(resource_type), batch, route);
        }
        let mut views = std::mem::take(&mut self.views);
        self.decoder
            .finish_views(resource_type, &mut views)
            .map_err(|source| IngestError::Batch {
                table: resource_type.to_owned(),
                source,
            })?;
        for (name, batch) in views.drain(..) {
            self.send(TableId::view(&name), batch, route);
        }
        self.views = views;
        Ok(())
    }

    /// Sends a batch to the writer of its table, or (`Route::AnyWriter`), when that
    /// writer is behind (its queue full), to the next writer with room: one large
    /// table then keeps every writer busy instead of one writing alone at the end of
    /// the run (its rows end in a file per writer). Only when every queue is full does
    /// it wait, on the table's own writer. A send fails only when the writer died; its
    /// error is reported when it is joined.
    fn send(&self, table: TableId, batch: RecordBatch, route: Route) {
        let mut hasher = DefaultHasher::new();
        table.hash(&mut hasher);
        let home = (hasher.finish() % self.batch_txs.len() as u64) as usize;
        send_to_writers(&self.batch_txs, home, (table, batch), route);
    }
}

/// Sends `item` to writer `home`, or by `route` to the next one with room.
fn send_to_writers<T>(txs: &[SyncSender<T>], home: usize, mut item: T, route: Route) {
    let tries = match route {
        Route::AnyWriter => txs.len(),
        Route::OwnWriter => 0,
    };
    for k in 0..tries {
        match txs[(home + k) % txs.len()].try_send(item) {
            Ok(()) => return,
            Err(TrySendError::Full(back)) => item = back,
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
    let _ = txs[home].send(item);
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use super::*;

    /// A full batch goes to the next writer when its own is behind; the last batches
    /// of a table go to its own writer, which has room again by then.
    #[test]
    fn a_full_batch_goes_to_a_writer_with_room_and_a_last_batch_to_its_own() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| sync_channel(1)).unzip();
        send_to_writers(&txs, 1, "first", Route::AnyWriter);
        send_to_writers(&txs, 1, "overflow", Route::AnyWriter);
        assert_eq!(rxs[1].try_recv(), Ok("first"));
        assert_eq!(rxs[0].try_recv(), Ok("overflow"));
        send_to_writers(&txs, 1, "last", Route::OwnWriter);
        assert_eq!(rxs[1].try_recv(), Ok("last"));
        assert!(rxs[0].try_recv().is_err());
    }
}
