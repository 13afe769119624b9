//! Vacuum: the data files the Delta tables no longer need, deleted once they are older
//! than the retention: files of removed versions (rewritten by merges and compactions;
//! kept meanwhile for readers of older table versions) and orphans of crashed or lost
//! commits. A live file is never deleted.

use std::time::Duration;

use crate::{
    delta::{VacuumOptions, VacuumReport},
    warehouse::{TableId, Warehouse, WarehouseError},
};

/// Vacuums every Delta table of `warehouse` with `retention`; deletes nothing when
/// `dry_run`. Returns each table's report.
pub async fn vacuum_all(
    warehouse: &Warehouse,
    retention: Duration,
    dry_run: bool,
) -> Result<Vec<(TableId, VacuumReport)>, WarehouseError> {
    let mut reports = Vec::new();
    for table in warehouse.delta_tables().await? {
        let delta = warehouse.delta_table(&table);
        let Some(snapshot) = delta.snapshot().await? else {
            continue;
        };
        let mut options = VacuumOptions::new(retention);
        if dry_run {
            options = options.dry_run();
        }
        let report = delta.vacuum(&snapshot, options).await?;
        reports.push((table, report));
    }
    Ok(reports)
}
