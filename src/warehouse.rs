//! The warehouse: where tables, run manifests and quarantined lines live.
//!
//! ```text
//! <root>/<ResourceType>/export_date=<YYYY-MM-DD>/part-<run id>-<n>.parquet
//! <root>/_runs/<run id>.json              written last: the run is committed
//! <root>/_quarantine/<run id>/rejected.ndjson
//! ```
//!
//! The reader's rule: a data file belongs to the warehouse only when a run manifest under
//! `_runs/` lists it. Files of a run that died before its manifest are staged leftovers.

use std::{collections::BTreeMap, path::Path as FsPath, sync::Arc};

use futures::TryStreamExt;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, local::LocalFileSystem,
    path::Path,
};
use serde::{Deserialize, Serialize};

use crate::{config::PartitionBy, sink::WrittenFile};

/// Directory of run manifests.
pub const RUNS_DIR: &str = "_runs";
/// Directory of quarantined lines.
pub const QUARANTINE_DIR: &str = "_quarantine";

/// Errors of the warehouse.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// The root directory cannot be created or opened.
    #[error("cannot open warehouse {root}: {reason}")]
    Open {
        /// The root.
        root: String,
        /// Why.
        reason: String,
    },
    /// A store operation failed.
    #[error("warehouse {path}: {source}")]
    Store {
        /// The object.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A run manifest is not what this version writes.
    #[error("run manifest {path}: {source}")]
    Manifest {
        /// The object.
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// An opened warehouse.
#[derive(Debug, Clone)]
pub struct Warehouse {
    store: Arc<dyn ObjectStore>,
    root: String,
}

impl Warehouse {
    /// Opens (and creates) a warehouse in a local directory.
    pub fn open_local(root: &FsPath) -> Result<Self, WarehouseError> {
        let open_error = |reason: String| WarehouseError::Open {
            root: root.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(root).map_err(|e| open_error(e.to_string()))?;
        let store =
            LocalFileSystem::new_with_prefix(root).map_err(|e| open_error(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            root: root.display().to_string(),
        })
    }

    /// The object store under the root.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The root, for messages.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Path of data file `n` of a run for a table and partition.
    pub fn data_file(resource_type: &str, partition: Option<&str>, run_id: &str, n: usize) -> Path {
        let name = format!("part-{run_id}-{n:04}.parquet");
        match partition {
            Some(p) => Path::from(format!("{resource_type}/{p}/{name}")),
            None => Path::from(format!("{resource_type}/{name}")),
        }
    }

    /// Path of a run's quarantine file.
    pub fn quarantine_file(run_id: &str) -> Path {
        Path::from(format!("{QUARANTINE_DIR}/{run_id}/rejected.ndjson"))
    }

    /// Commits a run by writing its manifest; fails if that run id was committed before.
    pub async fn commit(&self, manifest: &RunManifest) -> Result<Path, WarehouseError> {
        let path = Path::from(format!("{RUNS_DIR}/{}.json", manifest.run_id));
        let body =
            serde_json::to_vec_pretty(manifest).map_err(|source| WarehouseError::Manifest {
                path: path.to_string(),
                source,
            })?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&path, PutPayload::from(body), options)
            .await
            .map_err(|source| WarehouseError::Store {
                path: path.to_string(),
                source,
            })?;
        Ok(path)
    }

    /// Every committed run, oldest first.
    pub async fn committed_runs(&self) -> Result<Vec<RunManifest>, WarehouseError> {
        let prefix = Path::from(RUNS_DIR);
        let store_error = |source| WarehouseError::Store {
            path: prefix.to_string(),
            source,
        };
        let mut objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(store_error)?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        let mut runs = Vec::with_capacity(objects.len());
        for object in objects
            .into_iter()
            .filter(|o| o.location.as_ref().ends_with(".json"))
        {
            let path = object.location.to_string();
            let bytes = self
                .store
                .get(&object.location)
                .await
                .map_err(|source| WarehouseError::Store {
                    path: path.clone(),
                    source,
                })?
                .bytes()
                .await
                .map_err(|source| WarehouseError::Store {
                    path: path.clone(),
                    source,
                })?;
            runs.push(
                serde_json::from_slice(&bytes)
                    .map_err(|source| WarehouseError::Manifest { path, source })?,
            );
        }
        Ok(runs)
    }
}

/// The partition directory of a run, from the export date (`YYYY-MM-DD...`).
pub fn partition_dir(partition_by: PartitionBy, export_date: &str) -> Option<String> {
    match partition_by {
        PartitionBy::None => None,
        PartitionBy::ExportDate => Some(format!(
            "export_date={}",
            export_date.get(..10).unwrap_or(export_date)
        )),
    }
}

/// What a committed run wrote: the record that makes its files part of the warehouse.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunManifest {
    /// Version of this format.
    pub format_version: u32,
    /// The run id.
    pub run_id: String,
    /// The source name.
    pub source: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// When the run finished.
    pub finished_at: String,
    /// The export's transactionTime, if any.
    pub transaction_time: Option<String>,
    /// Per resource type: the files and their row counts.
    pub tables: BTreeMap<String, TableManifest>,
    /// Input totals.
    pub input: InputTotals,
    /// Lines rejected, and where they are kept.
    pub rejected: RejectedTotals,
    /// Resources the export's `deleted[]` files say were deleted since `_since`: readers
    /// drop earlier versions of these (type, id). Empty for files sources.
    #[serde(default)]
    pub deleted: Vec<DeletedRef>,
    /// The export's `error[]` OperationOutcomes, as plain text (one line per issue).
    #[serde(default)]
    pub server_errors: Vec<String>,
}

/// A resource deleted on the server, as listed in a run manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeletedRef {
    /// The resource type.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// The logical id.
    pub id: String,
}

/// The files of one table in a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TableManifest {
    /// Rows over all files.
    pub rows: u64,
    /// The files.
    pub files: Vec<WrittenFile>,
}

/// What a run read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InputTotals {
    /// Files.
    pub files: u64,
    /// Lines, blank ones included.
    pub lines: u64,
    /// Bytes of NDJSON (decompressed).
    pub bytes: u64,
    /// Lines neither ingested nor rejected: `Parameters` header lines of export files.
    #[serde(default)]
    pub skipped: u64,
}

/// The rejected lines of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RejectedTotals {
    /// How many.
    pub lines: u64,
    /// The quarantine file, when there are any.
    pub quarantine: Option<String>,
    /// Count per reason kind (first words of the reason).
    pub by_reason: BTreeMap<String, u64>,
}
