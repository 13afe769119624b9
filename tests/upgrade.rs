//! `upgrade`: a warehouse of the manifest-only layout (as versions before the Delta
//! tables wrote it: `<Type>/export_date=.../part-*.parquet` with a `_lineage` of five
//! fields, listed by `_runs/` manifests) becomes history and current Delta tables.

mod common;

use std::{collections::BTreeMap, sync::Arc};

use arrow_array::{ArrayRef, RecordBatch, StructArray, cast::AsArray};
use arrow_schema::{Field, Fields, Schema};
use common::*;
use fhir_ingest::{
    decode::{LineDecoder, LineOrigin, RunLineage},
    maintain::upgrade::upgrade,
    sink::ParquetConfig,
    warehouse::{
        InputTotals, RejectedTotals, RunKind, RunManifest, TableId, TableManifest, Warehouse,
        WrittenFile,
    },
};
use parquet::arrow::ArrowWriter;

/// Resources a merge pass holds: the upgrade's merges take several passes.
const FEW_KEYS_A_PASS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(2).unwrap();

const OLD_LINEAGE: [&str; 5] = ["source", "run_id", "transaction_time", "file", "line"];

/// A Patient file as the old version wrote it, for run `run` of export `tt`.
fn old_file(root: &std::path::Path, run: &str, tt: &str, lines: &[String]) -> WrittenFile {
    let lineage = Arc::new(RunLineage {
        source: "ehr".into(),
        namespace: "ehr".into(),
        run_id: run.into(),
        transaction_time: Some(tt.into()),
    });
    let mut decoder = LineDecoder::new(registry(), lineage);
    let origin = LineOrigin {
        file: "Patient.ndjson".into(),
        expected_type: None,
        skip_parameters: false,
    };
    for (i, line) in lines.iter().enumerate() {
        decoder
            .decode_line(line.as_bytes(), &origin, i as u64 + 1)
            .unwrap();
    }
    let (_, batch) = decoder.finish_all().unwrap().remove(0);
    // Drop the lineage fields the old version did not have.
    let schema = batch.schema();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            if f.name() != "_lineage" {
                return c.clone();
            }
            let s = c.as_struct();
            let fields: Vec<Field> = OLD_LINEAGE
                .iter()
                .map(|n| s.fields().find(n).unwrap().1.as_ref().clone())
                .collect();
            let children = OLD_LINEAGE
                .iter()
                .map(|n| s.column_by_name(n).unwrap().clone())
                .collect();
            Arc::new(StructArray::new(Fields::from(fields), children, None)) as ArrayRef
        })
        .collect();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), f.is_nullable()))
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let path = format!(
        "Patient/export_date={}/part-{run}-a-0000.parquet",
        &tt[..10]
    );
    let full = root.join(&path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&full).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    WrittenFile {
        path,
        rows: lines.len() as u64,
        bytes: std::fs::metadata(&full).unwrap().len(),
        stats: None,
        delta_stats: None,
    }
}

fn manifest(run: &str, tt: &str, file: WrittenFile, deleted: &[&str]) -> RunManifest {
    let mut table = TableManifest::default();
    table.push(file);
    RunManifest {
        format_version: 2,
        run_id: run.into(),
        kind: RunKind::Ingest,
        attempt: "a".into(),
        source: "ehr".into(),
        started_at: tt.into(),
        finished_at: tt.into(),
        transaction_time: Some(tt.into()),
        tables: BTreeMap::from([(TableId::legacy("Patient"), table)]),
        replaces: Vec::new(),
        input: InputTotals::default(),
        rejected: RejectedTotals::default(),
        deleted: deleted_patients(deleted),
        server_errors: Vec::new(),
        view_errors: Default::default(),
    }
}

fn patient(id: &str, version: &str) -> String {
    format!(r#"{{"resourceType":"Patient","id":"{id}","meta":{{"versionId":"{version}"}}}}"#)
}

#[test]
fn an_old_warehouse_becomes_history_and_current_tables_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    let warehouse = Warehouse::open_local(&root).unwrap();
    let runtime = runtime();
    let (t1, t2) = ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
    let f1 = old_file(&root, "r1", t1, &[patient("a", "1"), patient("b", "1")]);
    let f2 = old_file(&root, "r2", t2, &[patient("a", "2"), patient("c", "1")]);
    for m in [manifest("r1", t1, f1, &[]), manifest("r2", t2, f2, &["b"])] {
        runtime.block_on(warehouse.commit(&m)).unwrap();
    }

    let cx = context(&warehouse);
    let done = upgrade(&cx, &ParquetConfig::default(), FEW_KEYS_A_PASS).unwrap();
    assert_eq!(
        (done.len(), done[0].rows, done[0].deleted),
        (1, 4, 1),
        "{done:?}"
    );
    assert_eq!(rebuild_all(&warehouse).len(), 4, "every version in history");
    let mut current: Vec<(String, String)> = rebuild_current(&warehouse)
        .into_iter()
        .map(|r| {
            (
                r.resource["id"].as_str().unwrap().to_owned(),
                r.resource["meta"]["versionId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    current.sort();
    assert_eq!(
        current,
        [("a".into(), "2".into()), ("c".into(), "1".into())]
    );
    assert!(
        !root
            .join("Patient")
            .join("export_date=2026-01-01")
            .read_dir()
            .unwrap()
            .any(|e| e
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "parquet"))
    );

    // Again: nothing to do, nothing changes.
    assert!(
        upgrade(&cx, &ParquetConfig::default(), FEW_KEYS_A_PASS)
            .unwrap()
            .is_empty()
    );
    assert_eq!(rebuild_all(&warehouse).len(), 4);
    assert_eq!(rebuild_current(&warehouse).len(), 2);
    let history = runtime
        .block_on(warehouse.table_snapshot(&TableId::history("Patient")))
        .unwrap()
        .unwrap();
    assert_eq!(history.partition_columns(), ["export_date"]);
}
