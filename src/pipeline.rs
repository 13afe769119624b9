//! One run: input files through decoders into Parquet, then the run manifest.
//!
//! ```text
//! reader threads ──chunks──► decode workers (one per core) ──batches──► writer threads
//!      │                          │                                        │
//!      └──── rejected lines, file totals ──► this thread: quarantine, progress
//! ```
//!
//! Readers (one for local files, `parallel_downloads` for an export) take files from a
//! shared queue. Every channel is bounded, so memory stays flat: at most a few chunks of lines, a few
//! batches per worker, and one row group plus one upload part per open Parquet file.
//! The run is committed by writing its manifest after every file is complete; a run with
//! more rejected lines than the configured fraction is not committed.
//!
//! A run of an export (one with a transactionTime) has a run id derived from the source
//! and the transactionTime ([`export_run_id`]): if that run is committed already, the run
//! stops before reading anything ([`Outcome::AlreadyCommitted`]); if another ingester
//! commits it first, this one reports [`Outcome::CommittedByAnother`]. Data files carry
//! an attempt token too ([`new_attempt`]), so attempts never overwrite each other's files.

use std::{
    collections::{BTreeMap, hash_map::DefaultHasher},
    hash::{Hash, Hasher},
    num::NonZeroUsize,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc::{Receiver, SyncSender, sync_channel},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use arrow_array::RecordBatch;
use object_store::ObjectStore;
use tokio::runtime::Handle;

use crate::{
    config::{DecodeConfig, ParquetConfig, PartitionBy},
    decode::{LineDecoder, LineOrigin, Rejection, RunLineage, temporal},
    failpoint,
    input::{self, Chunk, InputFile, ReadEvent, ReadTotals},
    schema::Registry,
    sink::{ObjectWriter, ParquetFile, SinkError, WrittenFile, properties_for, writer_properties},
    warehouse::{
        self, DeletedRef, InputTotals, MANIFEST_VERSION, RejectedTotals, RunKind, RunManifest,
        TableManifest, Warehouse, WarehouseError,
    },
};

/// Rejections kept in the run manifest (all are in the quarantine).
const FIRST_REJECTIONS: usize = 5;
/// Batches of other tables after which a writer finishes a table's open file.
const IDLE_BATCHES: u64 = 2;
/// Decoded bytes of one type after which its batch is handed over even if not full.
const BATCH_BYTES: usize = 8 << 20;

/// Errors that fail a run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// An input file could not be read at all.
    #[error(transparent)]
    Input(#[from] input::InputError),
    /// Writing Parquet or the quarantine failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Committing the run failed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// Building a record batch failed (a bug: the decoder and the schema disagree).
    #[error("building a {resource_type} batch: {source}")]
    Batch {
        /// The table.
        resource_type: String,
        /// Arrow's error.
        source: arrow_schema::ArrowError,
    },
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Spawn(std::io::Error),
    /// A worker thread panicked.
    #[error("a {0} thread panicked")]
    Panicked(&'static str),
}

/// What one run ingests and how.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The source name recorded in lineage and the manifest.
    pub source: String,
    /// The files, in order.
    pub inputs: Vec<InputFile>,
    /// Files read at once (reader threads): 1 for local files, the download limit for
    /// an export.
    pub parallel_files: NonZeroUsize,
    /// The export's transactionTime, if the files came from an export.
    pub transaction_time: Option<String>,
    /// Decoding limits and parallelism.
    pub decode: DecodeConfig,
    /// Parquet settings.
    pub parquet: ParquetConfig,
    /// Table partitioning.
    pub partition_by: PartitionBy,
    /// Rejected fraction above which the run is not committed.
    pub max_rejected_fraction: f64,
    /// Resources the export reported deleted, recorded in the run manifest.
    pub deleted: Vec<DeletedRef>,
    /// The export's server errors (OperationOutcome issues), recorded in the manifest.
    pub server_errors: Vec<String>,
}

/// Counters of the runs in progress in this process, for a live progress display:
/// decompressed NDJSON bytes read and lines decoded so far, input files done and known.
#[derive(Debug)]
pub struct Progress {
    /// NDJSON bytes read (after decompression).
    pub bytes: AtomicU64,
    /// Lines decoded (or rejected).
    pub lines: AtomicU64,
    /// Input files read to their end.
    pub files_done: AtomicU64,
    /// Input files of the runs started.
    pub files_total: AtomicU64,
}

/// The process's counters; every run adds to them.
pub static PROGRESS: Progress = Progress {
    bytes: AtomicU64::new(0),
    lines: AtomicU64::new(0),
    files_done: AtomicU64::new(0),
    files_total: AtomicU64::new(0),
};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Committed, nothing rejected.
    Complete,
    /// Committed, some lines rejected (within the threshold).
    Partial,
    /// Not committed: more lines rejected than the threshold allows.
    TooManyRejected,
    /// Nothing written: this export (same source and transactionTime) was committed by
    /// an earlier run; the summary holds that run's manifest.
    AlreadyCommitted,
    /// Written, but another ingester committed the same export first: its commit
    /// stands, this attempt's files are staged leftovers (see `cleanup`).
    CommittedByAnother,
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

enum Report {
    Rejected {
        file: Arc<str>,
        line: u64,
        rejection: Rejection,
        sample: Vec<u8>,
    },
    FileRead {
        file: Arc<str>,
        totals: ReadTotals,
    },
    /// Lines a decoder skipped (`Parameters` headers of export files).
    Skipped(u64),
}

type Work = (Arc<LineOrigin>, Chunk);
type Batch = (String, RecordBatch);

/// Runs the pipeline over `options.inputs` into `warehouse`. Blocking: call it outside
/// the async runtime whose `runtime` handle it uses for the store.
pub fn run(
    warehouse: &Warehouse,
    registry: Arc<Registry>,
    options: RunOptions,
    runtime: Handle,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    let started_at = now_rfc3339();
    PROGRESS
        .files_total
        .fetch_add(options.inputs.len() as u64, Ordering::Relaxed);
    let run_id = match &options.transaction_time {
        Some(transaction_time) => export_run_id(&options.source, transaction_time),
        None => new_run_id(),
    };
    if options.transaction_time.is_some()
        && let Some(manifest) = runtime.block_on(warehouse.committed_run(&run_id))?
    {
        return Ok(RunSummary {
            manifest,
            outcome: Outcome::AlreadyCommitted,
            elapsed: started.elapsed(),
        });
    }
    let attempt = new_attempt();
    let export_date = options
        .transaction_time
        .clone()
        .unwrap_or_else(|| started_at.clone());
    let partition = warehouse::partition_dir(options.partition_by, &export_date);
    let lineage = Arc::new(RunLineage {
        source: options.source.clone(),
        run_id: run_id.clone(),
        transaction_time: options.transaction_time.clone(),
    });
    let workers = options.decode.workers.get();
    let writers = workers;
    let store = warehouse.store();

    let (work_tx, work_rx) = sync_channel::<Work>(workers * 2);
    // Chunk buffers go back to the reader, so their pages are reused, not faulted anew.
    let (recycle_tx, recycle_rx) = sync_channel::<Vec<u8>>(workers * 2 + 2);
    let recycle_rx = Mutex::new(recycle_rx);
    let next_file = AtomicUsize::new(0);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (report_tx, report_rx) = sync_channel::<Report>(1024);
    let mut batch_txs = Vec::with_capacity(writers);
    let mut batch_rxs = Vec::with_capacity(writers);
    for _ in 0..writers {
        let (tx, rx) = sync_channel::<Batch>(workers * 2);
        batch_txs.push(tx);
        batch_rxs.push(rx);
    }

    let outcome = std::thread::scope(|scope| {
        let readers = options
            .parallel_files
            .get()
            .min(options.inputs.len())
            .max(1);
        let mut reader_handles = Vec::with_capacity(readers);
        for _ in 0..readers {
            let reader = FileReader {
                inputs: &options.inputs,
                next: &next_file,
                decode: &options.decode,
                work_tx: work_tx.clone(),
                report_tx: report_tx.clone(),
                recycled: &recycle_rx,
            };
            reader_handles.push(spawn(scope, "reader", move || reader.run())?);
        }
        drop(work_tx);
        let mut decoders = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (registry, lineage, work_rx) = (registry.clone(), lineage.clone(), work_rx.clone());
            let worker = DecodeWorker {
                decoder: LineDecoder::new(registry, lineage),
                batch_txs: batch_txs.clone(),
                report_tx: report_tx.clone(),
                recycle_tx: recycle_tx.clone(),
                batch_rows: options.decode.batch_rows.get(),
                max_line_bytes: options.decode.max_line_bytes,
            };
            decoders.push(spawn(scope, "decode", move || worker.run(&work_rx))?);
        }
        // Only the workers may hold these: when they are all gone, the channels close
        // and a reader or decoder blocked on them stops instead of waiting forever.
        drop(work_rx);
        drop(recycle_tx);
        drop(batch_txs);
        drop(report_tx);
        let mut writer_handles = Vec::with_capacity(writers);
        for rx in batch_rxs {
            let table_writer = TableWriter {
                store: store.clone(),
                registry: registry.clone(),
                runtime: runtime.clone(),
                properties: writer_properties(&options.parquet),
                max_file_bytes: options.parquet.max_file_bytes,
                partition: partition.clone(),
                file_prefix: (run_id.clone(), attempt.clone()),
                tables: BTreeMap::new(),
                batches_seen: 0,
            };
            writer_handles.push(spawn(scope, "writer", move || table_writer.run(rx))?);
        }

        let quarantine = Warehouse::quarantine_file(&run_id, &attempt);
        let collected = collect_reports(
            report_rx,
            store.clone(),
            quarantine,
            runtime.clone(),
            progress,
        );

        let mut read_result = Ok(0);
        for handle in reader_handles {
            let result = handle
                .join()
                .map_err(|_| PipelineError::Panicked("reader"))?;
            read_result = match (read_result, result) {
                (Ok(a), Ok(b)) => Ok(a + b),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        for handle in decoders {
            handle
                .join()
                .map_err(|_| PipelineError::Panicked("decoder"))??;
        }
        let mut tables = BTreeMap::new();
        for handle in writer_handles {
            tables.extend(
                handle
                    .join()
                    .map_err(|_| PipelineError::Panicked("writer"))??,
            );
        }
        let (rejected, input_totals) = collected?;
        let files = read_result?;
        Ok::<_, PipelineError>((
            tables,
            rejected,
            InputTotals {
                files,
                ..input_totals
            },
        ))
    });
    let (tables, rejected, input_totals) = outcome?;

    let rows: u64 = tables.values().map(|t: &TableManifest| t.rows).sum();
    let records = rows + rejected.lines;
    let outcome = if rejected.lines == 0 {
        Outcome::Complete
    } else if rejected.lines as f64 > options.max_rejected_fraction * records as f64 {
        Outcome::TooManyRejected
    } else {
        Outcome::Partial
    };
    let manifest = RunManifest {
        format_version: MANIFEST_VERSION,
        run_id,
        kind: RunKind::Ingest,
        attempt,
        source: options.source,
        started_at,
        finished_at: now_rfc3339(),
        transaction_time: options.transaction_time,
        tables,
        replaces: Vec::new(),
        input: input_totals,
        rejected,
        deleted: options.deleted,
        server_errors: options.server_errors,
    };
    failpoint::hit("after-data-files");
    let outcome = match outcome {
        Outcome::TooManyRejected => outcome,
        _ => match runtime.block_on(warehouse.commit(&manifest)) {
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

/// Starts a named thread (names show in profilers and debuggers).
fn spawn<'scope, 'env, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    name: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> Result<std::thread::ScopedJoinHandle<'scope, T>, PipelineError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn_scoped(scope, f)
        .map_err(PipelineError::Spawn)
}

/// A reader thread: takes the next file from the shared queue until none is left.
struct FileReader<'a> {
    inputs: &'a [InputFile],
    next: &'a AtomicUsize,
    decode: &'a DecodeConfig,
    work_tx: SyncSender<Work>,
    report_tx: SyncSender<Report>,
    recycled: &'a Mutex<Receiver<Vec<u8>>>,
}

impl FileReader<'_> {
    /// Reads files into chunks; returns the number of files this thread read.
    fn run(self) -> Result<u64, PipelineError> {
        let mut read = 0;
        loop {
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
    fn read_file(&self, file: &InputFile) -> Result<bool, PipelineError> {
        let origin = Arc::new(file.origin.clone());
        let fatal = file.read_errors_are_fatal();
        let failure = |message: String| {
            if fatal {
                input::InputError::Download {
                    file: origin.file.to_string(),
                    message,
                }
            } else {
                input::InputError::Open {
                    path: origin.file.to_string().into(),
                    source: std::io::Error::other(message),
                }
            }
        };
        let reader = file.open().map_err(|e| failure(e.to_string()))?;
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
                open = match event {
                    ReadEvent::Chunk(chunk) => {
                        PROGRESS
                            .bytes
                            .fetch_add(chunk.data.len() as u64, Ordering::Relaxed);
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
        if fatal && let Some(message) = reader.error {
            return Err(failure(message).into());
        }
        let report = Report::FileRead {
            file: origin.file.clone(),
            totals,
        };
        Ok(open && self.report_tx.send(report).is_ok())
    }
}

/// Remembers the first read error of a stream (read_chunks turns it into a rejection of
/// the cut line; for downloads the run fails instead).
struct ErrorWatch {
    inner: Box<dyn std::io::Read + Send>,
    error: Option<String>,
}

impl std::io::Read for ErrorWatch {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != std::io::ErrorKind::Interrupted && self.error.is_none() {
                self.error = Some(e.to_string());
            }
        })
    }
}

/// A decoding thread's state.
struct DecodeWorker {
    decoder: LineDecoder,
    batch_txs: Vec<SyncSender<Batch>>,
    report_tx: SyncSender<Report>,
    recycle_tx: SyncSender<Vec<u8>>,
    batch_rows: usize,
    max_line_bytes: u64,
}

impl DecodeWorker {
    /// Decodes chunks until the reader is done, handing full batches to the writers.
    fn run(mut self, work_rx: &Mutex<Receiver<Work>>) -> Result<(), PipelineError> {
        let mut types = Vec::new();
        loop {
            let work = work_rx
                .lock()
                .map_err(|_| PipelineError::Panicked("decoder"))?
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
                send_batch(&mut self.decoder, resource_type, &self.batch_txs)?;
            }
        }
        self.decoder.types(&mut types);
        for resource_type in &types {
            send_batch(&mut self.decoder, resource_type, &self.batch_txs)?;
        }
        let skipped = self.decoder.take_skipped();
        if skipped > 0 {
            let _ = self.report_tx.send(Report::Skipped(skipped));
        }
        Ok(())
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
        PROGRESS.lines.fetch_add(decoded, Ordering::Relaxed);
        true
    }
}

fn send_batch(
    decoder: &mut LineDecoder,
    resource_type: &str,
    batch_txs: &[SyncSender<Batch>],
) -> Result<(), PipelineError> {
    let batch = decoder
        .finish(resource_type)
        .map_err(|source| PipelineError::Batch {
            resource_type: resource_type.to_owned(),
            source,
        })?;
    if let Some(batch) = batch {
        // A type always goes to the same writer, so each table has one open file at a time.
        let mut hasher = DefaultHasher::new();
        resource_type.hash(&mut hasher);
        let writer = (hasher.finish() % batch_txs.len() as u64) as usize;
        // A send fails only when the writer died; its error is reported when joined.
        let _ = batch_txs[writer].send((resource_type.to_owned(), batch));
    }
    Ok(())
}

/// The Parquet files of the tables assigned to one writer thread.
struct TableWriter {
    store: Arc<dyn ObjectStore>,
    registry: Arc<Registry>,
    runtime: Handle,
    properties: parquet::file::properties::WriterProperties,
    max_file_bytes: usize,
    partition: Option<String>,
    /// Run id and attempt token, in every file name.
    file_prefix: (String, String),
    tables: BTreeMap<String, OpenTable>,
    /// Batches written so far, of any table.
    batches_seen: u64,
}

#[derive(Default)]
struct OpenTable {
    current: Option<ParquetFile>,
    manifest: TableManifest,
    /// `TableWriter::batches_seen` when this table last got a batch.
    last_batch: u64,
}

impl TableWriter {
    fn run(
        mut self,
        batches: Receiver<Batch>,
    ) -> Result<BTreeMap<String, TableManifest>, PipelineError> {
        for (resource_type, batch) in batches {
            self.write(&resource_type, &batch)?;
            self.close_idle_tables()?;
        }
        let mut out = BTreeMap::new();
        for (resource_type, mut table) in std::mem::take(&mut self.tables) {
            if let Some(file) = table.current.take() {
                Self::record(&mut table.manifest, file.finish()?);
            }
            out.insert(resource_type, table.manifest);
        }
        Ok(out)
    }

    /// Finishes the open files of tables that got no batch lately. An open Parquet
    /// file holds a row group with a writer (and a zstd context) per column; with
    /// single-type input files, a table whose input is done would otherwise hold that
    /// memory to the end of the run. A table that gets rows again starts a new file.
    fn close_idle_tables(&mut self) -> Result<(), PipelineError> {
        self.batches_seen += 1;
        for table in self.tables.values_mut() {
            if self.batches_seen - table.last_batch > IDLE_BATCHES
                && let Some(file) = table.current.take()
            {
                Self::record(&mut table.manifest, file.finish()?);
            }
        }
        Ok(())
    }

    fn write(&mut self, resource_type: &str, batch: &RecordBatch) -> Result<(), PipelineError> {
        let table = self.tables.entry(resource_type.to_owned()).or_default();
        table.last_batch = self.batches_seen;
        let file = match &mut table.current {
            Some(file) => file,
            None => {
                let n = table.manifest.files.len();
                let (run_id, attempt) = &self.file_prefix;
                let path = Warehouse::data_file(
                    resource_type,
                    self.partition.as_deref(),
                    run_id,
                    attempt,
                    n,
                );
                let schema = self
                    .registry
                    .get(resource_type)
                    .map(|s| s.arrow_schema())
                    .unwrap_or_else(|| batch.schema());
                let properties = properties_for(&self.properties, batch)?;
                let file = ParquetFile::create(
                    self.store.clone(),
                    path,
                    schema,
                    properties,
                    self.runtime.clone(),
                )?;
                table.current.insert(file)
            }
        };
        file.write(batch)?;
        if file.size() >= self.max_file_bytes
            && let Some(file) = table.current.take()
        {
            Self::record(&mut table.manifest, file.finish()?);
        }
        Ok(())
    }

    fn record(manifest: &mut TableManifest, file: WrittenFile) {
        manifest.rows += file.rows;
        manifest.files.push(file);
    }
}

/// Writes rejected lines to the quarantine and reports progress until every sender is gone.
fn collect_reports(
    reports: Receiver<Report>,
    store: Arc<dyn ObjectStore>,
    path: object_store::path::Path,
    runtime: Handle,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(RejectedTotals, InputTotals), PipelineError> {
    let mut rejected = RejectedTotals::default();
    let mut input = InputTotals::default();
    let mut quarantine: Option<ObjectWriter> = None;
    let mut record = String::new();
    for report in reports {
        match report {
            Report::FileRead { file, totals } => {
                PROGRESS.files_done.fetch_add(1, Ordering::Relaxed);
                input.lines += totals.lines;
                input.bytes += totals.bytes;
                progress(&format!(
                    "read {file}: {} lines, {:.1} MB",
                    totals.lines,
                    totals.bytes as f64 / 1e6
                ));
            }
            Report::Skipped(n) => input.skipped += n,
            Report::Rejected {
                file,
                line,
                rejection,
                sample,
            } => {
                rejected.lines += 1;
                *rejected
                    .by_reason
                    .entry(reason_kind(&rejection).to_owned())
                    .or_default() += 1;
                if rejected.first.len() < FIRST_REJECTIONS {
                    let first = format!("{file}:{line}: {rejection}");
                    progress(&format!("rejected {first}"));
                    rejected.first.push(first);
                }
                quarantine_record(&mut record, &file, line, &rejection, &sample);
                let writer = quarantine.get_or_insert_with(|| {
                    ObjectWriter::new(store.clone(), path.clone(), runtime.clone())
                });
                std::io::Write::write_all(writer, record.as_bytes()).map_err(|e| {
                    SinkError::Store {
                        path: path.to_string(),
                        source: object_store::Error::Generic {
                            store: "quarantine",
                            source: Box::new(e),
                        },
                    }
                })?;
            }
        }
    }
    if let Some(writer) = quarantine {
        writer.finish()?;
        rejected.quarantine = Some(path.to_string());
    }
    Ok((rejected, input))
}

/// A short, stable name for a rejection's kind (for counts in the manifest).
fn reason_kind(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::InvalidJson(_) => "invalid_json",
        Rejection::NotAnObject => "not_an_object",
        Rejection::MissingResourceType => "missing_resource_type",
        Rejection::UnknownResourceType(_) => "unknown_resource_type",
        Rejection::TypeMismatch { .. } => "type_mismatch",
        Rejection::LineTooLong { .. } => "line_too_long",
        Rejection::Truncated(_) => "truncated",
    }
}

/// One quarantine line: where, why, and the line itself (as text, or base64 when not UTF-8).
fn quarantine_record(
    out: &mut String,
    file: &str,
    line: u64,
    rejection: &Rejection,
    sample: &[u8],
) {
    use base64::Engine as _;
    out.clear();
    let mut record = serde_json::Map::new();
    record.insert("file".into(), file.into());
    record.insert("line".into(), line.into());
    record.insert("reason".into(), rejection.to_string().into());
    match std::str::from_utf8(sample) {
        Ok(text) => record.insert("text".into(), text.into()),
        Err(_) => record.insert(
            "base64".into(),
            base64::engine::general_purpose::STANDARD
                .encode(sample)
                .into(),
        ),
    };
    if matches!(rejection, Rejection::LineTooLong { .. }) {
        record.insert("text_is_prefix".into(), true.into());
    }
    out.push_str(&serde_json::Value::Object(record).to_string());
    out.push('\n');
}

/// The current time as RFC 3339 UTC with seconds (`2026-11-28T22:54:17Z`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (y, m, d) = temporal::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// A run id that sorts by start time and is unique across processes:
/// `20261128T225417Z-1a2b3c4d`.
pub fn new_run_id() -> String {
    let now = now_rfc3339().replace(['-', ':'], "");
    format!("{now}-{}", new_attempt())
}

/// A token unique to one attempt at a run (in its file names), so that two attempts at
/// the same run id never overwrite each other's files.
pub fn new_attempt() -> String {
    use std::hash::BuildHasher as _;
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    SystemTime::now().hash(&mut hasher);
    std::process::id().hash(&mut hasher);
    std::thread::current().id().hash(&mut hasher);
    format!("{:08x}", hasher.finish() as u32)
}

/// The run id of an export, the same on every rerun: the transactionTime in UTC (so run
/// ids sort by export) and a hash of the source and the exact transactionTime, e.g.
/// `20260102T030405Z-0123456789abcdef`.
pub fn export_run_id(source: &str, transaction_time: &str) -> String {
    let micros = temporal::parse_micros(transaction_time);
    let hash = fnv1a(&[
        source.as_bytes(),
        b"\n",
        &micros.unwrap_or(i64::MIN).to_le_bytes(),
        b"\n",
        transaction_time.as_bytes(),
    ]);
    match micros {
        Some(micros) => {
            let secs = micros.div_euclid(1_000_000);
            format!("{}-{hash:016x}", compact_utc(secs))
        }
        None => format!("export-{hash:016x}"),
    }
}

/// `yyyymmddThhmmssZ` of seconds since the Unix epoch.
fn compact_utc(secs: i64) -> String {
    let (y, m, d) = temporal::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// FNV-1a, 64 bits: a hash that is the same in every build (unlike `DefaultHasher`).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_run_ids_are_stable_and_distinct() {
        let a = export_run_id("src", "2026-01-02T04:04:05+01:00");
        assert!(a.starts_with("20260102T030405Z-"), "{a}");
        assert_eq!(a, export_run_id("src", "2026-01-02T04:04:05+01:00"));
        assert_ne!(a, export_run_id("other", "2026-01-02T04:04:05+01:00"));
        assert_ne!(a, export_run_id("src", "2026-01-02T04:04:05.001+01:00"));
        assert!(export_run_id("src", "garbage").starts_with("export-"));
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
    }
}
