//! `[warehouse]`: where the warehouse is and how its object store is reached.

use std::{
    fmt,
    num::NonZeroUsize,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

/// A key of `[warehouse]` with a value that makes no sense, and why.
#[derive(Debug, thiserror::Error)]
#[error("`warehouse.{key}`: {reason}")]
pub struct WarehouseConfigError {
    /// The key, under `warehouse.`.
    pub key: &'static str,
    /// What is wrong and what is allowed.
    pub reason: String,
}

/// `[warehouse]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarehouse {
    /// Where the warehouse is. Default `warehouse` (a local directory, created if
    /// missing). Also `file:///abs/dir`, `s3://bucket/prefix` (S3 or an S3-compatible
    /// store), `gs://bucket/prefix` (Google Cloud Storage), `az://container/prefix`
    /// (Azure Blob Storage). Credentials never go here: they come from the standard
    /// environment variables, web identity / container credentials or the instance
    /// metadata service (see the README).
    #[serde(default = "default_url")]
    pub url: String,
    /// Hive partition of each table: `export_date` (default; `export_date=YYYY-MM-DD`
    /// from the export's transactionTime, or the run's start) or `none`.
    #[serde(default)]
    pub partition_by: PartitionBy,
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
    /// Hours a data file no table version needs any more (rewritten by a merge or a
    /// compaction, or an orphan of a crashed run) is kept before `vacuum` deletes it:
    /// readers of older table versions and runs in progress need them meanwhile.
    /// Tombstones stay in Delta checkpoints at least this long. Default 168 (7 days, as
    /// Delta Lake's default).
    #[serde(default = "default_vacuum_retention_hours")]
    pub vacuum_retention_hours: u64,
    /// Resources a merge into `current/<Type>` holds in memory at once (about 200 bytes
    /// each): a run with more rows of a type is merged in several passes over its key
    /// columns, each taking a share of the resources by a hash of their id. Default
    /// 200000.
    #[serde(default = "default_merge_max_keys")]
    pub merge_max_keys: usize,
}

impl Default for RawWarehouse {
    fn default() -> Self {
        Self {
            url: default_url(),
            partition_by: PartitionBy::default(),
            region: None,
            endpoint: None,
            allow_http: None,
            virtual_hosted_style: None,
            max_retries: default_max_retries(),
            retry_timeout_secs: default_retry_timeout_secs(),
            request_timeout_secs: default_request_timeout_secs(),
            compact_after_run: false,
            compact_target_mib: default_compact_target_mib(),
            vacuum_retention_hours: default_vacuum_retention_hours(),
            merge_max_keys: default_merge_max_keys(),
        }
    }
}

fn default_url() -> String {
    "warehouse".into()
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
fn default_vacuum_retention_hours() -> u64 {
    168
}
/// Resources one pass of a merge holds in memory, by default (about 40 MiB).
pub const DEFAULT_MERGE_MAX_KEYS: NonZeroUsize = NonZeroUsize::new(200_000).unwrap();

fn default_merge_max_keys() -> usize {
    DEFAULT_MERGE_MAX_KEYS.get()
}

/// How tables are partitioned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionBy {
    /// `export_date=YYYY-MM-DD`.
    #[default]
    ExportDate,
    /// No partition directory.
    None,
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
    /// How long `vacuum` keeps files no table version needs.
    pub vacuum_retention: Duration,
    /// Resources one pass of a merge holds in memory.
    pub merge_max_keys: NonZeroUsize,
}

impl WarehouseConfig {
    /// A warehouse at `url` (a directory or an object store URL) with every other key at
    /// its default; relative directories are resolved against `base`.
    pub fn from_url(url: &str, base: &Path) -> Result<Self, WarehouseConfigError> {
        RawWarehouse {
            url: url.into(),
            ..RawWarehouse::default()
        }
        .validate(base)
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

impl fmt::Display for WarehouseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
    pub retry_timeout: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
}

impl RawWarehouse {
    /// Validates the table; relative directories are resolved against `base`.
    pub fn validate(&self, base: &Path) -> Result<WarehouseConfig, WarehouseConfigError> {
        let invalid = |key, reason: String| WarehouseConfigError { key, reason };
        let location = parse_location(&self.url, base).map_err(|e| invalid("url", e))?;
        let s3 = matches!(
            location,
            WarehouseLocation::Remote {
                scheme: RemoteScheme::S3,
                ..
            }
        );
        for (key, set) in [
            ("region", self.region.is_some()),
            ("endpoint", self.endpoint.is_some()),
            ("allow_http", self.allow_http.is_some()),
            ("virtual_hosted_style", self.virtual_hosted_style.is_some()),
        ] {
            if set && !s3 {
                return Err(invalid(key, "applies to s3:// warehouses only".into()));
            }
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(invalid(
                "endpoint",
                format!("{endpoint:?}: expected http://host:port or https://host"),
            ));
        }
        for (key, secs) in [
            ("request_timeout_secs", self.request_timeout_secs),
            ("retry_timeout_secs", self.retry_timeout_secs),
        ] {
            if secs == 0 {
                return Err(invalid(key, "must be at least 1 second".into()));
            }
        }
        if self.max_retries > 100 {
            return Err(invalid("max_retries", "must be 0 to 100".into()));
        }
        if !(1..=4096).contains(&self.compact_target_mib) {
            return Err(invalid("compact_target_mib", "must be 1 to 4096".into()));
        }
        let merge_max_keys = NonZeroUsize::new(self.merge_max_keys)
            .ok_or_else(|| invalid("merge_max_keys", "must be at least 1".into()))?;
        Ok(WarehouseConfig {
            location,
            partition_by: self.partition_by,
            store: StoreOptions {
                region: self.region.clone(),
                endpoint: self.endpoint.clone(),
                allow_http: self.allow_http,
                virtual_hosted_style: self.virtual_hosted_style,
                max_retries: self.max_retries,
                retry_timeout: Duration::from_secs(self.retry_timeout_secs),
                request_timeout: Duration::from_secs(self.request_timeout_secs),
            },
            compact_after_run: self.compact_after_run,
            compact_target_bytes: self.compact_target_mib << 20,
            vacuum_retention: Duration::from_secs(self.vacuum_retention_hours.saturating_mul(3600)),
            merge_max_keys,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(parse_location("ftp://x", base).is_err());
    }
}
