//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use fhir_ingest::sink::Codec;

use super::logging::LogFormat;

/// Moves FHIR Bulk Data NDJSON into stable, lossless, typed Parquet tables.
///
/// Exit status: 0 success; 1 error (nothing committed); 2 bad command line;
/// 3 committed, but incomplete: some lines were rejected (see the quarantine), or the
/// server reported failed parts of the export (the checkpoint is held);
/// 4 more lines rejected than `quarantine.max_rejected_fraction` allows (nothing committed);
/// 130 stopped by Ctrl-C or SIGTERM (exports in flight cancelled, nothing half-written
/// committed, checkpoints unchanged).
#[derive(Parser)]
#[command(version, about, long_about)]
pub struct Cli {
    /// How log lines are written to stderr: `text`, or `json` (one object a line, for
    /// log shippers; reports are log lines then too). Secrets never appear in either.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More detail in the log (-v debug, -vv trace). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less in the log (-q warnings and errors only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
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
        /// Parquet codec.
        #[arg(long, value_enum, default_value_t = Codec::Zstd)]
        compression: Codec,
        /// Decoding threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Partitioning: export_date or none.
        #[arg(long, value_enum, default_value_t = PartitionArg::ExportDate)]
        partition_by: PartitionArg,
    },
    /// Rebuild NDJSON from a warehouse: `<out>/<Type>.ndjson`, every version ingested
    /// (the history tables) or, with --current, the current version of each resource.
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
        /// The current version of each resource (deletes applied) instead of every version.
        #[arg(long)]
        current: bool,
    },
    /// Show what the warehouse holds: committed runs per source, live tables, staged
    /// files (in no table), replaced files, quarantine counts.
    Status {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// Print JSON instead of text (always so with --log-format json).
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
    /// Turn a warehouse written by versions before the Delta tables (tables of the
    /// manifest-only layout, `<Type>/...`) into `history/` and `current/` Delta tables,
    /// in place; the old files are deleted at the end. A rerun goes on where a crash
    /// stopped it; on an upgraded warehouse it does nothing.
    Upgrade {
        #[command(flatten)]
        warehouse: WarehouseArg,
    },
    /// Delete the data files no table version needs any more (files of versions
    /// rewritten by merges or compactions, orphans of crashed runs) once they are older
    /// than the retention. A live file is never deleted.
    Vacuum {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// Keep files younger than this many hours (default:
        /// warehouse.vacuum_retention_hours, 168).
        #[arg(long)]
        retention_hours: Option<u64>,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Rewrite a table's small files, partition by partition, into files of a target
    /// size, committed as a compaction run whose manifest lists the files it replaces.
    Compact {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// The table (a resource type, or views/<name>).
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
    /// SQL on FHIR views: show a view's table, or compute it over a warehouse.
    #[command(subcommand)]
    View(ViewCommand),
}

/// The `view` commands.
#[derive(Subcommand)]
pub enum ViewCommand {
    /// Check a ViewDefinition and print the schema of its table.
    Show {
        /// The ViewDefinition JSON file.
        view: PathBuf,
    },
    /// Compute a view over the current resources of a warehouse: into a file (--out),
    /// or, without --out, into the warehouse's table views/<name> (a backfill: its rows
    /// are replaced in one commit).
    Run {
        /// The ViewDefinition JSON file.
        view: PathBuf,
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// A directory or object store URL to write `<name>.<format>` into.
        #[arg(long, short)]
        out: Option<String>,
        /// The file format with --out.
        #[arg(long, value_enum, default_value_t = ViewFormat::Parquet)]
        format: ViewFormat,
    },
}

/// The formats of `view run --out`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ViewFormat {
    /// Parquet (with `_resource_key` and `_lineage`).
    Parquet,
    /// CSV with a header; list columns as JSON arrays.
    Csv,
    /// One JSON object a line.
    Ndjson,
}

impl ViewFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
        }
    }
}

/// Partitioning on the command line.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PartitionArg {
    /// `export_date=YYYY-MM-DD`.
    #[value(name = "export_date")]
    ExportDate,
    /// No partition directory.
    None,
}

/// Which warehouse a maintenance command works on.
#[derive(clap::Args)]
pub struct WarehouseArg {
    /// The warehouse: a directory, file://, s3://bucket/prefix, gs://, az:// (object store
    /// settings from the environment).
    #[arg(long, short, conflicts_with = "config")]
    pub warehouse: Option<String>,
    /// Or the configuration whose [warehouse] to use.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// The `schema` commands.
#[derive(Subcommand)]
pub enum SchemaCommand {
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
