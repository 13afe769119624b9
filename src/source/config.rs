//! `[[sources]]`: where data comes from, and when the daemon runs each source.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{
    auth::{AuthConfig, SecretSource},
    bulk::BulkConfig,
    schedule::Schedule,
};

/// A key of a `[[sources]]` table with a value that makes no sense, and why.
#[derive(Debug, thiserror::Error)]
#[error("`{key}`: {reason}")]
pub struct SourceConfigError {
    /// The key within the source (`paths`, `bulk.base_url`).
    pub key: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

/// `[[sources]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Name of the source, recorded in every row's `_lineage.source` (required, unique).
    pub name: String,
    /// The namespace of the resources' ids: rows of the same resource type and id in one
    /// namespace are versions of one resource in the `current/` tables. Sources that
    /// export from the same server may share one; sources of different servers must
    /// not (two servers' `Patient/123` are different patients). Default: the source's
    /// name.
    pub namespace: Option<String>,
    /// `files`: NDJSON files (plain or gzip) on disk; `bulk`: a FHIR server's Bulk Data
    /// `$export`, incremental through a checkpoint. Required.
    pub kind: SourceKindName,
    /// For `files`: files or directories (every `*.ndjson`, `*.ndjson.gz`, `*.jsonl`,
    /// `*.jsonl.gz` inside, sorted by name). Default: none (required for `files`).
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// For `bulk`: the `[sources.bulk]` table, the server and the export's parameters
    /// (see [`BulkConfig`], every key documented with its default), with its
    /// `[sources.bulk.auth]` table ([`AuthConfig`]). Default: none (required for `bulk`).
    #[serde(default)]
    pub bulk: Option<BulkConfig>,
    /// When `fhir-ingest daemon` runs this source: a cron expression in UTC, five fields
    /// (`minute hour day month weekday`, e.g. `"0 2 * * *"` for 02:00 every night) or six
    /// with seconds first. Default: none (the daemon does not run the source; `run` does).
    pub schedule: Option<String>,
}

/// The kinds of source, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKindName {
    /// NDJSON files on disk.
    Files,
    /// A FHIR server's Bulk Data `$export`.
    Bulk,
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Its name.
    pub name: String,
    /// The namespace of its resources' ids.
    pub namespace: String,
    /// Where its data is.
    pub kind: SourceKind,
    /// When the daemon runs it.
    pub schedule: Option<Schedule>,
}

/// The kinds of source.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// NDJSON files on disk.
    Files {
        /// Files or directories, resolved against the config file's directory.
        paths: Vec<PathBuf>,
    },
    /// A FHIR server's Bulk Data `$export`, validated; secret and key file paths are
    /// resolved against the config file's directory.
    Bulk {
        /// The client configuration, with its authentication.
        client: Box<BulkConfig>,
    },
}

impl SourceConfig {
    /// A `files` source over `paths`, with no schedule.
    pub fn files(name: impl Into<String>, paths: Vec<PathBuf>) -> Self {
        let name = name.into();
        Self {
            namespace: name.clone(),
            name,
            kind: SourceKind::Files { paths },
            schedule: None,
        }
    }
}

/// Whether `name` can name a source (it names state directories and lineage).
pub fn is_source_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl RawSource {
    /// Validates the table; relative paths are resolved against `base`.
    pub fn validate(self, base: &Path) -> Result<SourceConfig, SourceConfigError> {
        let invalid = |key: &str, reason: String| SourceConfigError {
            key: key.to_owned(),
            reason,
        };
        if !is_source_name(&self.name) {
            return Err(invalid(
                "name",
                format!("{:?}: use letters, digits, - _ .", self.name),
            ));
        }
        let namespace = self.namespace.clone().unwrap_or_else(|| self.name.clone());
        if !is_source_name(&namespace) {
            return Err(invalid(
                "namespace",
                format!("{namespace:?}: use letters, digits, - _ ."),
            ));
        }
        let kind = match self.kind {
            SourceKindName::Files => {
                if self.paths.is_empty() {
                    return Err(invalid("paths", "a files source needs paths".into()));
                }
                if self.bulk.is_some() {
                    return Err(invalid("bulk", "only for kind = \"bulk\"".into()));
                }
                SourceKind::Files {
                    paths: self.paths.iter().map(|p| base.join(p)).collect(),
                }
            }
            SourceKindName::Bulk => {
                if !self.paths.is_empty() {
                    return Err(invalid("paths", "only for kind = \"files\"".into()));
                }
                let Some(client) = self.bulk else {
                    return Err(invalid(
                        "bulk",
                        "a bulk source needs a [sources.bulk] table with base_url".into(),
                    ));
                };
                let client = resolve_bulk_paths(client, base);
                client
                    .validate()
                    .map_err(|e| invalid(&format!("bulk.{}", e.key), e.reason))?;
                SourceKind::Bulk {
                    client: Box::new(client),
                }
            }
        };
        let schedule = match &self.schedule {
            Some(expression) => {
                Some(Schedule::parse(expression).map_err(|e| invalid("schedule", e.to_string()))?)
            }
            None => None,
        };
        Ok(SourceConfig {
            name: self.name,
            namespace,
            kind,
            schedule,
        })
    }
}

/// Anchors the secret and key files of a bulk source's auth at the config's directory.
fn resolve_bulk_paths(mut client: BulkConfig, base: &Path) -> BulkConfig {
    let file = |source: &mut SecretSource| {
        if let SecretSource::File(path) = source {
            *path = base.join(&*path);
        }
    };
    match &mut client.auth {
        AuthConfig::None => {}
        AuthConfig::Bearer { token } => file(token),
        AuthConfig::Oneup {
            client_id,
            client_secret,
            ..
        } => {
            file(client_id);
            file(client_secret);
        }
        AuthConfig::Smart { private_key, .. } => *private_key = base.join(&*private_key),
    }
    client
}
