//! Decode and end-to-end throughput in MB/s of NDJSON, on wide (ExplanationOfBenefit,
//! Claim) and narrow (Observation) resources.
//!
//! Data: `../shared/data/synthea-sample` when present (or `FHIR_INGEST_BENCH_DATA`),
//! else the committed sample (which has no Claim or ExplanationOfBenefit). Up to 16 MB
//! of each file is used.

use std::{
    io::Read,
    path::{Path, PathBuf},
    sync::Arc,
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fhir_ingest::{
    decode::{LineDecoder, LineOrigin, RunLineage},
    input,
    schema::{
        Registry,
        sparse::{self, Leaves},
    },
    sink::{ParquetConfig, properties_for, writer_properties},
};
use parquet::arrow::ArrowWriter;

const MAX_BYTES: usize = 16_000_000;

fn data_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FHIR_INGEST_BENCH_DATA") {
        return dir.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/data/synthea-sample");
    if shared.is_dir() {
        shared
    } else {
        root.join("sample-data/bulk-export-10-patients")
    }
}

/// Whole lines of a file, up to MAX_BYTES.
fn load(resource_type: &str) -> Option<Vec<u8>> {
    let dir = data_dir();
    let path = ["ndjson.gz", "ndjson"]
        .iter()
        .map(|ext| dir.join(format!("{resource_type}.{ext}")))
        .find(|p| p.exists())?;
    let mut data = Vec::new();
    input::open(&path)
        .ok()?
        .take(MAX_BYTES as u64 + 1_000_000)
        .read_to_end(&mut data)
        .ok()?;
    let end =
        memchr::memrchr(b'\n', &data[..data.len().min(MAX_BYTES)]).map_or(data.len(), |i| i + 1);
    data.truncate(end);
    Some(data)
}

fn decode_all(
    decoder: &mut LineDecoder,
    data: &[u8],
    origin: &LineOrigin,
) -> Vec<(String, arrow_array::RecordBatch)> {
    let mut batches = Vec::new();
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        decoder
            .decode_line(line, origin, i as u64 + 1)
            .expect("bench data is valid");
        if i % 4096 == 4095 {
            batches.extend(decoder.finish_all().expect("batch"));
        }
    }
    batches.extend(decoder.finish_all().expect("batch"));
    batches
}

fn benches(c: &mut Criterion) {
    let registry = Arc::new(Registry::embedded().expect("schemas"));
    let lineage = Arc::new(RunLineage {
        source: "bench".into(),
        namespace: "bench".into(),
        run_id: "bench".into(),
        transaction_time: None,
    });
    let properties = writer_properties(&ParquetConfig::default());
    for resource_type in ["Observation", "ExplanationOfBenefit", "Claim", "Patient"] {
        let Some(data) = load(resource_type) else {
            eprintln!(
                "no {resource_type} data in {}: skipped",
                data_dir().display()
            );
            continue;
        };
        let origin = LineOrigin {
            file: Arc::from(format!("{resource_type}.ndjson")),
            expected_type: None,
            skip_parameters: false,
        };
        let mut group = c.benchmark_group(resource_type);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.sample_size(10);
        group.bench_function("decode", |b| {
            let mut decoder = LineDecoder::new(registry.clone(), lineage.clone());
            b.iter(|| decode_all(&mut decoder, &data, &origin))
        });
        let schema = registry
            .require(resource_type)
            .expect("known type")
            .arrow_schema();
        // As before issue 12: every leaf of the table's schema in the file.
        group.bench_function("decode+parquet, every leaf", |b| {
            let mut decoder = LineDecoder::new(registry.clone(), lineage.clone());
            b.iter(|| {
                let mut writer =
                    ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties.clone()))
                        .expect("writer");
                for (_, batch) in decode_all(&mut decoder, &data, &origin) {
                    writer.write(&batch).expect("write");
                }
                writer.into_inner().expect("close").len()
            })
        });
        // What a run writes: only the leaves with a value, per-column properties.
        group.bench_function("decode+parquet, sparse", |b| {
            let mut decoder = LineDecoder::new(registry.clone(), lineage.clone());
            b.iter(|| {
                let batches = decode_all(&mut decoder, &data, &origin);
                let mut leaves = Leaves::default();
                for (_, batch) in &batches {
                    leaves.union(&Leaves::of(batch));
                }
                let pruned = leaves.prune_schema(&schema);
                let file_properties = properties_for(&properties, &pruned).expect("properties");
                let mut writer =
                    ArrowWriter::try_new(Vec::new(), pruned.clone(), Some(file_properties))
                        .expect("writer");
                for (_, batch) in &batches {
                    let batch = sparse::prune(batch, &leaves, &pruned).expect("prune");
                    writer.write(&batch).expect("write");
                }
                writer.into_inner().expect("close").len()
            })
        });
        group.bench_function("simd-json parse only", |b| {
            let mut buffers = simd_json::Buffers::default();
            let mut scratch = Vec::new();
            b.iter(|| {
                let mut nodes = 0;
                for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    scratch.clear();
                    scratch.extend_from_slice(line);
                    nodes += simd_json::to_tape_with_buffers(&mut scratch, &mut buffers)
                        .expect("valid")
                        .0
                        .len();
                }
                nodes
            })
        });
        group.finish();
    }
}

criterion_group!(decode, benches);
criterion_main!(decode);
