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
//! The run id is derived from the set of files replaced: two compactions of the same
//! files race on one manifest and exactly one wins.
//!
//! Memory: one input file at a time (smaller than the target, by selection) plus the
//! row group and upload part of the output file.

use std::collections::BTreeMap;

use arrow_schema::SchemaRef;

use crate::{
    ingest::RunContext,
    schema::Registry,
    sink::{ParquetConfig, RunFiles, SinkError, TableWriter, writer_properties},
    temporal,
    warehouse::{
        InputTotals, MANIFEST_VERSION, RejectedTotals, RunKind, RunManifest, TableId,
        TableManifest, WarehouseError, WrittenFile, layout,
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
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: arrow_schema::ArrowError,
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

/// Compacts the live files of `table` smaller than `target_bytes`, partition by
/// partition. Blocking: call it outside the runtime.
pub fn compact_table(
    cx: &RunContext,
    table: &TableId,
    target_bytes: usize,
    parquet: &ParquetConfig,
) -> Result<Compacted, CompactError> {
    let started_at = temporal::now_rfc3339();
    let snapshot = cx.runtime.block_on(cx.warehouse.snapshot())?;
    let live = snapshot.live_files().remove(table).unwrap_or_default();
    let partitions = small_files_by_partition(live, target_bytes as u64);
    if partitions.is_empty() {
        return Ok(Compacted::Nothing);
    }
    let mut replaced: Vec<&WrittenFile> = partitions.values().flatten().collect();
    replaced.sort_by(|a, b| a.path.cmp(&b.path));
    let files = RunFiles {
        store: cx.warehouse.store(),
        runtime: cx.runtime.clone(),
        run_id: layout::compaction_run_id(replaced.iter().map(|f| f.path.as_str())),
        attempt: layout::new_attempt(),
    };
    let properties = writer_properties(parquet);
    let schema = table_schema(&cx.registry, table);
    let mut written = TableManifest::default();
    for (partition, inputs) in &partitions {
        let mut writer = TableWriter::new(
            files.clone(),
            table.clone(),
            partition.clone(),
            schema.clone(),
            properties.clone(),
            target_bytes,
        );
        for file in inputs {
            copy(cx, file, &mut writer)?;
        }
        for file in writer.finish()?.files {
            written.push(file);
        }
    }
    let rows_in: u64 = replaced.iter().map(|f| f.rows).sum();
    if written.rows != rows_in {
        return Err(CompactError::RowCount {
            path: table.to_string(),
            expected: rows_in,
            found: written.rows,
        });
    }
    let run_id = files.run_id.clone();
    let manifest = RunManifest {
        format_version: MANIFEST_VERSION,
        run_id: run_id.clone(),
        kind: RunKind::Compaction,
        attempt: files.attempt,
        source: "compaction".into(),
        started_at,
        finished_at: temporal::now_rfc3339(),
        transaction_time: None,
        input: InputTotals {
            files: replaced.len() as u64,
            lines: rows_in,
            bytes: replaced.iter().map(|f| f.bytes).sum(),
            skipped: 0,
            byte_order_marks: 0,
        },
        replaces: replaced.iter().map(|f| f.path.clone()).collect(),
        rejected: RejectedTotals::default(),
        tables: BTreeMap::from([(table.clone(), written)]),
        deleted: Vec::new(),
        server_errors: Vec::new(),
        view_errors: Default::default(),
    };
    match cx.runtime.block_on(cx.warehouse.commit(&manifest)) {
        Ok(_) => Ok(Compacted::Committed {
            run_id,
            replaced: manifest.replaces.len(),
            written: manifest.tables[table].files.len(),
            rows: rows_in,
        }),
        Err(WarehouseError::AlreadyCommitted { .. }) => {
            Ok(Compacted::CommittedByAnother { run_id })
        }
        Err(e) => Err(e.into()),
    }
}

/// The schema of a resource table (a view's comes from its files).
fn table_schema(registry: &Registry, table: &TableId) -> Option<SchemaRef> {
    table
        .resource_type()
        .and_then(|t| registry.get(t))
        .map(|s| s.arrow_schema())
}

/// Appends every row of `file`, checking its row count against its manifest.
fn copy(cx: &RunContext, file: &WrittenFile, writer: &mut TableWriter) -> Result<(), CompactError> {
    let reader = cx.runtime.block_on(cx.warehouse.read_parquet(&file.path))?;
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|source| CompactError::Read {
            path: file.path.clone(),
            source,
        })?;
        rows += batch.num_rows() as u64;
        writer.write(&batch)?;
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

/// Files smaller than the target, by partition directory; only partitions with two or
/// more of them (one small file alone gains nothing).
fn small_files_by_partition(
    live: Vec<WrittenFile>,
    target_bytes: u64,
) -> BTreeMap<Option<String>, Vec<WrittenFile>> {
    let mut partitions: BTreeMap<Option<String>, Vec<WrittenFile>> = BTreeMap::new();
    for file in live.into_iter().filter(|f| f.bytes < target_bytes) {
        partitions
            .entry(layout::partition_of(&file.path))
            .or_default()
            .push(file);
    }
    partitions.retain(|_, files| files.len() >= 2);
    for files in partitions.values_mut() {
        files.sort_by(|a, b| a.path.cmp(&b.path));
    }
    partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, bytes: u64) -> WrittenFile {
        WrittenFile {
            path: path.into(),
            rows: 1,
            bytes,
            stats: None,
        }
    }

    #[test]
    fn only_partitions_with_several_small_files_are_compacted() {
        let live = vec![
            file("P/d=1/part-r-a-0000.parquet", 10),
            file("P/d=1/part-r-b-0000.parquet", 10),
            file("P/d=1/part-r-c-0000.parquet", 1000),
            file("P/d=2/part-r-d-0000.parquet", 10),
            file("P/d=2/part-r-e-0000.parquet", 1000),
            file("P/part-r-x-0000.parquet", 1),
            file("P/part-r-y-0000.parquet", 1),
        ];
        let partitions = small_files_by_partition(live, 100);
        let keys: Vec<_> = partitions.keys().cloned().collect();
        assert_eq!(keys, [None, Some("d=1".to_string())]);
        assert_eq!(partitions[&Some("d=1".to_string())].len(), 2);
    }
}
