//! One incremental run of a `bulk` source: from the checkpoint, through the server's
//! `$export`, into an ingest run, to the next checkpoint.
//!
//! ```text
//! checkpoint ─► resume the in-flight export, or kick off with _since = checkpoint
//!            ─► persist in-flight (status URL) ─► poll (X-Progress to the log)
//!            ─► error[] and deleted[] files ─► ingest::run over output[] (downloads
//!               streamed into the decoders, parallel_downloads at once)
//!            ─► run manifest committed ─► checkpoint advanced ─► in-flight removed
//!            ─► DELETE on the status URL (when delete_after_download)
//! ```
//!
//! The checkpoint moves only after the run manifest is committed. A crash between the two
//! is repaired by the next run (a committed run newer than the checkpoint advances it);
//! an in-flight record older than the checkpoint is discarded, so a rerun never ingests
//! an export twice. A run cancelled through its token cancels the export on the server
//! (DELETE), removes the in-flight record and leaves the checkpoint as it was.

mod downloads;
mod prepare;
mod server_errors;

use std::{
    num::NonZeroUsize,
    sync::{Arc, atomic::AtomicU64},
};

use self::prepare::{Prepared, prepare};
use super::{ExportInfo, SourceConfig, SourceRun};
use crate::{
    auth::redact_url,
    bulk::{BulkClient, BulkConfig, BulkError, HumaneDuration, KickOff, OnServerErrors},
    failpoint,
    ingest::{self, IngestError, IngestSettings, Outcome, RunContext, RunSpec, RunSummary},
    input::InputError,
    source::state::{Checkpoint, SourceState, StateError},
    temporal,
    view::ViewDefinition,
    warehouse::{ExportRecord, WarehouseError},
};

/// Errors of a bulk run (nothing committed, checkpoint unchanged).
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
    Ingest(#[from] IngestError),
    /// The committed runs could not be listed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// The manifest has no `transactionTime`, so no checkpoint can follow it.
    #[error("the export manifest from {url} has no transactionTime")]
    NoTransactionTime {
        /// The kick-off URL, redacted.
        url: String,
    },
    /// The run was cancelled before its files were ingested.
    #[error("cancelled")]
    Cancelled,
    /// The export did not complete within `max_export_wait`: it was cancelled on the
    /// server and its in-flight record removed; the next run starts a new export.
    #[error(
        "the export did not complete within max_export_wait ({limit}): it was cancelled \
         on the server and nothing committed; the next run starts a new export"
    )]
    TimedOut {
        /// The configured bound.
        limit: HumaneDuration,
    },
    /// The server reported failed parts of the export and `on_server_errors = "fail"`:
    /// nothing was committed, the export was cancelled, the checkpoint stays.
    #[error(
        "the server could not export everything ({count} failed parts, the first: \
         {first}); on_server_errors = \"fail\": nothing committed, the next run asks again"
    )]
    ServerFailures {
        /// How many issues of severity error or fatal.
        count: usize,
        /// The first of them.
        first: String,
    },
}

/// Runs one incremental export of the bulk `source`, computing `views` from its
/// resources. Blocking: call it outside the runtime.
pub fn run(
    cx: &RunContext,
    settings: &IngestSettings,
    source: &SourceConfig,
    config: &BulkConfig,
    views: Vec<Arc<ViewDefinition>>,
) -> Result<SourceRun, ExportError> {
    let name = source.name.as_str();
    let state = SourceState::new(cx.warehouse.store(), name);
    let client = BulkClient::new(config.clone())?;
    tracing::info!(
        "source {name}: Bulk Data export from {} -> {}",
        redact_url(&config.base_url),
        cx.warehouse.root()
    );
    let started = std::time::Instant::now();
    let mut active = None;
    let prepared = cx.runtime.block_on(async {
        tokio::select! {
            prepared = prepare(&cx.warehouse, &state, &client, &mut active) => prepared,
            _ = cx.cancel.cancelled() => Err(ExportError::Cancelled),
        }
    });
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(ExportError::Cancelled) => return cancelled(cx, &state, &client, active, None),
        Err(e) => return Err(e),
    };
    let waited = started.elapsed();
    let failures = server_errors::failures(&prepared.server_errors);
    let policy = config.on_server_errors;
    if !failures.is_empty() {
        server_errors::report(&failures, policy, prepared.since.as_deref());
    }
    if policy == OnServerErrors::Fail && !failures.is_empty() {
        cx.runtime.block_on(server_errors::forget_export(
            &state,
            &client,
            &prepared.kickoff,
            true,
        ))?;
        return Err(ExportError::ServerFailures {
            count: failures.len(),
            first: failures[0].clone(),
        });
    }
    let hold = policy == OnServerErrors::HoldCheckpoint && !failures.is_empty();
    let summary = match ingest_files(cx, settings, source, &client, &prepared, views) {
        Ok(summary) => summary,
        Err(e) => {
            if needs_new_export(&e) {
                tracing::warn!(
                    "the export's files are gone on the server: the next run starts a new export"
                );
                cx.runtime.block_on(state.clear_in_flight())?;
            }
            return Err(e.into());
        }
    };
    let export = |checkpoint| ExportInfo {
        since: prepared.since.clone(),
        resumed: prepared.resumed,
        checkpoint,
        waited,
        server_failures: if hold { failures.clone() } else { Vec::new() },
    };
    let mut outcome = summary.outcome;
    let checkpoint = match summary.outcome {
        Outcome::Cancelled => {
            return cancelled(
                cx,
                &state,
                &client,
                Some(prepared.kickoff.clone()),
                Some(export(None)),
            );
        }
        Outcome::TooManyRejected => None,
        _ if hold => {
            failpoint::hit("after-commit");
            cx.runtime.block_on(server_errors::forget_export(
                &state,
                &client,
                &prepared.kickoff,
                false,
            ))?;
            outcome = Outcome::Partial;
            None
        }
        _ => {
            failpoint::hit("after-commit");
            Some(cx.runtime.block_on(finish(
                &state,
                &client,
                &prepared.kickoff,
                &summary,
                prepared.seq,
            ))?)
        }
    };
    Ok(SourceRun {
        outcome,
        summary: Some(summary),
        export: Some(export(checkpoint)),
    })
}

/// Ingests the export's files, with a log line of the bytes downloaded every few
/// seconds.
fn ingest_files(
    cx: &RunContext,
    settings: &IngestSettings,
    source: &SourceConfig,
    client: &BulkClient,
    prepared: &Prepared,
    views: Vec<Arc<ViewDefinition>>,
) -> Result<RunSummary, IngestError> {
    let downloaded = Arc::new(AtomicU64::new(0));
    let requires_token = prepared.manifest.requires_access_token();
    let inputs: Vec<_> = prepared
        .manifest
        .output
        .iter()
        .map(|file| {
            downloads::download_input(
                client,
                &file.url,
                requires_token,
                &cx.runtime,
                &cx.cancel,
                &downloaded,
            )
        })
        .collect();
    let parallel_files =
        NonZeroUsize::new(client.config().parallel_downloads).unwrap_or(NonZeroUsize::MIN);
    tracing::info!(
        "downloading {} files ({} at once)",
        inputs.len(),
        parallel_files.get().min(inputs.len().max(1))
    );
    let spec = RunSpec {
        source: source.name.clone(),
        namespace: source.namespace.clone(),
        inputs,
        parallel_files,
        transaction_time: Some(prepared.transaction_time.clone()),
        views,
        export: ExportRecord {
            deleted: prepared.deleted.clone(),
            server_errors: prepared.server_errors.clone(),
        },
    };
    std::thread::scope(|scope| {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let downloaded = &downloaded;
        scope.spawn(move || downloads::report_downloads(downloaded, &stopped));
        let result = ingest::run(cx, settings, spec);
        drop(stop);
        result
    })
}

/// Whether a run failed because the export's files are gone: the next run must start
/// a new export rather than resume this one.
fn needs_new_export(error: &IngestError) -> bool {
    match error {
        IngestError::Input(InputError::Download { source, .. }) => source
            .downcast_ref::<BulkError>()
            .is_some_and(BulkError::needs_new_export),
        _ => false,
    }
}

/// Ends a cancelled run: the export is cancelled on the server (DELETE) and its
/// in-flight record removed; nothing was committed, so the checkpoint stays.
fn cancelled(
    cx: &RunContext,
    state: &SourceState,
    client: &BulkClient,
    active: Option<KickOff>,
    export: Option<ExportInfo>,
) -> Result<SourceRun, ExportError> {
    tracing::warn!(
        "cancelling the export of source {}; its checkpoint is unchanged",
        state.source()
    );
    cx.runtime.block_on(async {
        if let Some(KickOff::Accepted { status_url }) = &active
            && let Err(e) = client.cancel(status_url).await
        {
            tracing::warn!(
                "cancelling the export of source {} on the server: {e}",
                state.source()
            );
        }
        state.clear_in_flight().await
    })?;
    Ok(SourceRun {
        outcome: Outcome::Cancelled,
        summary: None,
        export,
    })
}

/// Moves the checkpoint to the committed run's export, forgets the in-flight export and
/// tells the server it may delete the files (when configured).
async fn finish(
    state: &SourceState,
    client: &BulkClient,
    kickoff: &KickOff,
    summary: &RunSummary,
    seq: u64,
) -> Result<Checkpoint, ExportError> {
    let manifest = &summary.manifest;
    let checkpoint = Checkpoint {
        source: manifest.source.clone(),
        transaction_time: manifest.transaction_time.clone().unwrap_or_default(),
        run_id: manifest.run_id.clone(),
        committed_at: temporal::now_rfc3339(),
    };
    state.advance(seq, &checkpoint).await?;
    failpoint::hit("after-checkpoint");
    state.clear_in_flight().await?;
    match client.finish(kickoff).await {
        Ok(true) => tracing::info!("export deleted on the server (delete_after_download)"),
        Ok(false) => {}
        Err(e) => tracing::warn!("deleting the export on the server: {e}"),
    }
    Ok(checkpoint)
}
