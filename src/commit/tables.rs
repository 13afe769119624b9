//! The Delta side of the warehouse's tables: a [`TableId`]'s Delta table, the `add` of a
//! file we wrote, and the guarded commit every table's change goes through.

use std::collections::BTreeMap;

use arrow_schema::{DataType, Field, Schema};

use super::CommitError;
use crate::{
    commit::CommitContext,
    delta::{Action, Add, CommitResult, DeltaTable, PartitionValues, Snapshot, Txn, now_ms},
    warehouse::{TableId, WrittenFile},
};

/// Conflicts a table's commit retries (another writer committed first) before failing.
const MAX_ATTEMPTS: usize = 8;

/// Every how many commits a table is checkpointed.
const CHECKPOINT_INTERVAL: i64 = 10;

/// The partition column of history tables.
pub const EXPORT_DATE: &str = "export_date";

/// The Delta table of `table`.
pub fn delta(cx: &CommitContext, table: &TableId) -> DeltaTable {
    cx.warehouse.delta_table(table)
}

/// The snapshot of `table`, if it exists.
pub fn snapshot(cx: &CommitContext, table: &TableId) -> Result<Option<Snapshot>, CommitError> {
    Ok(cx.runtime.block_on(delta(cx, table).snapshot())?)
}

/// The partition columns a new table of this kind is created with.
pub fn partition_columns(partitioned: bool) -> Vec<Field> {
    if partitioned {
        vec![Field::new(EXPORT_DATE, DataType::Utf8, true)]
    } else {
        Vec::new()
    }
}

/// The `add` of a file we wrote under `table`.
pub fn add_of(table: &TableId, file: &WrittenFile) -> Result<Add, CommitError> {
    let key = file
        .path
        .strip_prefix(table.dir())
        .and_then(|k| k.strip_prefix('/'))
        .ok_or_else(|| CommitError::Outside {
            table: table.to_string(),
            path: file.path.clone(),
        })?;
    let mut partition_values = PartitionValues::new();
    if let Some((column, value)) = file
        .stats
        .as_ref()
        .and_then(|s| s.partition.as_deref())
        .and_then(|p| p.split_once('='))
    {
        partition_values.insert(column.to_owned(), Some(value.to_owned()));
    }
    Ok(Add::new(
        key,
        partition_values,
        file.bytes,
        now_ms(),
        file.delta_stats.clone(),
    ))
}

/// The path under the warehouse root of a live file of `table`'s snapshot.
pub fn file_path(table: &TableId, key: &str) -> String {
    format!("{}/{key}", table.dir())
}

/// What a guarded commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The table's log got `version`.
    Version(i64),
    /// The table's txn shows this run's change committed already (a rerun, or another
    /// ingester of the same export).
    Already,
    /// The plan had nothing to change.
    Nothing,
}

/// The new table's shape, for its first commit.
pub struct NewTable<'a> {
    /// The schema of its data files.
    pub schema: &'a Schema,
    /// Its partition columns.
    pub partition_columns: &'a [Field],
}

/// Commits the actions `plan` makes from the table's snapshot (none: the table does not
/// exist yet and is created as `new`), with the txn `(app_id, version)`: a table whose
/// txn shows that version already is left alone. On a conflict the snapshot is read
/// again and `plan` asked again. After a commit the table is checkpointed every
/// 10 versions.
pub fn commit_guarded(
    cx: &CommitContext,
    table: &TableId,
    new: NewTable<'_>,
    txn: (&str, i64),
    operation: &str,
    mut plan: impl FnMut(Option<&Snapshot>) -> Result<Option<Vec<Action>>, CommitError>,
) -> Result<Committed, CommitError> {
    let delta = delta(cx, table);
    let (app_id, version) = txn;
    for _ in 0..MAX_ATTEMPTS {
        let snapshot = cx.runtime.block_on(delta.snapshot())?;
        if snapshot
            .as_ref()
            .is_some_and(|s| s.txn_version(app_id) == Some(version))
        {
            return Ok(Committed::Already);
        }
        let Some(mut actions) = plan(snapshot.as_ref())? else {
            return Ok(Committed::Nothing);
        };
        actions.push(Action::Txn(Txn::new(app_id, version)));
        let result = cx.runtime.block_on(async {
            match &snapshot {
                Some(s) => delta.commit(Some(s), actions.clone(), operation).await,
                None => {
                    let configuration = BTreeMap::from([(
                        "delta.checkpointInterval".to_owned(),
                        CHECKPOINT_INTERVAL.to_string(),
                    )]);
                    delta
                        .create(
                            new.schema,
                            new.partition_columns,
                            configuration,
                            actions.clone(),
                        )
                        .await
                }
            }
        })?;
        match result {
            CommitResult::Committed { version } => {
                // The commit stands whatever happens to the checkpoint: readers replay
                // the log from the last good checkpoint, and the next one comes later.
                if let Err(e) = checkpoint(cx, &delta, snapshot.as_ref(), version, &actions) {
                    tracing::warn!(
                        "table {table}: checkpoint of version {version} not written: {}",
                        crate::message::chain(&e)
                    );
                }
                return Ok(Committed::Version(version));
            }
            CommitResult::Conflict { .. } => {}
        }
    }
    Err(CommitError::Conflicts {
        table: table.to_string(),
        attempts: MAX_ATTEMPTS,
    })
}

/// Writes a checkpoint when `version` is due one.
fn checkpoint(
    cx: &CommitContext,
    delta: &DeltaTable,
    before: Option<&Snapshot>,
    version: i64,
    actions: &[Action],
) -> Result<(), CommitError> {
    if version == 0 || version % CHECKPOINT_INTERVAL != 0 {
        return Ok(());
    }
    cx.runtime.block_on(async {
        let snapshot = match before {
            Some(s) => s.advance(version, actions)?,
            None => return Ok(()),
        };
        delta
            .maybe_checkpoint(&snapshot, snapshot.checkpoint_interval())
            .await
            .map(|_| ())
    })?;
    Ok(())
}
