//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod mock;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use fhir_ingest::{
    config::{DecodeConfig, ParquetConfig, PartitionBy},
    input,
    pipeline::{self, RunOptions, RunSummary},
    rebuild::{self, Rebuilt},
    schema::Registry,
    warehouse::Warehouse,
};

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

/// Runs the pipeline over `inputs` into a local warehouse at `root`.
pub fn ingest(
    root: &Path,
    inputs: &[PathBuf],
    max_rejected_fraction: f64,
) -> (Warehouse, RunSummary) {
    let registry = registry();
    let warehouse = Warehouse::open_local(root).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let options = RunOptions {
        source: "test".into(),
        inputs: input::discover(inputs, &registry).unwrap(),
        transaction_time: Some("2026-01-02T03:04:05Z".into()),
        decode: DecodeConfig {
            batch_rows: std::num::NonZeroUsize::new(500).unwrap(),
            ..DecodeConfig::default()
        },
        parquet: ParquetConfig::default(),
        partition_by: PartitionBy::ExportDate,
        max_rejected_fraction,
        parallel_files: std::num::NonZeroUsize::MIN,
        deleted: Vec::new(),
        server_errors: Vec::new(),
    };
    let summary = pipeline::run(
        &warehouse,
        registry,
        options,
        runtime.handle().clone(),
        &|_| {},
    )
    .unwrap();
    (warehouse, summary)
}

/// Every committed resource of the warehouse, rebuilt.
pub fn rebuild_all(warehouse: &Warehouse) -> Vec<Rebuilt> {
    let registry = registry();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut out = Vec::new();
        for run in warehouse.committed_runs().await.unwrap() {
            for (resource_type, table) in run.tables {
                let schema = registry.require(&resource_type).unwrap();
                for file in table.files {
                    out.extend(
                        rebuild::rebuild_file(warehouse, schema, &file.path)
                            .await
                            .unwrap(),
                    );
                }
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
