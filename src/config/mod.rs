//! `pipeline.toml`: parsed once (unknown keys are errors), then validated into typed
//! values that the rest of the program uses without re-checking.
//!
//! Each part is owned by the module it configures, the way vector's components own
//! theirs: `[warehouse]` by [`crate::warehouse::config`], `[parquet]` by
//! [`crate::sink::config`], `[decode]` and `[quarantine]` by [`crate::ingest::config`],
//! `[[sources]]` by [`crate::source::config`] (with `[sources.bulk]` in
//! [`crate::bulk::BulkConfig`]); `[daemon]` is here. This module composes them and
//! names the file and the dotted key of any problem.
//!
//! Every key, its meaning and its default are documented on the fields and in the
//! committed `pipeline.toml`. Relative paths are resolved against the directory of the
//! configuration file, so a scheduled job behaves the same from any working directory.

use std::{
    num::NonZeroUsize,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::{
    ingest::{
        config::{DecodeConfig, IngestSettings, RawDecode, RawQuarantine},
        views::{ConfiguredView, RawView, load_views},
    },
    schedule::Schedule,
    sink::{ParquetConfig, RawParquet},
    source::config::{RawSource, SourceConfig},
    view::ViewDefinition,
    warehouse::config::{RawWarehouse, WarehouseConfig},
};

/// Errors of reading and validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}")]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a value of the wrong type.
    #[error("config {path}: {location}: {message}")]
    Parse {
        /// The configuration file.
        path: PathBuf,
        /// Where: the dotted key where parsing failed (`parquet.compression`,
        /// `sources[0].bulk.auth.token`), when there is one, and the line and column.
        location: String,
        /// The parser's message, without the text of the file (which may hold a
        /// secret written inline by mistake).
        message: String,
    },
    /// A value of the right type that makes no sense.
    #[error("config {path}: `{key}`: {reason}")]
    Invalid {
        /// The configuration file.
        path: PathBuf,
        /// The dotted key (`parquet.compression_level`).
        key: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

/// The file as written; see [`Config`] for the validated form.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Where tables are written.
    #[serde(default)]
    pub warehouse: RawWarehouse,
    /// How Parquet files are written.
    #[serde(default)]
    pub parquet: RawParquet,
    /// How NDJSON is decoded.
    #[serde(default)]
    pub decode: RawDecode,
    /// What happens to lines that cannot be ingested.
    #[serde(default)]
    pub quarantine: RawQuarantine,
    /// How `fhir-ingest daemon` runs.
    #[serde(default)]
    pub daemon: RawDaemon,
    /// The sources to ingest (`[[sources]]`), at least one.
    #[serde(default)]
    pub sources: Vec<RawSource>,
    /// SQL on FHIR views computed by the runs (`[[views]]`). Default: none.
    #[serde(default)]
    pub views: Vec<RawView>,
}

/// `[daemon]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    /// Address of the `/healthz` and `/metrics` (Prometheus) endpoint. Default
    /// `127.0.0.1:9464`; port 0 picks a free port (printed at start).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Sources running at the same time at most. Default 2.
    #[serde(default = "default_max_concurrent_sources")]
    pub max_concurrent_sources: usize,
    /// When the daemon vacuums the warehouse's tables (`fhir-ingest vacuum` with
    /// `warehouse.vacuum_retention_hours`): a cron expression in UTC. Default: none.
    pub vacuum_schedule: Option<String>,
}

impl Default for RawDaemon {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_concurrent_sources: default_max_concurrent_sources(),
            vacuum_schedule: None,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:9464".into()
}
fn default_max_concurrent_sources() -> usize {
    2
}

/// Validated `[daemon]`.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where `/healthz` and `/metrics` are served.
    pub listen: std::net::SocketAddr,
    /// Sources running at the same time at most.
    pub max_concurrent_sources: NonZeroUsize,
    /// When the daemon vacuums the tables.
    pub vacuum_schedule: Option<Schedule>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        RawDaemon::default()
            .validate()
            .expect("the defaults are valid")
    }
}

impl RawDaemon {
    /// Validates the table; an error is the key and the reason.
    fn validate(&self) -> Result<DaemonConfig, (&'static str, String)> {
        let listen = self.listen.parse().map_err(|e| {
            (
                "daemon.listen",
                format!("{:?}: {e} (expected host:port)", self.listen),
            )
        })?;
        let max_concurrent_sources = NonZeroUsize::new(self.max_concurrent_sources).ok_or((
            "daemon.max_concurrent_sources",
            "must be at least 1".to_owned(),
        ))?;
        let vacuum_schedule = match &self.vacuum_schedule {
            Some(expression) => Some(
                Schedule::parse(expression)
                    .map_err(|e| ("daemon.vacuum_schedule", e.to_string()))?,
            ),
            None => None,
        };
        Ok(DaemonConfig {
            listen,
            max_concurrent_sources,
            vacuum_schedule,
        })
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, for messages.
    pub path: PathBuf,
    /// Where and how tables are written.
    pub warehouse: WarehouseConfig,
    /// How Parquet is written.
    pub parquet: ParquetConfig,
    /// How NDJSON is decoded.
    pub decode: DecodeConfig,
    /// Rejection threshold.
    pub max_rejected_fraction: f64,
    /// How the daemon runs.
    pub daemon: DaemonConfig,
    /// The sources, in file order.
    pub sources: Vec<SourceConfig>,
    /// The views, loaded and compiled.
    pub views: Vec<ConfiguredView>,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` names it in errors and anchors
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| parse_error(path, text, "", &e))?;
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer)
            .map_err(|e| parse_error(path, text, &e.path().to_string(), e.inner()))?;
        Self::validate(raw, path)
    }

    /// Validates a raw configuration.
    pub fn validate(raw: RawConfig, path: &Path) -> Result<Self, ConfigError> {
        let base = path.parent().unwrap_or(Path::new("."));
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            path: path.into(),
            key,
            reason,
        };
        let warehouse = raw
            .warehouse
            .validate(base)
            .map_err(|e| invalid(format!("warehouse.{}", e.key), e.reason))?;
        let parquet = raw
            .parquet
            .validate()
            .map_err(|e| invalid(format!("parquet.{}", e.key), e.reason))?;
        let decode = raw
            .decode
            .validate()
            .map_err(|e| invalid(e.key.into(), e.reason))?;
        let max_rejected_fraction = raw
            .quarantine
            .validate()
            .map_err(|e| invalid(e.key.into(), e.reason))?;
        let daemon = raw
            .daemon
            .validate()
            .map_err(|(key, reason)| invalid(key.into(), reason))?;
        if raw.sources.is_empty() {
            return Err(invalid(
                "sources".into(),
                "at least one [[sources]] is needed".into(),
            ));
        }
        let mut sources: Vec<SourceConfig> = Vec::with_capacity(raw.sources.len());
        for (i, source) in raw.sources.into_iter().enumerate() {
            let name = source.name.clone();
            let source = source
                .validate(base)
                .map_err(|e| invalid(format!("sources[{i}].{}", e.key), e.reason))?;
            if sources.iter().any(|s| s.name == name) {
                return Err(invalid(
                    format!("sources[{i}].name"),
                    format!("{name:?} is used twice"),
                ));
            }
            sources.push(source);
        }
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        let views = load_views(&raw.views, base, &names)
            .map_err(|(i, e)| invalid(format!("views[{i}]"), crate::message::chain(&e)))?;
        Ok(Self {
            path: path.into(),
            warehouse,
            parquet,
            decode,
            max_rejected_fraction,
            daemon,
            sources,
            views,
        })
    }

    /// The configuration of a backfill (`convert`): one `files` source into the given
    /// warehouse, every other key at its default.
    pub fn for_files(
        warehouse: WarehouseConfig,
        parquet: ParquetConfig,
        decode: DecodeConfig,
        source: SourceConfig,
    ) -> Self {
        Self {
            path: PathBuf::from("<command line>"),
            warehouse,
            parquet,
            decode,
            max_rejected_fraction: RawQuarantine::default().max_rejected_fraction,
            daemon: DaemonConfig::default(),
            sources: vec![source],
            views: Vec::new(),
        }
    }

    /// The views runs of `source` compute.
    pub fn views_for(&self, source: &str) -> Vec<std::sync::Arc<ViewDefinition>> {
        self.views
            .iter()
            .filter(|v| v.applies_to(source))
            .map(|v| v.view.clone())
            .collect()
    }

    /// How every run of this configuration decodes and writes.
    pub fn ingest_settings(&self) -> IngestSettings {
        IngestSettings {
            decode: self.decode.clone(),
            parquet: self.parquet.clone(),
            partition_by: self.warehouse.partition_by,
            max_rejected_fraction: self.max_rejected_fraction,
            merge_max_keys: self.warehouse.merge_max_keys,
        }
    }
}

/// A parse error of `text` at `key`: the key, the line and column, and the parser's
/// message alone. The TOML crate's own rendering quotes the line of the file, which
/// would print a secret written inline by mistake.
fn parse_error(path: &Path, text: &str, key: &str, error: &toml::de::Error) -> ConfigError {
    let line_column = error.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("line {line}, column {column}")
    });
    let location = match (key, line_column) {
        ("" | ".", Some(at)) => at,
        ("" | ".", None) => "TOML".to_owned(),
        (key, Some(at)) => format!("`{key}` ({at})"),
        (key, None) => format!("`{key}`"),
    };
    ConfigError::Parse {
        path: path.into(),
        location,
        message: error.message().trim_end().to_owned(),
    }
}

#[cfg(test)]
mod tests;
