//! `upgrade`: a warehouse of the manifest-only layout (`<Type>/...` files listed by
//! `_runs/` manifests, before the Delta tables) turned into the `history/` and
//! `current/` Delta tables, in place.
//!
//! For each table of the old layout, its live files (by the old reader's rule) are
//! rewritten into `history/<Type>` in their partitions, with the `_lineage` of this
//! version (`namespace` = the source, `deleted` = false); `current/<Type>` is merged from
//! them; then the `deleted[]` resources of the old run manifests are applied in export
//! order, with their tombstones in history. Each step is a Delta commit with a txn of
//! the app `fhir-ingest-upgrade`, so a rerun after a crash goes on where it stopped and
//! a rerun after the end does nothing; last, the old files are deleted (the run
//! manifests stay, as the record of the runs).

use std::{collections::BTreeMap, num::NonZeroUsize, sync::Arc};

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StructArray, cast::AsArray};
use arrow_schema::SchemaRef;
use object_store::{ObjectStoreExt, path::Path};

use crate::{
    commit::CommitContext,
    commit::{
        CommitError, RunInfo, current,
        history::append,
        keys::Key,
        tables::{Committed, snapshot},
    },
    ingest::RunContext,
    schema::{LINEAGE_COLUMN, lineage_fields},
    sink::{ParquetConfig, TableWriter, writer_properties},
    temporal,
    warehouse::{
        InputTotals, MANIFEST_VERSION, PartitionBy, RejectedTotals, RunKind, RunManifest, TableId,
        TableKind, WarehouseError, WrittenFile, layout,
    },
};

/// The txn app id of the upgrade's commits.
const UPGRADE_APP: &str = "fhir-ingest-upgrade";

/// Errors of the upgrade.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Committing a table failed.
    #[error(transparent)]
    Commit(#[from] Box<CommitError>),
    /// Reading the old layout failed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// A file of the old layout does not have the columns of its table.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What does not fit.
        reason: String,
    },
}

impl From<CommitError> for UpgradeError {
    fn from(e: CommitError) -> Self {
        Self::Commit(Box::new(e))
    }
}

/// What the upgrade did to one resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgraded {
    /// The resource type.
    pub resource_type: String,
    /// Old files rewritten into history.
    pub files: usize,
    /// Rows.
    pub rows: u64,
    /// Deletions applied.
    pub deleted: usize,
}

/// Upgrades every table of the old layout; returns what was done per type (nothing on
/// a warehouse already upgraded).
pub fn upgrade(
    cx: &RunContext,
    parquet: &ParquetConfig,
    merge_max_keys: NonZeroUsize,
) -> Result<Vec<Upgraded>, UpgradeError> {
    let cx = &cx.commit_context();
    let snapshot = cx.runtime.block_on(cx.warehouse.snapshot())?;
    let legacy: BTreeMap<TableId, Vec<WrittenFile>> = snapshot
        .live_files()
        .into_iter()
        .filter(|(t, _)| matches!(t.kind(), TableKind::Legacy(_)))
        .collect();
    let mut runs: Vec<&RunManifest> = snapshot
        .runs
        .iter()
        .filter(|r| !r.deleted.is_empty())
        .collect();
    runs.sort_by_key(|r| {
        r.transaction_time
            .as_deref()
            .and_then(temporal::parse_micros)
    });
    let mut done = Vec::new();
    for (table, files) in &legacy {
        let Some(resource_type) = table.resource_type() else {
            continue;
        };
        done.push(upgrade_type(
            cx,
            parquet,
            merge_max_keys,
            resource_type,
            files,
            &runs,
        )?);
    }
    if legacy.is_empty() {
        return Ok(done);
    }
    // The old reader's rule no longer lists the old files once this manifest exists.
    let replaced: Vec<String> = legacy.values().flatten().map(|f| f.path.clone()).collect();
    record(cx, &replaced)?;
    for path in &replaced {
        delete(cx, path)?;
    }
    Ok(done)
}

/// Records the upgrade in `_runs/`, replacing the old files.
fn record(cx: &CommitContext, replaced: &[String]) -> Result<(), UpgradeError> {
    let now = temporal::now_rfc3339();
    let manifest = RunManifest {
        format_version: MANIFEST_VERSION,
        run_id: format!("upgrade-{}", temporal::compact_utc(temporal::unix_now())),
        kind: RunKind::Upgrade,
        attempt: layout::new_attempt(),
        source: UPGRADE_APP.into(),
        started_at: now.clone(),
        finished_at: now,
        transaction_time: None,
        tables: BTreeMap::new(),
        replaces: replaced.to_vec(),
        input: InputTotals::default(),
        rejected: RejectedTotals::default(),
        deleted: Vec::new(),
        server_errors: Vec::new(),
        view_errors: Default::default(),
    };
    match cx.runtime.block_on(cx.warehouse.commit(&manifest)) {
        Ok(_) | Err(WarehouseError::AlreadyCommitted { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn upgrade_type(
    cx: &CommitContext,
    parquet: &ParquetConfig,
    merge_max_keys: NonZeroUsize,
    resource_type: &str,
    files: &[WrittenFile],
    runs: &[&RunManifest],
) -> Result<Upgraded, UpgradeError> {
    let schema = cx
        .registry
        .require(resource_type)
        .map_err(CommitError::from)?
        .arrow_schema();
    let history = TableId::history(resource_type);
    let attempt = layout::new_attempt();
    // The old layout was partitioned by export date, or not at all.
    let partitioned = files
        .iter()
        .any(|f| layout::partition_of(&f.path).is_some());
    let first = files
        .iter()
        .find_map(|f| layout::partition_of(&f.path))
        .filter(|_| partitioned);
    let mut upgraded = Upgraded {
        resource_type: resource_type.to_owned(),
        files: files.len(),
        rows: files.iter().map(|f| f.rows).sum(),
        deleted: 0,
    };
    let steps = Steps {
        cx,
        parquet,
        merge_max_keys,
        attempt: &attempt,
    };
    let whole = steps.step(1, "", None, first.as_deref());
    // 1. The old files, rewritten into history (once).
    let mut staged = Vec::new();
    if txn(cx, &history)? < Some(1) {
        staged = rewrite_files(cx, &whole, &history, &schema, files)?;
        append(&whole, resource_type, &staged, &[])?;
    }
    // 2. current/ from them (from history's files when a rerun finds them committed).
    let current_table = TableId::current(resource_type);
    if txn(cx, &current_table)? < Some(1) {
        if staged.is_empty() {
            staged = history_files(cx, &history)?;
        }
        current::merge(&whole, resource_type, &staged, &[], false)?;
    }
    // 3. The deletions of the old runs, in export order.
    for (i, run) in runs.iter().enumerate() {
        let ids: Vec<String> = run
            .deleted
            .iter()
            .filter(|d| d.resource_type == resource_type)
            .map(|d| d.id.clone())
            .collect();
        let seq = 2 + i as i64;
        if ids.is_empty() || txn(cx, &current_table)? >= Some(seq) {
            continue;
        }
        let tt = run.transaction_time.as_deref();
        let partition = partitioned
            .then(|| tt.and_then(|t| layout::partition_dir(PartitionBy::ExportDate, t)))
            .flatten();
        let deletes = steps.step(seq, &run.source, tt, partition.as_deref());
        if txn(cx, &history)? < Some(seq) {
            append(&deletes, resource_type, &[], &ids)?;
        }
        let keys: Vec<Key> = ids
            .iter()
            .map(|id| Key {
                namespace: Arc::from(run.source.as_str()),
                id: Arc::from(id.as_str()),
            })
            .collect();
        if let Committed::Version(_) =
            current::merge(&deletes, resource_type, &[], &keys, false)?.committed
        {
            upgraded.deleted += ids.len();
        }
    }
    Ok(upgraded)
}

/// What every step of a type's upgrade shares.
struct Steps<'a> {
    cx: &'a CommitContext,
    parquet: &'a ParquetConfig,
    merge_max_keys: NonZeroUsize,
    attempt: &'a str,
}

impl<'a> Steps<'a> {
    /// The run of one upgrade step: commits with txn `(fhir-ingest-upgrade, seq)`.
    fn step(
        &self,
        seq: i64,
        namespace: &'a str,
        transaction_time: Option<&'a str>,
        partition: Option<&'a str>,
    ) -> RunInfo<'a> {
        RunInfo {
            cx: self.cx,
            run_id: "upgrade",
            attempt: self.attempt,
            source: UPGRADE_APP,
            namespace,
            seq,
            transaction_time,
            transaction_micros: transaction_time.and_then(temporal::parse_micros),
            partition,
            parquet: self.parquet,
            merge_max_keys: self.merge_max_keys,
        }
    }
}

/// The live files of a history table, as files to merge.
fn history_files(cx: &CommitContext, history: &TableId) -> Result<Vec<WrittenFile>, UpgradeError> {
    Ok(cx
        .runtime
        .block_on(cx.warehouse.live_files(history))
        .map_err(WarehouseError::from)?
        .into_iter()
        .map(|f| WrittenFile {
            path: f.path,
            rows: f.rows.unwrap_or(0),
            bytes: f.bytes,
            stats: None,
            delta_stats: None,
        })
        .collect())
}

/// The txn version of the upgrade in `table` (none before its first commit).
fn txn(cx: &CommitContext, table: &TableId) -> Result<Option<i64>, UpgradeError> {
    Ok(snapshot(cx, table)?.and_then(|s| s.txn_version(UPGRADE_APP)))
}

/// Rewrites the old files of a type into `history/<Type>`, each in its partition, with
/// the lineage of this version.
fn rewrite_files(
    cx: &CommitContext,
    run: &RunInfo<'_>,
    history: &TableId,
    schema: &SchemaRef,
    files: &[WrittenFile],
) -> Result<Vec<WrittenFile>, UpgradeError> {
    let mut out = Vec::new();
    for (n, file) in files.iter().enumerate() {
        let mut writer = TableWriter::new(
            run.files(&format!("u{n}")),
            history.clone(),
            layout::partition_of(&file.path),
            Some(schema.clone()),
            writer_properties(run.parquet),
            run.parquet.max_file_bytes,
        );
        let reader = cx.runtime.block_on(cx.warehouse.read_parquet(&file.path))?;
        for batch in reader {
            let batch = batch.map_err(|e| file_error(file, e.to_string()))?;
            let batch = with_lineage_of_now(&batch, schema).map_err(|e| file_error(file, e))?;
            writer.write(&batch).map_err(CommitError::from)?;
        }
        out.extend(writer.finish().map_err(CommitError::from)?.files);
    }
    Ok(out)
}

fn file_error(file: &WrittenFile, reason: String) -> UpgradeError {
    UpgradeError::File {
        path: file.path.clone(),
        reason,
    }
}

/// `batch` of an old file in `schema`: its columns by name, `_lineage` with `namespace`
/// (the source) and `deleted` (false) added.
fn with_lineage_of_now(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    let old = batch
        .column_by_name(LINEAGE_COLUMN)
        .map(|c| c.as_struct())
        .ok_or("no _lineage column")?;
    let rows = batch.num_rows();
    let field = |name: &str| -> Result<ArrayRef, String> {
        match (name, old.column_by_name(name)) {
            (_, Some(c)) => Ok(c.clone()),
            ("namespace", None) => old
                .column_by_name("source")
                .cloned()
                .ok_or_else(|| "no _lineage.source".to_owned()),
            ("deleted", None) => Ok(Arc::new(BooleanArray::from(vec![false; rows]))),
            (other, None) => Err(format!("no _lineage.{other}")),
        }
    };
    let fields = lineage_fields();
    let children = fields
        .iter()
        .map(|f| field(f.name()))
        .collect::<Result<Vec<_>, _>>()?;
    let lineage: ArrayRef = Arc::new(
        StructArray::try_new(fields, children, old.nulls().cloned()).map_err(|e| e.to_string())?,
    );
    let columns = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            LINEAGE_COLUMN => Ok(lineage.clone()),
            name => batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| format!("no column {name}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// Deletes an old file (gone already is fine).
fn delete(cx: &CommitContext, path: &str) -> Result<(), UpgradeError> {
    match cx
        .runtime
        .block_on(cx.warehouse.store().delete(&Path::from(path)))
    {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(UpgradeError::Warehouse(WarehouseError::Store {
            path: path.to_owned(),
            source,
        })),
    }
}
