//! Compaction: the small live files of a table's partitions rewritten into files of a
//! target size, committed as a *compaction run*.
//!
//! A compaction run follows the same protocol as an ingest: new files first (names
//! unique to the attempt), then a manifest with a create-only put. Its manifest lists the
//! new files under `tables` and the files they replace under `replaces`; by the reader's
//! rule a replaced file stops being part of the warehouse the moment that manifest
//! exists, and the new files start at the same moment, so no reader sees a row twice or
//! misses one. The replaced files stay in place until `cleanup` deletes them after the
//! grace period (queries that listed them before the commit can finish).
//!
//! The run id is derived from the set of files replaced (`compact-<hash>`): two
//! compactions of the same files race on one manifest and exactly one wins.
//!
//! Memory: one input file at a time (smaller than the target, by selection) plus the
//! row group and upload part of the output file.

use std::collections::BTreeMap;

use tokio::runtime::Handle;

use crate::{
    config::ParquetConfig,
    pipeline::{fnv1a, new_attempt, now_rfc3339},
    schema::Registry,
    sink::{ParquetFile, SinkError, WrittenFile, writer_properties},
    warehouse::{
        InputTotals, MANIFEST_VERSION, RejectedTotals, RunKind, RunManifest, TableManifest,
        Warehouse, WarehouseError,
    },
};

/// Errors of compaction.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// Reading the committed state or committing failed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// Writing a new file failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Reading a file to compact failed.
    #[error("reading {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Rows read differ from the rows the manifests recorded (nothing is committed).
    #[error("{path}: {found} rows, but its manifest says {expected}; nothing committed")]
    RowCount {
        /// The file.
        path: String,
        /// Rows in the manifest.
        expected: u64,
        /// Rows read.
        found: u64,
    },
}

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compacted {
    /// No partition had two or more files smaller than the target.
    Nothing,
    /// Committed: the compaction run's id, files replaced, files written, rows.
    Committed {
        /// The compaction run id.
        run_id: String,
        /// Files replaced.
        replaced: usize,
        /// Files written.
        written: usize,
        /// Rows moved.
        rows: u64,
    },
    /// Another compaction of the same files committed first; this one's files are
    /// staged leftovers.
    CommittedByAnother {
        /// The compaction run id.
        run_id: String,
    },
}

/// Compacts the live files of `resource_type` smaller than `target_bytes`, partition by
/// partition. Blocking: call it outside the runtime whose handle it is given.
pub fn compact_table(
    warehouse: &Warehouse,
    registry: &Registry,
    resource_type: &str,
    target_bytes: usize,
    parquet: &ParquetConfig,
    runtime: Handle,
) -> Result<Compacted, CompactError> {
    let started_at = now_rfc3339();
    let snapshot = runtime.block_on(warehouse.snapshot())?;
    let live = snapshot
        .live_files()
        .remove(resource_type)
        .unwrap_or_default();
    let partitions = small_files_by_partition(live, target_bytes as u64);
    if partitions.is_empty() {
        return Ok(Compacted::Nothing);
    }
    let mut replaced: Vec<&WrittenFile> = partitions.values().flatten().collect();
    replaced.sort_by(|a, b| a.path.cmp(&b.path));
    let run_id = format!("compact-{:016x}", compaction_hash(&replaced));
    let attempt = new_attempt();
    let mut table = TableManifest::default();
    let properties = writer_properties(&ParquetConfig {
        max_file_bytes: target_bytes,
        ..parquet.clone()
    });
    let schema = registry.get(resource_type).map(|s| s.arrow_schema());
    for (partition, files) in &partitions {
        let mut output = Output {
            warehouse,
            resource_type,
            partition: partition.as_deref(),
            run_id: &run_id,
            attempt: &attempt,
            properties: properties.clone(),
            schema: schema.clone(),
            target_bytes,
            runtime: runtime.clone(),
            current: None,
            table: &mut table,
        };
        for file in files {
            output.copy(file)?;
        }
        output.finish()?;
    }
    let rows_in: u64 = replaced.iter().map(|f| f.rows).sum();
    if table.rows != rows_in {
        return Err(CompactError::RowCount {
            path: resource_type.into(),
            expected: rows_in,
            found: table.rows,
        });
    }
    let manifest = RunManifest {
        format_version: MANIFEST_VERSION,
        run_id: run_id.clone(),
        kind: RunKind::Compaction,
        attempt,
        source: "compaction".into(),
        started_at,
        finished_at: now_rfc3339(),
        transaction_time: None,
        input: InputTotals {
            files: replaced.len() as u64,
            lines: rows_in,
            bytes: replaced.iter().map(|f| f.bytes).sum(),
            skipped: 0,
        },
        replaces: replaced.iter().map(|f| f.path.clone()).collect(),
        rejected: RejectedTotals::default(),
        tables: BTreeMap::from([(resource_type.to_owned(), table)]),
        deleted: Vec::new(),
        server_errors: Vec::new(),
    };
    match runtime.block_on(warehouse.commit(&manifest)) {
        Ok(_) => Ok(Compacted::Committed {
            run_id,
            replaced: manifest.replaces.len(),
            written: manifest.tables[resource_type].files.len(),
            rows: rows_in,
        }),
        Err(WarehouseError::AlreadyCommitted { .. }) => {
            Ok(Compacted::CommittedByAnother { run_id })
        }
        Err(e) => Err(e.into()),
    }
}

/// Files smaller than the target, by partition directory; only partitions with two or
/// more of them (one small file alone gains nothing).
fn small_files_by_partition(
    live: Vec<WrittenFile>,
    target_bytes: u64,
) -> BTreeMap<Option<String>, Vec<WrittenFile>> {
    let mut partitions: BTreeMap<Option<String>, Vec<WrittenFile>> = BTreeMap::new();
    for file in live.into_iter().filter(|f| f.bytes < target_bytes) {
        partitions
            .entry(partition_of(&file.path))
            .or_default()
            .push(file);
    }
    partitions.retain(|_, files| files.len() >= 2);
    for files in partitions.values_mut() {
        files.sort_by(|a, b| a.path.cmp(&b.path));
    }
    partitions
}

/// The partition directory of a data file (`Patient/export_date=X/part-...` → `export_date=X`).
fn partition_of(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    (parts.len() > 1).then(|| parts[1..].join("/"))
}

fn compaction_hash(replaced: &[&WrittenFile]) -> u64 {
    let joined = replaced
        .iter()
        .map(|f| f.path.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    fnv1a(&[joined.as_bytes()])
}

/// The output files of one partition.
struct Output<'a> {
    warehouse: &'a Warehouse,
    resource_type: &'a str,
    partition: Option<&'a str>,
    run_id: &'a str,
    attempt: &'a str,
    properties: parquet::file::properties::WriterProperties,
    schema: Option<arrow_schema::SchemaRef>,
    target_bytes: usize,
    runtime: Handle,
    current: Option<ParquetFile>,
    table: &'a mut TableManifest,
}

impl Output<'_> {
    /// Appends every row of `file`, checking its row count against its manifest.
    fn copy(&mut self, file: &WrittenFile) -> Result<(), CompactError> {
        let read_error = |reason: String| CompactError::Read {
            path: file.path.clone(),
            reason,
        };
        let reader = self
            .runtime
            .block_on(self.warehouse.read_parquet(&file.path))
            .map_err(|e| read_error(e.to_string()))?;
        let mut rows = 0;
        for batch in reader {
            let batch = batch.map_err(|e| read_error(e.to_string()))?;
            rows += batch.num_rows() as u64;
            self.write(&batch)?;
        }
        if rows != file.rows {
            return Err(CompactError::RowCount {
                path: file.path.clone(),
                expected: file.rows,
                found: rows,
            });
        }
        Ok(())
    }

    fn write(&mut self, batch: &arrow_array::RecordBatch) -> Result<(), CompactError> {
        let out = match &mut self.current {
            Some(out) => out,
            None => {
                let path = Warehouse::data_file(
                    self.resource_type,
                    self.partition,
                    self.run_id,
                    self.attempt,
                    self.table.files.len(),
                );
                let schema = self.schema.clone().unwrap_or_else(|| batch.schema());
                let file = ParquetFile::create(
                    self.warehouse.store(),
                    path,
                    schema,
                    self.properties.clone(),
                    self.runtime.clone(),
                )?;
                self.current.insert(file)
            }
        };
        out.write(batch)?;
        if out.size() >= self.target_bytes {
            self.finish()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), CompactError> {
        if let Some(out) = self.current.take() {
            let written = out.finish()?;
            self.table.rows += written.rows;
            self.table.files.push(written);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, bytes: u64) -> WrittenFile {
        WrittenFile {
            path: path.into(),
            rows: 1,
            bytes,
        }
    }

    #[test]
    fn only_partitions_with_several_small_files_are_compacted() {
        let live = vec![
            file("P/d=1/a.parquet", 10),
            file("P/d=1/b.parquet", 10),
            file("P/d=1/big.parquet", 1000),
            file("P/d=2/c.parquet", 10),
            file("P/d=2/big.parquet", 1000),
            file("P/x.parquet", 1),
            file("P/y.parquet", 1),
        ];
        let partitions = small_files_by_partition(live, 100);
        let keys: Vec<_> = partitions.keys().cloned().collect();
        assert_eq!(keys, [None, Some("d=1".to_string())]);
        assert_eq!(partitions[&Some("d=1".to_string())].len(), 2);
        assert_eq!(
            partition_of("P/d=1/e=2/a.parquet").as_deref(),
            Some("d=1/e=2")
        );
    }
}
