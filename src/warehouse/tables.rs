//! The Delta tables of a warehouse: which there are, and the live files of each.

use futures::TryStreamExt;
use object_store::path::Path;

use super::{
    Warehouse, WarehouseError,
    layout::{CURRENT_DIR, HISTORY_DIR, TableId, VIEWS_DIR},
};
use crate::delta::{DeltaError, DeltaTable, Snapshot};

/// A live data file of a Delta table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// The object path under the warehouse root.
    pub path: String,
    /// Its rows (`numRecords` of its stats), when known.
    pub rows: Option<u64>,
    /// Its size.
    pub bytes: u64,
}

impl Warehouse {
    /// The Delta table of `table`.
    pub fn delta_table(&self, table: &TableId) -> DeltaTable {
        DeltaTable::new(self.store.clone(), Path::from(table.dir()))
            .with_min_tombstone_retention(self.tombstone_retention)
    }

    /// The snapshot of `table`'s Delta log, if the table exists.
    pub async fn table_snapshot(&self, table: &TableId) -> Result<Option<Snapshot>, DeltaError> {
        self.delta_table(table).snapshot().await
    }

    /// Every Delta table of the warehouse (a directory under `history/`, `current/` or
    /// `views/` with a `_delta_log/`), sorted.
    pub async fn delta_tables(&self) -> Result<Vec<TableId>, WarehouseError> {
        let mut tables = Vec::new();
        for dir in [HISTORY_DIR, CURRENT_DIR, VIEWS_DIR] {
            let prefix = Path::from(dir);
            let listing = self
                .store
                .list_with_delimiter(Some(&prefix))
                .await
                .map_err(|source| WarehouseError::Store {
                    path: prefix.to_string(),
                    source,
                })?;
            for table_dir in listing.common_prefixes {
                let Some(table) = TableId::parse(table_dir.as_ref()) else {
                    continue;
                };
                let log = Path::from(format!("{table_dir}/{}", crate::delta::LOG_DIR));
                let has_log = self
                    .store
                    .list(Some(&log))
                    .try_next()
                    .await
                    .map_err(|source| WarehouseError::Store {
                        path: log.to_string(),
                        source,
                    })?
                    .is_some();
                if has_log {
                    tables.push(table);
                }
            }
        }
        tables.sort();
        Ok(tables)
    }

    /// The live files of `table` (none when it does not exist), in path order.
    pub async fn live_files(&self, table: &TableId) -> Result<Vec<LiveFile>, DeltaError> {
        let Some(snapshot) = self.table_snapshot(table).await? else {
            return Ok(Vec::new());
        };
        Ok(snapshot
            .files()
            .iter()
            .map(|(key, add)| LiveFile {
                path: format!("{}/{key}", table.dir()),
                rows: add.num_records().and_then(|n| u64::try_from(n).ok()),
                bytes: u64::try_from(add.size).unwrap_or(0),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::{
        delta::{Action, Add, CommitResult, PartitionValues, now_ms},
        warehouse::WarehouseConfig,
    };

    /// The tombstones a checkpoint of `current/Patient` expires when one file was
    /// removed 8 days ago, in a warehouse with `vacuum_retention`.
    async fn expired_by_checkpoint(vacuum_retention: Duration) -> i64 {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            WarehouseConfig::from_url(dir.path().to_str().unwrap(), dir.path()).unwrap();
        config.vacuum_retention = vacuum_retention;
        let table = Warehouse::open(&config)
            .unwrap()
            .delta_table(&TableId::current("Patient"));
        let add = Add::new("a.parquet", PartitionValues::new(), 1, now_ms(), None);
        let schema = Schema::new(vec![Field::new("id", DataType::Utf8, false)]);
        let created = table
            .create(
                &schema,
                &[],
                Default::default(),
                vec![Action::Add(add.clone())],
            )
            .await
            .unwrap();
        assert_eq!(created, CommitResult::Committed { version: 0 });
        let s0 = table.snapshot().await.unwrap().unwrap();
        let removed = Action::Remove(add.remove_at(now_ms() - 8 * 86_400_000));
        let committed = table
            .commit(Some(&s0), vec![removed], "WRITE")
            .await
            .unwrap();
        assert_eq!(committed, CommitResult::Committed { version: 1 });
        let s1 = table.snapshot().await.unwrap().unwrap();
        table.checkpoint(&s1).await.unwrap().expired_tombstones
    }

    #[tokio::test]
    async fn checkpoints_keep_tombstones_for_the_vacuum_retention() {
        let week = Duration::from_secs(7 * 86_400);
        assert_eq!(expired_by_checkpoint(week).await, 1);
        assert_eq!(expired_by_checkpoint(week * 2).await, 0);
    }
}
