//! Reading a table: list `_delta_log/`, read `_last_checkpoint` if present and the
//! classic checkpoint it names (or a newer one listed), then the JSON commits after it in
//! order, and replay them into a [`Snapshot`].
//!
//! Replay: the latest `protocol` and `metaData` win; an `add` makes its path live (and
//! forgets a tombstone of it), a `remove` ends it and leaves a tombstone (kept for
//! [`vacuum`](super::vacuum)); the latest `txn` of each application wins. Paths are
//! compared decoded. Commit files over [`MAX_COMMIT_BYTES`] and checkpoints over
//! [`MAX_CHECKPOINT_BYTES`] are errors, as is a gap in the commit versions.

use std::{collections::BTreeMap, time::Duration};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::{
    Action, Add, DeltaError, DeltaTable, MAX_CHECKPOINT_BYTES, MAX_COMMIT_BYTES, Metadata,
    Protocol, Remove, Txn, actions::LogLine, checkpoint, checkpoint_file_name, commit_file_name,
};

/// The state of a table at one version.
#[derive(Debug, Clone)]
pub struct Snapshot {
    table: String,
    version: i64,
    protocol: Protocol,
    metadata: Metadata,
    files: BTreeMap<String, Add>,
    tombstones: BTreeMap<String, Remove>,
    txns: BTreeMap<String, Txn>,
    checkpoint_version: Option<i64>,
    commits_since_checkpoint: u64,
}

impl Snapshot {
    /// The version (the last commit replayed).
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The table's name in messages.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The protocol (always reader 1 / writer 2 once read).
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// The metadata: schema, partition columns, configuration.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The partition columns.
    pub fn partition_columns(&self) -> &[String] {
        &self.metadata.partition_columns
    }

    /// The table properties.
    pub fn configuration(&self) -> &BTreeMap<String, String> {
        &self.metadata.configuration
    }

    /// The live files by decoded path (relative to the root), with their sizes,
    /// partition values and stats.
    pub fn files(&self) -> &BTreeMap<String, Add> {
        &self.files
    }

    /// The removed files still remembered (for vacuum), by decoded path.
    pub fn tombstones(&self) -> &BTreeMap<String, Remove> {
        &self.tombstones
    }

    /// The latest transactions by application id.
    pub fn txns(&self) -> &BTreeMap<String, Txn> {
        &self.txns
    }

    /// The latest version committed by `app_id`, if any.
    pub fn txn_version(&self, app_id: &str) -> Option<i64> {
        self.txns.get(app_id).map(|t| t.version)
    }

    /// The version of the checkpoint the snapshot was read from, if any.
    pub fn checkpoint_version(&self) -> Option<i64> {
        self.checkpoint_version
    }

    /// The number of commits replayed after that checkpoint (all, without one).
    pub fn commits_since_checkpoint(&self) -> u64 {
        self.commits_since_checkpoint
    }

    /// `delta.checkpointInterval` of the configuration, else
    /// [`DEFAULT_CHECKPOINT_INTERVAL`](super::DEFAULT_CHECKPOINT_INTERVAL).
    pub fn checkpoint_interval(&self) -> i64 {
        self.configuration()
            .get("delta.checkpointInterval")
            .and_then(|v| v.parse().ok())
            .filter(|&n: &i64| n > 0)
            .unwrap_or(super::DEFAULT_CHECKPOINT_INTERVAL)
    }

    /// How long a tombstone stays in checkpoints: `delta.deletedFileRetentionDuration`
    /// of the configuration (such as `interval 1 week`), else
    /// [`DEFAULT_DELETED_FILE_RETENTION`](super::DEFAULT_DELETED_FILE_RETENTION). `None`
    /// when the value cannot be read: then no tombstone is ever dropped.
    pub fn deleted_file_retention(&self) -> Option<Duration> {
        match self
            .configuration()
            .get("delta.deletedFileRetentionDuration")
        {
            Some(value) => parse_interval(value),
            None => Some(super::DEFAULT_DELETED_FILE_RETENTION),
        }
    }

    /// This snapshot advanced by the commit of `version` (which must be the next one)
    /// with `actions`, without reading the log again.
    pub fn advance(&self, version: i64, actions: &[Action]) -> Result<Snapshot, DeltaError> {
        if version != self.version + 1 {
            return Err(DeltaError::Corrupt {
                table: self.table.clone(),
                path: commit_file_name(version),
                reason: format!("version {version} does not follow {}", self.version),
            });
        }
        let mut replay = Replay::from_snapshot(self);
        replay.apply_all(
            actions.iter().cloned(),
            &self.table,
            &commit_file_name(version),
        )?;
        replay.finish(
            &self.table,
            version,
            self.checkpoint_version,
            self.commits_since_checkpoint + 1,
        )
    }
}

/// The state being replayed.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    protocol: Option<Protocol>,
    metadata: Option<Metadata>,
    files: BTreeMap<String, Add>,
    tombstones: BTreeMap<String, Remove>,
    txns: BTreeMap<String, Txn>,
}

impl Replay {
    fn from_snapshot(s: &Snapshot) -> Self {
        Self {
            protocol: Some(s.protocol.clone()),
            metadata: Some(s.metadata.clone()),
            files: s.files.clone(),
            tombstones: s.tombstones.clone(),
            txns: s.txns.clone(),
        }
    }

    /// Applies actions in order; `file` names where they come from in errors.
    pub(crate) fn apply_all(
        &mut self,
        actions: impl IntoIterator<Item = Action>,
        table: &str,
        file: &str,
    ) -> Result<(), DeltaError> {
        let corrupt = |e: DeltaError| DeltaError::Corrupt {
            table: table.to_owned(),
            path: file.to_owned(),
            reason: e.to_string(),
        };
        for action in actions {
            match action {
                Action::Protocol(p) => self.protocol = Some(p),
                Action::MetaData(m) => self.metadata = Some(m),
                Action::Add(add) => {
                    let path = add.relative_path().map_err(corrupt)?;
                    self.tombstones.remove(&path);
                    self.files.insert(path, add);
                }
                Action::Remove(remove) => {
                    let path = remove.relative_path().map_err(corrupt)?;
                    self.files.remove(&path);
                    self.tombstones.insert(path, remove);
                }
                Action::Txn(txn) => {
                    self.txns.insert(txn.app_id.clone(), txn);
                }
            }
        }
        Ok(())
    }

    fn finish(
        self,
        table: &str,
        version: i64,
        checkpoint_version: Option<i64>,
        commits_since_checkpoint: u64,
    ) -> Result<Snapshot, DeltaError> {
        let corrupt = |reason: &str| DeltaError::Corrupt {
            table: table.to_owned(),
            path: commit_file_name(version),
            reason: reason.to_owned(),
        };
        let protocol = self.protocol.ok_or_else(|| corrupt("no protocol action"))?;
        if !protocol.is_supported() {
            return Err(DeltaError::UnsupportedProtocol {
                table: table.to_owned(),
                protocol: protocol.describe(),
            });
        }
        let metadata = self.metadata.ok_or_else(|| corrupt("no metaData action"))?;
        Ok(Snapshot {
            table: table.to_owned(),
            version,
            protocol,
            metadata,
            files: self.files,
            tombstones: self.tombstones,
            txns: self.txns,
            checkpoint_version,
            commits_since_checkpoint,
        })
    }
}

/// `_delta_log/_last_checkpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LastCheckpoint {
    pub version: i64,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_in_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_of_add_files: Option<i64>,
}

/// What a listing of `_delta_log/` found.
#[derive(Debug, Default)]
struct Listing {
    commits: BTreeMap<i64, u64>,
    checkpoints: BTreeMap<i64, u64>,
}

impl DeltaTable {
    /// The latest snapshot of the table, or `None` if it has no commit yet.
    pub async fn snapshot(&self) -> Result<Option<Snapshot>, DeltaError> {
        let hint = self.last_checkpoint().await?;
        let mut listing = self.list_log(hint.as_ref().map(|h| h.version)).await?;
        if let Some(h) = &hint
            && !listing.checkpoints.contains_key(&h.version)
        {
            // A stale or wrong hint: look at the whole log.
            listing = self.list_log(None).await?;
        }
        let checkpoint = listing
            .checkpoints
            .last_key_value()
            .map(|(&v, &size)| (v, size));
        let Some(latest) = listing
            .commits
            .last_key_value()
            .map(|(&v, _)| v)
            .max(checkpoint.map(|(v, _)| v))
        else {
            return Ok(None);
        };
        let first = checkpoint.map_or(0, |(v, _)| v + 1);
        if let Some(missing) = (first..=latest).find(|v| !listing.commits.contains_key(v)) {
            return Err(DeltaError::Corrupt {
                table: self.name().to_owned(),
                path: commit_file_name(missing),
                reason: "commit file missing".to_owned(),
            });
        }
        let mut replay = Replay::default();
        if let Some((version, size)) = checkpoint {
            let path = self.log_file(&checkpoint_file_name(version));
            self.check_size(&path, size, MAX_CHECKPOINT_BYTES)?;
            let bytes = self
                .read_bounded(&path, MAX_CHECKPOINT_BYTES)
                .await?
                .ok_or_else(|| self.store_error(&path)(not_found(&path)))?;
            let actions = checkpoint::read_actions(bytes, self.name(), path.as_ref())?;
            replay.apply_all(actions, self.name(), path.as_ref())?;
        }
        let reads = futures::stream::iter(first..=latest)
            .map(|v| self.read_commit(v, listing.commits.get(&v).copied().unwrap_or(0)))
            .buffered(8);
        let mut reads = std::pin::pin!(reads);
        while let Some((file, actions)) = reads.try_next().await? {
            replay.apply_all(actions, self.name(), &file)?;
        }
        let commits = u64::try_from(latest - first + 1).unwrap_or(0);
        replay
            .finish(self.name(), latest, checkpoint.map(|(v, _)| v), commits)
            .map(Some)
    }

    /// `_last_checkpoint`, if present.
    pub(crate) async fn last_checkpoint(&self) -> Result<Option<LastCheckpoint>, DeltaError> {
        let path = self.log_file("_last_checkpoint");
        let Some(bytes) = self.read_bounded(&path, 1 << 20).await? else {
            return Ok(None);
        };
        let hint: LastCheckpoint =
            serde_json::from_slice(&bytes).map_err(|source| DeltaError::Json {
                table: self.name().to_owned(),
                path: path.to_string(),
                line: 1,
                source,
            })?;
        if hint.parts.is_some_and(|p| p > 1) {
            return Err(DeltaError::Corrupt {
                table: self.name().to_owned(),
                path: path.to_string(),
                reason: "multi-part checkpoints are not supported".to_owned(),
            });
        }
        Ok(Some(hint))
    }

    /// Commits and classic checkpoints in `_delta_log/` (from `from` on, when given).
    async fn list_log(&self, from: Option<i64>) -> Result<Listing, DeltaError> {
        let dir = self.log_dir();
        let objects: Vec<_> = match from {
            Some(v) => {
                let offset = self.log_file(&format!("{v:020}"));
                self.store.list_with_offset(Some(&dir), &offset)
            }
            None => self.store.list(Some(&dir)),
        }
        .try_collect()
        .await
        .map_err(self.store_error(&dir))?;
        let mut listing = Listing::default();
        for object in objects {
            // Only direct children of _delta_log/ (not _delta_log/_commits/...).
            if object.location.parts_count() != dir.parts_count() + 1 {
                continue;
            }
            let Some(name) = object.location.filename() else {
                continue;
            };
            let Some((digits, rest)) = name.split_at_checked(20) else {
                continue;
            };
            let Ok(version) = digits.parse::<i64>() else {
                continue;
            };
            match rest {
                ".json" => listing.commits.insert(version, object.size),
                ".checkpoint.parquet" => listing.checkpoints.insert(version, object.size),
                _ => None,
            };
        }
        Ok(listing)
    }

    /// The actions of the commit of `version` (`size` as listed), with the file's name.
    async fn read_commit(
        &self,
        version: i64,
        size: u64,
    ) -> Result<(String, Vec<Action>), DeltaError> {
        let path = self.log_file(&commit_file_name(version));
        self.check_size(&path, size, MAX_COMMIT_BYTES)?;
        let bytes = self
            .read_bounded(&path, MAX_COMMIT_BYTES)
            .await?
            .ok_or_else(|| self.store_error(&path)(not_found(&path)))?;
        let actions = parse_commit(&bytes, self.name(), path.as_ref())?;
        Ok((path.to_string(), actions))
    }

    fn check_size(&self, path: &Path, size: u64, limit: u64) -> Result<(), DeltaError> {
        if size > limit {
            return Err(DeltaError::TooLarge {
                table: self.name().to_owned(),
                path: path.to_string(),
                size,
                limit,
            });
        }
        Ok(())
    }
}

/// The actions of a commit file (one JSON object a line; blank lines skipped).
pub(crate) fn parse_commit(
    bytes: &[u8],
    table: &str,
    path: &str,
) -> Result<Vec<Action>, DeltaError> {
    let mut actions = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed: LogLine = serde_json::from_slice(line).map_err(|source| DeltaError::Json {
            table: table.to_owned(),
            path: path.to_owned(),
            line: i + 1,
            source,
        })?;
        actions.extend(parsed.into_actions());
    }
    Ok(actions)
}

fn not_found(path: &Path) -> object_store::Error {
    object_store::Error::NotFound {
        path: path.to_string(),
        source: "listed but gone".into(),
    }
}

/// A Spark calendar interval as Delta's table properties write it: `interval 1 week`,
/// `interval 7 days`, `interval 1 day 12 hours` (the word `interval` optional, units
/// singular or plural, any case). Months and years have no fixed length: `None`.
pub fn parse_interval(text: &str) -> Option<Duration> {
    let mut words = text.split_whitespace().peekable();
    if words.peek()?.eq_ignore_ascii_case("interval") {
        words.next();
    }
    let mut total = Duration::ZERO;
    let mut terms = 0;
    while let Some(count) = words.next() {
        let count: u64 = count.parse().ok()?;
        let unit = words.next()?.to_ascii_lowercase();
        let unit_micros: u64 = match unit.strip_suffix('s').unwrap_or(&unit) {
            "week" => 7 * 86_400_000_000,
            "day" => 86_400_000_000,
            "hour" => 3_600_000_000,
            "minute" => 60_000_000,
            "second" => 1_000_000,
            "millisecond" => 1_000,
            "microsecond" => 1,
            _ => return None,
        };
        total = total.checked_add(Duration::from_micros(count.checked_mul(unit_micros)?))?;
        terms += 1;
    }
    (terms > 0).then_some(total)
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
