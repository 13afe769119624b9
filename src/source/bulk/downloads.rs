//! The output files of an export as the run's inputs: each a download streamed into a
//! reader thread when the run gets to it, and a log line of the bytes received every
//! few seconds while they run.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError},
    },
    time::Duration,
};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::redact_url,
    bulk::BulkClient,
    decode::LineOrigin,
    input::{InputFile, Opener, StreamReader},
};

/// Seconds between two download progress lines.
const PROGRESS_SECS: u64 = 10;

/// An output file of the manifest as an input: a download, started when a reader
/// thread opens it; `received` counts its bytes.
pub(super) fn download_input(
    client: &BulkClient,
    url: &str,
    requires_token: bool,
    runtime: &Handle,
    cancel: &CancellationToken,
    received: &Arc<AtomicU64>,
) -> InputFile {
    let (client, owned_url, runtime, cancel, received) = (
        client.clone(),
        url.to_owned(),
        runtime.clone(),
        cancel.clone(),
        received.clone(),
    );
    let open = move || {
        let stream = client.download(&owned_url, requires_token);
        let reader = StreamReader::spawn(stream, &runtime, cancel.clone(), received.clone());
        Ok(Box::new(reader) as Box<dyn std::io::Read + Send>)
    };
    InputFile {
        opener: Opener::Download(Arc::new(open)),
        origin: LineOrigin {
            file: Arc::from(redact_url(url)),
            // Files may hold several types (organizeOutputBy): each line is routed by
            // its own resourceType, and Parameters header lines are skipped.
            expected_type: None,
            skip_parameters: true,
        },
    }
}

/// Logs the bytes downloaded so far every few seconds until `stopped` disconnects.
pub(super) fn report_downloads(downloaded: &AtomicU64, stopped: &Receiver<()>) {
    let interval = Duration::from_secs(PROGRESS_SECS);
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
        let bytes = downloaded.load(Ordering::Relaxed);
        tracing::info!(bytes, "downloaded {:.1} MB so far", bytes as f64 / 1e6);
    }
}
