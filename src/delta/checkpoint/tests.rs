use arrow_array::{Array, RecordBatch, StructArray};
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::delta::{
    Action, Add, Remove, Snapshot, Txn, commit_file_name,
    testing::{commit, create, local_table, put_file},
};

/// A table at version 3 with two live files, a tombstone and two txns.
async fn table_with_history() -> (tempfile::TempDir, DeltaTable, Snapshot) {
    let (dir, table) = local_table();
    let a = put_file(&table, "export_date=2026-01-01/a.parquet", "2026-01-01").await;
    let b = put_file(&table, "export_date=2026-01-01/b%.parquet", "2026-01-01").await;
    let c = put_file(&table, "export_date=2026-01-02/c.parquet", "2026-01-02").await;
    let s0 = create(&table, vec![a.clone()]).await;
    let s1 = commit(
        &table,
        &s0,
        vec![Action::Add(b), Action::Txn(Txn::new("x", 1))],
    )
    .await;
    let s2 = commit(
        &table,
        &s1,
        vec![Action::Remove(a.remove_at(42)), Action::Add(c)],
    )
    .await;
    let s3 = commit(
        &table,
        &s2,
        vec![Action::Txn(Txn::new("x", 2)), Action::Txn(Txn::new("y", 9))],
    )
    .await;
    (dir, table, s3)
}

fn without_data_change(snapshot: &Snapshot) -> (Vec<Add>, Vec<Remove>) {
    let adds = snapshot
        .files()
        .values()
        .map(|a| Add {
            data_change: false,
            ..a.clone()
        })
        .collect();
    let removes = snapshot
        .tombstones()
        .values()
        .map(|r| Remove {
            data_change: false,
            ..r.clone()
        })
        .collect();
    (adds, removes)
}

#[tokio::test]
async fn checkpoint_round_trip() {
    let (_dir, table, s3) = table_with_history().await;
    let info = table.checkpoint(&s3).await.unwrap();
    assert_eq!(
        (info.version, info.rows, info.num_add_files, info.written),
        (3, 7, 2, true)
    );
    let hint = table.last_checkpoint().await.unwrap().unwrap();
    assert_eq!(hint.version, 3);
    assert_eq!(hint.size, 7);
    assert_eq!(hint.size_in_bytes, Some(info.size_in_bytes as i64));
    assert_eq!(hint.num_of_add_files, Some(2));

    // Commits before the checkpoint are not needed any more.
    for v in 0..=3 {
        table
            .store()
            .delete(&table.log_file(&commit_file_name(v)))
            .await
            .unwrap();
    }
    let read = table.snapshot().await.unwrap().unwrap();
    assert_eq!(read.version(), 3);
    assert_eq!(read.checkpoint_version(), Some(3));
    assert_eq!(read.commits_since_checkpoint(), 0);
    assert_eq!(read.protocol(), s3.protocol());
    assert_eq!(read.metadata(), s3.metadata());
    assert_eq!(without_data_change(&read), without_data_change(&s3));
    assert!(read.files().values().all(|a| !a.data_change));
    assert_eq!(read.txns(), s3.txns());

    // A second checkpoint of the same version finds the file there: fine.
    let again = table.checkpoint(&s3).await.unwrap();
    assert!(!again.written);
    assert_eq!(again.size_in_bytes, info.size_in_bytes);

    // Commits after the checkpoint are replayed on top of it.
    let d = put_file(&table, "export_date=2026-01-03/d.parquet", "2026-01-03").await;
    let s4 = commit(&table, &read, vec![Action::Add(d)]).await;
    assert_eq!(s4.files().len(), 3);
    assert_eq!(s4.commits_since_checkpoint(), 1);
    assert_eq!(s4.txn_version("y"), Some(9));
}

#[tokio::test]
async fn checkpoint_columns_are_maps_and_one_struct_per_row() {
    let (_dir, table, s3) = table_with_history().await;
    table.checkpoint(&s3).await.unwrap();
    let path = table.log_file(&checkpoint_file_name(3));
    let bytes = table
        .store()
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let batch = &batches[0];
    let names: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["txn", "add", "remove", "metaData", "protocol"]);
    for i in 0..batch.num_rows() {
        let set = batch.columns().iter().filter(|c| c.is_valid(i)).count();
        assert_eq!(set, 1, "row {i}");
    }
    let schema = batch.schema();
    let meta = schema.field_with_name("metaData").unwrap();
    let text = format!("{:?}", meta.data_type());
    assert!(
        text.contains("configuration") && text.contains("Map("),
        "{text}"
    );
    let metadata = batch
        .column_by_name("metaData")
        .unwrap()
        .as_any()
        .downcast_ref::<StructArray>()
        .unwrap();
    let format = metadata
        .column_by_name("format")
        .unwrap()
        .as_any()
        .downcast_ref::<StructArray>()
        .unwrap();
    let options = format.column_by_name("options").unwrap();
    assert!(
        options.is_valid(1),
        "format.options of the metaData row is an empty map, not null"
    );
}

#[tokio::test]
async fn maybe_checkpoint_every_n_versions() {
    let (_dir, table, s3) = table_with_history().await;
    assert_eq!(table.maybe_checkpoint(&s3, 10).await.unwrap(), None);
    assert_eq!(table.maybe_checkpoint(&s3, 0).await.unwrap(), None);
    assert_eq!(s3.checkpoint_interval(), DEFAULT_CHECKPOINT_INTERVAL);
    let info = table.maybe_checkpoint(&s3, 3).await.unwrap().unwrap();
    assert_eq!(info.version, 3);
    // Read back from that checkpoint, the snapshot needs no other.
    let read = table.snapshot().await.unwrap().unwrap();
    assert_eq!(read.checkpoint_version(), Some(3));
    assert_eq!(table.maybe_checkpoint(&read, 3).await.unwrap(), None);
}

#[tokio::test]
async fn a_stale_or_missing_hint_falls_back_to_listing() {
    let (_dir, table, s3) = table_with_history().await;
    table.checkpoint(&s3).await.unwrap();
    // The hint names a checkpoint that is not there: the listing finds the real one.
    let hint = table.log_file("_last_checkpoint");
    table
        .store()
        .put(&hint, PutPayload::from(r#"{"version":2,"size":5}"#))
        .await
        .unwrap();
    let read = table.snapshot().await.unwrap().unwrap();
    assert_eq!((read.version(), read.checkpoint_version()), (3, Some(3)));
    table.store().delete(&hint).await.unwrap();
    let read = table.snapshot().await.unwrap().unwrap();
    assert_eq!((read.version(), read.checkpoint_version()), (3, Some(3)));
    assert_eq!(read.files().len(), 2);
}
