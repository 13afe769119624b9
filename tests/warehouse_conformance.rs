//! One conformance suite for every warehouse backend: local disk always, S3 (SeaweedFS
//! started by `scripts/test`) when `FHIR_INGEST_S3_URL` is set, Azure Blob Storage
//! (Azurite, likewise) when `FHIR_INGEST_AZURE_URL` is. The same run must give the same
//! results on each: committed data read back, reruns that write nothing,
//! crashes at each step of the commit protocol followed by a rerun, two ingesters racing
//! on one export, compaction and cleanup that keep every row.

mod common;

use std::{path::PathBuf, sync::Arc};

use common::{faults::FailingStore, *};
use fhir_ingest::{
    ingest::Outcome,
    maintain::{
        cleanup::cleanup,
        compact::{self, Compacted},
        status,
    },
    sink::ParquetConfig,
    warehouse::{TableId, Warehouse},
};

const EXPORT: &str = "2026-01-02T03:04:05Z";
const SAMPLE_ROWS: usize = 7160;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn state(warehouse: &Warehouse) -> status::Status {
    runtime()
        .block_on(status::status(warehouse, now()))
        .unwrap()
}

/// A small input: `n` patients in one file of a fresh directory.
fn patients(dir: &std::path::Path, name: &str, n: usize) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).unwrap();
    let lines: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"resourceType":"Patient","id":"{name}-{i}","gender":"female"}}"#))
        .collect();
    std::fs::write(path.join("Patient.ndjson"), lines.join("\n")).unwrap();
    path
}

#[test]
fn a_full_run_is_read_back_whole() {
    for backend in backends("full-run") {
        let warehouse = backend.open();
        let summary = ingest_into(&warehouse, &[sample_dir()], Some(EXPORT)).unwrap();
        assert_eq!(summary.outcome, Outcome::Complete, "{}", backend.name);
        assert_eq!(
            rebuild_all(&warehouse).len(),
            SAMPLE_ROWS,
            "{}",
            backend.name
        );
        let status = state(&warehouse);
        assert_eq!(status.sources["test"].runs, 1);
        assert_eq!(status.sources["test"].rows, SAMPLE_ROWS as u64);
        assert!(
            status.staged.is_empty(),
            "{}: {:?}",
            backend.name,
            status.staged
        );
    }
}

/// The manifest keeps what each file's Parquet footer says of its key columns: the
/// ranges of `id` and `meta.lastUpdated`, and the partition.
#[test]
fn the_manifest_records_each_files_key_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (warehouse, summary) = ingest(&dir.path().join("wh"), &[sample_dir()], 0.0);
    let rebuilt = rebuild_all(&warehouse);
    for (table, written) in &summary.manifest.tables {
        let Some(resource_type) = table.resource_type() else {
            continue;
        };
        let history = table.dir().starts_with("history/");
        for file in &written.files {
            let stats = file.stats.as_ref().unwrap();
            let partition = history.then_some("export_date=2026-01-02");
            assert_eq!(stats.partition.as_deref(), partition, "{table}");
            let rows: Vec<_> = rebuilt
                .iter()
                .filter(|r| r.resource["resourceType"] == resource_type)
                .collect();
            let ids: Vec<&str> = rows
                .iter()
                .map(|r| r.resource["id"].as_str().unwrap())
                .collect();
            let id = stats.id.as_ref().unwrap();
            assert_eq!(id.min, *ids.iter().min().unwrap(), "{table}");
            assert_eq!(id.max, *ids.iter().max().unwrap(), "{table}");
            let updated: Vec<i64> = rows
                .iter()
                .filter_map(|r| r.resource["meta"]["lastUpdated"].as_str())
                .map(|t| fhir_ingest::temporal::parse_micros(t).unwrap())
                .collect();
            match (
                &stats.last_updated,
                updated.iter().min(),
                updated.iter().max(),
            ) {
                (Some(range), Some(min), Some(max)) => {
                    assert_eq!(range.min, fhir_ingest::temporal::rfc3339_micros(*min));
                    assert_eq!(range.max, fhir_ingest::temporal::rfc3339_micros(*max));
                }
                (None, None, None) => {}
                other => panic!("{table}: {other:?}"),
            }
        }
    }
}

#[test]
fn a_rerun_of_a_committed_export_writes_nothing() {
    for backend in backends("rerun") {
        let warehouse = backend.open();
        let first = ingest_into(&warehouse, &[sample_dir()], Some(EXPORT)).unwrap();
        assert_eq!(first.outcome, Outcome::Complete);
        let objects_before = state(&warehouse).tables;
        // As after a crash between the manifest and the checkpoint: the export is
        // committed but whoever ran it did not record that; it is run again.
        let again = ingest_into(&warehouse, &[sample_dir()], Some(EXPORT)).unwrap();
        assert_eq!(again.outcome, Outcome::AlreadyCommitted, "{}", backend.name);
        assert_eq!(again.manifest.run_id, first.manifest.run_id);
        assert_eq!(state(&warehouse).tables, objects_before);
        assert_eq!(
            rebuild_all(&warehouse).len(),
            SAMPLE_ROWS,
            "{}",
            backend.name
        );
        // Another export of the same source is a new run.
        let other = ingest_into(&warehouse, &[sample_dir()], Some("2026-01-03T00:00:00Z")).unwrap();
        assert_eq!(other.outcome, Outcome::Complete);
        assert_eq!(rebuild_all(&warehouse).len(), 2 * SAMPLE_ROWS);
    }
}

#[test]
fn a_crash_between_data_and_manifest_then_a_rerun_commits_once() {
    // Crashes at two steps of the commit: while committing one table (after the tables
    // before it), and while writing the run manifest (after every table).
    for (step, fail_prefix) in [
        ("table", "history/Patient/_delta_log/"),
        ("manifest", "_runs/"),
    ] {
        for backend in backends(&format!("crash-before-{step}")) {
            let warehouse = backend.open();
            let crashing = Warehouse::from_store(
                Arc::new(FailingStore {
                    inner: warehouse.store(),
                    fail_prefix: fail_prefix.into(),
                }),
                warehouse.root().into(),
            );
            let err = ingest_into(&crashing, &[sample_dir()], Some(EXPORT)).unwrap_err();
            let what = format!("{}: crash at the {step}: {err}", backend.name);
            assert!(
                state(&warehouse).sources.is_empty(),
                "{what}: no run manifest"
            );
            assert!(
                rebuild_all(&warehouse).len() < SAMPLE_ROWS || step == "manifest",
                "{what}"
            );

            let rerun = ingest_into(&warehouse, &[sample_dir()], Some(EXPORT)).unwrap();
            assert_eq!(rerun.outcome, Outcome::Complete, "{what}");
            assert_eq!(
                rebuild_all(&warehouse).len(),
                SAMPLE_ROWS,
                "{what}: every version once"
            );
            assert_eq!(
                rebuild_current(&warehouse).len(),
                SAMPLE_ROWS,
                "{what}: every resource once"
            );

            // The rerun's files of the tables committed before are staged leftovers.
            // Cleanup: a dry run deletes nothing; young files are kept; then they go.
            let staged = state(&warehouse).staged;
            assert!(!staged.is_empty(), "{what}");
            let dry = runtime()
                .block_on(cleanup(&warehouse, now(), 0, false))
                .unwrap();
            assert_eq!(dry.staged.len(), staged.len());
            assert_eq!(state(&warehouse).staged.len(), staged.len());
            let young = runtime()
                .block_on(cleanup(&warehouse, now(), 3600, true))
                .unwrap();
            assert!(
                young.staged.is_empty(),
                "the grace period protects young files"
            );
            runtime()
                .block_on(cleanup(&warehouse, now(), 0, true))
                .unwrap();
            assert!(state(&warehouse).staged.is_empty(), "{what}");
            assert_eq!(rebuild_all(&warehouse).len(), SAMPLE_ROWS, "{what}");
            assert_eq!(rebuild_current(&warehouse).len(), SAMPLE_ROWS, "{what}");
        }
    }
}

#[test]
fn a_crash_while_writing_data_commits_nothing() {
    for backend in backends("crash-in-data") {
        let warehouse = backend.open();
        let crashing = Warehouse::from_store(
            Arc::new(FailingStore {
                inner: warehouse.store(),
                fail_prefix: "history/Encounter/".into(),
            }),
            warehouse.root().into(),
        );
        let result = ingest_into(&crashing, &[sample_dir()], Some(EXPORT));
        assert!(
            result.is_err(),
            "{:?}",
            result.map(|s| (s.outcome, s.manifest))
        );
        let status = state(&warehouse);
        assert!(
            status.sources.is_empty(),
            "{}: nothing committed",
            backend.name
        );
        assert!(rebuild_all(&warehouse).is_empty());
        let rerun = ingest_into(&warehouse, &[sample_dir()], Some(EXPORT)).unwrap();
        assert_eq!(rerun.outcome, Outcome::Complete);
        assert_eq!(
            rebuild_all(&warehouse).len(),
            SAMPLE_ROWS,
            "{}",
            backend.name
        );
    }
}

#[test]
fn two_ingesters_racing_on_one_export_commit_it_once() {
    for backend in backends("race") {
        let warehouse = backend.open();
        let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let warehouse = &warehouse;
                    scope.spawn(move || {
                        ingest_into(warehouse, &[sample_dir()], Some(EXPORT))
                            .unwrap()
                            .outcome
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners = outcomes.iter().filter(|o| **o == Outcome::Complete).count();
        assert_eq!(winners, 1, "{}: {outcomes:?}", backend.name);
        assert!(
            outcomes
                .iter()
                .any(|o| matches!(o, Outcome::CommittedByAnother | Outcome::AlreadyCommitted)),
            "{outcomes:?}"
        );
        assert_eq!(
            rebuild_all(&warehouse).len(),
            SAMPLE_ROWS,
            "{}",
            backend.name
        );
        assert_eq!(state(&warehouse).sources["test"].runs, 1);
    }
}

#[test]
fn runs_without_a_transaction_time_never_collide() {
    for backend in backends("unique-runs") {
        let warehouse = backend.open();
        let dir = tempfile::tempdir().unwrap();
        let input = patients(dir.path(), "a", 10);
        let a = ingest_into(&warehouse, std::slice::from_ref(&input), None).unwrap();
        let b = ingest_into(&warehouse, &[input], None).unwrap();
        assert_ne!(a.manifest.run_id, b.manifest.run_id);
        assert_eq!(rebuild_all(&warehouse).len(), 20, "{}", backend.name);
    }
}

#[test]
fn compaction_keeps_every_row_and_readers_skip_replaced_files() {
    for backend in backends("compact") {
        let warehouse = backend.open();
        let dir = tempfile::tempdir().unwrap();
        for day in 1..=3 {
            let input = patients(dir.path(), &format!("d{day}"), 50 * day);
            let export = format!("2026-02-0{day}T00:00:00Z");
            let summary = ingest_into(&warehouse, &[input], Some(&export)).unwrap();
            assert_eq!(summary.outcome, Outcome::Complete);
        }
        // Each run has its own partition; a fourth run into the first day's partition
        // gives that partition two small files.
        let input = patients(dir.path(), "d1b", 7);
        ingest_into(&warehouse, &[input], Some("2026-02-01T12:00:00Z")).unwrap();
        let before = rebuild_all(&warehouse).len();
        assert_eq!(before, 50 + 100 + 150 + 7);
        let result = compact::compact_table(
            &context(&warehouse),
            &TableId::history("Patient"),
            64 << 20,
            &ParquetConfig::default(),
        )
        .unwrap();
        let Compacted::Committed {
            replaced,
            written,
            rows,
            ..
        } = result
        else {
            panic!("{}: {result:?}", backend.name)
        };
        assert_eq!((replaced, written, rows), (2, 1, 57), "{}", backend.name);
        assert_eq!(rebuild_all(&warehouse).len(), before, "{}", backend.name);
        let status = state(&warehouse);
        assert_eq!(status.replaced.len(), 2);
        assert_eq!(status.tables[&TableId::history("Patient")].files, 3);
        // Compacting again finds nothing; cleanup removes the replaced files only.
        let again = compact::compact_table(
            &context(&warehouse),
            &TableId::history("Patient"),
            64 << 20,
            &ParquetConfig::default(),
        )
        .unwrap();
        assert_eq!(again, Compacted::Nothing);
        runtime()
            .block_on(cleanup(&warehouse, now(), 0, true))
            .unwrap();
        let status = state(&warehouse);
        assert!(status.replaced.is_empty() && status.staged.is_empty());
        assert_eq!(rebuild_all(&warehouse).len(), before, "{}", backend.name);
    }
}

/// Throttling and server errors from the store are retried by object_store.
#[test]
fn throttling_and_server_errors_are_retried() {
    for backend in backends("flaky").into_iter().filter(|b| b.name == "s3") {
        let connector = common::faults::FlakyConnector::new(4);
        let warehouse =
            Warehouse::open_with_connector(&backend.config, Some(connector.clone())).unwrap();
        runtime().block_on(warehouse.healthcheck()).unwrap();
        let summary = ingest_into(&warehouse, &[sample_dir()], Some(EXPORT)).unwrap();
        assert_eq!(summary.outcome, Outcome::Complete);
        assert_eq!(rebuild_all(&warehouse).len(), SAMPLE_ROWS);
        let injected = connector.injected.load(std::sync::atomic::Ordering::SeqCst);
        assert!(injected > 5, "only {injected} errors injected");
        eprintln!("{injected} throttling/5xx answers injected and retried");
    }
}

/// Objects larger than one part go up as multipart uploads, whole and in order; an
/// upload that is dropped unfinished leaves no object.
#[test]
fn large_objects_are_uploaded_in_parts() {
    use std::io::Write;

    use fhir_ingest::sink::{ObjectWriter, PART_BYTES};
    use object_store::{ObjectStoreExt, path::Path};

    for backend in backends("multipart") {
        let warehouse = backend.open();
        let runtime = runtime();
        let data: Vec<u8> = (0..2 * PART_BYTES + 12_345)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let path = Path::from("Big/part-x-1-a-0000.parquet");
        let written = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut writer = ObjectWriter::new(
                        warehouse.store(),
                        path.clone(),
                        runtime.handle().clone(),
                    );
                    for chunk in data.chunks(1 << 20) {
                        writer.write_all(chunk).unwrap();
                    }
                    writer.finish().unwrap()
                })
                .join()
                .unwrap()
        });
        assert_eq!(written, data.len() as u64);
        let read = runtime
            .block_on(async { warehouse.store().get(&path).await?.bytes().await })
            .unwrap();
        assert!(
            read.as_ref() == data.as_slice(),
            "{}: content differs",
            backend.name
        );

        let abandoned = Path::from("Big/part-x-2-a-0000.parquet");
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut writer = ObjectWriter::new(
                    warehouse.store(),
                    abandoned.clone(),
                    runtime.handle().clone(),
                );
                writer.write_all(&data).unwrap();
                drop(writer);
            });
        });
        let head = runtime.block_on(warehouse.store().head(&abandoned));
        assert!(
            matches!(head, Err(object_store::Error::NotFound { .. })),
            "{}: {head:?}",
            backend.name
        );
    }
}

/// A crash (here: a failing store) while a table's Delta checkpoint is written leaves the
/// commit standing: readers replay the log, and later runs go on.
#[test]
fn a_failed_checkpoint_never_fails_a_run() {
    for backend in backends("failed-checkpoint") {
        let warehouse = backend.open();
        let dir = tempfile::tempdir().unwrap();
        let failing = Warehouse::from_store(
            Arc::new(FailingStore {
                inner: warehouse.store(),
                fail_prefix: "history/Patient/_delta_log/00000000000000000010.checkpoint".into(),
            }),
            warehouse.root().into(),
        );
        // Versions 0..=11 of history/Patient: the checkpoint due at 10 fails.
        for day in 0..12 {
            let input = patients(dir.path(), &format!("d{day}"), 3);
            let summary = ingest_into(
                &failing,
                &[input],
                Some(&format!("2026-02-{:02}T00:00:00Z", day + 1)),
            )
            .unwrap();
            assert_eq!(summary.outcome, Outcome::Complete, "{}", backend.name);
        }
        assert_eq!(rebuild_all(&warehouse).len(), 36, "{}", backend.name);
        assert_eq!(rebuild_current(&warehouse).len(), 36, "{}", backend.name);
        let snapshot = runtime()
            .block_on(warehouse.table_snapshot(&TableId::history("Patient")))
            .unwrap()
            .unwrap();
        assert_eq!(snapshot.version(), 11);
        assert_eq!(snapshot.checkpoint_version(), None, "{}", backend.name);
    }
}
