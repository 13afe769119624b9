//! What is in a warehouse, by the reader's rule, and the cleanup of what is not part of it.
//!
//! An inventory lists every object once and sorts the data files into:
//! - **live**: listed by a committed manifest and not replaced (what readers read);
//! - **replaced**: listed by a committed manifest, but replaced by a committed
//!   compaction; readers skip them, `cleanup` deletes them after the grace period;
//! - **staged**: listed by no committed manifest: files of a run in progress, of a
//!   crashed attempt, or of the loser of a race. `cleanup` deletes them once they are
//!   older than the grace period (so a run in progress is never touched).
//!
//! Quarantine files are never deleted: they are the record of what was rejected.

use std::collections::{BTreeMap, HashMap};

use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStore};
use serde::Serialize;

use crate::{
    source::state::{Checkpoint, InFlight, SourceState, StateError},
    warehouse::{
        RunKind, Snapshot, TableId, Warehouse, WarehouseError,
        layout::{self, ObjectKind},
    },
};

/// Errors of status and cleanup.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Reading the warehouse failed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// Reading a source's checkpoint failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Listing or deleting objects failed.
    #[error("warehouse {path}")]
    Store {
        /// The object or prefix.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
}

/// The sources with state under `_state/<source>/`.
fn state_sources(objects: &[ObjectMeta]) -> Vec<String> {
    let mut sources: Vec<String> = objects
        .iter()
        .filter_map(|o| match layout::classify(o.location.as_ref()) {
            ObjectKind::State { source } => Some(source),
            _ => None,
        })
        .collect();
    sources.sort();
    sources.dedup();
    sources
}

/// One object that is not part of the warehouse.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Leftover {
    /// Path under the root.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Age in seconds (of the object if staged; of the replacing commit if replaced).
    pub age_secs: i64,
    /// The run id in its name (`part-<run id>-<attempt>-<n>.parquet`), if any.
    pub run_id: Option<String>,
}

/// Committed runs of one source.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SourceStatus {
    /// Committed runs.
    pub runs: u64,
    /// Rows committed, over all tables.
    pub rows: u64,
    /// Lines rejected, over all committed runs.
    pub rejected_lines: u64,
    /// The latest run id.
    pub last_run_id: String,
    /// When it finished.
    pub last_finished_at: String,
    /// Its export transactionTime.
    pub last_transaction_time: Option<String>,
}

/// The state of a warehouse.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// The root.
    pub warehouse: String,
    /// Committed ingest runs per source.
    pub sources: BTreeMap<String, SourceStatus>,
    /// Committed compaction runs.
    pub compactions: u64,
    /// Live files and rows per table.
    pub tables: BTreeMap<TableId, TableStatus>,
    /// Data files of no committed run: for Delta tables, those no table's log names
    /// (attempts that did not commit, and removed files whose tombstones have left the
    /// checkpoints; aged by their write time).
    pub staged: Vec<Leftover>,
    /// Data files replaced by a committed compaction.
    pub replaced: Vec<Leftover>,
    /// Quarantine files: those of committed runs, and those of runs never committed.
    pub quarantine: QuarantineStatus,
    /// Bulk sources: checkpoint and export in flight, from `_state/`.
    pub exports: BTreeMap<String, ExportStatus>,
}

/// Where a bulk source stands.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ExportStatus {
    /// Number of the current checkpoint (0: none yet).
    pub checkpoint_seq: u64,
    /// The current checkpoint: the next run asks for changes since its transactionTime.
    pub checkpoint: Option<Checkpoint>,
    /// An export kicked off and not yet committed (the next run resumes it).
    pub in_flight: Option<InFlight>,
}

/// Live data of one table.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TableStatus {
    /// The Delta version (none for a table of the manifest-only layout).
    pub version: Option<i64>,
    /// Files.
    pub files: u64,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Quarantine counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct QuarantineStatus {
    /// Files of committed runs.
    pub committed_files: u64,
    /// Rejected lines recorded by committed runs.
    pub committed_lines: u64,
    /// Files of runs that never committed (too many rejected lines, or crashed).
    pub uncommitted_files: u64,
}

/// Where a data file of a Delta table stands in its table's log.
enum InLog {
    /// Live: part of the table.
    Live,
    /// Removed by a commit (seconds since the Unix epoch); kept for readers of older
    /// versions until the retention passes.
    Removed(i64),
}

/// Reads the state of a warehouse. `now` is seconds since the Unix epoch.
pub async fn status(warehouse: &Warehouse, now: i64) -> Result<Status, StatusError> {
    let runs = warehouse.committed_runs_with_times().await?;
    let commit_times: BTreeMap<String, i64> = runs
        .iter()
        .map(|(run, at)| (run.run_id.clone(), *at))
        .collect();
    let snapshot = Snapshot::new(runs.into_iter().map(|(run, _)| run).collect());
    let objects = list_all(warehouse.store().as_ref()).await?;
    let mut status = Status {
        warehouse: warehouse.root().to_owned(),
        ..Status::default()
    };
    summarize_runs(&snapshot, &mut status);
    let in_logs = summarize_delta_tables(warehouse, &mut status).await?;
    let listed = snapshot.listed_files();
    // When each replaced file of the manifest-only layout stopped being live.
    let mut replaced_at = BTreeMap::new();
    for run in &snapshot.runs {
        for path in &run.replaces {
            let at = commit_times.get(&run.run_id).copied().unwrap_or(now);
            replaced_at.entry(path.as_str()).or_insert(at);
        }
    }
    for source in state_sources(&objects) {
        let state = SourceState::new(warehouse.store(), &source);
        let (checkpoint_seq, checkpoint) = state.checkpoint().await?;
        let in_flight = state.in_flight().await?;
        status.exports.insert(
            source,
            ExportStatus {
                checkpoint_seq,
                checkpoint,
                in_flight,
            },
        );
    }
    for object in &objects {
        let path = object.location.as_ref();
        let (table, run_id) = match layout::classify(path) {
            ObjectKind::Quarantine { run_id } => {
                classify_quarantine(&run_id, &commit_times, &mut status.quarantine);
                continue;
            }
            ObjectKind::DataFile { table, run_id, .. } => (table, run_id),
            _ => continue,
        };
        let leftover = |age_from: i64| Leftover {
            path: path.to_owned(),
            bytes: object.size,
            age_secs: now - age_from,
            run_id: Some(run_id.clone()),
        };
        let written = object.last_modified.timestamp();
        if table.is_delta() {
            match in_logs.get(path) {
                Some(InLog::Live) => {}
                Some(InLog::Removed(at)) => status.replaced.push(leftover(*at)),
                None => status.staged.push(leftover(written)),
            }
        } else if let Some(at) = replaced_at.get(path) {
            status.replaced.push(leftover(*at));
        } else if !listed.contains(path) {
            status.staged.push(leftover(written));
        }
    }
    Ok(status)
}

/// Adds each Delta table's live files, rows, bytes and version to `status`; returns
/// where each data file named by a table's log stands.
async fn summarize_delta_tables(
    warehouse: &Warehouse,
    status: &mut Status,
) -> Result<HashMap<String, InLog>, StatusError> {
    let mut in_logs = HashMap::new();
    for table in warehouse.delta_tables().await? {
        let Some(snapshot) = warehouse
            .table_snapshot(&table)
            .await
            .map_err(WarehouseError::from)?
        else {
            continue;
        };
        let entry = status.tables.entry(table.clone()).or_default();
        entry.version = Some(snapshot.version());
        for (key, add) in snapshot.files() {
            entry.files += 1;
            entry.rows += add
                .num_records()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0);
            entry.bytes += u64::try_from(add.size).unwrap_or(0);
            in_logs.insert(format!("{}/{key}", table.dir()), InLog::Live);
        }
        for (key, remove) in snapshot.tombstones() {
            let at = remove.deletion_timestamp.unwrap_or(0).div_euclid(1000);
            in_logs
                .entry(format!("{}/{key}", table.dir()))
                .or_insert(InLog::Removed(at));
        }
    }
    Ok(in_logs)
}

fn summarize_runs(snapshot: &Snapshot, status: &mut Status) {
    for run in &snapshot.runs {
        match run.kind {
            RunKind::Compaction => {
                status.compactions += 1;
                continue;
            }
            RunKind::Upgrade => continue,
            RunKind::Ingest => {}
        }
        let source = status.sources.entry(run.source.clone()).or_default();
        source.runs += 1;
        source.rows += run.rows();
        source.rejected_lines += run.rejected.lines;
        if run.run_id >= source.last_run_id {
            source.last_run_id = run.run_id.clone();
            source.last_finished_at = run.finished_at.clone();
            source.last_transaction_time = run.transaction_time.clone();
        }
        status.quarantine.committed_lines += run.rejected.lines;
    }
    // Tables of the manifest-only layout of earlier versions (not yet upgraded).
    for (table, files) in snapshot
        .live_files()
        .into_iter()
        .filter(|(t, _)| !t.is_delta())
    {
        let table = status.tables.entry(table).or_default();
        for file in files {
            table.files += 1;
            table.rows += file.rows;
            table.bytes += file.bytes;
        }
    }
}

fn classify_quarantine(
    run_id: &str,
    committed: &BTreeMap<String, i64>,
    out: &mut QuarantineStatus,
) {
    if committed.contains_key(run_id) {
        out.committed_files += 1;
    } else {
        out.uncommitted_files += 1;
    }
}

/// Every object of the store (listing is paged by the store; only metadata is kept).
async fn list_all(store: &dyn ObjectStore) -> Result<Vec<ObjectMeta>, StatusError> {
    store
        .list(None)
        .try_collect()
        .await
        .map_err(|source| StatusError::Store {
            path: "/".into(),
            source,
        })
}
