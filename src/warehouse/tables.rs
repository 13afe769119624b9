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
