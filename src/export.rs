//! One incremental run of a `bulk` source: from the checkpoint, through the server's
//! `$export`, into the pipeline, to the next checkpoint.
//!
//! ```text
//! checkpoint ─► resume the in-flight export, or kick off with _since = checkpoint
//!            ─► persist in-flight (status URL) ─► poll (X-Progress to stderr)
//!            ─► error[] and deleted[] files ─► pipeline::run over output[] (downloads
//!               streamed into the decoders, parallel_downloads at once)
//!            ─► run manifest committed ─► checkpoint advanced ─► in-flight removed
//!            ─► DELETE on the status URL (when delete_after_download)
//! ```
//!
//! The checkpoint moves only after the run manifest is committed. A crash between the two
//! is repaired by the next run (a committed run newer than the checkpoint advances it);
//! an in-flight record older than the checkpoint is discarded, so a rerun never ingests
//! an export twice.

use std::{
    collections::BTreeMap,
    io::{self, Read},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use bytes::{Buf, Bytes};
use futures::StreamExt;
use tokio::runtime::Handle;

use crate::{
    auth::redact_url,
    bulk::{BulkClient, BulkConfig, BulkError, KickOff, Manifest, PollProgress},
    decode::{LineOrigin, temporal},
    failpoint,
    input::{InputFile, Opener},
    pipeline::{self, Outcome, PipelineError, RunOptions, RunSummary},
    schema::Registry,
    state::{Checkpoint, InFlight, SourceState, StateError},
    warehouse::{DeletedRef, RunManifest, Warehouse, WarehouseError},
};

/// Chunks of a download buffered between the network and the reader thread.
const DOWNLOAD_CHUNKS: usize = 8;

/// Errors of a bulk run.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The server or the network failed (after retries).
    #[error(transparent)]
    Bulk(#[from] BulkError),
    /// The checkpoint or in-flight record could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// Ingesting the files failed; nothing was committed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The committed runs could not be listed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// The manifest has no `transactionTime`, so no checkpoint can follow it.
    #[error("the export manifest from {url} has no transactionTime")]
    NoTransactionTime {
        /// The kick-off URL, redacted.
        url: String,
    },
}

/// What a bulk run did.
#[derive(Debug, Clone)]
pub struct BulkSummary {
    /// The pipeline's run (committed unless its outcome says otherwise).
    pub run: RunSummary,
    /// The `_since` the export was asked for (none: a full export).
    pub since: Option<String>,
    /// Whether an export in flight from an earlier run was resumed.
    pub resumed: bool,
    /// The new checkpoint, when the run committed.
    pub checkpoint: Option<Checkpoint>,
}

/// Options of a bulk run besides the client configuration.
pub struct BulkRunOptions<'a> {
    /// The source's client configuration (with its auth).
    pub client: &'a BulkConfig,
    /// The pipeline options: everything but `inputs`, `transaction_time`,
    /// `parallel_files`, `deleted` and `server_errors`, which the run fills in.
    pub pipeline: RunOptions,
    /// On Ctrl-C or SIGTERM, cancel the export in flight (DELETE on its status URL,
    /// in-flight record removed, checkpoint untouched) and exit the process with status
    /// 130. The binary sets it; library users handle signals themselves.
    pub handle_signals: bool,
}

/// Runs one incremental export of a bulk source into `warehouse`. Blocking: call it
/// outside the async runtime whose `runtime` handle it uses.
pub fn run(
    warehouse: &Warehouse,
    registry: Arc<Registry>,
    options: BulkRunOptions<'_>,
    runtime: Handle,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<BulkSummary, ExportError> {
    let source = options.pipeline.source.clone();
    let state = SourceState::new(warehouse.store(), &source);
    let client = BulkClient::new(options.client.clone())?;
    if options.handle_signals {
        install_signal_watcher(&runtime);
    }
    let _active = ActiveGuard(source.clone());
    let prepared = runtime.block_on(prepare(warehouse, &state, &client, progress))?;
    let gone = Arc::new(AtomicBool::new(false));
    let downloaded = Arc::new(AtomicU64::new(0));
    let counters = Counters {
        gone: gone.clone(),
        downloaded: downloaded.clone(),
    };
    let pipeline_options =
        pipeline_options(options.pipeline, &client, &prepared, &runtime, &counters);
    progress(&format!(
        "downloading {} files ({} at once)",
        pipeline_options.inputs.len(),
        pipeline_options
            .parallel_files
            .get()
            .min(pipeline_options.inputs.len().max(1))
    ));
    let result = std::thread::scope(|scope| {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let downloaded = &downloaded;
        scope.spawn(move || report_downloads(downloaded, &stopped, progress));
        let result = pipeline::run(
            warehouse,
            registry,
            pipeline_options,
            runtime.clone(),
            progress,
        );
        drop(stop);
        result
    });
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            if gone.load(Ordering::Relaxed) {
                progress(
                    "the export's files are gone on the server: the next run starts a new export",
                );
                runtime.block_on(state.clear_in_flight())?;
            }
            return Err(e.into());
        }
    };
    let checkpoint = if summary.outcome == Outcome::TooManyRejected {
        None
    } else {
        failpoint::hit("after-commit");
        Some(runtime.block_on(finish(
            &state,
            &client,
            &prepared.kickoff,
            &summary,
            prepared.seq,
            progress,
        ))?)
    };
    Ok(BulkSummary {
        run: summary,
        since: prepared.since,
        resumed: prepared.resumed,
        checkpoint,
    })
}

/// The pipeline's options for the export's files: one download per `output[]` file.
fn pipeline_options(
    mut options: RunOptions,
    client: &BulkClient,
    prepared: &Prepared,
    runtime: &Handle,
    counters: &Counters,
) -> RunOptions {
    let requires_token = prepared.manifest.requires_access_token();
    options.inputs = prepared
        .manifest
        .output
        .iter()
        .map(|file| download_input(client, &file.url, requires_token, runtime, counters))
        .collect();
    options.transaction_time = Some(prepared.transaction_time.clone());
    options.parallel_files = std::num::NonZeroUsize::new(client.config().parallel_downloads)
        .unwrap_or(std::num::NonZeroUsize::MIN);
    options.deleted = prepared.deleted.clone();
    options.server_errors = prepared.server_errors.clone();
    options
}

/// Shared by the downloads of a run.
#[derive(Clone)]
struct Counters {
    /// Set when a file answered 404/410: the export must be started anew.
    gone: Arc<AtomicBool>,
    /// Bytes received so far, over all files.
    downloaded: Arc<AtomicU64>,
}

/// Seconds between two download progress lines.
const PROGRESS_SECS: u64 = 10;

/// Prints the bytes downloaded so far every few seconds until `stopped` disconnects.
fn report_downloads(
    downloaded: &AtomicU64,
    stopped: &std::sync::mpsc::Receiver<()>,
    progress: &(dyn Fn(&str) + Sync),
) {
    let interval = std::time::Duration::from_secs(PROGRESS_SECS);
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
        progress(&format!(
            "downloaded {:.1} MB so far",
            downloaded.load(Ordering::Relaxed) as f64 / 1e6
        ));
    }
}

/// The export to ingest, ready for download.
struct Prepared {
    kickoff: KickOff,
    manifest: Manifest,
    transaction_time: String,
    since: Option<String>,
    resumed: bool,
    seq: u64,
    deleted: Vec<DeletedRef>,
    server_errors: Vec<String>,
}

/// Repairs the checkpoint, resumes or starts the export, waits for its manifest and
/// fetches its `error[]` and `deleted[]` files.
async fn prepare(
    warehouse: &Warehouse,
    state: &SourceState,
    client: &BulkClient,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Prepared, ExportError> {
    let (seq, checkpoint) = repair_checkpoint(warehouse, state, progress).await?;
    let since = checkpoint
        .map(|c| c.transaction_time)
        .or_else(|| client.config().since.clone());
    let mut resume = match state.in_flight().await? {
        Some(record) if record.checkpoint_seq == seq => {
            progress(&format!(
                "resuming the export kicked off at {} ({})",
                record.kicked_off_at,
                redact_url(&record.status_url)
            ));
            Some(KickOff::Accepted {
                status_url: record.status_url,
            })
        }
        Some(_) => {
            // Started from an older checkpoint, which has moved since: already ingested.
            state.clear_in_flight().await?;
            None
        }
        None => None,
    };
    let resumed = resume.is_some();
    let (kickoff, manifest) = loop {
        let kickoff = match resume.take() {
            Some(kickoff) => kickoff,
            None => kick_off(state, client, since.as_deref(), seq, progress).await?,
        };
        set_active(client, state, &kickoff);
        match wait_for_manifest(client, &kickoff, progress).await {
            Ok(manifest) => break (kickoff, manifest),
            Err(ExportError::Bulk(e)) if resumed && e.needs_new_export() => {
                progress(&format!("{e}: starting a new export"));
                state.clear_in_flight().await?;
            }
            Err(e) => return Err(e),
        }
    };
    let transaction_time =
        manifest
            .transaction_time
            .clone()
            .ok_or_else(|| ExportError::NoTransactionTime {
                url: redact_url(&client.kickoff_url()),
            })?;
    let (server_errors, deleted) = fetch_errors_and_deleted(client, &manifest, progress).await?;
    progress(&format!(
        "export complete: transactionTime {transaction_time}, {} files, {} deleted, {} server issues",
        manifest.output.len(),
        deleted.len(),
        server_errors.len()
    ));
    Ok(Prepared {
        kickoff,
        manifest,
        transaction_time,
        since,
        resumed,
        seq,
        deleted,
        server_errors,
    })
}

/// The checkpoint, advanced first to the newest committed run of the source when a
/// crash came between that run's commit and its checkpoint.
async fn repair_checkpoint(
    warehouse: &Warehouse,
    state: &SourceState,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(u64, Option<Checkpoint>), ExportError> {
    let (seq, checkpoint) = state.checkpoint().await?;
    let runs = warehouse.committed_runs().await?;
    // Newest by the export's transactionTime, not by run id: run ids of one second
    // do not sort by time.
    let newest = runs
        .into_iter()
        .filter(|r| r.source == state.source())
        .filter(|r| r.transaction_time.is_some())
        .max_by(|a, b| instant(run_time(a)).cmp(&instant(run_time(b))));
    let Some(run) = newest else {
        return Ok((seq, checkpoint));
    };
    if checkpoint
        .as_ref()
        .is_some_and(|c| instant(&c.transaction_time) >= instant(run_time(&run)))
    {
        return Ok((seq, checkpoint));
    }
    let repaired = Checkpoint {
        source: run.source.clone(),
        transaction_time: run.transaction_time.clone().unwrap_or_default(),
        run_id: run.run_id.clone(),
        committed_at: run.finished_at.clone(),
    };
    progress(&format!(
        "run {} was committed but the checkpoint not moved: moving it to {}",
        run.run_id, repaired.transaction_time
    ));
    let seq = state.advance(seq, &repaired).await?;
    state.clear_in_flight().await?;
    Ok((seq, Some(repaired)))
}

/// A committed run's transactionTime ("" for none).
fn run_time(run: &RunManifest) -> &str {
    run.transaction_time.as_deref().unwrap_or("")
}

/// An export's transactionTime as a sortable instant (microseconds, then the text).
fn instant(transaction_time: &str) -> (Option<i64>, &str) {
    (temporal::parse_micros(transaction_time), transaction_time)
}

/// Kicks off a new export and records it as in flight.
async fn kick_off(
    state: &SourceState,
    client: &BulkClient,
    since: Option<&str>,
    seq: u64,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<KickOff, ExportError> {
    progress(&match since {
        Some(since) => format!(
            "kick-off {} with _since={since}",
            redact_url(&client.kickoff_url())
        ),
        None => format!(
            "kick-off {} (full export)",
            redact_url(&client.kickoff_url())
        ),
    });
    let kickoff = client.kick_off(since).await?;
    if let KickOff::Accepted { status_url } = &kickoff {
        state
            .set_in_flight(&InFlight {
                status_url: status_url.clone(),
                kicked_off_at: pipeline::now_rfc3339(),
                since: since.map(str::to_owned),
                checkpoint_seq: seq,
            })
            .await?;
    } else {
        progress("the server answered with the manifest at once (synchronous export)");
    }
    failpoint::hit("after-kick-off");
    Ok(kickoff)
}

/// Waits for the manifest, printing the poll progress.
async fn wait_for_manifest(
    client: &BulkClient,
    kickoff: &KickOff,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Manifest, ExportError> {
    let mut updates = client.progress();
    let manifest = client.manifest(kickoff);
    futures::pin_mut!(manifest);
    let mut printed = 0;
    loop {
        tokio::select! {
            result = &mut manifest => return Ok(result?),
            changed = updates.changed() => {
                if changed.is_err() {
                    continue;
                }
                let update = updates.borrow_and_update().clone();
                if let Some(line) = poll_line(&update, &mut printed) {
                    progress(&line);
                }
            }
        }
    }
}

/// A progress line per poll that got an answer.
fn poll_line(update: &PollProgress, printed: &mut u32) -> Option<String> {
    let wait = update.next_wait?;
    if update.polls == *printed || update.complete {
        return None;
    }
    *printed = update.polls;
    Some(format!(
        "export in progress: {} (poll {}, next in {:.1} s)",
        update.progress.as_deref().unwrap_or("-"),
        update.polls,
        wait.as_secs_f64()
    ))
}

/// An export a signal must cancel: set once its status URL is known, cleared when the
/// run ends (by [`ActiveGuard`]).
struct Active {
    client: BulkClient,
    state: SourceState,
    status_url: Option<String>,
}

/// The exports in flight, by source (the daemon runs several sources at once).
static ACTIVE: Mutex<BTreeMap<String, Active>> = Mutex::new(BTreeMap::new());
static WATCHER: OnceLock<()> = OnceLock::new();

fn set_active(client: &BulkClient, state: &SourceState, kickoff: &KickOff) {
    let status_url = match kickoff {
        KickOff::Accepted { status_url } => Some(status_url.clone()),
        KickOff::Complete(_) => None,
    };
    if let Ok(mut active) = ACTIVE.lock() {
        let export = Active {
            client: client.clone(),
            state: state.clone(),
            status_url,
        };
        active.insert(state.source().to_owned(), export);
    }
}

/// Clears a source's active export when its run ends, however it ends.
struct ActiveGuard(String);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if let Ok(mut active) = ACTIVE.lock() {
            active.remove(&self.0);
        }
    }
}

/// Cancels every export in flight (DELETE on its status URL, in-flight record removed;
/// nothing of its run is committed, so the checkpoint stays); returns how many. Staged
/// files of those runs are leftovers no manifest lists.
pub async fn cancel_active_exports() -> usize {
    let active = ACTIVE
        .lock()
        .map(|mut a| std::mem::take(&mut *a))
        .unwrap_or_default();
    for (source, export) in &active {
        eprintln!("cancelling the export of source {source}; its checkpoint is unchanged");
        if let Some(url) = &export.status_url
            && let Err(e) = export.client.cancel(url).await
        {
            eprintln!("cancelling the export of source {source} on the server: {e}");
        }
        let _ = export.state.clear_in_flight().await;
    }
    active.len()
}

/// Once per process: on Ctrl-C or SIGTERM, cancel the exports in flight and exit with
/// status 130.
fn install_signal_watcher(runtime: &Handle) {
    WATCHER.get_or_init(|| {
        runtime.spawn(async {
            shutdown_signal().await;
            eprintln!("signal received: stopping");
            cancel_active_exports().await;
            std::process::exit(130);
        });
    });
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Downloads the `error[]` OperationOutcomes (reported) and the `deleted[]` lists.
async fn fetch_errors_and_deleted(
    client: &BulkClient,
    manifest: &Manifest,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(Vec<String>, Vec<DeletedRef>), ExportError> {
    let requires_token = manifest.requires_access_token();
    let mut server_errors = Vec::new();
    for file in &manifest.error {
        server_errors.extend(client.download_errors(&file.url, requires_token).await?);
    }
    for message in server_errors.iter().take(10) {
        progress(&format!("server: {message}"));
    }
    if server_errors.len() > 10 {
        progress(&format!(
            "server: ... {} more issues (in the run manifest's server_errors)",
            server_errors.len() - 10
        ));
    }
    let mut deleted = Vec::new();
    for file in &manifest.deleted {
        deleted.extend(
            client
                .download_deleted(&file.url, requires_token)
                .await?
                .into_iter()
                .map(|d| DeletedRef {
                    resource_type: d.resource_type,
                    id: d.id,
                }),
        );
    }
    Ok((server_errors, deleted))
}

/// Moves the checkpoint to the committed run's export, forgets the in-flight export and
/// tells the server it may delete the files (when configured).
async fn finish(
    state: &SourceState,
    client: &BulkClient,
    kickoff: &KickOff,
    summary: &RunSummary,
    seq: u64,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Checkpoint, ExportError> {
    let manifest = &summary.manifest;
    let checkpoint = Checkpoint {
        source: manifest.source.clone(),
        transaction_time: manifest.transaction_time.clone().unwrap_or_default(),
        run_id: manifest.run_id.clone(),
        committed_at: pipeline::now_rfc3339(),
    };
    state.advance(seq, &checkpoint).await?;
    failpoint::hit("after-checkpoint");
    state.clear_in_flight().await?;
    match client.finish(kickoff).await {
        Ok(true) => progress("export deleted on the server (delete_after_download)"),
        Ok(false) => {}
        Err(e) => progress(&format!("warning: deleting the export on the server: {e}")),
    }
    Ok(checkpoint)
}

/// An output file of the manifest as a pipeline input: a download streamed into a
/// blocking reader when a reader thread opens it.
fn download_input(
    client: &BulkClient,
    url: &str,
    requires_token: bool,
    runtime: &Handle,
    counters: &Counters,
) -> InputFile {
    let (client, owned_url, runtime, counters) = (
        client.clone(),
        url.to_owned(),
        runtime.clone(),
        counters.clone(),
    );
    let open = move || -> io::Result<Box<dyn Read + Send>> {
        let (tx, rx) = tokio::sync::mpsc::channel(DOWNLOAD_CHUNKS);
        let stream = client.download(&owned_url, requires_token);
        runtime.spawn(async move {
            futures::pin_mut!(stream);
            while let Some(item) = stream.next().await {
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Box::new(DownloadReader {
            rx,
            current: Bytes::new(),
            counters: counters.clone(),
        }))
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

/// The blocking side of a download: chunks from the network task, read in order.
struct DownloadReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, BulkError>>,
    current: Bytes,
    counters: Counters,
}

impl Read for DownloadReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => {
                    self.counters
                        .downloaded
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    self.current = chunk;
                }
                Some(Err(e)) => {
                    if e.needs_new_export() {
                        self.counters.gone.store(true, Ordering::Relaxed);
                    }
                    return Err(io::Error::other(e.to_string()));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn transaction_times_order_by_instant_not_text() {
        assert!(instant("2026-01-01T10:00:00+02:00") < instant("2026-01-01T09:00:00Z"));
        assert!(instant("2026-01-01T00:00:00.5Z") > instant("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn one_progress_line_per_answered_poll() {
        let mut printed = 0;
        let mut update = PollProgress {
            polls: 1,
            ..PollProgress::default()
        };
        assert_eq!(poll_line(&update, &mut printed), None, "no answer yet");
        update.next_wait = Some(Duration::from_secs(2));
        update.progress = Some("40%".into());
        let line = poll_line(&update, &mut printed).unwrap();
        assert!(line.contains("40%") && line.contains("poll 1"), "{line}");
        assert_eq!(poll_line(&update, &mut printed), None, "printed once");
    }

    #[test]
    fn download_reader_yields_bytes_in_order_then_the_error() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let counters = Counters {
            gone: Arc::new(AtomicBool::new(false)),
            downloaded: Arc::new(AtomicU64::new(0)),
        };
        let mut reader = DownloadReader {
            rx,
            current: Bytes::new(),
            counters: counters.clone(),
        };
        tx.try_send(Ok(Bytes::from_static(b"{\"a\":1}\n{")))
            .unwrap();
        tx.try_send(Ok(Bytes::from_static(b"\"b\":2}\n"))).unwrap();
        tx.try_send(Err(BulkError::FileGone {
            url: "u".into(),
            status: 410,
        }))
        .unwrap();
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).unwrap_err();
        assert_eq!(out, b"{\"a\":1}\n{\"b\":2}\n");
        assert!(err.to_string().contains("410"), "{err}");
        assert!(counters.gone.load(Ordering::Relaxed));
        assert_eq!(
            counters.downloaded.load(Ordering::Relaxed),
            out.len() as u64
        );
        drop(tx);
        assert_eq!(reader.read(&mut [0; 4]).unwrap(), 0);
    }
}
