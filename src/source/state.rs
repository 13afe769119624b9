//! The state of incremental sources, kept in the warehouse beside the data:
//!
//! ```text
//! _state/<source>/checkpoint-<NNNNNNNNNN>.json   {source, transaction_time, run_id, committed_at}
//! _state/<source>/in-flight.json                 {status_url, kicked_off_at, since, checkpoint_seq}
//! ```
//!
//! Checkpoints form a sequence: the highest number is the current one. Advancing writes
//! number + 1 with a create-only put, so two ingesters racing on one source cannot both
//! advance: the second gets [`StateError::Conflict`]. The in-flight record names the
//! export started from checkpoint `checkpoint_seq`; it is overwritten by each kick-off,
//! deleted after the checkpoint moved, and ignored when the checkpoint moved past it.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, path::Path};
use serde::{Deserialize, Serialize};

use crate::warehouse::layout;

/// Errors of reading and writing source state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A store operation failed.
    #[error("source state {path}")]
    Store {
        /// The object.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A state file is not what this version writes.
    #[error("source state {path} is not what this version writes")]
    Parse {
        /// The object.
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// Another ingester advanced the checkpoint first.
    #[error(
        "checkpoint {path} already exists: another ingester advanced source {source_name} \
         concurrently; its run is committed, but check for duplicate data"
    )]
    Conflict {
        /// The checkpoint object that exists.
        path: String,
        /// The source.
        source_name: String,
    },
}

/// The checkpoint of a source: the last fully committed export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The source name.
    pub source: String,
    /// The committed export's `transactionTime`: the next run's `_since`.
    pub transaction_time: String,
    /// The run that committed it.
    pub run_id: String,
    /// When the checkpoint was written (RFC 3339, UTC).
    pub committed_at: String,
}

/// An export kicked off and not yet committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// The status URL to poll (no secrets: servers put none in it).
    pub status_url: String,
    /// When it was kicked off (RFC 3339, UTC).
    pub kicked_off_at: String,
    /// The `_since` it was kicked off with.
    pub since: Option<String>,
    /// The checkpoint number it started from (0: none).
    pub checkpoint_seq: u64,
}

/// The state objects of one source.
#[derive(Debug, Clone)]
pub struct SourceState {
    store: Arc<dyn ObjectStore>,
    source: String,
}

impl SourceState {
    /// The state of `source` in `store` (the warehouse's store).
    pub fn new(store: Arc<dyn ObjectStore>, source: &str) -> Self {
        Self {
            store,
            source: source.to_owned(),
        }
    }

    /// The source name.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn checkpoint_path(&self, seq: u64) -> Path {
        layout::checkpoint_path(&self.source, seq)
    }

    fn in_flight_path(&self) -> Path {
        layout::in_flight_path(&self.source)
    }

    fn store_error(path: &Path) -> impl FnOnce(object_store::Error) -> StateError + '_ {
        move |source| StateError::Store {
            path: path.to_string(),
            source,
        }
    }

    /// The current checkpoint and its number, or `(0, None)` before the first commit.
    pub async fn checkpoint(&self) -> Result<(u64, Option<Checkpoint>), StateError> {
        let dir = layout::state_dir(&self.source);
        let objects: Vec<_> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(Self::store_error(&dir))?;
        let latest = objects
            .iter()
            .filter_map(|o| layout::checkpoint_seq(o.location.filename()?))
            .max();
        let Some(seq) = latest else {
            return Ok((0, None));
        };
        let checkpoint = self.read(&self.checkpoint_path(seq)).await?;
        Ok((seq, checkpoint))
    }

    /// Writes checkpoint `seq + 1` (create-only); `seq` is the number read before.
    pub async fn advance(&self, seq: u64, checkpoint: &Checkpoint) -> Result<u64, StateError> {
        let path = self.checkpoint_path(seq + 1);
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, json_payload(checkpoint, &path)?, options)
            .await
        {
            Ok(_) => Ok(seq + 1),
            Err(object_store::Error::AlreadyExists { .. }) => Err(StateError::Conflict {
                path: path.to_string(),
                source_name: self.source.clone(),
            }),
            Err(source) => Err(StateError::Store {
                path: path.to_string(),
                source,
            }),
        }
    }

    /// The export in flight, if one was recorded.
    pub async fn in_flight(&self) -> Result<Option<InFlight>, StateError> {
        self.read(&self.in_flight_path()).await
    }

    /// Records the export in flight (replacing any earlier record).
    pub async fn set_in_flight(&self, in_flight: &InFlight) -> Result<(), StateError> {
        let path = self.in_flight_path();
        self.store
            .put(&path, json_payload(in_flight, &path)?)
            .await
            .map_err(Self::store_error(&path))?;
        Ok(())
    }

    /// Removes the in-flight record (absent is fine).
    pub async fn clear_in_flight(&self) -> Result<(), StateError> {
        let path = self.in_flight_path();
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(StateError::Store {
                path: path.to_string(),
                source,
            }),
        }
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
    ) -> Result<Option<T>, StateError> {
        let bytes = match self.store.get(path).await {
            Ok(result) => result.bytes().await.map_err(Self::store_error(path))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => {
                return Err(StateError::Store {
                    path: path.to_string(),
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Parse {
                path: path.to_string(),
                source,
            })
    }
}

fn json_payload(value: &impl Serialize, path: &Path) -> Result<PutPayload, StateError> {
    serde_json::to_vec_pretty(value)
        .map(PutPayload::from)
        .map_err(|source| StateError::Parse {
            path: path.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn checkpoint(t: &str) -> Checkpoint {
        Checkpoint {
            source: "s".into(),
            transaction_time: t.into(),
            run_id: format!("run-{t}"),
            committed_at: t.into(),
        }
    }

    #[tokio::test]
    async fn the_highest_checkpoint_wins_and_a_race_is_refused() {
        let state = SourceState::new(Arc::new(InMemory::new()), "s");
        assert_eq!(state.checkpoint().await.unwrap(), (0, None));
        assert_eq!(state.advance(0, &checkpoint("t1")).await.unwrap(), 1);
        assert_eq!(state.advance(1, &checkpoint("t2")).await.unwrap(), 2);
        let (seq, current) = state.checkpoint().await.unwrap();
        assert_eq!((seq, current.unwrap().transaction_time.as_str()), (2, "t2"));
        let err = state.advance(1, &checkpoint("t3")).await.unwrap_err();
        assert!(matches!(err, StateError::Conflict { .. }), "{err}");
    }

    #[tokio::test]
    async fn in_flight_is_replaced_and_cleared() {
        let state = SourceState::new(Arc::new(InMemory::new()), "s");
        assert_eq!(state.in_flight().await.unwrap(), None);
        let record = InFlight {
            status_url: "http://x/status/1".into(),
            kicked_off_at: "t".into(),
            since: None,
            checkpoint_seq: 0,
        };
        state.set_in_flight(&record).await.unwrap();
        state.set_in_flight(&record).await.unwrap();
        assert_eq!(state.in_flight().await.unwrap(), Some(record));
        state.clear_in_flight().await.unwrap();
        state.clear_in_flight().await.unwrap();
        assert_eq!(state.in_flight().await.unwrap(), None);
    }
}
