//! The warehouse: where tables, run manifests, quarantined lines and source state live,
//! on local disk or in an object store (S3 and S3-compatible stores, Google Cloud
//! Storage, Azure). This module is the only code that knows paths and manifests:
//!
//! - [`config`]: `[warehouse]`, validated;
//! - [`store`]: the object store, built from the config and the environment, and the
//!   healthcheck;
//! - [`layout`]: every path (data files by [`TableId`], manifests, quarantine, state)
//!   and the run ids they carry, built and parsed back in one place;
//! - [`manifest`]: the run manifest, the record of what a run wrote;
//! - [`commit`]: the create-only commit of a run manifest, and the reader's rule of
//!   the manifest-only layout of earlier versions ([`Snapshot`]);
//! - [`tables`]: the Delta tables (`history/`, `current/`, `views/`) and their live
//!   files.

pub mod commit;
pub mod config;
pub mod layout;
pub mod manifest;
pub mod store;
pub mod tables;

use std::{
    path::{Path as FsPath, PathBuf},
    sync::Arc,
    time::Duration,
};

use object_store::{ObjectStore, client::HttpConnector, local::LocalFileSystem};

use self::store::{DefaultConnector, StoreHints, probe_retry_config, remote_store, retry_config};
pub use self::{
    commit::Snapshot,
    config::{PartitionBy, WarehouseConfig, WarehouseLocation},
    layout::{TableId, TableKind},
    manifest::{
        DeletedRef, ExportRecord, FileStats, InputTotals, MANIFEST_VERSION, Range, RejectedTotals,
        RunKind, RunManifest, TableManifest, ViewErrors, WrittenFile,
    },
    tables::LiveFile,
};

/// Errors of the warehouse.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// The warehouse cannot be created or its store configured.
    #[error("cannot open warehouse {root}")]
    Open {
        /// The root.
        root: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A local warehouse opened for reading only does not exist (nothing was written
    /// there yet, or the path is wrong); see [`Warehouse::open_existing`].
    #[error("warehouse {root} does not exist (no run has written there yet)")]
    Missing {
        /// The root.
        root: String,
    },
    /// The healthcheck failed: the store is not usable as configured.
    #[error("warehouse {root} is not usable: {problem} ({detail}); {hint}")]
    Unusable {
        /// The root.
        root: String,
        /// What went wrong, in words.
        problem: &'static str,
        /// The store's answer, shortened (HTTP status, S3 error code, or the cause).
        detail: String,
        /// What to check.
        hint: &'static str,
    },
    /// A store operation failed.
    #[error("warehouse {path}")]
    Store {
        /// The object.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A data file listed by a manifest does not read as Parquet.
    #[error("data file {path} is not readable Parquet")]
    DataFile {
        /// The object.
        path: String,
        /// The reader's error.
        source: parquet::errors::ParquetError,
    },
    /// A run manifest is not what this version reads.
    #[error("run manifest {path}: {reason}")]
    Manifest {
        /// The object.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A Delta table's log cannot be read.
    #[error(transparent)]
    Delta(#[from] crate::delta::DeltaError),
    /// The run id was committed before (by an earlier run or a concurrent ingester).
    #[error("run {run_id} is already committed ({path})")]
    AlreadyCommitted {
        /// The run id.
        run_id: String,
        /// Its manifest.
        path: String,
    },
}

/// An opened warehouse.
#[derive(Debug, Clone)]
pub struct Warehouse {
    store: Arc<dyn ObjectStore>,
    /// The same store with few retries and short timeouts, for the healthcheck.
    probe: Arc<dyn ObjectStore>,
    root: String,
    /// `vacuum_retention`: checkpoints keep tombstones at least this long.
    tombstone_retention: Duration,
    /// What the healthcheck says of this kind of store.
    hints: &'static StoreHints,
    /// The directory of a local warehouse (the healthcheck removes the probes'
    /// directory there, which the local store leaves behind).
    local_dir: Option<PathBuf>,
}

impl Warehouse {
    /// Opens the configured warehouse: a local directory (created) or an object store.
    /// Nothing is sent over the network: call [`healthcheck`](Self::healthcheck) next.
    pub fn open(config: &WarehouseConfig) -> Result<Self, WarehouseError> {
        Self::open_with_connector(config, None::<DefaultConnector>)
    }

    /// As [`open`](Self::open), with the object store's HTTP requests going through
    /// `connector` (tests inject throttling and server errors this way).
    pub fn open_with_connector<C: HttpConnector + Clone>(
        config: &WarehouseConfig,
        connector: Option<C>,
    ) -> Result<Self, WarehouseError> {
        let root = config.location.to_string();
        let mut warehouse = match &config.location {
            WarehouseLocation::Local(path) => Self::open_local(path)?,
            WarehouseLocation::Remote {
                scheme,
                bucket,
                prefix,
            } => {
                let build = |retry, timeout| {
                    remote_store(
                        *scheme,
                        bucket,
                        prefix,
                        &config.store,
                        retry,
                        timeout,
                        &connector,
                    )
                    .map_err(|source| WarehouseError::Open {
                        root: root.clone(),
                        source: Box::new(source),
                    })
                };
                let store = build(retry_config(&config.store), config.store.request_timeout)?;
                let probe = build(probe_retry_config(&config.store), Duration::from_secs(15))?;
                Self {
                    store,
                    probe,
                    root,
                    tombstone_retention: Duration::ZERO,
                    hints: StoreHints::of(Some(*scheme)),
                    local_dir: None,
                }
            }
        };
        // So that `vacuum` with this retention sees every tombstone it would keep a file
        // for (the table's own retention, a week by default, applies when longer).
        warehouse.tombstone_retention = config.vacuum_retention;
        Ok(warehouse)
    }

    /// Opens (and creates) a warehouse in a local directory.
    pub fn open_local(root: &FsPath) -> Result<Self, WarehouseError> {
        let open_error = |source: std::io::Error| WarehouseError::Open {
            root: root.display().to_string(),
            source: Box::new(source),
        };
        std::fs::create_dir_all(root).map_err(open_error)?;
        let store = LocalFileSystem::new_with_prefix(root).map_err(|e| WarehouseError::Open {
            root: root.display().to_string(),
            source: Box::new(e),
        })?;
        Ok(Self {
            local_dir: Some(root.to_path_buf()),
            ..Self::from_store(Arc::new(store), root.display().to_string())
        })
    }

    /// A warehouse over any store (tests wrap stores to inject faults).
    pub fn from_store(store: Arc<dyn ObjectStore>, root: String) -> Self {
        Self {
            probe: store.clone(),
            store,
            root,
            tombstone_retention: Duration::ZERO,
            hints: StoreHints::of(None),
            local_dir: None,
        }
    }

    /// The object store under the root.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The root, for messages.
    pub fn root(&self) -> &str {
        &self.root
    }
}
