//! The current-state tables (`current/<Type>`): which version of a resource wins, how
//! deletes apply, namespaces, and that a merge rewrites only the files it must.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use fhir_ingest::{
    ingest::{self, Outcome, RunSpec, RunSummary},
    warehouse::{ExportRecord, TableId, Warehouse},
};

fn patient(id: &str, version: Option<&str>, updated: Option<&str>, gender: &str) -> String {
    let mut meta = serde_json::Map::new();
    if let Some(v) = version {
        meta.insert("versionId".into(), v.into());
    }
    if let Some(u) = updated {
        meta.insert("lastUpdated".into(), u.into());
    }
    serde_json::json!({"resourceType": "Patient", "id": id, "meta": meta, "gender": gender})
        .to_string()
}

/// Writes `lines` as `Patient.ndjson` in a fresh folder `name` under `dir`.
fn input(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("Patient.ndjson"), lines.join("\n") + "\n").unwrap();
    folder
}

/// One run of `source` (namespace `namespace`) of an export at `tt` deleting `deleted`.
fn run(
    warehouse: &Warehouse,
    folder: &Path,
    (source, namespace): (&str, &str),
    tt: &str,
    deleted: &[&str],
) -> RunSummary {
    let spec = RunSpec {
        source: source.into(),
        namespace: namespace.into(),
        export: ExportRecord {
            deleted: deleted_patients(deleted),
            server_errors: Vec::new(),
        },
        ..spec(&[folder.to_owned()], Some(tt))
    };
    let summary = ingest::run(&context(warehouse), &settings(0.0), spec).unwrap();
    assert_eq!(summary.outcome, Outcome::Complete);
    summary
}

/// (namespace, id, gender) of the current patients, sorted.
fn current_patients(warehouse: &Warehouse) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    let table = TableId::current("Patient");
    let runtime = runtime();
    for file in runtime.block_on(warehouse.live_files(&table)).unwrap() {
        for batch in runtime
            .block_on(warehouse.read_parquet(&file.path))
            .unwrap()
        {
            let batch = batch.unwrap();
            let text = |c: &arrow_array::ArrayRef, i: usize| {
                use arrow_array::{Array, cast::AsArray};
                let s = c.as_string::<i32>();
                if s.is_valid(i) {
                    s.value(i).to_owned()
                } else {
                    String::new()
                }
            };
            let lineage = {
                use arrow_array::cast::AsArray;
                batch
                    .column_by_name("_lineage")
                    .unwrap()
                    .as_struct()
                    .clone()
            };
            let namespace = lineage.column_by_name("namespace").unwrap();
            for i in 0..batch.num_rows() {
                rows.push((
                    text(namespace, i),
                    text(batch.column_by_name("id").unwrap(), i),
                    text(batch.column_by_name("gender").unwrap(), i),
                ));
            }
        }
    }
    rows.sort();
    rows
}

fn rows(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

const EHR: (&str, &str) = ("ehr", "ehr");

#[test]
fn the_newest_version_wins_whatever_the_order_of_arrival() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open_local(&dir.path().join("wh")).unwrap();
    let v = |id, ver: &str, gender| patient(id, Some(ver), None, gender);
    // Export 1 has version 2 of a; export 2 (later) brings version 1 of a, late.
    run(
        &warehouse,
        &input(
            dir.path(),
            "e1",
            &[v("a", "2", "female"), v("b", "1", "male")],
        ),
        EHR,
        "2026-01-01T00:00:00Z",
        &[],
    );
    let second = run(
        &warehouse,
        &input(
            dir.path(),
            "e2",
            &[v("a", "1", "male"), v("b", "10", "female")],
        ),
        EHR,
        "2026-01-02T00:00:00Z",
        &[],
    );
    assert_eq!(
        current_patients(&warehouse),
        rows(&[("ehr", "a", "female"), ("ehr", "b", "female")]),
        "versionId 10 > 2 > 1, as numbers"
    );
    assert_eq!(second.manifest.tables["current/Patient"].removed_rows, 1);
    // The same export again (a new run of the same files): nothing changes.
    let again = run(
        &warehouse,
        &input(
            dir.path(),
            "e3",
            &[v("a", "2", "female"), v("b", "10", "female")],
        ),
        EHR,
        "2026-01-03T00:00:00Z",
        &[],
    );
    let current = &again.manifest.tables["current/Patient"];
    assert_eq!((current.rows, current.removed_rows), (0, 0), "{current:?}");
    assert_eq!(current.delta_version, None, "no commit for no change");
}

#[test]
fn without_versions_last_updated_then_the_export_decides() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open_local(&dir.path().join("wh")).unwrap();
    let u = |id, updated, gender| patient(id, None, Some(updated), gender);
    let n = |id, gender| patient(id, None, None, gender);
    run(
        &warehouse,
        &input(
            dir.path(),
            "e1",
            &[u("a", "2026-01-05T00:00:00Z", "female"), n("b", "female")],
        ),
        EHR,
        "2026-01-06T00:00:00Z",
        &[],
    );
    run(
        &warehouse,
        &input(
            dir.path(),
            "e2",
            &[u("a", "2026-01-04T00:00:00Z", "male"), n("b", "male")],
        ),
        EHR,
        "2026-01-07T00:00:00Z",
        &[],
    );
    assert_eq!(
        current_patients(&warehouse),
        rows(&[("ehr", "a", "female"), ("ehr", "b", "male")]),
        "a: older lastUpdated loses; b: no version, the later export wins"
    );
}

#[test]
fn duplicates_in_one_export_keep_the_newest() {
    let v = |ver: &str, gender| patient("a", Some(ver), None, gender);
    let (_dir, warehouse, _) = first_load(&[v("3", "female"), v("1", "male"), v("3", "female")]);
    assert_eq!(
        current_patients(&warehouse),
        rows(&[("ehr", "a", "female")])
    );
    assert_eq!(rebuild_all(&warehouse).len(), 3, "history keeps every line");
}

/// One export of `lines` into a new warehouse (which lives as long as the folder).
fn first_load(lines: &[String]) -> (tempfile::TempDir, Warehouse, RunSummary) {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open_local(&dir.path().join("wh")).unwrap();
    let folder = input(dir.path(), "e1", lines);
    let summary = run(&warehouse, &folder, EHR, "2026-01-01T00:00:00Z", &[]);
    (dir, warehouse, summary)
}

/// A first load of distinct ids takes the history file whole (no keys read); a first
/// load with a resource without an id leaves that one out of current (regression test
/// of the first-load path).
#[test]
fn a_first_load_takes_distinct_ids_whole_and_leaves_out_rows_without_an_id() {
    let (_dir, _, summary) = first_load(&[
        patient("a", Some("1"), None, "female"),
        patient("b", Some("1"), None, "male"),
    ]);
    let history = &summary.manifest.tables[&TableId::history("Patient")];
    let current = &summary.manifest.tables[&TableId::current("Patient")];
    assert_eq!(current.rows, 2);
    assert_eq!(
        current.files.iter().map(|f| f.bytes).collect::<Vec<_>>(),
        history.files.iter().map(|f| f.bytes).collect::<Vec<_>>(),
        "taken whole"
    );

    let no_id = r#"{"resourceType":"Patient","gender":"other"}"#.to_owned();
    let (_dir, warehouse, _) = first_load(&[patient("a", Some("1"), None, "female"), no_id]);
    assert_eq!(
        current_patients(&warehouse),
        rows(&[("ehr", "a", "female")])
    );
}

#[test]
fn deletes_apply_to_earlier_exports_and_leave_tombstones_in_history() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open_local(&dir.path().join("wh")).unwrap();
    let v = |id, gender| patient(id, Some("1"), None, gender);
    run(
        &warehouse,
        &input(
            dir.path(),
            "e1",
            &[v("a", "female"), v("b", "male"), v("c", "male")],
        ),
        EHR,
        "2026-01-01T00:00:00Z",
        &[],
    );
    // Export 2 deletes a and c; it also sends c again (re-created): the sent row stays.
    let second = run(
        &warehouse,
        &input(dir.path(), "e2", &[patient("c", Some("2"), None, "female")]),
        EHR,
        "2026-01-02T00:00:00Z",
        &["a", "c"],
    );
    assert_eq!(
        current_patients(&warehouse),
        rows(&[("ehr", "b", "male"), ("ehr", "c", "female")])
    );
    assert_eq!(
        second.manifest.tables["history/Patient"].rows,
        1 + 2,
        "a row and two tombstones"
    );
    // Tombstones are not resources: history rebuilds the 4 versions sent.
    assert_eq!(rebuild_all(&warehouse).len(), 4);
}

#[test]
fn each_source_is_a_namespace_unless_they_share_one() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open_local(&dir.path().join("wh")).unwrap();
    let v = |ver: &str, gender| patient("123", Some(ver), None, gender);
    run(
        &warehouse,
        &input(dir.path(), "e1", &[v("1", "female")]),
        ("a", "a"),
        "2026-01-01T00:00:00Z",
        &[],
    );
    run(
        &warehouse,
        &input(dir.path(), "e2", &[v("1", "male")]),
        ("b", "b"),
        "2026-01-01T00:00:00Z",
        &[],
    );
    assert_eq!(
        current_patients(&warehouse),
        rows(&[("a", "123", "female"), ("b", "123", "male")]),
        "two servers' Patient/123 are two patients"
    );
    // A third source sharing namespace "a" updates a's patient.
    run(
        &warehouse,
        &input(dir.path(), "e3", &[v("2", "other")]),
        ("a2", "a"),
        "2026-01-02T00:00:00Z",
        &[],
    );
    assert_eq!(
        current_patients(&warehouse),
        rows(&[("a", "123", "other"), ("b", "123", "male")])
    );
}

#[test]
fn a_merge_rewrites_only_the_files_that_hold_changed_rows() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open_local(&dir.path().join("wh")).unwrap();
    let v = |id: String, ver: &str| patient(&id, Some(ver), None, "female");
    // Three exports of 50 new patients each: three files in current/.
    for (e, day) in [(0, "01"), (1, "02"), (2, "03")] {
        let lines: Vec<String> = (0..50).map(|i| v(format!("p{e}-{i}"), "1")).collect();
        run(
            &warehouse,
            &input(dir.path(), &format!("e{e}"), &lines),
            EHR,
            &format!("2026-01-{day}T00:00:00Z"),
            &[],
        );
    }
    let table = TableId::current("Patient");
    let before = runtime().block_on(warehouse.live_files(&table)).unwrap();
    assert_eq!(before.len(), 3);
    // An update of one patient of the second export, and a new patient.
    let update = run(
        &warehouse,
        &input(
            dir.path(),
            "e3",
            &[v("p1-7".into(), "2"), v("new".into(), "1")],
        ),
        EHR,
        "2026-01-04T00:00:00Z",
        &[],
    );
    let after = runtime().block_on(warehouse.live_files(&table)).unwrap();
    let kept: Vec<_> = before.iter().filter(|f| after.contains(f)).collect();
    assert_eq!(kept.len(), 2, "the files of exports 1 and 3 are untouched");
    let current = &update.manifest.tables["current/Patient"];
    assert_eq!(current.removed_rows, 1);
    assert_eq!(
        current.rows,
        2 + 49,
        "the new rows, and the 49 rows that stay of one file"
    );
    assert_eq!(current_patients(&warehouse).len(), 151);
}

/// The rows of every data file of `table`, as sorted text (for comparing two tables).
fn table_rows(warehouse: &Warehouse, table: &TableId) -> Vec<String> {
    let runtime = runtime();
    let mut rows = Vec::new();
    for file in runtime.block_on(warehouse.live_files(table)).unwrap() {
        for batch in runtime
            .block_on(warehouse.read_parquet(&file.path))
            .unwrap()
        {
            let batch = batch.unwrap();
            let keep: Vec<usize> = (0..batch.num_columns())
                .filter(|&i| batch.schema().field(i).name() != "_lineage")
                .collect();
            let batch = batch.project(&keep).unwrap();
            for i in 0..batch.num_rows() {
                rows.push(format!("{:?}", batch.slice(i, 1).columns()));
            }
        }
    }
    rows.sort();
    rows
}

/// The same exports merged with every resource in one pass, and with a few per pass
/// (`warehouse.merge_max_keys`), give the same current table and view.
#[test]
fn a_merge_in_several_passes_decides_as_one_pass() {
    let view = std::sync::Arc::new(
        fhir_ingest::view::ViewDefinition::from_json(
            r#"{"resourceType":"ViewDefinition","name":"patient_gender","resource":"Patient",
            "select":[{"column":[{"name":"id","path":"id"},{"name":"gender","path":"gender"}]}]}"#,
            "test",
        )
        .unwrap(),
    );
    let p =
        |id: usize, ver: &str, gender: &str| patient(&format!("p{id}"), Some(ver), None, gender);
    // A first load with a repeated resource (so the full merge runs, not the
    // whole-file path), then updates, an older version, deletes and new resources.
    let first: Vec<String> = (0..30)
        .map(|i| p(i, "1", "female"))
        .chain([p(3, "2", "male")])
        .collect();
    let second: Vec<String> = (1..6)
        .map(|i| p(i, "2", "other"))
        .chain([p(9, "0", "male"), p(40, "1", "unknown")])
        .collect();
    let exports = [
        (first, "2026-01-01T00:00:00Z", vec![]),
        (second, "2026-01-02T00:00:00Z", vec!["p7", "p8", "p40"]),
    ];
    let merged = |max_keys: usize| {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Warehouse::open_local(&dir.path().join("wh")).unwrap();
        let settings = fhir_ingest::ingest::IngestSettings {
            merge_max_keys: std::num::NonZeroUsize::new(max_keys).unwrap(),
            ..settings(0.0)
        };
        let mut removed = Vec::new();
        for (n, (lines, tt, deleted)) in exports.iter().enumerate() {
            let spec = RunSpec {
                export: ExportRecord {
                    deleted: deleted_patients(deleted),
                    server_errors: Vec::new(),
                },
                views: vec![view.clone()],
                ..spec(&[input(dir.path(), &format!("e{n}"), lines)], Some(tt))
            };
            let summary = ingest::run(&context(&warehouse), &settings, spec).unwrap();
            assert_eq!(summary.outcome, Outcome::Complete);
            removed.push(summary.manifest.tables["current/Patient"].removed_rows);
        }
        let current = table_rows(&warehouse, &TableId::current("Patient"));
        let view_rows = table_rows(&warehouse, &TableId::view("patient_gender"));
        (current, view_rows, removed)
    };
    let (current, view_rows, removed) = merged(1_000_000);
    assert_eq!(current.len(), 30 + 1 - 2, "p0-p29 and p40, less p7 and p8");
    assert_eq!(
        removed,
        [0, 4 + 2],
        "p1, p2, p4, p5 updated; p7, p8 deleted"
    );
    let gender_of = |id: &str| {
        let row = current
            .iter()
            .find(|r| r.contains(&format!("\"{id}\"")))
            .unwrap();
        ["\"female\"", "\"male\"", "\"other\"", "\"unknown\""]
            .into_iter()
            .find(|g| row.contains(g))
            .unwrap()
    };
    assert_eq!(
        gender_of("p3"),
        "\"male\"",
        "v2 of the first load; the same version again changes nothing"
    );
    assert_eq!(gender_of("p9"), "\"female\"", "an older version loses");
    assert_eq!(gender_of("p1"), "\"other\"");
    assert_eq!(
        gender_of("p40"),
        "\"unknown\"",
        "sent and deleted by one export: kept"
    );
    assert_eq!(view_rows.len(), current.len());
    assert_eq!(merged(4), (current, view_rows, removed), "4 keys a pass");
}
