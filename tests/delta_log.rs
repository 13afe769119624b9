//! A Delta table written with `fhir_ingest::delta` to a temporary directory through
//! `object_store`'s `LocalFileSystem`: Parquet data files with a nested struct,
//! partitioned by `export_date`; create, append, copy-on-write (remove + add), txns,
//! a checkpoint, a commit after it, vacuum; then read back by our own snapshot and, when
//! `FHIR_INGEST_PYTHON` names a Python with `deltalake`, `polars`, `duckdb` and
//! `duckdb_extension_delta`, by those three readers (`tests/delta_check.py`).

use std::{path::Path as FsPath, sync::Arc, time::Duration};

use arrow_array::{
    ArrayRef, ListArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
    builder::{ListBuilder, StringBuilder, StructBuilder},
};
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use fhir_ingest::delta::{
    Action, Add, CommitResult, DeltaTable, PartitionValues, Snapshot, Txn, VacuumOptions,
    stats_from_parquet,
};
use object_store::{ObjectStoreExt, PutPayload, local::LocalFileSystem, path::Path};
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    file::properties::WriterProperties,
};

const STATS_COLUMNS: [&str; 3] = ["id", "meta.lastUpdated", "meta.lastUpdated_ts"];

fn code_fields() -> Fields {
    Fields::from(vec![Field::new("code", DataType::Utf8, true)])
}

fn meta_fields() -> Fields {
    Fields::from(vec![
        Field::new("lastUpdated", DataType::Utf8, true),
        Field::new(
            "lastUpdated_ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new(
            "tag",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(code_fields()),
                true,
            ))),
            true,
        ),
    ])
}

/// The schema of the data files (the partition column `export_date` is not in them).
fn data_schema() -> Schema {
    Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("meta", DataType::Struct(meta_fields()), true),
    ])
}

/// A Parquet file of `ids`, the `n`-th row updated at 2026-01-02T03:04:05.123456Z + n s.
fn parquet_file(ids: &[&str]) -> (Vec<u8>, parquet::file::metadata::ParquetMetaData) {
    let schema = Arc::new(data_schema());
    let micros: Vec<i64> = (0..ids.len() as i64)
        .map(|n| 1_767_323_045_123_456 + n * 1_000_000)
        .collect();
    let text: Vec<String> = micros
        .iter()
        .map(|&us| fhir_ingest::temporal::rfc3339_micros(us))
        .collect();
    let mut tags = ListBuilder::new(StructBuilder::from_fields(code_fields(), ids.len()))
        .with_field(Field::new("item", DataType::Struct(code_fields()), true));
    for id in ids {
        let item = tags.values();
        item.field_builder::<StringBuilder>(0)
            .unwrap()
            .append_value(format!("tag-{id}"));
        item.append(true);
        tags.append(true);
    }
    let tags: ListArray = tags.finish();
    let meta = StructArray::new(
        meta_fields(),
        vec![
            Arc::new(StringArray::from(text)) as ArrayRef,
            Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC")),
            Arc::new(tags),
        ],
        None,
    );
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(ids.to_vec())), Arc::new(meta)],
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    // finish() writes the footer; into_inner() would write it a second time.
    let metadata = writer.finish().unwrap();
    (writer.inner().clone(), metadata)
}

/// Writes a data file of `ids` at `relative` under the table and returns its add.
async fn data_file(table: &DeltaTable, relative: &str, date: &str, ids: &[&str]) -> Add {
    let (bytes, metadata) = parquet_file(ids);
    let size = bytes.len() as u64;
    let path = table.object(relative).unwrap();
    table
        .store()
        .put(&path, PutPayload::from(bytes))
        .await
        .unwrap();
    let stats = stats_from_parquet(&metadata, &STATS_COLUMNS)
        .unwrap()
        .to_json();
    let values = PartitionValues::from([("export_date".to_owned(), Some(date.to_owned()))]);
    Add::new(
        relative,
        values,
        size,
        fhir_ingest::delta::now_ms(),
        Some(stats),
    )
}

async fn commit(
    table: &DeltaTable,
    snapshot: &Snapshot,
    actions: Vec<Action>,
    op: &str,
) -> Snapshot {
    let result = table.commit(Some(snapshot), actions, op).await.unwrap();
    assert_eq!(
        result,
        CommitResult::Committed {
            version: snapshot.version() + 1
        }
    );
    table.snapshot().await.unwrap().unwrap()
}

#[tokio::test]
async fn a_table_written_here_reads_back_here_and_in_other_engines() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let table = DeltaTable::new(store, Path::from("history/Patient"));
    let table_dir = dir.path().join("history/Patient");

    // v0: create with one file.
    let a = data_file(
        &table,
        "export_date=2026-01-01/part-a.parquet",
        "2026-01-01",
        &["p0", "p1"],
    )
    .await;
    // Removed at v1, as if 8 days ago: past the retention, its tombstone leaves the
    // checkpoint at v3, and every reader must still leave its rows out.
    let old = data_file(
        &table,
        "export_date=2026-01-02/part-old.parquet",
        "2026-01-02",
        &["p2"],
    )
    .await;
    let partitions = [Field::new("export_date", DataType::Utf8, true)];
    let config = [("delta.checkpointInterval".to_owned(), "10".to_owned())].into();
    let created = table
        .create(
            &data_schema(),
            &partitions,
            config,
            vec![Action::Add(a.clone()), Action::Add(old.clone())],
        )
        .await
        .unwrap();
    assert_eq!(created, CommitResult::Committed { version: 0 });
    let s0 = table.snapshot().await.unwrap().unwrap();

    // v1: append, with the source's txn.
    let b = data_file(
        &table,
        "export_date=2026-01-02/part-b.parquet",
        "2026-01-02",
        &["p3", "p4"],
    )
    .await;
    let s1 = commit(
        &table,
        &s0,
        vec![
            Action::Add(b),
            Action::Remove(old.remove_at(fhir_ingest::delta::now_ms() - 8 * 86_400_000)),
            Action::Txn(Txn::new("src", 1)),
        ],
        "WRITE",
    )
    .await;

    // v2: copy-on-write: part-a is rewritten without p0 and with p5.
    let a2 = data_file(
        &table,
        "export_date=2026-01-01/part-a2.parquet",
        "2026-01-01",
        &["p1", "p5"],
    )
    .await;
    let s2 = commit(
        &table,
        &s1,
        vec![
            Action::Remove(a.remove_now()),
            Action::Add(a2),
            Action::Txn(Txn::new("src", 2)),
        ],
        "MERGE",
    )
    .await;

    // v3: a file name that needs percent-encoding; then a checkpoint at v3.
    let c = data_file(
        &table,
        "export_date=2026-01-03/part c 3.parquet",
        "2026-01-03",
        &["p6"],
    )
    .await;
    let s3 = commit(
        &table,
        &s2,
        vec![Action::Add(c), Action::Txn(Txn::new("src", 3))],
        "WRITE",
    )
    .await;
    let checkpoint = table.maybe_checkpoint(&s3, 3).await.unwrap().unwrap();
    assert_eq!(
        (
            checkpoint.version,
            checkpoint.num_add_files,
            checkpoint.expired_tombstones
        ),
        (3, 3, 1)
    );

    // v4: after the checkpoint.
    let d = data_file(
        &table,
        "export_date=2026-01-03/part-d.parquet",
        "2026-01-03",
        &["p7", "p8"],
    )
    .await;
    let s4 = commit(
        &table,
        &s3,
        vec![Action::Add(d), Action::Txn(Txn::new("src", 4))],
        "WRITE",
    )
    .await;
    assert_eq!(
        table
            .maybe_checkpoint(&s4, s4.checkpoint_interval())
            .await
            .unwrap(),
        None
    );

    // An orphan of a lost commit, written two hours ago: vacuum deletes it, not part-a
    // (removed just now). part-old, whose tombstone left with the checkpoint, is an
    // orphan too, written 9 days ago: deleted.
    set_modified(
        &table_dir.join("export_date=2026-01-02/part-old.parquet"),
        9 * 86_400,
    );
    let orphan = table_dir.join("export_date=2026-01-02/part-lost.parquet");
    std::fs::write(&orphan, b"lost").unwrap();
    set_modified(&orphan, 7200);
    let report = table
        .vacuum(&s4, VacuumOptions::new(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(
        report.deleted,
        [
            "export_date=2026-01-02/part-lost.parquet",
            "export_date=2026-01-02/part-old.parquet"
        ]
    );
    assert_eq!(
        (
            report.orphan_files,
            report.tombstone_files,
            report.live_files
        ),
        (2, 0, 4)
    );
    assert!(!orphan.exists());
    assert!(
        table_dir
            .join("export_date=2026-01-01/part-a.parquet")
            .exists()
    );

    // Read back by our own snapshot.
    let read = table.snapshot().await.unwrap().unwrap();
    assert_eq!(read.version(), 4);
    assert_eq!(read.checkpoint_version(), Some(3));
    assert_eq!(read.commits_since_checkpoint(), 1);
    assert_eq!(read.txn_version("src"), Some(4));
    assert_eq!(read.partition_columns(), ["export_date"]);
    assert_eq!(
        read.files().keys().collect::<Vec<_>>(),
        [
            "export_date=2026-01-01/part-a2.parquet",
            "export_date=2026-01-02/part-b.parquet",
            "export_date=2026-01-03/part c 3.parquet",
            "export_date=2026-01-03/part-d.parquet",
        ]
    );
    assert_eq!(
        read.files()["export_date=2026-01-03/part c 3.parquet"].path,
        "export_date=2026-01-03/part%20c%203.parquet"
    );
    assert_eq!(
        read.tombstones().keys().collect::<Vec<_>>(),
        ["export_date=2026-01-01/part-a.parquet"]
    );
    let rows: i64 = read
        .files()
        .values()
        .map(|f| f.num_records().unwrap())
        .sum();
    assert_eq!(rows, 7);
    let stats: serde_json::Value = serde_json::from_str(
        read.files()["export_date=2026-01-03/part-d.parquet"]
            .stats
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        stats["minValues"]["meta"]["lastUpdated_ts"],
        "2026-01-02T03:04:05.123Z"
    );
    assert_eq!(
        stats["maxValues"]["meta"]["lastUpdated_ts"],
        "2026-01-02T03:04:06.123Z"
    );
    assert_eq!(stats["maxValues"]["id"], "p8");

    let expected = serde_json::json!({
        "version": 4,
        "num_rows": 7,
        "ids": ["p1", "p3", "p4", "p5", "p6", "p7", "p8"],
        "removed_ids": ["p0", "p2"],
        "app_id": "src",
        "txn_version": 4,
        "partitions": {"2026-01-01": 2, "2026-01-02": 2, "2026-01-03": 3},
    });
    python_readers(&table_dir, &expected);

    // The same table with the commits before the checkpoint gone (as after log cleanup):
    // every reader must take the state at version 3 from our checkpoint.
    let copy = dir.path().join("checkpoint_only");
    copy_dir(&table_dir, &copy);
    for v in 0..=3 {
        std::fs::remove_file(copy.join(format!("_delta_log/{v:020}.json"))).unwrap();
    }
    let store = Arc::new(LocalFileSystem::new_with_prefix(&copy).unwrap());
    let read = DeltaTable::new(store, Path::from(""))
        .snapshot()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (read.version(), read.files().len(), read.txn_version("src")),
        (4, 4, Some(4))
    );
    python_readers(&copy, &expected);
}

/// Sets the modification time of `file` to `seconds_ago`.
fn set_modified(file: &FsPath, seconds_ago: u64) {
    let then = std::time::SystemTime::now() - Duration::from_secs(seconds_ago);
    std::fs::File::options()
        .write(true)
        .open(file)
        .unwrap()
        .set_modified(then)
        .unwrap();
}

fn copy_dir(from: &FsPath, to: &FsPath) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs `tests/delta_check.py` with `FHIR_INGEST_PYTHON`, or says why not.
fn python_readers(table_dir: &FsPath, expected: &serde_json::Value) {
    let Some(python) = std::env::var_os("FHIR_INGEST_PYTHON") else {
        println!(
            "note: FHIR_INGEST_PYTHON not set: the table was not read by deltalake, polars and \
             DuckDB (set it to a Python with deltalake, polars, duckdb, duckdb_extension_delta)"
        );
        return;
    };
    let script = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("tests/delta_check.py");
    let output = std::process::Command::new(&python)
        .arg(script)
        .arg(table_dir)
        .arg(expected.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "delta_check.py failed:\n{stdout}\n{stderr}"
    );
}
