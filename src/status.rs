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

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, path::Path};
use serde::Serialize;

use crate::{
    state::{Checkpoint, InFlight, SourceState},
    warehouse::{QUARANTINE_DIR, RunKind, Snapshot, Warehouse, WarehouseError},
};

/// Errors of status and cleanup.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Reading the warehouse failed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// Reading a source's checkpoint failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// Listing or deleting objects failed.
    #[error("warehouse {path}: {source}")]
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
        .filter_map(|o| {
            o.location
                .as_ref()
                .strip_prefix("_state/")?
                .split('/')
                .next()
                .map(str::to_owned)
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
    pub tables: BTreeMap<String, TableStatus>,
    /// Data files of no committed run.
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
    let listed = snapshot.listed_files();
    // When each replaced file stopped being live: its replacing commit.
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
        let top = path.split('/').next().unwrap_or_default();
        if top == QUARANTINE_DIR {
            classify_quarantine(path, &commit_times, &mut status.quarantine);
            continue;
        }
        if !is_data_file(path) {
            continue;
        }
        let leftover = |age_from: i64| Leftover {
            path: path.to_owned(),
            bytes: object.size,
            age_secs: now - age_from,
            run_id: run_id_of(path),
        };
        if let Some(at) = replaced_at.get(path) {
            status.replaced.push(leftover(*at));
        } else if !listed.contains(path) {
            status
                .staged
                .push(leftover(object.last_modified.timestamp()));
        }
    }
    Ok(status)
}

fn summarize_runs(snapshot: &Snapshot, status: &mut Status) {
    for run in &snapshot.runs {
        if run.kind == RunKind::Compaction {
            status.compactions += 1;
            continue;
        }
        let source = status.sources.entry(run.source.clone()).or_default();
        source.runs += 1;
        source.rows += run.tables.values().map(|t| t.rows).sum::<u64>();
        source.rejected_lines += run.rejected.lines;
        if run.run_id >= source.last_run_id {
            source.last_run_id = run.run_id.clone();
            source.last_finished_at = run.finished_at.clone();
            source.last_transaction_time = run.transaction_time.clone();
        }
        status.quarantine.committed_lines += run.rejected.lines;
    }
    for (resource_type, files) in snapshot.live_files() {
        let table = status.tables.entry(resource_type).or_default();
        for file in files {
            table.files += 1;
            table.rows += file.rows;
            table.bytes += file.bytes;
        }
    }
}

fn classify_quarantine(path: &str, committed: &BTreeMap<String, i64>, out: &mut QuarantineStatus) {
    let run_id = path.split('/').nth(1).unwrap_or_default();
    if committed.contains_key(run_id) {
        out.committed_files += 1;
    } else {
        out.uncommitted_files += 1;
    }
}

/// Whether `path` is laid out as a data file of this warehouse:
/// `<ResourceType>/[<partition>/]part-<run id>-<attempt>-<n>.parquet`. Anything else (a
/// nested warehouse under the same prefix, files of other tools) is never touched.
fn is_data_file(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let table = parts[0];
    (2..=3).contains(&parts.len())
        && table.starts_with(|c: char| c.is_ascii_uppercase())
        && table.chars().all(|c| c.is_ascii_alphanumeric())
        && run_id_of(path).is_some()
}

/// The run id in a data file name `part-<run id>-<attempt>-<nnnn>.parquet`.
pub fn run_id_of(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?;
    let stem = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let mut pieces = stem.rsplitn(3, '-');
    let (_n, _attempt, run_id) = (pieces.next()?, pieces.next()?, pieces.next()?);
    Some(run_id.to_owned())
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

/// What a cleanup removes (or would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cleanup {
    /// Staged files older than the grace period.
    pub staged: Vec<Leftover>,
    /// Replaced files whose replacement was committed longer ago than the grace period.
    pub replaced: Vec<Leftover>,
    /// Whether they were deleted (false: dry run).
    pub deleted: bool,
}

/// Finds staged and replaced files older than `grace_secs` and, if `delete`, deletes
/// them. A file listed by a committed manifest and not replaced is never touched.
pub async fn cleanup(
    warehouse: &Warehouse,
    now: i64,
    grace_secs: i64,
    delete: bool,
) -> Result<Cleanup, StatusError> {
    let status = status(warehouse, now).await?;
    let old = |l: &Leftover| l.age_secs >= grace_secs;
    let plan = Cleanup {
        staged: status.staged.into_iter().filter(old).collect(),
        replaced: status.replaced.into_iter().filter(old).collect(),
        deleted: delete,
    };
    if delete {
        // Re-read the committed runs just before deleting: a staged file whose run
        // committed meanwhile is live now and must stay.
        let listed_now = warehouse.snapshot().await?;
        let still_listed = listed_now.listed_files();
        let store = warehouse.store();
        for leftover in &plan.staged {
            if !still_listed.contains(leftover.path.as_str()) {
                delete_object(store.as_ref(), &leftover.path).await?;
            }
        }
        for leftover in &plan.replaced {
            if listed_now.replaced.contains(&leftover.path) {
                delete_object(store.as_ref(), &leftover.path).await?;
            }
        }
    }
    Ok(plan)
}

async fn delete_object(store: &dyn ObjectStore, path: &str) -> Result<(), StatusError> {
    match store.delete(&Path::from(path)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(StatusError::Store {
            path: path.into(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_come_out_of_file_names() {
        assert_eq!(
            run_id_of("Patient/export_date=2026-01-02/part-20260102T030405Z-0123abcd-9f8e7d6c-0003.parquet")
                .as_deref(),
            Some("20260102T030405Z-0123abcd")
        );
        assert_eq!(
            run_id_of("T/part-compact-00ff-aa-0000.parquet").as_deref(),
            Some("compact-00ff")
        );
        assert_eq!(run_id_of("T/other.parquet"), None);
        assert!(is_data_file(
            "Patient/export_date=x/part-r-1-a-0000.parquet"
        ));
        assert!(is_data_file("Patient/part-r-1-a-0000.parquet"));
        assert!(!is_data_file(
            "prod/Patient/export_date=x/part-r-1-a-0000.parquet"
        ));
        assert!(!is_data_file("_runs/part-r-1-a-0000.parquet"));
        assert!(!is_data_file("Patient/x/y/part-r-1-a-0000.parquet"));
    }
}
