//! `pipeline.toml`: parsed once (unknown keys are errors), then validated into typed
//! values that the rest of the program uses without re-checking.
//!
//! Every key, its meaning and its default are documented on the fields below and in the
//! committed `pipeline.toml`. Relative paths are resolved against the directory of the
//! configuration file, so a scheduled job behaves the same from any working directory.

use std::{
    num::NonZeroUsize,
    path::{Path, PathBuf},
};

use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use serde::Deserialize;

use crate::{
    auth::{AuthConfig, SecretSource},
    bulk::BulkConfig,
};

/// Errors of reading and validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a value of the wrong type.
    #[error("config {path}: {source}")]
    Parse {
        /// The configuration file.
        path: PathBuf,
        /// The parser's message, which names the key and the line.
        source: Box<toml::de::Error>,
    },
    /// A value of the right type that makes no sense.
    #[error("config {path}: `{key}`: {reason}")]
    Invalid {
        /// The configuration file.
        path: PathBuf,
        /// The key, dotted (`parquet.compression_level`).
        key: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

/// The file as written (raw); see [`Config`] for the validated form.
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
}

impl Default for RawDaemon {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_concurrent_sources: default_max_concurrent_sources(),
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
}

/// `[warehouse]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarehouse {
    /// Where the warehouse is. Default `warehouse` (a local directory, created if
    /// missing). Also `file:///abs/dir`, `s3://bucket/prefix` (S3 or an S3-compatible
    /// store), `gs://bucket/prefix` (Google Cloud Storage), `az://container/prefix`
    /// (Azure Blob Storage). Credentials never go here: they come from the standard
    /// environment variables, web identity / container credentials or the instance
    /// metadata service (see the README).
    #[serde(default = "default_warehouse_url")]
    pub url: String,
    /// Hive partition of each table: `export_date` (default; `export_date=YYYY-MM-DD`
    /// from the export's transactionTime, or the run's start) or `none`.
    #[serde(default = "default_partition_by")]
    pub partition_by: String,
    /// `s3://` only: the bucket's region. Default: `AWS_REGION` / `AWS_DEFAULT_REGION`
    /// from the environment, else `us-east-1`.
    pub region: Option<String>,
    /// `s3://` only: endpoint of an S3-compatible store (`http://127.0.0.1:8333`).
    /// Default: `AWS_ENDPOINT_URL` from the environment, else AWS itself.
    pub endpoint: Option<String>,
    /// `s3://` only: allow plain `http://` endpoints. Default: `AWS_ALLOW_HTTP` from the
    /// environment, else false.
    pub allow_http: Option<bool>,
    /// `s3://` only: virtual-hosted-style requests (`https://bucket.host/key`) instead of
    /// path-style (`https://host/bucket/key`, what most S3-compatible stores want).
    /// Default: `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` from the environment, else false.
    pub virtual_hosted_style: Option<bool>,
    /// Object stores: times a failed request (5xx, throttling, timeouts) is retried,
    /// with capped exponential backoff. Default 10.
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
    /// Object stores: seconds after the first attempt of a request past which it is no
    /// longer retried. Default 180.
    #[serde(default = "default_retry_timeout_secs")]
    pub retry_timeout_secs: u64,
    /// Object stores: seconds one request may take (an 8 MiB part upload included).
    /// Default 120.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Compact each table's partitions written by a run right after it commits
    /// (`fhir-ingest compact`). Default false.
    #[serde(default)]
    pub compact_after_run: bool,
    /// Target size of compacted files, in MiB; files smaller than this are merged.
    /// Default 256.
    #[serde(default = "default_compact_target_mib")]
    pub compact_target_mib: usize,
}

impl Default for RawWarehouse {
    fn default() -> Self {
        Self {
            url: default_warehouse_url(),
            partition_by: default_partition_by(),
            region: None,
            endpoint: None,
            allow_http: None,
            virtual_hosted_style: None,
            max_retries: default_max_retries(),
            retry_timeout_secs: default_retry_timeout_secs(),
            request_timeout_secs: default_request_timeout_secs(),
            compact_after_run: false,
            compact_target_mib: default_compact_target_mib(),
        }
    }
}

fn default_warehouse_url() -> String {
    "warehouse".into()
}
fn default_partition_by() -> String {
    "export_date".into()
}
fn default_max_retries() -> usize {
    10
}
fn default_retry_timeout_secs() -> u64 {
    180
}
fn default_request_timeout_secs() -> u64 {
    120
}
fn default_compact_target_mib() -> usize {
    256
}

/// `[parquet]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParquet {
    /// `zstd` (default), `snappy`, `lz4`, `gzip` or `none`.
    #[serde(default = "default_codec")]
    pub compression: String,
    /// Level for zstd (1-22, default 1, as Arrow C++) or gzip (0-9, default 6); ignored by
    /// the others.
    pub compression_level: Option<i32>,
    /// Rows per row group at most. Default 100000.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Memory of a row group being built, in MiB, before it is flushed. Default 64.
    #[serde(default = "default_row_group_mib")]
    pub row_group_mib: usize,
    /// Size of a Parquet file, in MiB, after which the next one is started. Default 512.
    #[serde(default = "default_max_file_mib")]
    pub max_file_mib: usize,
}

impl Default for RawParquet {
    fn default() -> Self {
        Self {
            compression: default_codec(),
            compression_level: None,
            row_group_rows: default_row_group_rows(),
            row_group_mib: default_row_group_mib(),
            max_file_mib: default_max_file_mib(),
        }
    }
}

fn default_codec() -> String {
    "zstd".into()
}
fn default_row_group_rows() -> usize {
    100_000
}
fn default_row_group_mib() -> usize {
    64
}
fn default_max_file_mib() -> usize {
    512
}

/// `[decode]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecode {
    /// Decoding threads; 0 (default) means one per CPU core.
    #[serde(default)]
    pub workers: usize,
    /// Rows of one resource type decoded before they are handed to the writer. Default 4096.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Longest accepted line, in MiB; longer lines are quarantined. Default 64.
    #[serde(default = "default_max_line_mib")]
    pub max_line_mib: usize,
    /// Largest decompressed size of one input file, in GiB. Default 256.
    #[serde(default = "default_max_file_gib")]
    pub max_decompressed_gib: usize,
}

impl Default for RawDecode {
    fn default() -> Self {
        Self {
            workers: 0,
            batch_rows: default_batch_rows(),
            max_line_mib: default_max_line_mib(),
            max_decompressed_gib: default_max_file_gib(),
        }
    }
}

fn default_batch_rows() -> usize {
    4096
}
fn default_max_line_mib() -> usize {
    64
}
fn default_max_file_gib() -> usize {
    256
}

/// `[quarantine]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuarantine {
    /// Fraction of rejected lines (0.0-1.0) above which a run fails and commits nothing.
    /// Default 0.01 (1 %). Rejected lines are kept under `_quarantine/<run id>/` either way.
    #[serde(default = "default_max_rejected_fraction")]
    pub max_rejected_fraction: f64,
}

impl Default for RawQuarantine {
    fn default() -> Self {
        Self {
            max_rejected_fraction: default_max_rejected_fraction(),
        }
    }
}

fn default_max_rejected_fraction() -> f64 {
    0.01
}

/// `[[sources]]`: one place data comes from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Name of the source, recorded in every row's `_lineage.source` (required, unique).
    pub name: String,
    /// `files`: NDJSON files (plain or gzip) on disk; `bulk`: a FHIR server's Bulk Data
    /// `$export`, incremental through a checkpoint. Required.
    pub kind: String,
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
}

/// Validated `[warehouse]`.
#[derive(Debug, Clone)]
pub struct WarehouseConfig {
    /// Where the warehouse is.
    pub location: WarehouseLocation,
    /// The partitioning of tables.
    pub partition_by: PartitionBy,
    /// How the object store is reached (ignored by local warehouses).
    pub store: StoreOptions,
    /// Compaction after each run, if wanted.
    pub compact_after_run: bool,
    /// Target size of compacted files, in bytes.
    pub compact_target_bytes: usize,
}

impl WarehouseConfig {
    /// A warehouse at `url` (a directory or an object store URL) with every other key at
    /// its default; relative directories are resolved against `base`.
    pub fn from_url(url: &str, base: &Path) -> Result<Self, String> {
        let raw = RawWarehouse {
            url: url.into(),
            ..RawWarehouse::default()
        };
        validate_warehouse(&raw, base).map_err(|(_, reason)| reason)
    }
}

/// Where a warehouse is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseLocation {
    /// A local directory.
    Local(PathBuf),
    /// A bucket (or container) and a prefix in an object store.
    Remote {
        /// The store.
        scheme: RemoteScheme,
        /// The bucket or container.
        bucket: String,
        /// The prefix inside it, without leading or trailing `/` (may be empty).
        prefix: String,
    },
}

impl std::fmt::Display for WarehouseLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::Remote {
                scheme,
                bucket,
                prefix,
            } if prefix.is_empty() => write!(f, "{}://{bucket}", scheme.as_str()),
            Self::Remote {
                scheme,
                bucket,
                prefix,
            } => write!(f, "{}://{bucket}/{prefix}", scheme.as_str()),
        }
    }
}

/// The object stores a warehouse can live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteScheme {
    /// Amazon S3 or an S3-compatible store (`s3://`).
    S3,
    /// Google Cloud Storage (`gs://`).
    Gcs,
    /// Azure Blob Storage (`az://`).
    Azure,
}

impl RemoteScheme {
    /// The URL scheme.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Gcs => "gs",
            Self::Azure => "az",
        }
    }
}

/// How an object store is reached; `None` means "from the environment, else default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// S3 region.
    pub region: Option<String>,
    /// S3-compatible endpoint.
    pub endpoint: Option<String>,
    /// Plain HTTP allowed.
    pub allow_http: Option<bool>,
    /// Virtual-hosted-style requests.
    pub virtual_hosted_style: Option<bool>,
    /// Retries of a failed request.
    pub max_retries: usize,
    /// No retry after this long since the first attempt.
    pub retry_timeout: std::time::Duration,
    /// Timeout of one request.
    pub request_timeout: std::time::Duration,
}

/// How tables are partitioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionBy {
    /// `export_date=YYYY-MM-DD`.
    ExportDate,
    /// No partition directory.
    None,
}

/// Validated `[parquet]`.
#[derive(Debug, Clone)]
pub struct ParquetConfig {
    /// Codec and level.
    pub compression: Compression,
    /// Rows per row group at most.
    pub row_group_rows: NonZeroUsize,
    /// Bytes of a row group in progress before it is flushed.
    pub row_group_bytes: usize,
    /// Bytes of a file after which another is started.
    pub max_file_bytes: usize,
}

impl Default for ParquetConfig {
    fn default() -> Self {
        validate_parquet(&RawParquet::default(), Path::new("<default>"))
            .expect("defaults are valid")
    }
}

/// Validated `[decode]`.
#[derive(Debug, Clone)]
pub struct DecodeConfig {
    /// Decoding threads.
    pub workers: NonZeroUsize,
    /// Rows per batch handed to a writer.
    pub batch_rows: NonZeroUsize,
    /// Longest accepted line, in bytes.
    pub max_line_bytes: u64,
    /// Largest decompressed size of one input file, in bytes.
    pub max_decompressed_bytes: u64,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        validate_decode(&RawDecode::default(), Path::new("<default>")).expect("defaults are valid")
    }
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Its name.
    pub name: String,
    /// Where its data is.
    pub kind: SourceKind,
    /// When the daemon runs it.
    pub schedule: Option<crate::schedule::Schedule>,
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
        let raw: RawConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source: Box::new(source),
        })?;
        Self::validate(raw, path)
    }

    /// Validates a raw configuration.
    pub fn validate(raw: RawConfig, path: &Path) -> Result<Self, ConfigError> {
        let base = path.parent().unwrap_or(Path::new("."));
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            path: path.into(),
            key: key.into(),
            reason,
        };
        let warehouse = validate_warehouse(&raw.warehouse, base)
            .map_err(|(key, reason)| invalid(key, reason))?;
        let fraction = raw.quarantine.max_rejected_fraction;
        if !(0.0..=1.0).contains(&fraction) {
            return Err(invalid(
                "quarantine.max_rejected_fraction",
                format!("{fraction}: expected 0.0 to 1.0"),
            ));
        }
        if raw.sources.is_empty() {
            return Err(invalid(
                "sources",
                "at least one [[sources]] is needed".into(),
            ));
        }
        let mut sources = Vec::with_capacity(raw.sources.len());
        for (i, source) in raw.sources.into_iter().enumerate() {
            let key = |k: &str| format!("sources[{i}].{k}");
            if source.name.is_empty()
                || !source
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(invalid(
                    &key("name"),
                    format!("{:?}: use letters, digits, - _ .", source.name),
                ));
            }
            if sources.iter().any(|s: &SourceConfig| s.name == source.name) {
                return Err(invalid(
                    &key("name"),
                    format!("{:?} is used twice", source.name),
                ));
            }
            let kind = match source.kind.as_str() {
                "files" if source.paths.is_empty() => {
                    return Err(invalid(&key("paths"), "a files source needs paths".into()));
                }
                "files" if source.bulk.is_some() => {
                    return Err(invalid(&key("bulk"), "only for kind = \"bulk\"".into()));
                }
                "files" => SourceKind::Files {
                    paths: source.paths.iter().map(|p| base.join(p)).collect(),
                },
                "bulk" if !source.paths.is_empty() => {
                    return Err(invalid(&key("paths"), "only for kind = \"files\"".into()));
                }
                "bulk" => {
                    let Some(client) = source.bulk else {
                        return Err(invalid(
                            &key("bulk"),
                            "a bulk source needs a [sources.bulk] table with base_url".into(),
                        ));
                    };
                    let client = resolve_bulk_paths(client, base);
                    client
                        .validate()
                        .map_err(|e| invalid(&key("bulk"), e.to_string()))?;
                    SourceKind::Bulk {
                        client: Box::new(client),
                    }
                }
                other => {
                    return Err(invalid(
                        &key("kind"),
                        format!("{other:?}: expected files or bulk"),
                    ));
                }
            };
            let schedule = match &source.schedule {
                Some(expression) => Some(
                    crate::schedule::Schedule::parse(expression)
                        .map_err(|e| invalid(&key("schedule"), e.to_string()))?,
                ),
                None => None,
            };
            sources.push(SourceConfig {
                name: source.name,
                kind,
                schedule,
            });
        }
        let listen = raw.daemon.listen.parse().map_err(|e| {
            invalid(
                "daemon.listen",
                format!("{:?}: {e} (expected host:port)", raw.daemon.listen),
            )
        })?;
        let max_concurrent_sources = NonZeroUsize::new(raw.daemon.max_concurrent_sources)
            .ok_or_else(|| invalid("daemon.max_concurrent_sources", "must be at least 1".into()))?;
        Ok(Self {
            path: path.into(),
            warehouse,
            parquet: validate_parquet(&raw.parquet, path)?,
            decode: validate_decode(&raw.decode, path)?,
            max_rejected_fraction: fraction,
            daemon: DaemonConfig {
                listen,
                max_concurrent_sources,
            },
            sources,
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

/// Validates `[warehouse]`; an error is the key and what is wrong.
fn validate_warehouse(
    raw: &RawWarehouse,
    base: &Path,
) -> Result<WarehouseConfig, (&'static str, String)> {
    let partition_by = match raw.partition_by.as_str() {
        "export_date" => PartitionBy::ExportDate,
        "none" => PartitionBy::None,
        other => {
            return Err((
                "warehouse.partition_by",
                format!("{other:?}: expected export_date or none"),
            ));
        }
    };
    let location = parse_location(&raw.url, base).map_err(|e| ("warehouse.url", e))?;
    let remote_s3 = matches!(
        location,
        WarehouseLocation::Remote {
            scheme: RemoteScheme::S3,
            ..
        }
    );
    for (key, set) in [
        ("warehouse.region", raw.region.is_some()),
        ("warehouse.endpoint", raw.endpoint.is_some()),
        ("warehouse.allow_http", raw.allow_http.is_some()),
        (
            "warehouse.virtual_hosted_style",
            raw.virtual_hosted_style.is_some(),
        ),
    ] {
        if set && !remote_s3 {
            return Err((key, "applies to s3:// warehouses only".into()));
        }
    }
    if let Some(endpoint) = &raw.endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        return Err((
            "warehouse.endpoint",
            format!("{endpoint:?}: expected http://host:port or https://host"),
        ));
    }
    if raw.request_timeout_secs == 0 || raw.retry_timeout_secs == 0 {
        return Err((
            "warehouse.request_timeout_secs",
            "timeouts must be at least 1 second".into(),
        ));
    }
    if raw.max_retries > 100 {
        return Err(("warehouse.max_retries", "must be 0 to 100".into()));
    }
    if raw.compact_target_mib == 0 || raw.compact_target_mib > 4096 {
        return Err(("warehouse.compact_target_mib", "must be 1 to 4096".into()));
    }
    Ok(WarehouseConfig {
        location,
        partition_by,
        store: StoreOptions {
            region: raw.region.clone(),
            endpoint: raw.endpoint.clone(),
            allow_http: raw.allow_http,
            virtual_hosted_style: raw.virtual_hosted_style,
            max_retries: raw.max_retries,
            retry_timeout: std::time::Duration::from_secs(raw.retry_timeout_secs),
            request_timeout: std::time::Duration::from_secs(raw.request_timeout_secs),
        },
        compact_after_run: raw.compact_after_run,
        compact_target_bytes: raw.compact_target_mib << 20,
    })
}

/// A warehouse URL: a directory (relative to `base`), `file://`, `s3://`, `gs://`, `az://`.
fn parse_location(url: &str, base: &Path) -> Result<WarehouseLocation, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(WarehouseLocation::Local(base.join(url)));
    };
    let scheme = match scheme {
        "file" => return Ok(WarehouseLocation::Local(base.join(rest))),
        "s3" | "s3a" => RemoteScheme::S3,
        "gs" => RemoteScheme::Gcs,
        "az" | "azure" => RemoteScheme::Azure,
        other => {
            return Err(format!(
                "{url:?}: scheme {other:?} not supported; expected a directory, file://, s3://, gs:// or az://"
            ));
        }
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || bucket.contains(['?', '#', '@']) {
        return Err(format!(
            "{url:?}: expected {}://bucket/prefix",
            scheme.as_str()
        ));
    }
    Ok(WarehouseLocation::Remote {
        scheme,
        bucket: bucket.into(),
        prefix: prefix.trim_matches('/').into(),
    })
}

fn validate_parquet(raw: &RawParquet, path: &Path) -> Result<ParquetConfig, ConfigError> {
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        path: path.into(),
        key: key.into(),
        reason,
    };
    let level_error =
        |e: parquet::errors::ParquetError| invalid("parquet.compression_level", e.to_string());
    let compression = match raw.compression.as_str() {
        "zstd" => Compression::ZSTD(
            ZstdLevel::try_new(raw.compression_level.unwrap_or(1)).map_err(level_error)?,
        ),
        "gzip" => Compression::GZIP(
            GzipLevel::try_new(raw.compression_level.unwrap_or(6) as u32).map_err(level_error)?,
        ),
        "snappy" => Compression::SNAPPY,
        "lz4" => Compression::LZ4_RAW,
        "none" => Compression::UNCOMPRESSED,
        other => {
            return Err(invalid(
                "parquet.compression",
                format!("{other:?}: expected zstd, snappy, lz4, gzip or none"),
            ));
        }
    };
    let positive = |key: &str, v: usize| {
        NonZeroUsize::new(v).ok_or_else(|| invalid(key, "must be at least 1".into()))
    };
    Ok(ParquetConfig {
        compression,
        row_group_rows: positive("parquet.row_group_rows", raw.row_group_rows)?,
        row_group_bytes: positive("parquet.row_group_mib", raw.row_group_mib)?.get() << 20,
        max_file_bytes: positive("parquet.max_file_mib", raw.max_file_mib)?.get() << 20,
    })
}

fn validate_decode(raw: &RawDecode, path: &Path) -> Result<DecodeConfig, ConfigError> {
    let invalid = |key: &str, reason: &str| ConfigError::Invalid {
        path: path.into(),
        key: key.into(),
        reason: reason.into(),
    };
    let workers = match raw.workers {
        0 => std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
        n => NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN),
    };
    let batch_rows = NonZeroUsize::new(raw.batch_rows)
        .ok_or_else(|| invalid("decode.batch_rows", "must be at least 1"))?;
    if raw.max_line_mib == 0 || raw.max_line_mib > 1024 {
        return Err(invalid("decode.max_line_mib", "must be 1 to 1024"));
    }
    if raw.max_decompressed_gib == 0 {
        return Err(invalid("decode.max_decompressed_gib", "must be at least 1"));
    }
    Ok(DecodeConfig {
        workers,
        batch_rows,
        max_line_bytes: (raw.max_line_mib as u64) << 20,
        max_decompressed_bytes: (raw.max_decompressed_gib as u64) << 30,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn warehouse_urls() {
        let base = Path::new("/etc/fi");
        let remote = |scheme, bucket: &str, prefix: &str| WarehouseLocation::Remote {
            scheme,
            bucket: bucket.into(),
            prefix: prefix.into(),
        };
        for (url, expected) in [
            ("wh", WarehouseLocation::Local("/etc/fi/wh".into())),
            (
                "file:///data/wh",
                WarehouseLocation::Local("/data/wh".into()),
            ),
            ("s3://b/p/q/", remote(RemoteScheme::S3, "b", "p/q")),
            ("s3://b", remote(RemoteScheme::S3, "b", "")),
            ("gs://b/p", remote(RemoteScheme::Gcs, "b", "p")),
            ("az://c/p", remote(RemoteScheme::Azure, "c", "p")),
        ] {
            assert_eq!(parse_location(url, base).unwrap(), expected, "{url}");
        }
        assert_eq!(remote(RemoteScheme::S3, "b", "p").to_string(), "s3://b/p");
        let text = format!(
            "[warehouse]\nurl = \"s3://b/p\"\nendpoint = \"http://127.0.0.1:8333\"\nallow_http = true\nmax_retries = 3\n{MINIMAL}"
        );
        let config = Config::parse(&text, Path::new("p.toml")).unwrap();
        assert_eq!(config.warehouse.store.allow_http, Some(true));
        assert_eq!(config.warehouse.store.max_retries, 3);
    }

    use super::*;

    const MINIMAL: &str = "[[sources]]\nname = \"s\"\nkind = \"files\"\npaths = [\"data\"]\n";

    #[test]
    fn committed_pipeline_toml_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.toml");
        let config = Config::load(&path).unwrap();
        assert_eq!(config.sources[0].name, "sample");
        assert_eq!(
            config.parquet.compression,
            Compression::ZSTD(ZstdLevel::try_new(1).unwrap())
        );
    }

    #[test]
    fn schedules_and_daemon_settings_are_validated() {
        let config = Config::parse(
            &format!("[daemon]\nlisten = \"127.0.0.1:0\"\nmax_concurrent_sources = 3\n{MINIMAL}schedule = \"*/5 * * * *\"\n"),
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(config.daemon.max_concurrent_sources.get(), 3);
        assert_eq!(
            config.sources[0].schedule.as_ref().unwrap().expression(),
            "*/5 * * * *"
        );
        let defaults = Config::parse(MINIMAL, Path::new("p.toml")).unwrap();
        assert_eq!(defaults.daemon.listen.to_string(), "127.0.0.1:9464");
        assert!(defaults.sources[0].schedule.is_none());
        for (extra, key) in [
            ("[daemon]\nlisten = \"nowhere\"\n", "daemon.listen"),
            (
                "[daemon]\nmax_concurrent_sources = 0\n",
                "daemon.max_concurrent_sources",
            ),
        ] {
            let err = Config::parse(&format!("{extra}{MINIMAL}"), Path::new("p.toml")).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let err = Config::parse(
            &format!("{MINIMAL}schedule = \"every night\"\n"),
            Path::new("p.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("sources[0].schedule"), "{err}");
    }

    #[test]
    fn commented_bulk_example_in_pipeline_toml_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text.find("# --- bulk source example").unwrap();
        let end = text.find("# --- end of the bulk source example").unwrap();
        let example: String = text[start..end]
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with("# #"))
            .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
            .collect();
        let config = Config::parse(&example, &path).unwrap();
        let SourceKind::Bulk { client } = &config.sources[0].kind else {
            panic!("a bulk source");
        };
        assert_eq!(client.base_url, "https://ehr.example.org/fhir");
        assert_eq!(**client, {
            let mut expected = BulkConfig::new("https://ehr.example.org/fhir");
            expected.auth = AuthConfig::Bearer {
                token: SecretSource::Env("EHR_TOKEN".into()),
            };
            expected
        });
    }

    #[test]
    fn defaults_fill_missing_sections_and_paths_are_relative_to_the_file() {
        let config = Config::parse(MINIMAL, Path::new("/etc/fi/pipeline.toml")).unwrap();
        assert_eq!(
            config.warehouse.location,
            WarehouseLocation::Local("/etc/fi/warehouse".into())
        );
        assert_eq!(config.warehouse.store.max_retries, 10);
        assert_eq!(config.warehouse.partition_by, PartitionBy::ExportDate);
        let SourceKind::Files { paths } = &config.sources[0].kind else {
            panic!("a files source");
        };
        assert_eq!(paths[0], Path::new("/etc/fi/data"));
        assert_eq!(config.decode.max_line_bytes, 64 << 20);
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let err = Config::parse(
            &format!("{MINIMAL}\n[parquet]\ncodec = \"zstd\"\n"),
            Path::new("p.toml"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("p.toml") && msg.contains("codec"), "{msg}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (extra, key) in [
            (
                "[parquet]\ncompression = \"brotli9\"\n",
                "parquet.compression",
            ),
            (
                "[parquet]\ncompression_level = 99\n",
                "parquet.compression_level",
            ),
            (
                "[warehouse]\npartition_by = \"day\"\n",
                "warehouse.partition_by",
            ),
            (
                "[quarantine]\nmax_rejected_fraction = 2.0\n",
                "quarantine.max_rejected_fraction",
            ),
            ("[decode]\nbatch_rows = 0\n", "decode.batch_rows"),
            ("[warehouse]\nurl = \"ftp://x/y\"\n", "warehouse.url"),
            ("[warehouse]\nurl = \"s3:///y\"\n", "warehouse.url"),
            ("[warehouse]\nregion = \"eu-west-1\"\n", "warehouse.region"),
            (
                "[warehouse]\nurl = \"s3://b\"\nendpoint = \"localhost:1\"\n",
                "warehouse.endpoint",
            ),
        ] {
            let err =
                Config::parse(&format!("{MINIMAL}\n{extra}"), Path::new("p.toml")).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let err = Config::parse("", Path::new("p.toml")).unwrap_err();
        assert!(err.to_string().contains("sources"), "{err}");
    }

    const BULK: &str = "[[sources]]\nname = \"ehr\"\nkind = \"bulk\"\n\
        [sources.bulk]\nbase_url = \"https://ehr.example.org/fhir\"\ntypes = [\"Patient\"]\n\
        [sources.bulk.auth]\ntype = \"bearer\"\ntoken = { file = \"secrets/token\" }\n";

    #[test]
    fn bulk_source_parses_with_auth_files_relative_to_the_config() {
        let config = Config::parse(BULK, Path::new("/etc/fi/pipeline.toml")).unwrap();
        let SourceKind::Bulk { client } = &config.sources[0].kind else {
            panic!("a bulk source");
        };
        assert_eq!(client.types, ["Patient"]);
        assert_eq!(client.parallel_downloads, 4);
        assert_eq!(
            client.auth,
            AuthConfig::Bearer {
                token: SecretSource::File("/etc/fi/secrets/token".into())
            }
        );
    }

    #[test]
    fn bulk_source_errors_name_the_key() {
        for (text, key) in [
            (
                "[[sources]]\nname = \"e\"\nkind = \"bulk\"\n",
                "sources[0].bulk",
            ),
            (
                "[[sources]]\nname = \"e\"\nkind = \"bulk\"\n[sources.bulk]\nbase_url = \"nope\"\n",
                "sources[0].bulk",
            ),
            (
                "[[sources]]\nname = \"e\"\nkind = \"bulk\"\n[sources.bulk]\nbase_url = \"http://x\"\ntoken = \"abc\"\n",
                "token",
            ),
            (
                "[[sources]]\nname = \"e\"\nkind = \"bulk\"\n[sources.bulk]\nbase_url = \"http://x\"\n[sources.bulk.auth]\ntype = \"bearer\"\ntoken = \"inline\"\n",
                "expected `env` or `file`",
            ),
        ] {
            let err = Config::parse(text, Path::new("p.toml")).unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }
}
