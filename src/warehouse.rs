//! The warehouse: where tables, run manifests and quarantined lines live, on local disk
//! or in an object store (S3 and S3-compatible stores, Google Cloud Storage, Azure).
//!
//! ```text
//! <root>/<ResourceType>/export_date=<YYYY-MM-DD>/part-<run id>-<attempt>-<n>.parquet
//! <root>/_runs/<run id>.json              written last, create-only: the run is committed
//! <root>/_quarantine/<run id>/rejected-<attempt>.ndjson
//! ```
//!
//! The commit protocol (see `docs/commit-protocol.md`): data files first, under names
//! unique to the attempt; then the run manifest with a create-only put, which exactly one
//! writer of a run id can win. The reader's rule: the files of the warehouse are those
//! listed by committed manifests, minus those listed in the `replaces` of committed
//! manifests (compaction). Anything else is a staged leftover.

use std::{
    collections::{BTreeMap, HashSet},
    path::Path as FsPath,
    sync::Arc,
};

use futures::{StreamExt, TryStreamExt};
use object_store::{
    ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    azure::MicrosoftAzureBuilder,
    client::HttpConnector,
    gcp::GoogleCloudStorageBuilder,
    local::LocalFileSystem,
    path::Path,
    prefix::PrefixStore,
    {BackoffConfig, RetryConfig},
};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::{Deserialize, Serialize};

use crate::{
    config::{PartitionBy, RemoteScheme, StoreOptions, WarehouseConfig, WarehouseLocation},
    sink::WrittenFile,
};

/// Directory of run manifests.
pub const RUNS_DIR: &str = "_runs";
/// Directory of quarantined lines.
pub const QUARANTINE_DIR: &str = "_quarantine";
/// Directory of the healthcheck's probe objects.
pub const PROBE_DIR: &str = "_probe";
/// Version of the run manifest format written by this program (2 adds `kind`,
/// `attempt` and `replaces`; version 1 manifests read as ingest runs).
pub const MANIFEST_VERSION: u32 = 2;
/// Largest run manifest read (a manifest lists files, not rows).
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Errors of the warehouse.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// The warehouse cannot be created or its store configured.
    #[error("cannot open warehouse {root}: {reason}")]
    Open {
        /// The root.
        root: String,
        /// Why.
        reason: String,
    },
    /// The healthcheck failed: the store is not usable as configured.
    #[error("warehouse {root} is not usable: {problem} ({detail}); {hint}")]
    Unusable {
        /// The root.
        root: String,
        /// What went wrong, in words.
        problem: &'static str,
        /// The store's answer, shortened (HTTP status, S3 error code, or the cause).
        detail: String,
        /// What to check.
        hint: &'static str,
    },
    /// A store operation failed.
    #[error("warehouse {path}: {source}")]
    Store {
        /// The object.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A run manifest is not what this version reads.
    #[error("data file {path} is not readable Parquet: {reason}")]
    /// A data file listed by a manifest does not read as Parquet.
    DataFile {
        /// The object.
        path: String,
        /// The reader's error.
        reason: String,
    },
    #[error("run manifest {path}: {reason}")]
    Manifest {
        /// The object.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The run id was committed before (by an earlier run or a concurrent ingester).
    #[error("run {run_id} is already committed ({path})")]
    AlreadyCommitted {
        /// The run id.
        run_id: String,
        /// Its manifest.
        path: String,
    },
}

/// An opened warehouse.
#[derive(Debug, Clone)]
pub struct Warehouse {
    store: Arc<dyn ObjectStore>,
    /// The same store with few retries and short timeouts, for the healthcheck.
    probe: Arc<dyn ObjectStore>,
    root: String,
}

impl Warehouse {
    /// Opens the configured warehouse: a local directory (created) or an object store.
    /// Nothing is sent over the network: call [`healthcheck`](Self::healthcheck) next.
    pub fn open(config: &WarehouseConfig) -> Result<Self, WarehouseError> {
        Self::open_with_connector(config, None::<DefaultConnector>)
    }

    /// As [`open`](Self::open), with the object store's HTTP requests going through
    /// `connector` (tests inject throttling and server errors this way).
    pub fn open_with_connector<C: HttpConnector + Clone>(
        config: &WarehouseConfig,
        connector: Option<C>,
    ) -> Result<Self, WarehouseError> {
        let root = config.location.to_string();
        let open_error = |reason: String| WarehouseError::Open {
            root: root.clone(),
            reason,
        };
        match &config.location {
            WarehouseLocation::Local(path) => Self::open_local(path),
            WarehouseLocation::Remote {
                scheme,
                bucket,
                prefix,
            } => {
                let build = |retry: RetryConfig, timeout| {
                    remote_store(*scheme, bucket, &config.store, retry, timeout, &connector)
                        .map(|store| with_prefix(store, prefix))
                        .map_err(|e| open_error(e.to_string()))
                };
                let store = build(retry_config(&config.store), config.store.request_timeout)?;
                let probe_retry = RetryConfig {
                    max_retries: config.store.max_retries.min(2),
                    retry_timeout: std::time::Duration::from_secs(10),
                    backoff: BackoffConfig::default(),
                };
                let probe = build(probe_retry, std::time::Duration::from_secs(15))?;
                Ok(Self { store, probe, root })
            }
        }
    }

    /// Opens (and creates) a warehouse in a local directory.
    pub fn open_local(root: &FsPath) -> Result<Self, WarehouseError> {
        let open_error = |reason: String| WarehouseError::Open {
            root: root.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(root).map_err(|e| open_error(e.to_string()))?;
        let store =
            LocalFileSystem::new_with_prefix(root).map_err(|e| open_error(e.to_string()))?;
        Ok(Self::from_store(
            Arc::new(store),
            root.display().to_string(),
        ))
    }

    /// A warehouse over any store (tests wrap stores to inject faults).
    pub fn from_store(store: Arc<dyn ObjectStore>, root: String) -> Self {
        Self {
            probe: store.clone(),
            store,
            root,
        }
    }

    /// A data file of the warehouse as record batches of 4096 rows. The file is read
    /// into memory whole (data files are bounded by `parquet.max_file_mib`).
    pub async fn read_parquet(
        &self,
        path: &str,
    ) -> Result<ParquetRecordBatchReader, WarehouseError> {
        let store_error = |source| WarehouseError::Store {
            path: path.to_owned(),
            source,
        };
        let bytes = self
            .store
            .get(&Path::from(path))
            .await
            .map_err(store_error)?
            .bytes()
            .await
            .map_err(store_error)?;
        ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.with_batch_size(4096).build())
            .map_err(|e| WarehouseError::DataFile {
                path: path.to_owned(),
                reason: e.to_string(),
            })
    }

    /// The object store under the root.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The root, for messages.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Checks, before any work, that the warehouse can be listed, written and cleaned:
    /// lists `_runs/`, puts a probe object and deletes it. Wrong credentials, a missing
    /// bucket or an unreachable endpoint fail here with what to check.
    pub async fn healthcheck(&self) -> Result<(), WarehouseError> {
        self.check(true).await
    }

    /// The healthcheck of commands that only read: lists `_runs/`, writes nothing (so
    /// read-only credentials pass).
    pub async fn healthcheck_read_only(&self) -> Result<(), WarehouseError> {
        self.check(false).await
    }

    async fn check(&self, write: bool) -> Result<(), WarehouseError> {
        let unusable = |error: object_store::Error| {
            let text = error_chain(&error);
            let (problem, hint) = diagnose(&error, &text);
            WarehouseError::Unusable {
                root: self.root.clone(),
                problem,
                detail: short_detail(&text),
                hint,
            }
        };
        self.probe
            .list_with_delimiter(Some(&Path::from(RUNS_DIR)))
            .await
            .map_err(unusable)?;
        if !write {
            return Ok(());
        }
        let probe = Path::from(format!("{PROBE_DIR}/{}.txt", crate::pipeline::new_run_id()));
        self.probe
            .put(
                &probe,
                PutPayload::from_static(b"fhir-ingest healthcheck\n"),
            )
            .await
            .map_err(unusable)?;
        self.probe.delete(&probe).await.map_err(unusable)?;
        Ok(())
    }

    /// Path of data file `n` of an attempt of a run for a table and partition.
    pub fn data_file(
        resource_type: &str,
        partition: Option<&str>,
        run_id: &str,
        attempt: &str,
        n: usize,
    ) -> Path {
        let name = format!("part-{run_id}-{attempt}-{n:04}.parquet");
        match partition {
            Some(p) => Path::from(format!("{resource_type}/{p}/{name}")),
            None => Path::from(format!("{resource_type}/{name}")),
        }
    }

    /// Path of the quarantine file of an attempt of a run.
    pub fn quarantine_file(run_id: &str, attempt: &str) -> Path {
        Path::from(format!(
            "{QUARANTINE_DIR}/{run_id}/rejected-{attempt}.ndjson"
        ))
    }

    /// Path of a run's manifest.
    pub fn manifest_path(run_id: &str) -> Path {
        Path::from(format!("{RUNS_DIR}/{run_id}.json"))
    }

    /// The manifest of `run_id`, if that run is committed.
    pub async fn committed_run(&self, run_id: &str) -> Result<Option<RunManifest>, WarehouseError> {
        let path = Self::manifest_path(run_id);
        match self.read_manifest(&path).await {
            Ok(manifest) => Ok(Some(manifest)),
            Err(WarehouseError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Commits a run by writing its manifest with a create-only put: of two writers of
    /// one run id, exactly one succeeds; the other gets [`WarehouseError::AlreadyCommitted`].
    pub async fn commit(&self, manifest: &RunManifest) -> Result<Path, WarehouseError> {
        let path = Self::manifest_path(&manifest.run_id);
        let body = serde_json::to_vec_pretty(manifest).map_err(|e| WarehouseError::Manifest {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(body), options)
            .await
        {
            Ok(_) => Ok(path),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(WarehouseError::AlreadyCommitted {
                run_id: manifest.run_id.clone(),
                path: path.to_string(),
            }),
            Err(source) => Err(WarehouseError::Store {
                path: path.to_string(),
                source,
            }),
        }
    }

    /// Every committed run, in run id order (which is start time order).
    pub async fn committed_runs(&self) -> Result<Vec<RunManifest>, WarehouseError> {
        Ok(self
            .committed_runs_with_times()
            .await?
            .into_iter()
            .map(|(manifest, _)| manifest)
            .collect())
    }

    /// Every committed run with the time its manifest was written (seconds since the
    /// Unix epoch).
    pub async fn committed_runs_with_times(
        &self,
    ) -> Result<Vec<(RunManifest, i64)>, WarehouseError> {
        let prefix = Path::from(RUNS_DIR);
        let mut objects: Vec<_> =
            self.store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|source| WarehouseError::Store {
                    path: prefix.to_string(),
                    source,
                })?;
        objects.retain(|o| o.location.as_ref().ends_with(".json"));
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        // Manifests are small: read a few at a time.
        let reads = futures::stream::iter(objects)
            .map(|object| async move {
                let manifest = self.read_manifest(&object.location).await?;
                Ok::<_, WarehouseError>((manifest, object.last_modified.timestamp()))
            })
            .buffered(8);
        reads.try_collect().await
    }

    /// The files of the warehouse by the reader's rule.
    pub async fn snapshot(&self) -> Result<Snapshot, WarehouseError> {
        Ok(Snapshot::new(self.committed_runs().await?))
    }

    async fn read_manifest(&self, path: &Path) -> Result<RunManifest, WarehouseError> {
        let store_error = |source| WarehouseError::Store {
            path: path.to_string(),
            source,
        };
        let result = self.store.get(path).await.map_err(store_error)?;
        if result.meta.size > MAX_MANIFEST_BYTES {
            return Err(WarehouseError::Manifest {
                path: path.to_string(),
                reason: format!("{} bytes, more than {MAX_MANIFEST_BYTES}", result.meta.size),
            });
        }
        let bytes = result.bytes().await.map_err(store_error)?;
        serde_json::from_slice(&bytes).map_err(|e| WarehouseError::Manifest {
            path: path.to_string(),
            reason: e.to_string(),
        })
    }
}

/// The committed state of a warehouse, by the reader's rule.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Committed runs, in run id order.
    pub runs: Vec<RunManifest>,
    /// Files listed in `replaces` of committed manifests.
    pub replaced: HashSet<String>,
}

impl Snapshot {
    /// The snapshot of these committed runs.
    pub fn new(runs: Vec<RunManifest>) -> Self {
        let replaced = runs
            .iter()
            .flat_map(|run| run.replaces.iter().cloned())
            .collect();
        Self { runs, replaced }
    }

    /// The live files of each table: listed by a committed manifest and not replaced.
    pub fn live_files(&self) -> BTreeMap<String, Vec<WrittenFile>> {
        let mut tables: BTreeMap<String, Vec<WrittenFile>> = BTreeMap::new();
        for run in &self.runs {
            for (resource_type, table) in &run.tables {
                let live = table
                    .files
                    .iter()
                    .filter(|f| !self.replaced.contains(&f.path))
                    .cloned();
                tables
                    .entry(resource_type.clone())
                    .or_default()
                    .extend(live);
            }
        }
        tables.retain(|_, files| !files.is_empty());
        tables
    }

    /// Every file any committed manifest lists (replaced ones included).
    pub fn listed_files(&self) -> HashSet<&str> {
        self.runs
            .iter()
            .flat_map(|run| run.tables.values())
            .flat_map(|table| table.files.iter().map(|f| f.path.as_str()))
            .collect()
    }
}

/// The store of a bucket, configured from `options` and the environment.
fn remote_store<C: HttpConnector + Clone>(
    scheme: RemoteScheme,
    bucket: &str,
    options: &StoreOptions,
    retry: RetryConfig,
    timeout: std::time::Duration,
    connector: &Option<C>,
) -> object_store::Result<Arc<dyn ObjectStore>> {
    let timeout = format!("{}s", timeout.as_secs().max(1));
    Ok(match scheme {
        RemoteScheme::S3 => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry)
                .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), timeout)
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    "5s",
                );
            // Without a region from here or the environment, object_store uses us-east-1.
            if let Some(region) = &options.region {
                builder = builder.with_region(region);
            }
            if let Some(endpoint) = &options.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(allow) = options.allow_http {
                builder = builder.with_allow_http(allow);
            }
            if let Some(virtual_hosted) = options.virtual_hosted_style {
                builder = builder.with_virtual_hosted_style_request(virtual_hosted);
            }
            if let Some(connector) = connector {
                builder = builder.with_http_connector(connector.clone());
            }
            Arc::new(builder.build()?)
        }
        RemoteScheme::Gcs => {
            let mut builder = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry);
            if let Some(connector) = connector {
                builder = builder.with_http_connector(connector.clone());
            }
            Arc::new(builder.build()?)
        }
        RemoteScheme::Azure => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .with_retry(retry);
            if let Some(connector) = connector {
                builder = builder.with_http_connector(connector.clone());
            }
            Arc::new(builder.build()?)
        }
    })
}

/// object_store's own HTTP client (a stand-in type for "no connector given").
#[derive(Debug, Clone, Copy, Default)]
struct DefaultConnector;

impl HttpConnector for DefaultConnector {
    fn connect(
        &self,
        options: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        object_store::client::ReqwestConnector::default().connect(options)
    }
}

fn with_prefix(store: Arc<dyn ObjectStore>, prefix: &str) -> Arc<dyn ObjectStore> {
    if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

fn retry_config(options: &StoreOptions) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: std::time::Duration::from_millis(100),
            max_backoff: std::time::Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: options.max_retries,
        retry_timeout: options.retry_timeout,
    }
}

/// An error and all its causes, as one text.
fn error_chain(error: &object_store::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The gist of a store error: the S3-style error code and HTTP status, or the innermost
/// cause (`Connection refused`).
fn short_detail(text: &str) -> String {
    let between = |start: &str, end: &str| {
        let from = text.find(start)? + start.len();
        let len = text[from..].find(end)?;
        Some(text[from..from + len].to_owned())
    };
    let status = between("status code: ", ":");
    match (status, between("<Code>", "</Code>")) {
        (Some(status), Some(code)) => format!("HTTP {status}, {code}"),
        (Some(status), None) => format!("HTTP {status}"),
        (None, Some(code)) => code,
        (None, None) => text.rsplit(": ").next().unwrap_or(text).to_owned(),
    }
}

const CREDENTIALS_HINT: &str = "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the role / instance profile) and the bucket policy";

/// What a healthcheck failure means, and what to check.
fn diagnose(error: &object_store::Error, text: &str) -> (&'static str, &'static str) {
    use object_store::Error as E;
    let says = |words: &[&str]| words.iter().any(|w| text.contains(w));
    match error {
        _ if says(&["NoSuchBucket", "ContainerNotFound"]) => (
            "the bucket does not exist",
            "create it, or check the bucket name in warehouse.url and warehouse.endpoint / warehouse.region",
        ),
        E::Unauthenticated { .. } | E::PermissionDenied { .. } => {
            ("the store refused the credentials", CREDENTIALS_HINT)
        }
        _ if says(&[
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "403 Forbidden",
            "401 Unauthorized",
        ]) =>
        {
            ("the store refused the credentials", CREDENTIALS_HINT)
        }
        _ if says(&["URL scheme is not allowed"]) => (
            "the endpoint is plain http://, which is not allowed",
            "use https://, or set warehouse.allow_http = true (or AWS_ALLOW_HTTP=true) for a local test store",
        ),
        E::NotFound { .. } => (
            "the bucket or prefix was not found",
            "create the bucket, or check warehouse.url and warehouse.endpoint / warehouse.region",
        ),
        _ if says(&["error sending request", "Connect", "dns error", "timed out"]) => (
            "the endpoint cannot be reached",
            "check warehouse.endpoint / AWS_ENDPOINT_URL, the network, and warehouse.allow_http for http:// endpoints",
        ),
        _ => (
            "a probe request failed",
            "check warehouse.url, the endpoint and the credentials",
        ),
    }
}

/// The partition directory of a run, from the export date (`YYYY-MM-DD...`).
pub fn partition_dir(partition_by: PartitionBy, export_date: &str) -> Option<String> {
    match partition_by {
        PartitionBy::None => None,
        PartitionBy::ExportDate => Some(format!(
            "export_date={}",
            export_date.get(..10).unwrap_or(export_date)
        )),
    }
}

/// What kind of run a manifest commits.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Rows ingested from a source.
    #[default]
    Ingest,
    /// Files of a table rewritten into fewer, larger ones; see `replaces`.
    Compaction,
}

/// What a committed run wrote: the record that makes its files part of the warehouse.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunManifest {
    /// Version of this format ([`MANIFEST_VERSION`]).
    pub format_version: u32,
    /// The run id.
    pub run_id: String,
    /// Ingest or compaction.
    #[serde(default)]
    pub kind: RunKind,
    /// The attempt of the run that committed (its files carry this token).
    #[serde(default)]
    pub attempt: String,
    /// The source name.
    pub source: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// When the run finished.
    pub finished_at: String,
    /// The export's transactionTime, if any.
    pub transaction_time: Option<String>,
    /// Per resource type: the files and their row counts.
    pub tables: BTreeMap<String, TableManifest>,
    /// Files of earlier committed runs that this run's files replace (compaction): by the
    /// reader's rule they are no longer part of the warehouse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
    /// Input totals.
    pub input: InputTotals,
    /// Lines rejected, and where they are kept.
    pub rejected: RejectedTotals,
    /// Resources the export's `deleted[]` files say were deleted since `_since`: readers
    /// drop earlier versions of these (type, id). Empty for files sources.
    #[serde(default)]
    pub deleted: Vec<DeletedRef>,
    /// The export's `error[]` OperationOutcomes, as plain text (one line per issue).
    #[serde(default)]
    pub server_errors: Vec<String>,
}

/// A resource deleted on the server, as listed in a run manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeletedRef {
    /// The resource type.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// The logical id.
    pub id: String,
}

/// The files of one table in a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TableManifest {
    /// Rows over all files.
    pub rows: u64,
    /// The files.
    pub files: Vec<WrittenFile>,
}

/// What a run read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InputTotals {
    /// Files.
    pub files: u64,
    /// Lines, blank ones included.
    pub lines: u64,
    /// Bytes of NDJSON (decompressed).
    pub bytes: u64,
    /// Lines neither ingested nor rejected: `Parameters` header lines of export files.
    #[serde(default)]
    pub skipped: u64,
}

/// The rejected lines of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RejectedTotals {
    /// How many.
    pub lines: u64,
    /// The quarantine file, when there are any.
    pub quarantine: Option<String>,
    /// Count per reason kind (first words of the reason).
    pub by_reason: BTreeMap<String, u64>,
    /// The first few rejections, `file:line: reason`, for the morning's first look.
    #[serde(default)]
    pub first: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, rows: u64) -> WrittenFile {
        WrittenFile {
            path: path.into(),
            rows,
            bytes: 1,
        }
    }

    fn run(run_id: &str, files: &[&str], replaces: &[&str]) -> RunManifest {
        let mut tables = BTreeMap::new();
        tables.insert(
            "Patient".to_string(),
            TableManifest {
                rows: files.len() as u64,
                files: files.iter().map(|p| file(p, 1)).collect(),
            },
        );
        RunManifest {
            format_version: MANIFEST_VERSION,
            run_id: run_id.into(),
            kind: if replaces.is_empty() {
                RunKind::Ingest
            } else {
                RunKind::Compaction
            },
            attempt: "a".into(),
            source: "s".into(),
            started_at: String::new(),
            finished_at: String::new(),
            transaction_time: None,
            tables,
            replaces: replaces.iter().map(|s| s.to_string()).collect(),
            input: InputTotals::default(),
            rejected: RejectedTotals::default(),
            deleted: Vec::new(),
            server_errors: Vec::new(),
        }
    }

    #[test]
    fn readers_rule_excludes_replaced_files() {
        let snapshot = Snapshot::new(vec![
            run("1", &["a", "b"], &[]),
            run("2", &["c"], &[]),
            run("3", &["ab"], &["a", "b"]),
        ]);
        let live: Vec<_> = snapshot.live_files()["Patient"]
            .iter()
            .map(|f| f.path.clone())
            .collect();
        assert_eq!(live, ["c", "ab"]);
        assert_eq!(snapshot.listed_files().len(), 4);
    }

    #[test]
    fn version_1_manifests_read_as_ingest_runs() {
        let v1 = r#"{"format_version":1,"run_id":"r","source":"s","started_at":"","finished_at":"",
            "transaction_time":null,"tables":{},"input":{"files":0,"lines":0,"bytes":0},
            "rejected":{"lines":0,"quarantine":null,"by_reason":{}}}"#;
        let manifest: RunManifest = serde_json::from_str(v1).unwrap();
        assert_eq!(manifest.kind, RunKind::Ingest);
        assert!(manifest.replaces.is_empty());
    }

    #[test]
    fn store_errors_are_shortened() {
        let text = "Generic S3 error: Error performing GET http://h/b in 14ms - Server returned non-2xx status code: 403 Forbidden: <?xml?><Error><Code>SignatureDoesNotMatch</Code></Error>";
        assert_eq!(
            short_detail(text),
            "HTTP 403 Forbidden, SignatureDoesNotMatch"
        );
        assert_eq!(
            short_detail("a: b: tcp connect error: Connection refused (os error 111)"),
            "Connection refused (os error 111)"
        );
    }

    #[tokio::test]
    async fn second_commit_of_a_run_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Warehouse::open_local(dir.path()).unwrap();
        warehouse.healthcheck().await.unwrap();
        let manifest = run("r1", &["x"], &[]);
        warehouse.commit(&manifest).await.unwrap();
        let err = warehouse.commit(&manifest).await.unwrap_err();
        assert!(
            matches!(err, WarehouseError::AlreadyCommitted { .. }),
            "{err}"
        );
        assert_eq!(warehouse.committed_run("r1").await.unwrap(), Some(manifest));
        assert_eq!(warehouse.committed_run("r2").await.unwrap(), None);
    }
}
