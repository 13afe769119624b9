//! The `fhir-ingest` command line: a thin shell over the library. It parses the
//! arguments, sets up logging and one runtime, runs the command and maps its outcome to
//! the documented exit status; only here does the process exit.

mod args;
mod logging;
mod report;
mod validate;

use std::{path::Path, process::ExitCode, sync::Arc};

use anyhow::{Context, Result, bail};
use clap::Parser;
use fhir_ingest::{
    app::{self, daemon::chain, shutdown},
    config::Config,
    ingest::{DecodeConfig, Outcome, Progress, RunContext},
    maintain::{cleanup, rebuild, status},
    schema::{self, Registry},
    sink::ParquetConfig,
    source::SourceConfig,
    temporal,
    warehouse::{PartitionBy, TableId, Warehouse, WarehouseConfig},
};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use self::{
    args::{Cli, Command, PartitionArg, SchemaCommand, ViewCommand, ViewFormat, WarehouseArg},
    logging::{LogFormat, ProgressDisplay},
    report::Report,
};

/// Exit status of a run that committed but is incomplete (rejected lines).
const EXIT_PARTIAL: u8 = 3;
/// Exit status of a run that rejected more lines than allowed and committed nothing.
const EXIT_TOO_MANY_REJECTED: u8 = 4;
/// Exit status of a run stopped by Ctrl-C or SIGTERM.
const EXIT_CANCELLED: u8 = 130;

/// Runs the command line; the process's exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, cli.verbose as i8 - cli.quiet as i8);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{}", chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// What every command gets.
struct Shell {
    format: LogFormat,
    runtime: Runtime,
    report: Report,
}

fn run(cli: Cli) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let shell = Shell {
        format: cli.log_format,
        runtime,
        report: Report::new(cli.log_format),
    };
    match cli.command {
        Command::Run { config, source } => {
            shell.run(&Config::load(&config)?, source.as_deref(), None)
        }
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
            let mut warehouse = WarehouseConfig::from_url(&out, Path::new("."))
                .map_err(|e| anyhow::anyhow!("--out: {}", e.reason))?;
            warehouse.partition_by = match partition_by {
                PartitionArg::ExportDate => PartitionBy::ExportDate,
                PartitionArg::None => PartitionBy::None,
            };
            let decode = DecodeConfig {
                workers: std::num::NonZeroUsize::new(workers)
                    .unwrap_or(DecodeConfig::default().workers),
                ..DecodeConfig::default()
            };
            let config = Config::for_files(
                warehouse,
                ParquetConfig::with_codec(compression),
                decode,
                SourceConfig::files(source, inputs),
            );
            shell.run(&config, None, transaction_time)
        }
        Command::Daemon { config } => shell.daemon(&Config::load(&config)?),
        Command::ValidateConfig { config } => shell.validate_config(&Config::load(&config)?),
        Command::ToNdjson {
            warehouse,
            out,
            types,
            current,
        } => {
            let versions = if current {
                rebuild::Versions::Current
            } else {
                rebuild::Versions::All
            };
            shell.to_ndjson(&warehouse, &out, &types, versions)
        }
        Command::Status { warehouse, json } => shell.status(&warehouse, json),
        Command::Cleanup {
            warehouse,
            grace_hours,
            yes,
        } => shell.cleanup(&warehouse, grace_hours, yes),
        Command::Compact {
            warehouse,
            table,
            target_mib,
        } => shell.compact(&warehouse, &table, target_mib),
        Command::Upgrade { warehouse } => shell.upgrade(&warehouse),
        Command::Vacuum {
            warehouse,
            retention_hours,
            dry_run,
        } => shell.vacuum(&warehouse, retention_hours, dry_run),
        Command::View(ViewCommand::Show { view }) => {
            let view = fhir_ingest::ingest::views::load_view(&view)?;
            shell.report.line(format!(
                "view {} over {}: table views/{}",
                view.name(),
                view.resource(),
                view.name()
            ));
            for line in fhir_ingest::maintain::view_run::describe(&view) {
                shell.report.line(format!("  {line}"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::View(ViewCommand::Run {
            view,
            warehouse,
            out,
            format,
        }) => shell.view_run(&view, &warehouse, out.as_deref(), format),
        Command::Schema(SchemaCommand::Show { resource_type }) => {
            let registry = Registry::embedded()?;
            for field in registry.require(&resource_type)?.arrow_schema().fields() {
                shell
                    .report
                    .line(format!("{}: {}", field.name(), field.data_type()));
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
            shell.report.line(format!(
                "wrote {} schemas to {}",
                files.len(),
                out.display()
            ));
            Ok(ExitCode::SUCCESS)
        }
    }
}

impl WarehouseArg {
    /// The warehouse configuration, and the Parquet settings to write with.
    fn load(&self) -> Result<(WarehouseConfig, ParquetConfig)> {
        match (&self.warehouse, &self.config) {
            (Some(url), _) => Ok((
                WarehouseConfig::from_url(url, Path::new("."))
                    .map_err(|e| anyhow::anyhow!("--warehouse: {}", e.reason))?,
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

impl Shell {
    /// Opens a warehouse and checks, before any work, that it can be listed (and
    /// written, unless `read_only`: then nothing is created, and a missing local
    /// warehouse is an error).
    fn open(&self, config: &WarehouseConfig, read_only: bool) -> Result<Warehouse> {
        let warehouse = if read_only {
            Warehouse::open_existing(config)?
        } else {
            Warehouse::open(config)?
        };
        if read_only {
            self.runtime.block_on(warehouse.healthcheck_read_only())?;
        } else {
            self.runtime.block_on(warehouse.healthcheck())?;
        }
        Ok(warehouse)
    }

    /// The context of runs into `warehouse`, cancelled by Ctrl-C or SIGTERM.
    fn run_context(&self, warehouse: Warehouse) -> Result<RunContext> {
        let cancel = CancellationToken::new();
        shutdown::cancel_on_signal(self.runtime.handle(), cancel.clone(), || {
            std::process::exit(i32::from(EXIT_CANCELLED))
        });
        Ok(RunContext {
            warehouse,
            registry: Arc::new(Registry::embedded()?),
            runtime: self.runtime.handle().clone(),
            cancel,
            progress: Arc::new(Progress::default()),
        })
    }

    /// Runs the sources of `config` (or the one named), one after the other.
    fn run(
        &self,
        config: &Config,
        only: Option<&str>,
        transaction_time: Option<String>,
    ) -> Result<ExitCode> {
        if let Some(name) = only
            && !config.sources.iter().any(|s| s.name == name)
        {
            bail!("no source named {name:?} in {}", config.path.display());
        }
        let cx = self.run_context(self.open(&config.warehouse, false)?)?;
        let mut worst = ExitCode::SUCCESS;
        for source in config
            .sources
            .iter()
            .filter(|s| only.is_none_or(|n| n == s.name))
        {
            let display = ProgressDisplay::start(cx.progress.clone(), self.format);
            let finished = app::run_source(&cx, config, source, transaction_time.clone());
            drop(display);
            let finished = finished?;
            self.report.finished(&source.name, &finished);
            worst = match finished.run.outcome {
                Outcome::Complete | Outcome::AlreadyCommitted | Outcome::CommittedByAnother => {
                    worst
                }
                Outcome::Partial => ExitCode::from(EXIT_PARTIAL),
                Outcome::TooManyRejected => return Ok(ExitCode::from(EXIT_TOO_MANY_REJECTED)),
                Outcome::Cancelled => return Ok(ExitCode::from(EXIT_CANCELLED)),
            };
        }
        Ok(worst)
    }

    /// Runs the scheduled sources until a signal.
    fn daemon(&self, config: &Config) -> Result<ExitCode> {
        let cx = self.run_context(self.open(&config.warehouse, false)?)?;
        let exit = app::daemon::run(&cx, config)?;
        Ok(if exit.interrupted > 0 {
            ExitCode::from(EXIT_CANCELLED)
        } else {
            ExitCode::SUCCESS
        })
    }

    fn to_ndjson(
        &self,
        warehouse: &WarehouseArg,
        out: &Path,
        types: &[String],
        versions: rebuild::Versions,
    ) -> Result<ExitCode> {
        let registry = Registry::embedded()?;
        let warehouse = self.open(&warehouse.load()?.0, true)?;
        let counts = self.runtime.block_on(rebuild::to_ndjson(
            &warehouse, &registry, out, types, versions,
        ))?;
        for (resource_type, count) in &counts {
            self.report
                .line(format!("{resource_type:<28} {count:>10} resources"));
        }
        self.report
            .line(format!("wrote {} files to {}", counts.len(), out.display()));
        Ok(ExitCode::SUCCESS)
    }

    fn status(&self, warehouse: &WarehouseArg, json: bool) -> Result<ExitCode> {
        let warehouse = self.open(&warehouse.load()?.0, true)?;
        let status = self
            .runtime
            .block_on(status::status(&warehouse, temporal::unix_now()))?;
        if json || self.format == LogFormat::Json {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            self.report.status(&status);
        }
        Ok(ExitCode::SUCCESS)
    }

    fn cleanup(&self, warehouse: &WarehouseArg, grace_hours: u32, yes: bool) -> Result<ExitCode> {
        let warehouse = self.open(&warehouse.load()?.0, !yes)?;
        let grace = i64::from(grace_hours) * 3600;
        let plan = self.runtime.block_on(cleanup::cleanup(
            &warehouse,
            temporal::unix_now(),
            grace,
            yes,
        ))?;
        let verb = if yes { "deleted" } else { "would delete" };
        for (kind, leftovers) in [("staged  ", &plan.staged), ("replaced", &plan.replaced)] {
            for leftover in leftovers {
                self.report.line(format!(
                    "{verb} {kind} {} ({} bytes)",
                    leftover.path, leftover.bytes
                ));
            }
        }
        self.report.line(format!(
            "{verb} {} staged and {} replaced files older than {grace_hours} h{}",
            plan.staged.len(),
            plan.replaced.len(),
            if yes { "" } else { " (dry run: add --yes)" }
        ));
        Ok(ExitCode::SUCCESS)
    }

    fn view_run(
        &self,
        view: &Path,
        warehouse: &WarehouseArg,
        out: Option<&str>,
        format: ViewFormat,
    ) -> Result<ExitCode> {
        use fhir_ingest::maintain::view_run;
        let view = Arc::new(fhir_ingest::ingest::views::load_view(view)?);
        let (config, parquet) = warehouse.load()?;
        let cx = self.run_context(self.open(&config, out.is_some())?)?;
        let (batches, failures) =
            self.runtime
                .block_on(view_run::compute(&cx.warehouse, &cx.registry, view.clone()))?;
        for failure in failures.iter().take(5) {
            tracing::warn!("view {}: {failure}", view.name());
        }
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let Some(out) = out else {
            let version = view_run::replace_table(&cx, &view, &batches, &parquet)?;
            self.report.line(format!(
                "view {}: {rows} rows ({} resources failed) -> views/{} version {}",
                view.name(),
                failures.len(),
                view.name(),
                version.map_or("-".to_owned(), |v| v.to_string())
            ));
            return Ok(ExitCode::SUCCESS);
        };
        let target = Warehouse::open(
            &WarehouseConfig::from_url(out, Path::new("."))
                .map_err(|e| anyhow::anyhow!("--out: {}", e.reason))?,
        )?;
        let name = format!("{}.{}", view.name(), format.extension());
        let path = object_store::path::Path::from(name.as_str());
        let handle = self.runtime.handle().clone();
        match format {
            ViewFormat::Parquet => {
                let schema = fhir_ingest::decode::view_table_schema(&view);
                let mut file = fhir_ingest::sink::ParquetFile::create(
                    target.store(),
                    path,
                    schema,
                    fhir_ingest::sink::writer_properties(&parquet),
                    handle,
                )?;
                for batch in &batches {
                    file.write(batch)?;
                }
                file.finish(None)?;
            }
            ViewFormat::Csv | ViewFormat::Ndjson => {
                let mut writer = fhir_ingest::sink::ObjectWriter::new(target.store(), path, handle);
                if format == ViewFormat::Csv {
                    view_run::write_csv(&batches, &mut writer)?;
                } else {
                    view_run::write_ndjson(&batches, &mut writer)?;
                }
                writer.finish()?;
            }
        }
        self.report.line(format!(
            "view {}: {rows} rows ({} resources failed) -> {}/{name}",
            view.name(),
            failures.len(),
            target.root()
        ));
        Ok(ExitCode::SUCCESS)
    }

    fn upgrade(&self, warehouse: &WarehouseArg) -> Result<ExitCode> {
        let (config, parquet) = warehouse.load()?;
        let cx = self.run_context(self.open(&config, false)?)?;
        let done = fhir_ingest::maintain::upgrade::upgrade(&cx, &parquet, config.merge_max_keys)?;
        for u in &done {
            self.report.line(format!(
                "upgraded {}: {} files, {} rows into history/ and current/; {} deletions applied",
                u.resource_type, u.files, u.rows, u.deleted
            ));
        }
        if done.is_empty() {
            self.report
                .line("nothing to upgrade: no table of the manifest-only layout");
        }
        Ok(ExitCode::SUCCESS)
    }

    fn vacuum(
        &self,
        warehouse: &WarehouseArg,
        retention_hours: Option<u64>,
        dry_run: bool,
    ) -> Result<ExitCode> {
        let (config, _) = warehouse.load()?;
        let retention = retention_hours.map_or(config.vacuum_retention, |h| {
            std::time::Duration::from_secs(h.saturating_mul(3600))
        });
        let warehouse = self.open(&config, dry_run)?;
        let reports = self
            .runtime
            .block_on(fhir_ingest::maintain::vacuum::vacuum_all(
                &warehouse, retention, dry_run,
            ))?;
        let verb = if dry_run { "would delete" } else { "deleted" };
        for (table, r) in &reports {
            for path in &r.deleted {
                self.report.line(format!("{verb} {table}/{path}"));
            }
        }
        let (files, bytes) = reports.iter().fold((0, 0), |(f, b), (_, r)| {
            (
                f + r.tombstone_files + r.orphan_files,
                b + r.tombstone_bytes + r.orphan_bytes,
            )
        });
        self.report.line(format!(
            "{verb} {files} files ({bytes} bytes) of {} tables older than {} h",
            reports.len(),
            retention.as_secs() / 3600
        ));
        Ok(ExitCode::SUCCESS)
    }

    fn compact(
        &self,
        warehouse: &WarehouseArg,
        table: &str,
        target_mib: Option<usize>,
    ) -> Result<ExitCode> {
        let (config, parquet) = warehouse.load()?;
        let target = target_mib.map_or(config.compact_target_bytes, |mib| mib << 20);
        if target == 0 {
            bail!("--target-mib must be at least 1");
        }
        let Some(table) = TableId::parse(table) else {
            bail!("--table {table:?}: expected a resource type (Patient) or views/<name>");
        };
        let cx = self.run_context(self.open(&config, false)?)?;
        if let Some(resource_type) = table.resource_type() {
            cx.registry.require(resource_type)?;
        }
        let result = fhir_ingest::maintain::compact::compact_table(&cx, &table, target, &parquet)?;
        self.report.compacted(&table, &result);
        Ok(ExitCode::SUCCESS)
    }
}
