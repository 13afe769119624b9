//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod faults;
pub mod mock;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use fhir_ingest::{
    ingest::{
        self, DecodeConfig, IngestError, IngestSettings, Progress, RunContext, RunSpec, RunSummary,
    },
    input,
    maintain::rebuild::{self, Rebuilt},
    schema::Registry,
    warehouse::{DeletedRef, ExportRecord, TableId, TableKind, Warehouse, WarehouseConfig, layout},
};

/// The `deleted[]` entries of the Patients `ids`.
pub fn deleted_patients(ids: &[&str]) -> Vec<DeletedRef> {
    ids.iter()
        .map(|id| DeletedRef {
            resource_type: "Patient".into(),
            id: (*id).into(),
        })
        .collect()
}

/// The embedded schemas, parsed once per test binary.
pub fn registry() -> Arc<Registry> {
    static REGISTRY: std::sync::OnceLock<Arc<Registry>> = std::sync::OnceLock::new();
    REGISTRY
        .get_or_init(|| Arc::new(Registry::embedded().expect("embedded schemas parse")))
        .clone()
}

/// The sample data set committed in the repository.
pub fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data/bulk-export-10-patients")
}

/// `../shared/data` beside the checkout, when present (developers' machines and CI).
pub fn shared_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    dir.is_dir().then_some(dir)
}

/// The context of a test run into `warehouse` (never cancelled).
pub fn context(warehouse: &Warehouse) -> RunContext {
    RunContext {
        warehouse: warehouse.clone(),
        registry: registry(),
        runtime: runtime().handle().clone(),
        cancel: tokio_util::sync::CancellationToken::new(),
        progress: Arc::new(Progress::default()),
    }
}

/// The settings of test runs: small batches, `max_rejected_fraction` as given.
pub fn settings(max_rejected_fraction: f64) -> IngestSettings {
    IngestSettings {
        decode: DecodeConfig {
            batch_rows: std::num::NonZeroUsize::new(500).unwrap(),
            workers: std::num::NonZeroUsize::new(2).unwrap(),
            ..DecodeConfig::default()
        },
        max_rejected_fraction,
        ..IngestSettings::default()
    }
}

/// A run of source `test` over `inputs`.
pub fn spec(inputs: &[PathBuf], transaction_time: Option<&str>) -> RunSpec {
    RunSpec {
        source: "test".into(),
        namespace: "test".into(),
        inputs: input::discover(inputs, &registry()).unwrap(),
        parallel_files: std::num::NonZeroUsize::MIN,
        transaction_time: transaction_time.map(str::to_owned),
        export: ExportRecord::default(),
        views: Vec::new(),
    }
}

/// Runs the pipeline over `inputs` into a local warehouse at `root`.
pub fn ingest(
    root: &Path,
    inputs: &[PathBuf],
    max_rejected_fraction: f64,
) -> (Warehouse, RunSummary) {
    let warehouse = Warehouse::open_local(root).unwrap();
    let summary = ingest::run(
        &context(&warehouse),
        &settings(max_rejected_fraction),
        spec(inputs, Some("2026-01-02T03:04:05Z")),
    )
    .unwrap();
    (warehouse, summary)
}

/// Every committed resource of the warehouse, rebuilt: every version ingested (the
/// history tables, tombstones left out).
pub fn rebuild_all(warehouse: &Warehouse) -> Vec<Rebuilt> {
    rebuild_tables(warehouse, |t| matches!(t.kind(), TableKind::History(_)))
}

/// The current version of every resource (the current tables), rebuilt.
pub fn rebuild_current(warehouse: &Warehouse) -> Vec<Rebuilt> {
    rebuild_tables(warehouse, |t| matches!(t.kind(), TableKind::Current(_)))
}

fn rebuild_tables(warehouse: &Warehouse, wanted: impl Fn(&TableId) -> bool) -> Vec<Rebuilt> {
    let registry = registry();
    runtime().block_on(async {
        let mut out = Vec::new();
        for table in warehouse.delta_tables().await.unwrap() {
            if !wanted(&table) {
                continue;
            }
            let schema = registry.require(table.resource_type().unwrap()).unwrap();
            for file in warehouse.live_files(&table).await.unwrap() {
                out.extend(
                    rebuild::rebuild_file(warehouse, schema, &file.path)
                        .await
                        .unwrap(),
                );
            }
        }
        out
    })
}

/// Reads a file's lines (gzip or plain) as JSON values, keyed by line number.
pub fn original_lines(path: &Path) -> Vec<(i64, serde_json::Value)> {
    use std::io::BufRead;
    let reader = std::io::BufReader::new(input::open(path).unwrap());
    reader
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.unwrap();
            (!line.trim().is_empty()).then(|| (i as i64 + 1, serde_json::from_str(&line).unwrap()))
        })
        .collect()
}

/// A warehouse backend of the conformance suite.
pub struct Backend {
    /// `local`, `s3` or `azure`.
    pub name: &'static str,
    /// The warehouse configuration (a fresh, empty location).
    pub config: WarehouseConfig,
    /// Keeps a local warehouse's directory alive.
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// Opens the warehouse and runs its healthcheck.
    pub fn open(&self) -> Warehouse {
        let warehouse = Warehouse::open(&self.config).unwrap();
        runtime().block_on(warehouse.healthcheck()).unwrap();
        warehouse
    }
}

/// Every backend to run the suite on: local disk always, S3 when `FHIR_INGEST_S3_URL`
/// is set and Azure Blob Storage when `FHIR_INGEST_AZURE_URL` is (`scripts/test`
/// starts SeaweedFS and Azurite and sets both). Each call gives fresh, empty
/// warehouses named after `test`.
pub fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![Backend {
        name: "local",
        config: WarehouseConfig::from_url(dir.path().join("wh").to_str().unwrap(), Path::new("."))
            .unwrap(),
        _dir: Some(dir),
    }];
    for (name, var) in [
        ("s3", "FHIR_INGEST_S3_URL"),
        ("azure", "FHIR_INGEST_AZURE_URL"),
    ] {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => {
                let url = format!(
                    "{}/{test}-{}",
                    url.trim_end_matches('/'),
                    layout::new_attempt()
                );
                out.push(Backend {
                    name,
                    config: WarehouseConfig::from_url(&url, Path::new(".")).unwrap(),
                    _dir: None,
                });
            }
            _ => eprintln!("{var} not set: {test} skips {name}"),
        }
    }
    out
}

/// A small multi-threaded runtime for the store.
///
/// One for the whole test binary: an S3 client keeps pooled connections on the runtime
/// that opened them, so a store used after that runtime is dropped fails with
/// "runtime dropped the dispatch task" (regression: the racing-ingesters test on S3).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Runs the pipeline over `inputs` into `warehouse` as source `test`.
pub fn ingest_into(
    warehouse: &Warehouse,
    inputs: &[PathBuf],
    transaction_time: Option<&str>,
) -> Result<RunSummary, IngestError> {
    ingest::run(
        &context(warehouse),
        &settings(0.0),
        spec(inputs, transaction_time),
    )
}
