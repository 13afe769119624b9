//! The application: what `run` and `daemon` do with a configuration.
//!
//! - [`run_source`]: one run of a configured source, then compaction where configured
//!   (both commands go through it);
//! - [`daemon`]: the sources on their schedules, with [`metrics`] served;
//! - [`shutdown`]: Ctrl-C and SIGTERM as the cancellation of the run context.

pub mod daemon;
pub mod metrics;
pub mod shutdown;

use std::time::Instant;

use crate::{
    config::Config,
    ingest::RunContext,
    maintain::compact::{self, CompactError, Compacted},
    source::{self, SourceConfig, SourceError, SourceRun},
    warehouse::TableId,
};

/// Errors of a source's run with its compaction.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The run failed (nothing committed).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The run committed, but compacting its tables afterwards failed.
    #[error("source {source_name}: compacting {table}")]
    Compact {
        /// The source.
        source_name: String,
        /// The table.
        table: TableId,
        /// What went wrong.
        source: Box<CompactError>,
    },
}

/// A source's run and the compactions after it.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The run.
    pub run: SourceRun,
    /// Tables compacted after the run (`warehouse.compact_after_run`).
    pub compacted: Vec<(TableId, Compacted)>,
}

/// Runs `source` of `config` once, then compacts the tables it wrote when
/// `warehouse.compact_after_run` says so. Blocking: call it outside the runtime.
pub fn run_source(
    cx: &RunContext,
    config: &Config,
    source: &SourceConfig,
    transaction_time: Option<String>,
) -> Result<Finished, AppError> {
    let started = Instant::now();
    metrics::run_started(&source.name);
    let views = config.views_for(&source.name);
    let result = source::run(
        cx,
        &config.ingest_settings(),
        source,
        views,
        transaction_time,
    );
    let outcome = match &result {
        Ok(run) => metrics::RunOutcome::of(run.outcome),
        Err(_) => metrics::RunOutcome::Failure,
    };
    let manifest = result
        .as_ref()
        .ok()
        .and_then(|run| run.summary.as_ref())
        .map(|s| &s.manifest);
    metrics::run_finished(&source.name, outcome, manifest, started.elapsed());
    let run = result?;
    if let Some(export) = &run.export {
        metrics::phase_finished(&source.name, "export", export.waited);
    }
    if let Some(summary) = &run.summary {
        metrics::phase_finished(&source.name, "ingest", summary.elapsed);
    }
    let mut compacted = Vec::new();
    let tables = match &run.summary {
        Some(summary) if config.warehouse.compact_after_run && summary.outcome.committed() => {
            summary.manifest.tables.keys().cloned().collect()
        }
        _ => Vec::new(),
    };
    for table in tables {
        let result = compact::compact_table(
            cx,
            &table,
            config.warehouse.compact_target_bytes,
            &config.parquet,
        )
        .map_err(|error| AppError::Compact {
            source_name: source.name.clone(),
            table: table.clone(),
            source: Box::new(error),
        })?;
        compacted.push((table, result));
    }
    Ok(Finished { run, compacted })
}
