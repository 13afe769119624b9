//! Vacuum: delete the data files a table no longer needs.
//!
//! Every object under the table root is listed (except `_delta_log/` and hidden paths:
//! a segment starting with `.`, or with `_` and without `=`, as Spark does), and
//!
//! - a file of the snapshot's live adds is kept, always;
//! - a file of a tombstone is deleted when its `deletionTimestamp` is older than the
//!   retention (without one, its last-modified time is used), else kept (time travel,
//!   readers of an older snapshot);
//! - any other file (an orphan of a crashed or lost commit) is deleted when its
//!   last-modified time is older than the retention, else kept (it may belong to a
//!   commit in progress).
//!
//! The retention must exceed the longest time between writing a data file and committing
//! it, and the snapshot should be fresh: a commit made after it is unknown here. Paths are
//! compared both as listed and percent-decoded, so a live file is never taken for an
//! orphan because of how a store spells its key.

use std::{collections::HashSet, sync::Arc, time::Duration};

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStoreExt, path::Path};

use super::{DeltaError, DeltaTable, Snapshot, actions::decode_path, now_ms};

/// How to vacuum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VacuumOptions {
    /// Files removed (tombstones) or written (orphans) less than this long ago are kept.
    pub retention: Duration,
    /// Report what would be deleted, delete nothing.
    pub dry_run: bool,
    /// The present, milliseconds since the Unix epoch.
    pub now_ms: i64,
}

impl VacuumOptions {
    /// Deleting, with `retention`, now.
    pub fn new(retention: Duration) -> Self {
        Self {
            retention,
            dry_run: false,
            now_ms: now_ms(),
        }
    }

    /// Only reporting what would be deleted.
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// As if the present were `now_ms`.
    pub fn at(mut self, now_ms: i64) -> Self {
        self.now_ms = now_ms;
        self
    }
}

/// What a vacuum deleted (or would delete, in a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumReport {
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// Files of expired tombstones.
    pub tombstone_files: u64,
    /// Their bytes.
    pub tombstone_bytes: u64,
    /// Orphan files.
    pub orphan_files: u64,
    /// Their bytes.
    pub orphan_bytes: u64,
    /// Files kept because they are live.
    pub live_files: u64,
    /// Files kept because they are within the retention.
    pub recent_files: u64,
    /// The objects deleted (or to delete), relative to the table root, sorted.
    pub deleted: Vec<String>,
}

impl DeltaTable {
    /// Deletes the files of expired tombstones and old orphans of `snapshot` (see the
    /// module docs); a dry run only reports them.
    pub async fn vacuum(
        &self,
        snapshot: &Snapshot,
        options: VacuumOptions,
    ) -> Result<VacuumReport, DeltaError> {
        let retention_ms = i64::try_from(options.retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = options.now_ms.saturating_sub(retention_ms);
        let live: HashSet<&str> = snapshot.files().keys().map(String::as_str).collect();
        let objects: Vec<ObjectMeta> = self
            .store
            .list(Some(&self.root))
            .try_collect()
            .await
            .map_err(self.store_error(&self.root))?;
        let mut report = VacuumReport {
            dry_run: options.dry_run,
            ..VacuumReport::default()
        };
        let mut doomed: Vec<(Path, String)> = Vec::new();
        for object in objects {
            let Some(relative) = self.relative(&object.location) else {
                continue;
            };
            if relative.split('/').any(is_hidden) {
                continue;
            }
            // The key as listed, and decoded (a local store lists `%` as `%25`).
            let decoded = decode_path(&relative).unwrap_or_else(|_| relative.clone());
            if live.contains(relative.as_str()) || live.contains(decoded.as_str()) {
                report.live_files += 1;
                continue;
            }
            let modified = object.last_modified.timestamp_millis();
            let tombstone = snapshot
                .tombstones()
                .get(&relative)
                .or_else(|| snapshot.tombstones().get(&decoded));
            let (expired, is_tombstone) = match tombstone {
                Some(t) => (t.deletion_timestamp.unwrap_or(modified) < cutoff, true),
                None => (modified < cutoff, false),
            };
            if !expired {
                report.recent_files += 1;
                continue;
            }
            if is_tombstone {
                report.tombstone_files += 1;
                report.tombstone_bytes += object.size;
            } else {
                report.orphan_files += 1;
                report.orphan_bytes += object.size;
            }
            doomed.push((object.location, relative));
        }
        doomed.sort_by(|a, b| a.1.cmp(&b.1));
        if !options.dry_run {
            // Owned paths and store: the future stays Send.
            let paths: Vec<Path> = doomed.iter().map(|(path, _)| path.clone()).collect();
            let deletes = futures::stream::iter(paths)
                .map(|path| {
                    let store = Arc::clone(&self.store);
                    async move {
                        match store.delete(&path).await {
                            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                            Err(e) => Err((path, e)),
                        }
                    }
                })
                .buffer_unordered(8);
            deletes
                .try_collect::<()>()
                .await
                .map_err(|(path, e)| self.store_error(&path)(e))?;
        }
        report.deleted = doomed.into_iter().map(|(_, relative)| relative).collect();
        Ok(report)
    }

    /// The key of `location` below the root, or `None` outside it.
    fn relative(&self, location: &Path) -> Option<String> {
        let root = self.root.as_ref();
        let key = location.as_ref();
        if root.is_empty() {
            return Some(key.to_owned());
        }
        key.strip_prefix(root)?.strip_prefix('/').map(str::to_owned)
    }
}

/// Hidden as Spark's vacuum sees it: `.x`, or `_x` that is not a partition directory.
fn is_hidden(segment: &str) -> bool {
    segment.starts_with('.') || (segment.starts_with('_') && !segment.contains('='))
}

#[cfg(test)]
#[path = "vacuum_tests.rs"]
mod tests;
