//! One run of a configured source, whatever its kind: the files of a `files` source, or
//! an incremental `$export` of a `bulk` source; then compaction where configured.
//! `fhir-ingest run` and `fhir-ingest daemon` both go through [`run`].

use std::{num::NonZeroUsize, sync::Arc};

use tokio::runtime::Handle;

use crate::{
    compact::{self, CompactError, Compacted},
    config::{Config, SourceConfig, SourceKind},
    export::{self, BulkRunOptions, ExportError},
    input::{self, InputError},
    pipeline::{self, Outcome, PipelineError, RunOptions, RunSummary},
    schema::Registry,
    state::Checkpoint,
    warehouse::Warehouse,
};

/// Errors of a source's run.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source's files cannot be listed.
    #[error("source {source_name}: {error}")]
    Input {
        /// The source.
        source_name: String,
        /// What went wrong.
        error: Box<InputError>,
    },
    /// The pipeline failed (nothing committed).
    #[error("source {source_name}: {error}")]
    Pipeline {
        /// The source.
        source_name: String,
        /// What went wrong.
        error: Box<PipelineError>,
    },
    /// The export failed (nothing committed, checkpoint unchanged).
    #[error("source {source_name}: {error}")]
    Export {
        /// The source.
        source_name: String,
        /// What went wrong.
        error: Box<ExportError>,
    },
    /// The run committed, but compacting its tables afterwards failed.
    #[error("source {source_name}: compacting {table}: {error}")]
    Compact {
        /// The source.
        source_name: String,
        /// The table.
        table: String,
        /// What went wrong.
        error: Box<CompactError>,
    },
}

/// What is shared by the runs of one invocation.
pub struct RunContext<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// The opened warehouse.
    pub warehouse: &'a Warehouse,
    /// The schemas.
    pub registry: Arc<Registry>,
    /// The runtime the store and the client use.
    pub runtime: Handle,
    /// For `files` sources: the export's transactionTime, when known (`convert`).
    pub transaction_time: Option<String>,
    /// Whether a bulk run handles Ctrl-C and SIGTERM itself (cancel its export, exit
    /// 130); false when the caller does (the daemon).
    pub handle_signals: bool,
}

/// What a bulk run adds to the pipeline's summary.
#[derive(Debug, Clone)]
pub struct ExportInfo {
    /// The `_since` asked for (none: a full export).
    pub since: Option<String>,
    /// Whether an export in flight from an earlier run was resumed.
    pub resumed: bool,
    /// The new checkpoint, when the run committed.
    pub checkpoint: Option<Checkpoint>,
}

/// The result of a source's run.
#[derive(Debug, Clone)]
pub struct SourceRun {
    /// The pipeline's summary (the run manifest, outcome, time).
    pub summary: RunSummary,
    /// For bulk sources: the export's details.
    pub export: Option<ExportInfo>,
    /// Tables compacted after the run (`warehouse.compact_after_run`).
    pub compacted: Vec<(String, Compacted)>,
}

/// Runs `source` once; `progress` gets one line per notable step.
pub fn run(
    cx: &RunContext<'_>,
    source: &SourceConfig,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<SourceRun, SourceError> {
    let name = source.name.clone();
    let options = RunOptions {
        source: name.clone(),
        inputs: Vec::new(),
        transaction_time: cx.transaction_time.clone(),
        decode: cx.config.decode.clone(),
        parquet: cx.config.parquet.clone(),
        partition_by: cx.config.warehouse.partition_by,
        max_rejected_fraction: cx.config.max_rejected_fraction,
        parallel_files: NonZeroUsize::MIN,
        deleted: Vec::new(),
        server_errors: Vec::new(),
    };
    let (summary, export) = match &source.kind {
        SourceKind::Files { paths } => {
            let inputs =
                input::discover(paths, &cx.registry).map_err(|error| SourceError::Input {
                    source_name: name.clone(),
                    error: Box::new(error),
                })?;
            progress(&format!(
                "source {name}: {} files -> {}",
                inputs.len(),
                cx.warehouse.root()
            ));
            let options = RunOptions { inputs, ..options };
            let summary = pipeline::run(
                cx.warehouse,
                cx.registry.clone(),
                options,
                cx.runtime.clone(),
                progress,
            )
            .map_err(|error| SourceError::Pipeline {
                source_name: name.clone(),
                error: Box::new(error),
            })?;
            (summary, None)
        }
        SourceKind::Bulk { client } => {
            progress(&format!(
                "source {name}: Bulk Data export from {} -> {}",
                crate::auth::redact_url(&client.base_url),
                cx.warehouse.root()
            ));
            let bulk = BulkRunOptions {
                client,
                pipeline: options,
                handle_signals: cx.handle_signals,
            };
            let done = export::run(
                cx.warehouse,
                cx.registry.clone(),
                bulk,
                cx.runtime.clone(),
                progress,
            )
            .map_err(|error| SourceError::Export {
                source_name: name.clone(),
                error: Box::new(error),
            })?;
            let info = ExportInfo {
                since: done.since,
                resumed: done.resumed,
                checkpoint: done.checkpoint,
            };
            (done.run, Some(info))
        }
    };
    let mut compacted = Vec::new();
    if cx.config.warehouse.compact_after_run
        && matches!(summary.outcome, Outcome::Complete | Outcome::Partial)
    {
        for table in summary.manifest.tables.keys() {
            let result = compact::compact_table(
                cx.warehouse,
                &cx.registry,
                table,
                cx.config.warehouse.compact_target_bytes,
                &cx.config.parquet,
                cx.runtime.clone(),
            )
            .map_err(|error| SourceError::Compact {
                source_name: name.clone(),
                table: table.clone(),
                error: Box::new(error),
            })?;
            compacted.push((table.clone(), result));
        }
    }
    Ok(SourceRun {
        summary,
        export,
        compacted,
    })
}
