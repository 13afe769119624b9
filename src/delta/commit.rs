//! Commits: `_delta_log/<20-digit version>.json` written with a create-only put, one
//! JSON action per line, a `commitInfo` first. The put that finds the file there lost
//! the version to another writer: [`CommitResult::Conflict`].
//!
//! Before writing, the actions are checked against the table: protocol actions must be
//! reader 1 / writer 2; a table's first commit needs `protocol` and `metaData`; every
//! partition column must be a column of the schema; every `add` must carry exactly the
//! partition columns as `partitionValues`; paths must be relative and percent-encoded as
//! [`encode_path`] does; a path appears in at most one add and one remove; a remove must
//! name a live file of the snapshot (of two writers that rewrite one file, the second
//! learns it is gone instead of duplicating its rows).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use arrow_schema::{Field, Schema};
use object_store::{PutMode, PutOptions, PutPayload};

use super::{
    Action, DeltaError, DeltaTable, Metadata, Protocol, Snapshot,
    actions::{CommitInfo, encode_path},
    commit_file_name, now_ms,
    schema::{column_names, schema_string},
};

/// The outcome of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum CommitResult {
    /// The commit is version `version` of the table.
    Committed {
        /// The new version.
        version: i64,
    },
    /// Another writer committed `version` first: read the snapshot again and decide.
    Conflict {
        /// The version lost.
        version: i64,
    },
}

/// The outcome of [`DeltaTable::commit_with_retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Committed as `version` on attempt `attempts` (1-based).
    Committed {
        /// The new version.
        version: i64,
        /// Attempts made.
        attempts: usize,
    },
    /// The closure found nothing to do at snapshot `version`.
    NothingToDo {
        /// The version of the snapshot the closure saw.
        version: i64,
    },
}

/// The `engineInfo` of commits.
fn engine_info() -> String {
    format!("fhir-ingest/{}", env!("CARGO_PKG_VERSION"))
}

impl DeltaTable {
    /// Commits `actions` as the version after `snapshot` (version 0 without one: the
    /// actions must then create the table), with a `commitInfo` of `operation` (`WRITE`,
    /// `MERGE`, `DELETE`, ...).
    pub async fn commit(
        &self,
        snapshot: Option<&Snapshot>,
        actions: Vec<Action>,
        operation: &str,
    ) -> Result<CommitResult, DeltaError> {
        let version = snapshot.map_or(0, |s| s.version() + 1);
        self.validate(snapshot, &actions, version)?;
        let info = CommitInfo {
            timestamp: now_ms(),
            operation: operation.to_owned(),
            operation_parameters: BTreeMap::new(),
            read_version: snapshot.map(Snapshot::version),
            engine_info: engine_info(),
        };
        let path = self.log_file(&commit_file_name(version));
        let json_error = |source| DeltaError::Json {
            table: self.name().to_owned(),
            path: path.to_string(),
            line: 0,
            source,
        };
        let mut body =
            serde_json::to_vec(&serde_json::json!({ "commitInfo": info })).map_err(json_error)?;
        body.push(b'\n');
        for action in &actions {
            serde_json::to_writer(&mut body, action).map_err(json_error)?;
            body.push(b'\n');
        }
        let options = PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(&path, PutPayload::from(body), options)
            .await
        {
            Ok(_) => Ok(CommitResult::Committed { version }),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(CommitResult::Conflict { version }),
            Err(e) => Err(self.store_error(&path)(e)),
        }
    }

    /// Creates the table: version 0 with `protocol` (1/2), `metaData` (the schema of the
    /// data files with `partition_columns` appended, `configuration`) and `actions`
    /// (adds, txns). [`CommitResult::Conflict`] if version 0 exists.
    pub async fn create(
        &self,
        data_schema: &Schema,
        partition_columns: &[Field],
        configuration: BTreeMap<String, String>,
        actions: Vec<Action>,
    ) -> Result<CommitResult, DeltaError> {
        if actions
            .iter()
            .any(|a| matches!(a, Action::Protocol(_) | Action::MetaData(_)))
        {
            return Err(self.invalid(0, "create makes protocol and metaData itself"));
        }
        let metadata = Metadata::new(
            schema_string(data_schema, partition_columns)?,
            partition_columns.iter().map(|f| f.name().clone()).collect(),
            configuration,
        );
        let mut all = vec![
            Action::Protocol(Protocol::supported()),
            Action::MetaData(metadata),
        ];
        all.extend(actions);
        self.commit(None, all, "CREATE TABLE").await
    }

    /// Reads the snapshot, asks `build` for the actions of a commit on it, and commits
    /// them; on a conflict, again with a fresh snapshot, up to `max_attempts` times.
    /// `build` returning `None` means nothing to do (e.g. its txn shows the work is
    /// committed already). `build` must derive everything from the snapshot it gets (a
    /// file it removes may be gone in the next one). The table must exist.
    pub async fn commit_with_retry<F, E>(
        &self,
        max_attempts: usize,
        operation: &str,
        mut build: F,
    ) -> Result<RetryOutcome, E>
    where
        F: FnMut(&Snapshot) -> Result<Option<Vec<Action>>, E>,
        E: From<DeltaError>,
    {
        let mut lost = -1;
        for attempt in 1..=max_attempts {
            let snapshot = self.snapshot().await?.ok_or_else(|| DeltaError::NotFound {
                table: self.name().to_owned(),
            })?;
            let Some(actions) = build(&snapshot)? else {
                return Ok(RetryOutcome::NothingToDo {
                    version: snapshot.version(),
                });
            };
            match self.commit(Some(&snapshot), actions, operation).await? {
                CommitResult::Committed { version } => {
                    return Ok(RetryOutcome::Committed {
                        version,
                        attempts: attempt,
                    });
                }
                CommitResult::Conflict { version } => {
                    lost = version;
                    let jitter = u64::try_from(now_ms().rem_euclid(20)).unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(10 * attempt as u64 + jitter)).await;
                }
            }
        }
        Err(DeltaError::TooManyConflicts {
            table: self.name().to_owned(),
            attempts: max_attempts,
            version: lost,
        }
        .into())
    }

    fn invalid(&self, version: i64, reason: &str) -> DeltaError {
        DeltaError::InvalidCommit {
            table: self.name().to_owned(),
            version,
            reason: reason.to_owned(),
        }
    }

    /// Checks `actions` against the table (see the module docs).
    fn validate(
        &self,
        snapshot: Option<&Snapshot>,
        actions: &[Action],
        version: i64,
    ) -> Result<(), DeltaError> {
        let invalid = |reason: String| self.invalid(version, &reason);
        let mut metadata = snapshot.map(Snapshot::metadata);
        let mut has_protocol = snapshot.is_some();
        for action in actions {
            match action {
                Action::Protocol(p) if !p.is_supported() => {
                    return Err(DeltaError::UnsupportedProtocol {
                        table: self.name().to_owned(),
                        protocol: p.describe(),
                    });
                }
                Action::Protocol(_) => has_protocol = true,
                Action::MetaData(m) => metadata = Some(m),
                _ => {}
            }
        }
        let metadata = match metadata {
            Some(m) if has_protocol => m,
            _ => {
                return Err(invalid(
                    "a new table needs protocol and metaData actions".into(),
                ));
            }
        };
        let columns = column_names(&metadata.schema_string)
            .map_err(|e| invalid(format!("schemaString is not a struct schema: {e}")))?;
        let partitions: BTreeSet<&str> = metadata
            .partition_columns
            .iter()
            .map(String::as_str)
            .collect();
        if let Some(c) = partitions.iter().find(|c| !columns.iter().any(|n| n == *c)) {
            return Err(invalid(format!(
                "partition column {c} is not in the schema"
            )));
        }
        let (mut added, mut removed) = (BTreeSet::new(), BTreeSet::new());
        for action in actions {
            let (path, seen) = match action {
                Action::Add(add) => {
                    let keys: BTreeSet<&str> =
                        add.partition_values.keys().map(String::as_str).collect();
                    if keys != partitions {
                        return Err(invalid(format!(
                            "add {} has partition values for {keys:?}, the table is partitioned by {partitions:?}",
                            add.path
                        )));
                    }
                    (&add.path, &mut added)
                }
                Action::Remove(remove) => (&remove.path, &mut removed),
                Action::Txn(txn) if txn.app_id.is_empty() => {
                    return Err(invalid("txn with an empty appId".into()));
                }
                _ => continue,
            };
            let decoded = super::actions::decode_path(path)?;
            // Adds are made here; removes copy the path of an add, whoever encoded it.
            if matches!(action, Action::Add(_)) && encode_path(&decoded) != *path {
                return Err(invalid(format!(
                    "path {path} is not encoded as encode_path does it"
                )));
            }
            self.object(&decoded)?;
            // Two copy-on-write writers of one file: the loser's retry must not remove
            // it again (its rows would come back twice).
            let live = snapshot.is_some_and(|s| s.files().contains_key(&decoded));
            if matches!(action, Action::Remove(_)) && !live {
                return Err(invalid(format!(
                    "remove of {path}, which is not a live file of the snapshot"
                )));
            }
            if !seen.insert(path.clone()) {
                return Err(invalid(format!("path {path} appears twice")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "commit_tests.rs"]
mod tests;
