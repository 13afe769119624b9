//! Sources: where a run's data comes from. Each kind builds a complete
//! [`RunSpec`](crate::ingest::RunSpec) and hands it to [`crate::ingest::run`]:
//!
//! - [`files`]: NDJSON files on disk (backfills, drop folders);
//! - [`bulk`]: a FHIR server's Bulk Data `$export`, incremental from a checkpoint, with
//!   its [`state`] (checkpoints and the export in flight) kept in the warehouse.

pub mod bulk;
pub mod config;
pub mod files;
pub mod state;

pub use self::config::{SourceConfig, SourceKind};
use self::state::Checkpoint;
use std::sync::Arc;

use crate::ingest::{IngestError, IngestSettings, Outcome, RunContext, RunSummary};
use crate::input::InputError;
use crate::view::ViewDefinition;

/// Errors of a source's run.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source's files cannot be listed.
    #[error("source {source_name}")]
    Input {
        /// The source.
        source_name: String,
        /// What went wrong.
        source: Box<InputError>,
    },
    /// The run failed (nothing committed).
    #[error("source {source_name}")]
    Ingest {
        /// The source.
        source_name: String,
        /// What went wrong.
        source: Box<IngestError>,
    },
    /// The export failed (nothing committed, checkpoint unchanged).
    #[error("source {source_name}")]
    Export {
        /// The source.
        source_name: String,
        /// What went wrong.
        source: Box<bulk::ExportError>,
    },
}

/// What a bulk run adds to the ingest run's summary.
#[derive(Debug, Clone)]
pub struct ExportInfo {
    /// The `_since` asked for (none: a full export).
    pub since: Option<String>,
    /// Whether an export in flight from an earlier run was resumed.
    pub resumed: bool,
    /// The new checkpoint, when the run committed.
    pub checkpoint: Option<Checkpoint>,
    /// Time from the start of the run to the export's manifest (kick-off or resume,
    /// and polling).
    pub waited: std::time::Duration,
    /// The parts the server reported as failed (`error[]` issues of severity error or
    /// fatal) when they held the checkpoint (`on_server_errors = "hold-checkpoint"`):
    /// the run is partial and the next one asks again from the same `_since`.
    pub server_failures: Vec<String>,
}

/// The result of a source's run.
#[derive(Debug, Clone)]
pub struct SourceRun {
    /// How it ended.
    pub outcome: Outcome,
    /// The ingest run's summary (the run manifest, time); none when the run was
    /// cancelled before it started.
    pub summary: Option<RunSummary>,
    /// For bulk sources: the export's details.
    pub export: Option<ExportInfo>,
}

/// Runs `source` once into the context's warehouse, computing `views` from its
/// resources; for `files` sources with the
/// export's `transaction_time` when one is known (`convert --transaction-time`).
/// Blocking: call it outside the runtime.
pub fn run(
    cx: &RunContext,
    settings: &IngestSettings,
    source: &SourceConfig,
    views: Vec<Arc<ViewDefinition>>,
    transaction_time: Option<String>,
) -> Result<SourceRun, SourceError> {
    let source_name = source.name.clone();
    match &source.kind {
        SourceKind::Files { paths } => {
            files::run(cx, settings, source, paths, views, transaction_time).map_err(|e| match e {
                files::FilesError::Input(e) => SourceError::Input {
                    source_name,
                    source: Box::new(e),
                },
                files::FilesError::Ingest(e) => SourceError::Ingest {
                    source_name,
                    source: Box::new(e),
                },
            })
        }
        SourceKind::Bulk { client } => {
            bulk::run(cx, settings, source, client, views).map_err(|e| SourceError::Export {
                source_name,
                source: Box::new(e),
            })
        }
    }
}
