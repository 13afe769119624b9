//! A byte stream produced on the async runtime (a download), read as a blocking
//! [`Read`] by a reader thread.
//!
//! A task on the runtime drives the stream into a bounded channel; the reader thread
//! takes chunks from it in order. A stream error reaches the reader as an
//! `io::Error` whose inner error is the stream's own (so a caller can downcast it and
//! ask what it means); a cancelled run ends the stream with [`Cancelled`].

use std::{
    io::{self, Read},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::{Buf, Bytes};
use futures::{Stream, StreamExt};
use tokio::{runtime::Handle, sync::mpsc};
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Chunks of a stream buffered between the runtime and the reader thread.
const BUFFERED_CHUNKS: usize = 8;

/// The error a stream ends with when the run was cancelled.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the run was cancelled")]
pub struct Cancelled;

/// The blocking side of a stream driven on the runtime.
pub struct StreamReader {
    rx: mpsc::Receiver<Result<Bytes, BoxError>>,
    current: Bytes,
    received: Arc<AtomicU64>,
    cancel: CancellationToken,
}

impl StreamReader {
    /// Starts driving `stream` on `runtime` until it ends, fails or `cancel` fires;
    /// `received` counts the bytes as the reader takes them.
    pub fn spawn<S, E>(
        stream: S,
        runtime: &Handle,
        cancel: CancellationToken,
        received: Arc<AtomicU64>,
    ) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let (tx, rx) = mpsc::channel(BUFFERED_CHUNKS);
        let stop = cancel.clone();
        runtime.spawn(async move {
            futures::pin_mut!(stream);
            loop {
                let item = tokio::select! {
                    _ = stop.cancelled() => break,
                    item = stream.next() => item,
                };
                let Some(item) = item else { break };
                let failed = item.is_err();
                let item = item.map_err(|e| Box::new(e) as BoxError);
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        Self {
            rx,
            current: Bytes::new(),
            received,
            cancel,
        }
    }
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None if self.cancel.is_cancelled() => return Err(io::Error::other(Cancelled)),
                None => return Ok(0),
                Some(Ok(chunk)) => {
                    self.received
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    self.current = chunk;
                }
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// The error a stream failed with, out of the `io::Error` a reader got.
pub fn stream_error(error: io::Error) -> BoxError {
    match error.get_ref() {
        Some(_) => error
            .into_inner()
            .unwrap_or_else(|| Box::new(io::Error::other("stream error"))),
        None => Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("gone (410)")]
    struct Gone;

    #[test]
    fn yields_bytes_in_order_then_the_error() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let items: Vec<Result<Bytes, Gone>> = vec![
            Ok(Bytes::from_static(b"{\"a\":1}\n{")),
            Ok(Bytes::from_static(b"\"b\":2}\n")),
            Err(Gone),
        ];
        let received = Arc::new(AtomicU64::new(0));
        let mut reader = StreamReader::spawn(
            futures::stream::iter(items),
            runtime.handle(),
            CancellationToken::new(),
            received.clone(),
        );
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).unwrap_err();
        assert_eq!(out, b"{\"a\":1}\n{\"b\":2}\n");
        assert!(stream_error(err).downcast_ref::<Gone>().is_some());
        assert_eq!(received.load(Ordering::Relaxed), out.len() as u64);
    }

    #[test]
    fn a_cancelled_stream_ends_with_cancelled() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let cancel = CancellationToken::new();
        let mut reader = StreamReader::spawn(
            futures::stream::pending::<Result<Bytes, Gone>>(),
            runtime.handle(),
            cancel.clone(),
            Arc::default(),
        );
        cancel.cancel();
        let err = reader.read(&mut [0; 8]).unwrap_err();
        assert!(stream_error(err).downcast_ref::<Cancelled>().is_some());
    }
}
