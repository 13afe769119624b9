//! The `fhir-ingest` command line: a thin shell over the library.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use clap::{Parser, Subcommand};
use fhir_ingest::{
    auth::redact_url,
    bulk::BulkClient,
    compact::{self, Compacted},
    config::{Config, ParquetConfig, SourceConfig, SourceKind, WarehouseConfig},
    decode::temporal,
    input,
    pipeline::{Outcome, RunSummary},
    rebuild,
    schema::{self, Registry},
    source::{self, RunContext, SourceRun},
    state::SourceState,
    status,
    warehouse::Warehouse,
};

/// Exit status of a run that committed but rejected some lines.
const EXIT_PARTIAL: u8 = 3;
/// Exit status of a run that rejected more lines than allowed and committed nothing.
const EXIT_TOO_MANY_REJECTED: u8 = 4;

/// Moves FHIR Bulk Data NDJSON into stable, lossless, typed Parquet tables.
///
/// Exit status: 0 success; 1 error (nothing committed); 2 bad command line;
/// 3 committed, but some lines were rejected (see the quarantine);
/// 4 more lines rejected than `quarantine.max_rejected_fraction` allows (nothing committed);
/// 130 stopped by Ctrl-C or SIGTERM (exports in flight cancelled, nothing half-written
/// committed, checkpoints unchanged).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// How progress and log lines are written to stderr: `text`, or `json` (one object
    /// a line, for log shippers). Secrets never appear in either.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The format of log lines.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Plain lines.
    Text,
    /// One JSON object a line: time, level, message.
    Json,
}

static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Whether a live progress line is on the terminal (log lines clear it first).
static PROGRESS_LINE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes one log line to stderr in the chosen format.
fn log(message: &str) {
    match LOG_FORMAT.get().copied().unwrap_or(LogFormat::Text) {
        LogFormat::Text => {
            use std::io::Write as _;
            let mut stderr = std::io::stderr().lock();
            if PROGRESS_LINE.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = write!(stderr, "\r\x1b[2K");
            }
            let _ = writeln!(stderr, "  {message}");
        }
        LogFormat::Json => {
            let line = serde_json::json!({
                "time": fhir_ingest::pipeline::now_rfc3339(),
                "level": "info",
                "message": message,
            });
            eprintln!("{line}");
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Ingest every source of the configuration (or one) into the warehouse.
    ///
    /// Each source becomes one run: its files are decoded into one table per resource
    /// type, written as Parquet under the warehouse, and committed by a run manifest
    /// in `_runs/`. Rejected lines go to `_quarantine/<run id>/`.
    Run {
        /// The configuration file.
        #[arg(long, short, default_value = "pipeline.toml")]
        config: PathBuf,
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
    },
    /// Convert NDJSON files or directories (plain or .gz) into a warehouse, without a config.
    ///
    /// For backfills: uses the defaults of every `pipeline.toml` key unless given here.
    Convert {
        /// Files or directories of *.ndjson / *.ndjson.gz.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// The warehouse to write: a directory, file://, s3://bucket/prefix, gs://, az://
        /// (object store settings from the environment, e.g. AWS_ENDPOINT_URL).
        #[arg(long, short)]
        out: String,
        /// The export's transactionTime (from its manifest): makes the run id the same
        /// on every rerun, so a rerun of a committed export writes nothing.
        #[arg(long)]
        transaction_time: Option<String>,
        /// Source name recorded in each row's lineage.
        #[arg(long, default_value = "files")]
        source: String,
        /// Parquet codec: zstd, snappy, lz4, gzip or none.
        #[arg(long, default_value = "zstd")]
        compression: String,
        /// Decoding threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Partitioning: export_date or none.
        #[arg(long, default_value = "export_date")]
        partition_by: String,
    },
    /// Rebuild NDJSON from the committed runs of a warehouse: `<out>/<Type>.ndjson`.
    ///
    /// Each resource equals the ingested one as a JSON value (decimals keep their text).
    ToNdjson {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// Output directory.
        #[arg(long, short)]
        out: PathBuf,
        /// Only these resource types (repeatable).
        #[arg(long = "type")]
        types: Vec<String>,
    },
    /// Show what the warehouse holds: committed runs per source, live tables, staged
    /// files of uncommitted runs, replaced files, quarantine counts.
    Status {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete staged files of runs that never committed (crashed attempts, lost races)
    /// and files replaced by compaction, once older than the grace period. Dry run
    /// unless --yes. A file of a committed run is never deleted.
    Cleanup {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// Only files older than this many hours (a run in progress is younger).
        #[arg(long, default_value_t = 24)]
        grace_hours: u32,
        /// Delete (without it, only list what would be deleted).
        #[arg(long)]
        yes: bool,
    },
    /// Rewrite a table's small files, partition by partition, into files of a target
    /// size, committed as a compaction run whose manifest lists the files it replaces.
    Compact {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// The table (resource type).
        #[arg(long)]
        table: String,
        /// Target file size in MiB (default: warehouse.compact_target_mib, 256).
        #[arg(long)]
        target_mib: Option<usize>,
    },
    /// Run each source on its cron schedule (`schedule` in its `[[sources]]`) until
    /// Ctrl-C or SIGTERM, serving `/healthz` and Prometheus `/metrics`.
    ///
    /// A source never runs twice at once (a firing during its run is skipped); at most
    /// `daemon.max_concurrent_sources` run together. On Ctrl-C or SIGTERM the exports in
    /// flight are cancelled on the server and the process exits (130 if runs were in
    /// progress, 0 otherwise): nothing half-written is committed and checkpoints stay.
    Daemon {
        /// The configuration file.
        #[arg(long, short, default_value = "pipeline.toml")]
        config: PathBuf,
    },
    /// Check the configuration, reach each server's `metadata` and the warehouse, and
    /// say what each source would ingest, without writing anything.
    ValidateConfig {
        /// The configuration file.
        #[arg(long, short, default_value = "pipeline.toml")]
        config: PathBuf,
    },
    /// Show or regenerate the table schemas.
    #[command(subcommand)]
    Schema(SchemaCommand),
}

/// Which warehouse a maintenance command works on.
#[derive(clap::Args)]
struct WarehouseArg {
    /// The warehouse: a directory, file://, s3://bucket/prefix, gs://, az:// (object store
    /// settings from the environment).
    #[arg(long, short, conflicts_with = "config")]
    warehouse: Option<String>,
    /// Or the configuration whose [warehouse] to use.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

impl WarehouseArg {
    /// The warehouse configuration, and the Parquet settings to write with.
    fn load(&self) -> Result<(WarehouseConfig, ParquetConfig)> {
        match (&self.warehouse, &self.config) {
            (Some(url), _) => Ok((
                WarehouseConfig::from_url(url, Path::new("."))
                    .map_err(|e| anyhow::anyhow!("--warehouse: {e}"))?,
                ParquetConfig::default(),
            )),
            (None, Some(path)) => {
                let config = Config::load(path)?;
                Ok((config.warehouse, config.parquet))
            }
            (None, None) => bail!("give --warehouse URL_OR_DIR or --config FILE"),
        }
    }
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Print the Arrow schema of a resource type's table.
    Show {
        /// The resource type, e.g. Patient.
        resource_type: String,
    },
    /// Regenerate `schemas/r4/*.schema` from the FHIR definitions package.
    Generate {
        /// The hl7.fhir.r4.core package (.tgz).
        #[arg(long)]
        package: PathBuf,
        /// The output directory.
        #[arg(long, default_value = "schemas/r4")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match run_cli(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli(cli: Cli) -> Result<ExitCode> {
    let _ = LOG_FORMAT.set(cli.log_format);
    match cli.command {
        Command::Run { config, source } => run_sources(&config, source.as_deref()),
        Command::Daemon { config } => daemon(&Config::load(&config)?),
        Command::ValidateConfig { config } => validate_config(&Config::load(&config)?),
        Command::Convert {
            inputs,
            out,
            transaction_time,
            source,
            compression,
            workers,
            partition_by,
        } => {
            if let Some(t) = &transaction_time
                && temporal::parse_micros(t).is_none()
            {
                bail!("--transaction-time {t:?}: expected an instant like 2026-01-02T03:04:05Z");
            }
            let toml = format!(
                "[warehouse]\nurl = {out:?}\npartition_by = {partition_by:?}\n[parquet]\ncompression = {compression:?}\n\
                 [decode]\nworkers = {workers}\n[[sources]]\nname = {source:?}\nkind = \"files\"\npaths = {inputs:?}\n",
                inputs = inputs
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>(),
            );
            let config = Config::parse(&toml, Path::new("<command line>"))?;
            run_config(&config, None, transaction_time)
        }
        Command::ToNdjson {
            warehouse,
            out,
            types,
        } => {
            let registry = Registry::embedded()?;
            let runtime = tokio::runtime::Runtime::new()?;
            let warehouse = open_checked(&warehouse.load()?.0, &runtime, true)?;
            let counts =
                runtime.block_on(rebuild::to_ndjson(&warehouse, &registry, &out, &types))?;
            for (resource_type, count) in &counts {
                println!("{resource_type:<28} {count:>10} resources");
            }
            println!("wrote {} files to {}", counts.len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { warehouse, json } => {
            let runtime = tokio::runtime::Runtime::new()?;
            let warehouse = open_checked(&warehouse.load()?.0, &runtime, true)?;
            let status = runtime.block_on(status::status(&warehouse, unix_now()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cleanup {
            warehouse,
            grace_hours,
            yes,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            let warehouse = open_checked(&warehouse.load()?.0, &runtime, !yes)?;
            let grace = i64::from(grace_hours) * 3600;
            let plan = runtime.block_on(status::cleanup(&warehouse, unix_now(), grace, yes))?;
            let verb = if yes { "deleted" } else { "would delete" };
            for leftover in &plan.staged {
                println!(
                    "{verb} staged   {} ({} bytes)",
                    leftover.path, leftover.bytes
                );
            }
            for leftover in &plan.replaced {
                println!(
                    "{verb} replaced {} ({} bytes)",
                    leftover.path, leftover.bytes
                );
            }
            println!(
                "{verb} {} staged and {} replaced files older than {grace_hours} h{}",
                plan.staged.len(),
                plan.replaced.len(),
                if yes { "" } else { " (dry run: add --yes)" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Compact {
            warehouse,
            table,
            target_mib,
        } => {
            let (config, parquet) = warehouse.load()?;
            let target = target_mib.map_or(config.compact_target_bytes, |mib| mib << 20);
            if target == 0 {
                bail!("--target-mib must be at least 1");
            }
            let runtime = tokio::runtime::Runtime::new()?;
            let warehouse = open_checked(&config, &runtime, false)?;
            let registry = Registry::embedded()?;
            registry.require(&table)?;
            let result = compact::compact_table(
                &warehouse,
                &registry,
                &table,
                target,
                &parquet,
                runtime.handle().clone(),
            )?;
            print_compacted(&table, &result);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema(SchemaCommand::Show { resource_type }) => {
            let registry = Registry::embedded()?;
            let schema = registry.require(&resource_type)?;
            for field in schema.arrow_schema().fields() {
                println!("{}: {}", field.name(), field.data_type());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema(SchemaCommand::Generate { package, out }) => {
            let files = schema::generate::generate(&package, &Default::default())?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for (resource_type, text) in &files {
                let path = out.join(format!("{resource_type}.schema"));
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            println!("wrote {} schemas to {}", files.len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// While `run` works on a terminal (text logs), one status line redrawn four times a
/// second: input files done, lines, MB of NDJSON and their rates. Stops when dropped.
struct ProgressLine {
    stop: Arc<std::sync::atomic::AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLine {
    fn start() -> Self {
        use std::io::IsTerminal as _;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let wanted = std::io::stderr().is_terminal() && LOG_FORMAT.get() != Some(&LogFormat::Json);
        let ticker = wanted.then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                use std::{io::Write as _, sync::atomic::Ordering::Relaxed};
                let p = &fhir_ingest::pipeline::PROGRESS;
                let started = std::time::Instant::now();
                while !stop.load(Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
                    let (lines, mb) = (p.lines.load(Relaxed), p.bytes.load(Relaxed) as f64 / 1e6);
                    let mut stderr = std::io::stderr().lock();
                    let _ = write!(
                        stderr,
                        "\r\x1b[2K  files {}/{} · {lines} lines ({:.0}/s) · {mb:.1} MB ({:.1} MB/s)",
                        p.files_done.load(Relaxed),
                        p.files_total.load(Relaxed),
                        lines as f64 / secs,
                        mb / secs,
                    );
                    let _ = stderr.flush();
                    PROGRESS_LINE.store(true, Relaxed);
                }
            })
        });
        Self { stop, ticker }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
            eprint!("\r\x1b[2K");
            PROGRESS_LINE.store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn run_sources(config_path: &Path, only: Option<&str>) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    run_config(&config, only, None)
}

/// Opens a warehouse and checks, before any work, that it can be listed (and written,
/// unless `read_only`).
fn open_checked(
    config: &WarehouseConfig,
    runtime: &tokio::runtime::Runtime,
    read_only: bool,
) -> Result<Warehouse> {
    let warehouse = Warehouse::open(config)?;
    if read_only {
        runtime.block_on(warehouse.healthcheck_read_only())?;
    } else {
        runtime.block_on(warehouse.healthcheck())?;
    }
    Ok(warehouse)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn run_config(
    config: &Config,
    only: Option<&str>,
    transaction_time: Option<String>,
) -> Result<ExitCode> {
    if let Some(name) = only
        && !config.sources.iter().any(|s| s.name == name)
    {
        bail!("no source named {name:?} in {}", config.path.display());
    }
    let registry = Arc::new(Registry::embedded()?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let warehouse = open_checked(&config.warehouse, &runtime, false)?;
    let cx = RunContext {
        config,
        warehouse: &warehouse,
        registry,
        runtime: runtime.handle().clone(),
        transaction_time,
        handle_signals: true,
    };
    let mut worst = ExitCode::SUCCESS;
    for source in config
        .sources
        .iter()
        .filter(|s| only.is_none_or(|n| n == s.name))
    {
        let progress_line = ProgressLine::start();
        let run = source::run(&cx, source, &log);
        drop(progress_line);
        let run = run?;
        print_run(&run);
        worst = match run.summary.outcome {
            Outcome::Complete | Outcome::AlreadyCommitted | Outcome::CommittedByAnother => worst,
            Outcome::Partial => ExitCode::from(EXIT_PARTIAL),
            Outcome::TooManyRejected => return Ok(ExitCode::from(EXIT_TOO_MANY_REJECTED)),
        };
    }
    Ok(worst)
}

/// The human summary of a source's run, on stdout.
fn print_run(run: &SourceRun) {
    if let Some(export) = &run.export {
        print_export(&run.summary, export);
    }
    print_summary(&run.summary);
    for (table, result) in &run.compacted {
        print_compacted(table, result);
    }
}

/// Runs the scheduled sources until a signal; see `Command::Daemon`.
fn daemon(config: &Config) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let warehouse = open_checked(&config.warehouse, &runtime, false)?;
    fhir_ingest::daemon::run(config, warehouse, &runtime, log)?;
    Ok(ExitCode::SUCCESS)
}

/// Checks what `run` would need, writing nothing; see `Command::ValidateConfig`.
fn validate_config(config: &Config) -> Result<ExitCode> {
    println!("config {}: valid", config.path.display());
    let registry = Registry::embedded()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let warehouse = open_checked(&config.warehouse, &runtime, true)?;
    println!("warehouse {}: reachable", warehouse.root());
    let mut failed = false;
    for source in &config.sources {
        let schedule = source.schedule.as_ref().map_or("run only".into(), |s| {
            format!("schedule {:?}", s.expression())
        });
        match &source.kind {
            SourceKind::Files { paths } => match input::discover(paths, &registry) {
                Ok(files) => println!(
                    "source {} ({schedule}): {} NDJSON files to ingest",
                    source.name,
                    files.len()
                ),
                Err(e) => {
                    failed = true;
                    println!("source {}: {e}", source.name);
                }
            },
            SourceKind::Bulk { client } => {
                if let Err(e) = validate_bulk(source, client, &warehouse, &runtime, &schedule) {
                    failed = true;
                    println!("source {}: {e:#}", source.name);
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Reaches a bulk source's server and says what the next run would ask for.
fn validate_bulk(
    source: &SourceConfig,
    client: &fhir_ingest::bulk::BulkConfig,
    warehouse: &Warehouse,
    runtime: &tokio::runtime::Runtime,
    schedule: &str,
) -> Result<()> {
    let bulk = BulkClient::new(client.clone())?;
    let (fhir_version, software) = runtime.block_on(bulk.metadata())?;
    let state = SourceState::new(warehouse.store(), &source.name);
    let (_, checkpoint) = runtime.block_on(state.checkpoint())?;
    let in_flight = runtime.block_on(state.in_flight())?;
    let since = checkpoint
        .map(|c| format!("changes since {}", c.transaction_time))
        .or_else(|| {
            client
                .since
                .clone()
                .map(|s| format!("changes since {s} (configured start)"))
        })
        .unwrap_or_else(|| "a full export".into());
    let types = if client.types.is_empty() {
        "all types".to_owned()
    } else {
        client.types.join(",")
    };
    println!(
        "source {} ({schedule}): {} answers (FHIR {fhir_version}, {software}); next run: {}{} of {types} from {}",
        source.name,
        redact_url(&client.base_url),
        if in_flight.is_some() {
            "resume the export in flight, else "
        } else {
            ""
        },
        since,
        bulk.kickoff_url()
    );
    Ok(())
}

fn print_export(summary: &RunSummary, export: &source::ExportInfo) {
    let m = &summary.manifest;
    println!(
        "export of source {}: {}{}, transactionTime {}",
        m.source,
        export
            .since
            .as_deref()
            .map_or("full export".to_owned(), |s| format!("changes since {s}")),
        if export.resumed { " (resumed)" } else { "" },
        m.transaction_time.as_deref().unwrap_or("-")
    );
    if !m.deleted.is_empty() {
        println!(
            "  {} resources deleted on the server (listed in the run manifest)",
            m.deleted.len()
        );
    }
    if !m.server_errors.is_empty() {
        println!(
            "  {} server issues (OperationOutcome, in the run manifest)",
            m.server_errors.len()
        );
    }
    if m.input.skipped > 0 {
        println!("  {} Parameters header lines skipped", m.input.skipped);
    }
    match &export.checkpoint {
        Some(c) => println!(
            "  checkpoint: next run asks for changes since {}",
            c.transaction_time
        ),
        None => println!("  checkpoint unchanged (nothing committed)"),
    }
}

fn print_compacted(table: &str, result: &Compacted) {
    match result {
        Compacted::Nothing => println!("compact {table}: nothing to compact"),
        Compacted::Committed {
            run_id,
            replaced,
            written,
            rows,
        } => println!(
            "compact {table}: {replaced} files -> {written} files, {rows} rows; committed _runs/{run_id}.json"
        ),
        Compacted::CommittedByAnother { run_id } => println!(
            "compact {table}: another compaction of the same files committed {run_id} first; nothing changed"
        ),
    }
}

fn print_status(status: &status::Status) {
    println!("warehouse {}", status.warehouse);
    println!("committed runs by source:");
    for (source, s) in &status.sources {
        println!(
            "  {source:<20} {:>5} runs {:>12} rows {:>8} rejected  last {} (finished {}, transactionTime {})",
            s.runs,
            s.rows,
            s.rejected_lines,
            s.last_run_id,
            s.last_finished_at,
            s.last_transaction_time.as_deref().unwrap_or("-")
        );
    }
    if !status.exports.is_empty() {
        println!("bulk sources:");
    }
    for (source, e) in &status.exports {
        let since =
            e.checkpoint
                .as_ref()
                .map_or("none: the next run is a full export".to_owned(), |c| {
                    format!(
                        "#{} at transactionTime {} (run {})",
                        e.checkpoint_seq, c.transaction_time, c.run_id
                    )
                });
        println!("  {source:<20} checkpoint {since}");
        if let Some(f) = &e.in_flight {
            println!(
                "  {:<20} export in flight since {} ({}), resumed by the next run",
                "",
                f.kicked_off_at,
                redact_url(&f.status_url)
            );
        }
    }
    println!("compaction runs: {}", status.compactions);
    println!("tables (live files):");
    for (table, t) in &status.tables {
        println!(
            "  {table:<28} {:>6} files {:>12} rows {:>14} bytes",
            t.files, t.rows, t.bytes
        );
    }
    let bytes = |l: &[status::Leftover]| l.iter().map(|x| x.bytes).sum::<u64>();
    println!(
        "staged files of uncommitted runs: {} ({} bytes)",
        status.staged.len(),
        bytes(&status.staged)
    );
    let mut by_run: std::collections::BTreeMap<&str, usize> = Default::default();
    for leftover in &status.staged {
        *by_run
            .entry(leftover.run_id.as_deref().unwrap_or("?"))
            .or_default() += 1;
    }
    for (run_id, n) in by_run {
        println!("  run {run_id}: {n} files");
    }
    println!(
        "replaced by compaction: {} files ({} bytes)",
        status.replaced.len(),
        bytes(&status.replaced)
    );
    let q = &status.quarantine;
    println!(
        "quarantine: {} rejected lines in {} files of committed runs; {} files of uncommitted runs",
        q.committed_lines, q.committed_files, q.uncommitted_files
    );
}

fn print_summary(summary: &RunSummary) {
    let m = &summary.manifest;
    let secs = summary.elapsed.as_secs_f64();
    println!("run {} (source {}):", m.run_id, m.source);
    println!(
        "  {:<28} {:>10} {:>6} {:>12}",
        "table", "rows", "files", "bytes"
    );
    for (resource_type, table) in &m.tables {
        let bytes: u64 = table.files.iter().map(|f| f.bytes).sum();
        println!(
            "  {:<28} {:>10} {:>6} {:>12}",
            resource_type,
            table.rows,
            table.files.len(),
            bytes
        );
    }
    let rows: u64 = m.tables.values().map(|t| t.rows).sum();
    println!(
        "  read {} files, {} lines, {:.1} MB in {:.2} s ({:.1} MB/s); {} rows written",
        m.input.files,
        m.input.lines,
        m.input.bytes as f64 / 1e6,
        secs,
        m.input.bytes as f64 / 1e6 / secs.max(1e-9),
        rows
    );
    if m.rejected.lines > 0 {
        let kinds: Vec<String> = m
            .rejected
            .by_reason
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        println!(
            "  rejected {} lines ({}) -> {}",
            m.rejected.lines,
            kinds.join(", "),
            m.rejected.quarantine.as_deref().unwrap_or("-")
        );
        for first in &m.rejected.first {
            println!("    {first}");
        }
    }
    match summary.outcome {
        Outcome::Complete | Outcome::Partial => println!("  committed _runs/{}.json", m.run_id),
        Outcome::AlreadyCommitted => println!(
            "  already committed: _runs/{}.json exists (same source and transactionTime); nothing written",
            m.run_id
        ),
        Outcome::CommittedByAnother => println!(
            "  another ingester committed _runs/{}.json first; its commit stands, this attempt's files are staged (see `cleanup`)",
            m.run_id
        ),
        Outcome::TooManyRejected => {
            println!("  NOT committed: too many rejected lines (quarantine.max_rejected_fraction)")
        }
    }
}
