//! One run: input files through decoders into Parquet, then the commit of the run
//! manifest. A run knows no source kinds: it takes a complete [`RunSpec`].
//!
//! ```text
//! reader threads ──chunks──► decode workers (one per core) ──batches──► writer threads
//!      │                          │                                        │
//!      └──── rejected lines, file totals ──► this thread: quarantine, totals
//!                                                          │
//!                                      all files complete ─► run manifest (create-only)
//! ```
//!
//! Readers (one for local files, `parallel_downloads` for an export) take files from a
//! shared queue. Every channel is bounded, so memory stays flat: a few chunks of lines,
//! a few batches per worker, and one row group plus one upload part per open file. A
//! run with more rejected lines than the configured fraction is not committed; a
//! cancelled run (its [`RunContext::cancel`] token) stops reading, drops its unfinished
//! files and commits nothing.
//!
//! A run of an export (one with a transactionTime) has a run id derived from the source
//! and the transactionTime: if that run is committed already, the run stops before
//! reading anything ([`Outcome::AlreadyCommitted`]); if another ingester commits it
//! first, this one reports [`Outcome::CommittedByAnother`]. Data files carry an attempt
//! token too, so attempts never overwrite each other's files.

pub mod config;
mod progress;
mod read;
mod report;
pub mod views;
mod worker;
mod write;

use std::{
    collections::BTreeMap,
    num::NonZeroUsize,
    sync::{
        Arc, Mutex,
        atomic::AtomicUsize,
        mpsc::{SyncSender, sync_channel},
    },
    time::{Duration, Instant},
};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

pub use self::{
    config::{DecodeConfig, IngestSettings},
    progress::{Progress, ProgressSnapshot},
};
use self::{read::FileReader, worker::DecodeWorker, write::Writer};
use crate::{
    commit::{self, CommitContext, CommitError, RunInfo},
    decode::{LineDecoder, RunLineage},
    failpoint,
    input::{InputError, InputFile},
    schema::Registry,
    sink::{Quarantine, RunFiles, SinkError, writer_properties},
    temporal,
    view::ViewDefinition,
    warehouse::{
        ExportRecord, MANIFEST_VERSION, RunKind, RunManifest, TableId, TableManifest, Warehouse,
        WarehouseError, layout,
    },
};

/// Errors that fail a run (nothing is committed).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// An input file could not be read at all.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Writing Parquet or the quarantine failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Committing the run failed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// Committing the run's tables failed.
    #[error(transparent)]
    Commit(#[from] Box<CommitError>),
    /// Building a record batch failed (a bug: the decoder and the schema disagree).
    #[error("building a {table} batch")]
    Batch {
        /// The table.
        table: String,
        /// Arrow's error.
        source: arrow_schema::ArrowError,
    },
    /// A thread could not be started.
    #[error("cannot start a thread")]
    Spawn(#[source] std::io::Error),
    /// A worker thread panicked.
    #[error("a {0} thread panicked")]
    Panicked(&'static str),
}

/// What every run of an invocation shares.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The opened warehouse.
    pub warehouse: Warehouse,
    /// The schemas.
    pub registry: Arc<Registry>,
    /// The runtime the store and the HTTP clients use. Runs block on it: call them
    /// from outside it (a plain thread, or `spawn_blocking`).
    pub runtime: Handle,
    /// Cancelled on Ctrl-C or SIGTERM: runs stop, commit nothing, and a bulk source
    /// cancels its export on the server.
    pub cancel: CancellationToken,
    /// Counters for a live display.
    pub progress: Arc<Progress>,
}

impl RunContext {
    /// What commits need of it.
    pub fn commit_context(&self) -> CommitContext {
        CommitContext {
            warehouse: self.warehouse.clone(),
            registry: self.registry.clone(),
            runtime: self.runtime.clone(),
        }
    }
}

/// What one run ingests: everything it needs, complete before it starts.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The source name recorded in lineage and the manifest.
    pub source: String,
    /// The namespace the resources' ids belong to (the source's own by default).
    pub namespace: String,
    /// The files, in order.
    pub inputs: Vec<InputFile>,
    /// Files read at once: 1 for local files, the download limit for an export.
    pub parallel_files: NonZeroUsize,
    /// The export's transactionTime, if the files came from an export.
    pub transaction_time: Option<String>,
    /// What the export adds to the manifest (`deleted[]`, `error[]`).
    pub export: ExportRecord,
    /// The views computed from the run's resources, each written as the table
    /// `views/<name>`.
    pub views: Vec<Arc<ViewDefinition>>,
}

/// How a run ended (a failure is an error instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Committed, nothing rejected.
    Complete,
    /// Committed, but incomplete: some lines rejected (within the threshold).
    Partial,
    /// Not committed: more lines rejected than the threshold allows.
    TooManyRejected,
    /// Nothing written: this export (same source and transactionTime) was committed by
    /// an earlier run; the summary holds that run's manifest.
    AlreadyCommitted,
    /// Written, but another ingester committed the same export first: its commit
    /// stands, this attempt's files are staged leftovers (see `cleanup`).
    CommittedByAnother,
    /// Stopped by the cancellation token (Ctrl-C, SIGTERM): nothing committed.
    Cancelled,
}

impl Outcome {
    /// Whether a run judged so goes on to commit.
    fn commits(self) -> bool {
        matches!(self, Self::Complete | Self::Partial)
    }

    /// Whether this run's manifest was committed by this run.
    pub fn committed(self) -> bool {
        matches!(self, Self::Complete | Self::Partial)
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// What was (or would have been) committed.
    pub manifest: RunManifest,
    /// How it ended.
    pub outcome: Outcome,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `spec` into the context's warehouse. Blocking: call it outside the runtime.
pub fn run(
    cx: &RunContext,
    settings: &IngestSettings,
    spec: RunSpec,
) -> Result<RunSummary, IngestError> {
    let started = Instant::now();
    let started_at = temporal::now_rfc3339();
    let started_micros = temporal::now_micros();
    let run_id = match &spec.transaction_time {
        Some(transaction_time) => layout::export_run_id(&spec.source, transaction_time),
        None => layout::new_run_id(),
    };
    if spec.transaction_time.is_some()
        && let Some(manifest) = cx.runtime.block_on(cx.warehouse.committed_run(&run_id))?
    {
        return Ok(RunSummary {
            manifest,
            outcome: Outcome::AlreadyCommitted,
            elapsed: started.elapsed(),
        });
    }
    Progress::add(&cx.progress.files_total, spec.inputs.len() as u64);
    let files = RunFiles {
        store: cx.warehouse.store(),
        runtime: cx.runtime.clone(),
        run_id: run_id.clone(),
        attempt: layout::new_attempt(),
    };
    let export_date = spec
        .transaction_time
        .clone()
        .unwrap_or_else(|| started_at.clone());
    let partition = layout::partition_dir(settings.partition_by, &export_date);
    let (tables, collected) = run_threads(cx, settings, &spec, &files, partition.clone())?;
    give_back_freed_memory();

    let mut manifest = RunManifest {
        format_version: MANIFEST_VERSION,
        run_id,
        kind: RunKind::Ingest,
        attempt: files.attempt,
        source: spec.source,
        started_at,
        finished_at: temporal::now_rfc3339(),
        transaction_time: spec.transaction_time,
        tables,
        replaces: Vec::new(),
        input: collected.input,
        rejected: collected.rejected,
        deleted: spec.export.deleted,
        server_errors: spec.export.server_errors,
        view_errors: collected.view_errors,
    };
    let outcome = if cx.cancel.is_cancelled() {
        manifest.tables.clear();
        Outcome::Cancelled
    } else {
        judge_rejections(&manifest, settings.max_rejected_fraction)
    };
    failpoint::hit("after-data-files");
    tracing::debug!("data files written; committing the tables");
    if outcome.commits() {
        let commit_cx = cx.commit_context();
        let info = RunInfo {
            cx: &commit_cx,
            run_id: &manifest.run_id,
            attempt: &manifest.attempt,
            source: &manifest.source,
            namespace: &spec.namespace,
            seq: run_sequence(manifest.transaction_time.as_deref(), started_micros),
            transaction_time: manifest.transaction_time.as_deref(),
            transaction_micros: manifest
                .transaction_time
                .as_deref()
                .and_then(temporal::parse_micros),
            partition: partition.as_deref(),
            parquet: &settings.parquet,
            merge_max_keys: settings.merge_max_keys,
        };
        manifest.tables =
            commit::commit_tables(&info, &manifest.tables, &manifest.deleted, &spec.views)
                .map_err(Box::new)?;
        manifest.finished_at = temporal::now_rfc3339();
    }
    let outcome = match outcome {
        Outcome::TooManyRejected | Outcome::Cancelled => outcome,
        _ => match cx.runtime.block_on(cx.warehouse.commit(&manifest)) {
            Ok(_) => outcome,
            Err(WarehouseError::AlreadyCommitted { .. }) => Outcome::CommittedByAnother,
            Err(e) => return Err(e.into()),
        },
    };
    Ok(RunSummary {
        manifest,
        outcome,
        elapsed: started.elapsed(),
    })
}

/// The sequence of a run, the version of its tables' txns: its export's
/// transactionTime (the same on every rerun of the export), else its start, in
/// microseconds.
fn run_sequence(transaction_time: Option<&str>, started_micros: i64) -> i64 {
    transaction_time
        .and_then(temporal::parse_micros)
        .unwrap_or(started_micros)
}

/// Complete, partial, or too many rejected lines to commit.
fn judge_rejections(manifest: &RunManifest, max_rejected_fraction: f64) -> Outcome {
    let rejected = manifest.rejected.lines;
    let records = manifest.rows() + rejected;
    if rejected == 0 {
        Outcome::Complete
    } else if rejected as f64 > max_rejected_fraction * records as f64 {
        Outcome::TooManyRejected
    } else {
        Outcome::Partial
    }
}

type Tables = BTreeMap<TableId, TableManifest>;

/// Returns the memory the decode and write threads freed to the operating system
/// before the commit starts. glibc keeps freed memory in each thread's arena, and the
/// commit's threads allocate anew from their own: without this, the merge's memory
/// comes on top of the ingest's peak instead of in its place.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim takes no pointers and only releases free memory; it is
        // safe to call from any thread at any time.
        unsafe { malloc_trim(0) };
    }
}

/// Reads, decodes and writes every input on threads; returns what each table wrote,
/// the rejections and the input totals. A cancelled run returns what it has, without
/// the errors its cancellation caused.
fn run_threads(
    cx: &RunContext,
    settings: &IngestSettings,
    spec: &RunSpec,
    files: &RunFiles,
    partition: Option<String>,
) -> Result<(Tables, report::Collected), IngestError> {
    let decode = &settings.decode;
    let workers = decode.workers.get();
    let writers = workers;
    let lineage = Arc::new(RunLineage {
        source: spec.source.clone(),
        namespace: spec.namespace.clone(),
        run_id: files.run_id.clone(),
        transaction_time: spec.transaction_time.clone(),
    });
    let (work_tx, work_rx) = sync_channel(workers * 2);
    // Chunk buffers go back to the readers, so their pages are reused, not faulted anew.
    let (recycle_tx, recycle_rx) = sync_channel::<Vec<u8>>(workers * 2 + 2);
    let recycle_rx = Mutex::new(recycle_rx);
    let next_file = AtomicUsize::new(0);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (report_tx, report_rx) = sync_channel(1024);
    // A decoder can fill every writer's queue (a large table's full batches go to any
    // writer with room), so each holds `workers` batches: as many in flight as one
    // queue of twice that held when a table had one writer.
    let (batch_txs, batch_rxs): (Vec<SyncSender<_>>, Vec<_>) =
        (0..writers).map(|_| sync_channel(workers)).unzip();

    let result = std::thread::scope(|scope| {
        let readers = spec.parallel_files.get().min(spec.inputs.len()).max(1);
        let mut reader_handles = Vec::with_capacity(readers);
        for _ in 0..readers {
            let reader = FileReader {
                inputs: &spec.inputs,
                next: &next_file,
                decode,
                work_tx: work_tx.clone(),
                report_tx: report_tx.clone(),
                recycled: &recycle_rx,
                progress: &cx.progress,
                cancel: &cx.cancel,
            };
            reader_handles.push(spawn(scope, "reader", move || reader.run())?);
        }
        drop(work_tx);
        let mut decoders = Vec::with_capacity(workers);
        for _ in 0..workers {
            let work_rx = work_rx.clone();
            let worker = DecodeWorker {
                decoder: LineDecoder::with_views(cx.registry.clone(), lineage.clone(), &spec.views),
                batch_txs: batch_txs.clone(),
                report_tx: report_tx.clone(),
                recycle_tx: recycle_tx.clone(),
                batch_rows: decode.batch_rows.get(),
                max_line_bytes: decode.max_line_bytes,
                progress: &cx.progress,
                views: Vec::new(),
            };
            decoders.push(spawn(scope, "decode", move || worker.run(&work_rx))?);
        }
        // Only the workers may hold these: when they are all gone, the channels close
        // and a reader or decoder blocked on them stops instead of waiting forever.
        drop((work_rx, recycle_tx, batch_txs, report_tx));
        let mut writer_handles = Vec::with_capacity(writers);
        for (i, rx) in batch_rxs.into_iter().enumerate() {
            // Writers can write files of the same table: their names differ by writer.
            let files = match i {
                0 => files.clone(),
                _ => RunFiles {
                    attempt: format!("{}w{i}", files.attempt),
                    ..files.clone()
                },
            };
            let writer = Writer::new(
                files,
                &cx.registry,
                writer_properties(&settings.parquet),
                settings.parquet.max_file_bytes,
                settings.parquet.row_group_bytes,
                partition.clone(),
                &cx.cancel,
            );
            writer_handles.push(spawn(scope, "writer", move || writer.run(rx))?);
        }
        let collected =
            report::collect_reports(report_rx, Quarantine::new(files.clone()), &cx.progress);

        let mut read = Ok(0);
        for handle in reader_handles {
            let result = handle.join().map_err(|_| IngestError::Panicked("reader"))?;
            read = match (read, result) {
                (Ok(a), Ok(b)) => Ok(a + b),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        for handle in decoders {
            handle
                .join()
                .map_err(|_| IngestError::Panicked("decoder"))??;
        }
        // A table can have files from more than one writer.
        let mut tables: Tables = BTreeMap::new();
        for handle in writer_handles {
            let written = handle
                .join()
                .map_err(|_| IngestError::Panicked("writer"))??;
            for (table, manifest) in written {
                let all = tables.entry(table).or_default();
                manifest.files.into_iter().for_each(|file| all.push(file));
            }
        }
        let mut collected = collected?;
        collected.input.files = match read {
            Ok(files) => files,
            Err(_) if cx.cancel.is_cancelled() => 0,
            Err(e) => return Err(e),
        };
        Ok((tables, collected))
    });
    match result {
        Err(_) if cx.cancel.is_cancelled() => Ok(Default::default()),
        other => other,
    }
}

/// Starts a named thread (names show in profilers and debuggers).
fn spawn<'scope, 'env, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    name: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> Result<std::thread::ScopedJoinHandle<'scope, T>, IngestError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn_scoped(scope, f)
        .map_err(IngestError::Spawn)
}
