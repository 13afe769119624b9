//! Committing a run into the warehouse's Delta tables, after its files are written:
//!
//! ```text
//! for each resource type the run touched (rows, or deleted[] ids):
//!     history/<Type>   append: the run's files + tombstones           (history)
//!     current/<Type>   merge: newest version wins, deletes applied    (current)
//!     views/<name>     merge: the rows of each resource's current row (views)
//! then the run manifest _runs/<run id>.json (create-only), then a bulk source's checkpoint
//! ```
//!
//! Every table's change is one Delta commit with the txn `(source, run sequence)`: a
//! table whose txn shows the run's sequence already is left alone, so a rerun after a
//! crash at any step (data written, some tables committed, manifest not yet written)
//! commits what is missing once. The run sequence is the export's transactionTime (or
//! the run's start) in microseconds. A writer that loses a commit to another re-reads
//! the table and plans again ([`tables::commit_guarded`]).
//!
//! A crash between two tables' commits leaves the first committed and the second not;
//! readers of one table always see whole runs; the run manifest, written last, records
//! the version each table got, so a reader can take a consistent snapshot across tables.

pub mod current;
pub mod history;
pub mod keys;
pub mod rewrite;
pub mod tables;
pub mod views;

use std::{
    collections::BTreeMap,
    num::NonZeroUsize,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use arrow_schema::SchemaRef;
use tokio::runtime::Handle;

use self::{current::Winners, keys::Key, tables::Committed};
use crate::{
    delta::DeltaError,
    failpoint,
    schema::{Registry, SchemaError},
    sink::{ParquetConfig, RunFiles, SinkError},
    view::ViewDefinition,
    warehouse::{
        DeletedRef, TableId, TableKind, TableManifest, Warehouse, WarehouseError, WrittenFile,
    },
};

/// Errors of committing a run's tables.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// A Delta table's log cannot be read or written.
    #[error(transparent)]
    Delta(#[from] DeltaError),
    /// A data file cannot be read.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// A new data file cannot be written.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A resource type has no schema.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The rows of a data file cannot be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// Arrow's error.
        source: arrow_schema::ArrowError,
    },
    /// A data file lacks the columns a merge decides by.
    #[error("{path}: {reason}")]
    Columns {
        /// The file.
        path: String,
        /// What is missing.
        reason: String,
    },
    /// A file is not under the table it should be added to (a bug).
    #[error("{path} is not a file of table {table}")]
    Outside {
        /// The table.
        table: String,
        /// The file.
        path: String,
    },
    /// A file cannot be copied into a table.
    #[error("copying {from} to {to}")]
    Copy {
        /// The file copied.
        from: String,
        /// The copy.
        to: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// Other writers kept winning the table's next version.
    #[error("table {table}: {attempts} commits lost to other writers")]
    Conflicts {
        /// The table.
        table: String,
        /// Attempts made.
        attempts: usize,
    },
}

/// What commits need of the invocation: the warehouse, the schemas and the runtime
/// (`ingest::RunContext::commit_context` gives it; `commit` sits below `ingest`).
#[derive(Debug, Clone)]
pub struct CommitContext {
    /// The opened warehouse.
    pub warehouse: Warehouse,
    /// The schemas.
    pub registry: Arc<Registry>,
    /// The runtime the store uses; commits block on it.
    pub runtime: Handle,
}

/// What the tables' commits of a run need to know of it.
pub struct RunInfo<'a> {
    /// The context.
    pub cx: &'a CommitContext,
    /// The run id.
    pub run_id: &'a str,
    /// The attempt token.
    pub attempt: &'a str,
    /// The source: the txn app id of its commits.
    pub source: &'a str,
    /// The namespace of its resources' ids.
    pub namespace: &'a str,
    /// The run sequence: the txn version of its commits.
    pub seq: i64,
    /// The export's transactionTime.
    pub transaction_time: Option<&'a str>,
    /// The same, in microseconds (deletions apply to rows of earlier exports).
    pub transaction_micros: Option<i64>,
    /// The run's history partition (`export_date=...`), if history is partitioned.
    pub partition: Option<&'a str>,
    /// Parquet settings of the files a merge writes.
    pub parquet: &'a ParquetConfig,
    /// Resources one pass of a merge holds in memory.
    pub merge_max_keys: NonZeroUsize,
}

impl RunInfo<'_> {
    /// The run's file names, with `suffix` after the attempt token (merges write files
    /// of their own, which must not collide with the run's).
    pub fn files(&self, suffix: &str) -> RunFiles {
        RunFiles {
            store: self.cx.warehouse.store(),
            runtime: self.cx.runtime.clone(),
            run_id: self.run_id.to_owned(),
            attempt: format!("{}{suffix}", self.attempt),
        }
    }

    /// The schema of a resource type's tables.
    pub fn resource_schema(&self, resource_type: &str) -> Result<SchemaRef, CommitError> {
        Ok(self.cx.registry.require(resource_type)?.arrow_schema())
    }
}

/// Commits the run's written files (`written`: its history files and its views' files
/// by table) and its `deleted` resources into the tables, every view of `views` whose
/// resource type the run touched included; returns what each table got, with its Delta
/// version.
pub fn commit_tables(
    run: &RunInfo<'_>,
    written: &BTreeMap<TableId, TableManifest>,
    deleted: &[DeletedRef],
    views: &[Arc<ViewDefinition>],
) -> Result<BTreeMap<TableId, TableManifest>, CommitError> {
    let mut deleted_by_type: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for d in deleted {
        deleted_by_type
            .entry(d.resource_type.as_str())
            .or_default()
            .push(d.id.clone());
    }
    let mut types: Vec<&str> = written
        .keys()
        .filter_map(|t| match t.kind() {
            TableKind::History(t) => Some(t),
            _ => None,
        })
        .chain(deleted_by_type.keys().copied())
        .collect();
    types.sort_unstable();
    types.dedup();
    // The largest first, so that the longest merge does not start last.
    let rows = |t: &str| {
        staged_files(written, &TableId::history(t))
            .iter()
            .map(|f| f.rows)
            .sum::<u64>()
    };
    types.sort_by_cached_key(|t| std::cmp::Reverse(rows(t)));
    let failed = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(types.len()));
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_COMMIT_THREADS)
        .min(types.len());
    // Resource types are independent (each commits history, then current, then its
    // views, in that order): a thread per core takes them one by one, so a run's
    // commit tail is not one core's work. After a failure no new type is started.
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(&resource_type) = types.get(next.fetch_add(1, Ordering::Relaxed))
                    else {
                        break;
                    };
                    let ids = deleted_by_type
                        .get(resource_type)
                        .map_or(&[][..], Vec::as_slice);
                    let result = commit_type(run, written, resource_type, ids, views);
                    failed.fetch_or(result.is_err(), Ordering::Relaxed);
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((resource_type, result));
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    results.sort_by_key(|(resource_type, _)| *resource_type);
    let mut out = BTreeMap::new();
    for (_, result) in results {
        out.extend(result?);
    }
    tracing::debug!("{} tables committed", out.len());
    Ok(out)
}

/// Most threads committing resource types at once.
const MAX_COMMIT_THREADS: usize = 4;

/// Commits one resource type's tables: its history, its current state, its views.
fn commit_type(
    run: &RunInfo<'_>,
    written: &BTreeMap<TableId, TableManifest>,
    resource_type: &str,
    ids: &[String],
    views: &[Arc<ViewDefinition>],
) -> Result<Vec<(TableId, TableManifest)>, CommitError> {
    let mut out = Vec::new();
    let staged = staged_files(written, &TableId::history(resource_type));
    let (committed, added) = history::append(run, resource_type, staged, ids)?;
    out.push((
        TableId::history(resource_type),
        summary(committed, added, 0),
    ));
    failpoint::hit("after-history-commit");

    let keys: Vec<Key> = ids
        .iter()
        .map(|id| Key {
            namespace: Arc::from(run.namespace),
            id: Arc::from(id.as_str()),
        })
        .collect();
    let type_views: Vec<_> = views
        .iter()
        .filter(|v| v.resource() == resource_type)
        .collect();
    let merged = current::merge(run, resource_type, staged, &keys, !type_views.is_empty())?;
    out.push((
        TableId::current(resource_type),
        summary(merged.committed, merged.added, merged.removed),
    ));
    failpoint::hit("after-current-commit");
    if type_views.is_empty() {
        return Ok(out);
    }
    let winners = match merged.winners {
        Some(w) => w,
        None => winners_of(run, resource_type, staged, &keys)?,
    };
    for view in type_views {
        let table = TableId::view(view.name());
        let merged = views::merge(run, view, staged_files(written, &table), &winners)?;
        out.push((
            table,
            summary(merged.committed, merged.added, merged.removed),
        ));
    }
    failpoint::hit("after-views-commit");
    Ok(out)
}

/// The files written for `table`.
fn staged_files<'a>(
    written: &'a BTreeMap<TableId, TableManifest>,
    table: &TableId,
) -> &'a [WrittenFile] {
    written.get(table).map_or(&[][..], |t| t.files.as_slice())
}

/// A table's line in the run manifest.
fn summary(committed: Committed, added: TableManifest, removed: u64) -> TableManifest {
    TableManifest {
        delta_version: match committed {
            Committed::Version(v) => Some(v),
            _ => None,
        },
        removed_rows: removed,
        ..added
    }
}

/// Where the resources the run touched stand in `current/<Type>` (read from the table,
/// when its merge was committed by an earlier attempt).
fn winners_of(
    run: &RunInfo<'_>,
    resource_type: &str,
    staged: &[WrittenFile],
    deleted: &[Key],
) -> Result<Winners, CommitError> {
    let mut winners = Winners::default();
    for file in staged {
        keys::for_each_key(run.cx, &file.path, keys::KeyColumns::Resource, |row| {
            winners.insert(row.key, None);
        })?;
    }
    for key in deleted {
        winners.insert(key.clone(), None);
    }
    let table = TableId::current(resource_type);
    for key in tables::snapshot(run.cx, &table)?
        .iter()
        .flat_map(|s| s.files().keys())
    {
        let path = tables::file_path(&table, key);
        keys::for_each_key(run.cx, &path, keys::KeyColumns::Resource, |row| {
            if let Some(slot) = winners.get_mut(&row.key) {
                *slot = Some(row.lineage);
            }
        })?;
    }
    Ok(winners)
}
