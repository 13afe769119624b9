//! Cleanup: deleting what is not part of the warehouse by the reader's rule, once it is
//! older than a grace period: staged files of runs that never committed (crashed
//! attempts, lost races) and files replaced by committed compactions. A file listed by a
//! committed manifest and not replaced is never touched; quarantine files are kept.

use std::collections::HashSet;

use object_store::{ObjectStore, ObjectStoreExt, path::Path};
use serde::Serialize;

use super::status::{Leftover, StatusError, status};
use crate::warehouse::Warehouse;

/// What a cleanup removes (or would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cleanup {
    /// Staged files older than the grace period.
    pub staged: Vec<Leftover>,
    /// Replaced files whose replacement was committed longer ago than the grace period.
    pub replaced: Vec<Leftover>,
    /// Whether they were deleted (false: dry run).
    pub deleted: bool,
}

/// Finds staged and replaced files older than `grace_secs` and, if `delete`, deletes
/// them. A file listed by a committed manifest and not replaced is never touched.
pub async fn cleanup(
    warehouse: &Warehouse,
    now: i64,
    grace_secs: i64,
    delete: bool,
) -> Result<Cleanup, StatusError> {
    let before = status(warehouse, now).await?;
    let old = |l: &Leftover| l.age_secs >= grace_secs;
    let plan = Cleanup {
        staged: before.staged.into_iter().filter(old).collect(),
        replaced: before.replaced.into_iter().filter(old).collect(),
        deleted: delete,
    };
    if delete {
        // Read the state again just before deleting: a staged file committed meanwhile
        // is live now and must stay.
        let now_status = status(warehouse, now).await?;
        let still: HashSet<&str> = now_status
            .staged
            .iter()
            .chain(&now_status.replaced)
            .map(|l| l.path.as_str())
            .collect();
        let store = warehouse.store();
        for leftover in plan.staged.iter().chain(&plan.replaced) {
            if still.contains(leftover.path.as_str()) {
                delete_object(store.as_ref(), &leftover.path).await?;
            }
        }
    }
    Ok(plan)
}

async fn delete_object(store: &dyn ObjectStore, path: &str) -> Result<(), StatusError> {
    match store.delete(&Path::from(path)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(StatusError::Store {
            path: path.into(),
            source,
        }),
    }
}
