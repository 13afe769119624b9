//! The reader threads of a run: each takes the next input file from a shared queue and
//! reads it into chunks of whole lines for the decoders.

use std::{
    io::{self, Read},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc::{Receiver, SyncSender},
    },
};

use tokio_util::sync::CancellationToken;

use super::{DecodeConfig, IngestError, Progress, report::Report};
use crate::{
    decode::LineOrigin,
    failpoint,
    input::{self, Chunk, InputFile, ReadEvent},
};

/// Lines for a decoder: where they come from, and the chunk.
pub(super) type Work = (Arc<LineOrigin>, Chunk);

/// One reader thread.
pub(super) struct FileReader<'a> {
    pub inputs: &'a [InputFile],
    pub next: &'a AtomicUsize,
    pub decode: &'a DecodeConfig,
    pub work_tx: SyncSender<Work>,
    pub report_tx: SyncSender<Report>,
    pub recycled: &'a Mutex<Receiver<Vec<u8>>>,
    pub progress: &'a Progress,
    pub cancel: &'a CancellationToken,
}

impl FileReader<'_> {
    /// Reads files into chunks until none is left; returns how many this thread read.
    pub fn run(self) -> Result<u64, IngestError> {
        let mut read = 0;
        loop {
            if self.cancel.is_cancelled() {
                return Ok(read);
            }
            let Some(file) = self.inputs.get(self.next.fetch_add(1, Ordering::Relaxed)) else {
                return Ok(read);
            };
            if !self.read_file(file)? {
                return Ok(read);
            }
            read += 1;
            if read == 1 {
                failpoint::hit("during-download");
            }
        }
    }

    /// Reads one file; false when the run is being torn down.
    fn read_file(&self, file: &InputFile) -> Result<bool, IngestError> {
        let origin = Arc::new(file.origin.clone());
        let reader = file.open().map_err(|e| file.failure(e))?;
        let mut reader = ErrorWatch {
            inner: reader,
            error: None,
        };
        let buffer = || {
            let mut data = self
                .recycled
                .lock()
                .ok()
                .and_then(|rx| rx.try_recv().ok())
                .unwrap_or_default();
            data.clear();
            data
        };
        let mut open = true;
        let totals = input::read_chunks(
            &mut reader,
            &origin.file,
            self.decode.max_line_bytes,
            self.decode.max_decompressed_bytes,
            buffer,
            |event| {
                open = !self.cancel.is_cancelled()
                    && match event {
                        ReadEvent::Chunk(chunk) => {
                            Progress::add(&self.progress.bytes, chunk.data.len() as u64);
                            self.work_tx.send((origin.clone(), chunk)).is_ok()
                        }
                        ReadEvent::Rejected {
                            line,
                            rejection,
                            sample,
                        } => self
                            .report_tx
                            .send(Report::Rejected {
                                file: origin.file.clone(),
                                line,
                                rejection,
                                sample,
                            })
                            .is_ok(),
                    };
                open
            },
        )?;
        if file.read_errors_are_fatal()
            && let Some(error) = reader.error
        {
            return Err(file.failure(error).into());
        }
        let report = Report::FileRead {
            file: origin.file.clone(),
            totals,
        };
        Ok(open && self.report_tx.send(report).is_ok())
    }
}

/// Keeps the first read error of a stream (read_chunks turns it into a rejection of the
/// cut line; for downloads the run fails with it instead).
struct ErrorWatch {
    inner: Box<dyn Read + Send>,
    error: Option<io::Error>,
}

impl Read for ErrorWatch {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted && self.error.is_none() => {
                // read_chunks needs an error to stop at; the original is kept here.
                let copy = io::Error::new(e.kind(), e.to_string());
                self.error = Some(e);
                Err(copy)
            }
            other => other,
        }
    }
}
