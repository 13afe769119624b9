//! A `files` source: the NDJSON files under its paths, read one at a time.

use std::{num::NonZeroUsize, path::PathBuf, sync::Arc};

use super::{SourceConfig, SourceRun};
use crate::{
    ingest::{self, IngestError, IngestSettings, RunContext, RunSpec},
    input::{self, InputError},
    view::ViewDefinition,
    warehouse::ExportRecord,
};

/// Errors of a files source's run.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The files cannot be listed.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The run failed.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// Ingests the files under `paths` as one run of `source`, with `views`.
pub fn run(
    cx: &RunContext,
    settings: &IngestSettings,
    source: &SourceConfig,
    paths: &[PathBuf],
    views: Vec<Arc<ViewDefinition>>,
    transaction_time: Option<String>,
) -> Result<SourceRun, FilesError> {
    let inputs = input::discover(paths, &cx.registry)?;
    let name = &source.name;
    tracing::info!(
        "source {name}: {} files -> {}",
        inputs.len(),
        cx.warehouse.root()
    );
    let spec = RunSpec {
        source: name.clone(),
        namespace: source.namespace.clone(),
        inputs,
        parallel_files: NonZeroUsize::MIN,
        transaction_time,
        export: ExportRecord::default(),
        views,
    };
    let summary = ingest::run(cx, settings, spec)?;
    Ok(SourceRun {
        outcome: summary.outcome,
        summary: Some(summary),
        export: None,
    })
}
