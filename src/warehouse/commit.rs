//! The commit protocol and the reader's rule (see `docs/commit-protocol.md`).
//!
//! Data files are written first, under names unique to the attempt; then the run
//! manifest with a create-only put, which exactly one writer of a run id can win. The
//! files of the warehouse are those listed by committed manifests, minus those listed
//! in the `replaces` of committed manifests (compaction). Anything else is a staged
//! leftover.

use std::collections::{BTreeMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, path::Path};
use parquet::arrow::{
    ProjectionMask,
    arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder},
};

use super::{
    Warehouse, WarehouseError,
    layout::{self, TableId},
    manifest::{RunManifest, WrittenFile},
};

/// Largest run manifest read (a manifest lists files, not rows).
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

impl Warehouse {
    /// Commits a run by writing its manifest with a create-only put: of two writers of
    /// one run id, exactly one succeeds; the other gets [`WarehouseError::AlreadyCommitted`].
    pub async fn commit(&self, manifest: &RunManifest) -> Result<Path, WarehouseError> {
        let path = layout::manifest_path(&manifest.run_id);
        let body = serde_json::to_vec_pretty(manifest).map_err(|e| WarehouseError::Manifest {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(body), options)
            .await
        {
            Ok(_) => Ok(path),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(WarehouseError::AlreadyCommitted {
                run_id: manifest.run_id.clone(),
                path: path.to_string(),
            }),
            Err(source) => Err(WarehouseError::Store {
                path: path.to_string(),
                source,
            }),
        }
    }

    /// The manifest of `run_id`, if that run is committed.
    pub async fn committed_run(&self, run_id: &str) -> Result<Option<RunManifest>, WarehouseError> {
        match self.read_manifest(&layout::manifest_path(run_id)).await {
            Ok(manifest) => Ok(Some(manifest)),
            Err(WarehouseError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every committed run, in run id order (which is start time order).
    pub async fn committed_runs(&self) -> Result<Vec<RunManifest>, WarehouseError> {
        Ok(self
            .committed_runs_with_times()
            .await?
            .into_iter()
            .map(|(manifest, _)| manifest)
            .collect())
    }

    /// Every committed run with the time its manifest was written (seconds since the
    /// Unix epoch).
    pub async fn committed_runs_with_times(
        &self,
    ) -> Result<Vec<(RunManifest, i64)>, WarehouseError> {
        let prefix = Path::from(layout::RUNS_DIR);
        let mut objects: Vec<_> =
            self.store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|source| WarehouseError::Store {
                    path: prefix.to_string(),
                    source,
                })?;
        objects.retain(|o| o.location.as_ref().ends_with(".json"));
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        // Manifests are small: read a few at a time.
        let reads = futures::stream::iter(objects)
            .map(|object| async move {
                let manifest = self.read_manifest(&object.location).await?;
                Ok::<_, WarehouseError>((manifest, object.last_modified.timestamp()))
            })
            .buffered(8);
        reads.try_collect().await
    }

    /// The files of the warehouse by the reader's rule.
    pub async fn snapshot(&self) -> Result<Snapshot, WarehouseError> {
        Ok(Snapshot::new(self.committed_runs().await?))
    }

    async fn read_manifest(&self, path: &Path) -> Result<RunManifest, WarehouseError> {
        let store_error = |source| WarehouseError::Store {
            path: path.to_string(),
            source,
        };
        let result = self.store.get(path).await.map_err(store_error)?;
        if result.meta.size > MAX_MANIFEST_BYTES {
            return Err(WarehouseError::Manifest {
                path: path.to_string(),
                reason: format!("{} bytes, more than {MAX_MANIFEST_BYTES}", result.meta.size),
            });
        }
        let bytes = result.bytes().await.map_err(store_error)?;
        serde_json::from_slice(&bytes).map_err(|e| WarehouseError::Manifest {
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    /// A data file of the warehouse as record batches of 4096 rows. The file is read
    /// into memory whole (data files are bounded by `parquet.max_file_mib`).
    pub async fn read_parquet(
        &self,
        path: &str,
    ) -> Result<ParquetRecordBatchReader, WarehouseError> {
        self.read_parquet_columns(path, None).await
    }

    /// As [`read_parquet`](Self::read_parquet), with only the columns at the dotted
    /// paths given (`meta.versionId`; a struct path takes all its leaves), when given.
    pub async fn read_parquet_columns(
        &self,
        path: &str,
        columns: Option<&[&str]>,
    ) -> Result<ParquetRecordBatchReader, WarehouseError> {
        let store_error = |source| WarehouseError::Store {
            path: path.to_owned(),
            source,
        };
        let bytes = self
            .store
            .get(&Path::from(path))
            .await
            .map_err(store_error)?
            .bytes()
            .await
            .map_err(store_error)?;
        ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| {
                let b = match columns {
                    Some(columns) => {
                        let mask =
                            ProjectionMask::columns(b.parquet_schema(), columns.iter().copied());
                        b.with_projection(mask)
                    }
                    None => b,
                };
                b.with_batch_size(4096).build()
            })
            .map_err(|source| WarehouseError::DataFile {
                path: path.to_owned(),
                source,
            })
    }
}

/// The committed state of a warehouse, by the reader's rule.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Committed runs, in run id order.
    pub runs: Vec<RunManifest>,
    /// Files listed in `replaces` of committed manifests.
    pub replaced: HashSet<String>,
}

impl Snapshot {
    /// The snapshot of these committed runs.
    pub fn new(runs: Vec<RunManifest>) -> Self {
        let replaced = runs
            .iter()
            .flat_map(|run| run.replaces.iter().cloned())
            .collect();
        Self { runs, replaced }
    }

    /// The live files of each table: listed by a committed manifest and not replaced.
    pub fn live_files(&self) -> BTreeMap<TableId, Vec<WrittenFile>> {
        let mut tables: BTreeMap<TableId, Vec<WrittenFile>> = BTreeMap::new();
        for run in &self.runs {
            for (table, files) in &run.tables {
                let live = files
                    .files
                    .iter()
                    .filter(|f| !self.replaced.contains(&f.path))
                    .cloned();
                tables.entry(table.clone()).or_default().extend(live);
            }
        }
        tables.retain(|_, files| !files.is_empty());
        tables
    }

    /// Every file any committed manifest lists (replaced ones included).
    pub fn listed_files(&self) -> HashSet<&str> {
        self.runs
            .iter()
            .flat_map(|run| run.tables.values())
            .flat_map(|table| table.files.iter().map(|f| f.path.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::warehouse::manifest::{
        InputTotals, MANIFEST_VERSION, RejectedTotals, RunKind, TableManifest,
    };

    fn run(run_id: &str, files: &[&str], replaces: &[&str]) -> RunManifest {
        let mut table = TableManifest::default();
        for path in files {
            table.push(WrittenFile {
                path: path.to_string(),
                rows: 1,
                bytes: 1,
                stats: None,
                delta_stats: None,
            });
        }
        RunManifest {
            format_version: MANIFEST_VERSION,
            run_id: run_id.into(),
            kind: if replaces.is_empty() {
                RunKind::Ingest
            } else {
                RunKind::Compaction
            },
            attempt: "a".into(),
            source: "s".into(),
            started_at: String::new(),
            finished_at: String::new(),
            transaction_time: None,
            tables: BTreeMap::from([(TableId::legacy("Patient"), table)]),
            replaces: replaces.iter().map(|s| s.to_string()).collect(),
            input: InputTotals::default(),
            rejected: RejectedTotals::default(),
            deleted: Vec::new(),
            server_errors: Vec::new(),
            view_errors: Default::default(),
        }
    }

    #[test]
    fn readers_rule_excludes_replaced_files() {
        let snapshot = Snapshot::new(vec![
            run("1", &["a", "b"], &[]),
            run("2", &["c"], &[]),
            run("3", &["ab"], &["a", "b"]),
        ]);
        let live: Vec<_> = snapshot.live_files()[&TableId::legacy("Patient")]
            .iter()
            .map(|f| f.path.clone())
            .collect();
        assert_eq!(live, ["c", "ab"]);
        assert_eq!(snapshot.listed_files().len(), 4);
    }

    #[tokio::test]
    async fn second_commit_of_a_run_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Warehouse::open_local(dir.path()).unwrap();
        warehouse.healthcheck().await.unwrap();
        let manifest = run("r1", &["x"], &[]);
        warehouse.commit(&manifest).await.unwrap();
        let err = warehouse.commit(&manifest).await.unwrap_err();
        assert!(
            matches!(err, WarehouseError::AlreadyCommitted { .. }),
            "{err}"
        );
        assert_eq!(warehouse.committed_run("r1").await.unwrap(), Some(manifest));
        assert_eq!(warehouse.committed_run("r2").await.unwrap(), None);
    }
}
