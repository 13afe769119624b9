use arrow_array::{Array, RecordBatch, StructArray};
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::delta::{
    Action, Add, CommitResult, Remove, Snapshot, Txn, commit_file_name, now_ms,
    testing::{commit, create, data_schema, local_table, partition_columns, put_file},
    vacuum::VacuumOptions,
};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

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
        // Removed an hour ago: well inside the retention, so the checkpoint keeps it.
        vec![
            Action::Remove(a.remove_at(now_ms() - HOUR_MS)),
            Action::Add(c),
        ],
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

/// A table (with `configuration`) whose files `old` and `recent` were removed 8 days
/// and 1 day ago, and `live` is live; the snapshot after the removes.
async fn table_with_tombstones(table: &DeltaTable, configuration: &[(&str, &str)]) -> Snapshot {
    let old = put_file(table, "export_date=2026-01-01/old.parquet", "2026-01-01").await;
    let recent = put_file(table, "export_date=2026-01-01/recent.parquet", "2026-01-01").await;
    let live = put_file(table, "export_date=2026-01-02/live.parquet", "2026-01-02").await;
    let configuration = configuration
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let actions = [&old, &recent, &live]
        .into_iter()
        .map(|a| Action::Add(a.clone()))
        .collect();
    let created = table
        .create(&data_schema(), &partition_columns(), configuration, actions)
        .await
        .unwrap();
    assert_eq!(created, CommitResult::Committed { version: 0 });
    let s0 = table.snapshot().await.unwrap().unwrap();
    let now = now_ms();
    commit(
        table,
        &s0,
        vec![
            Action::Remove(old.remove_at(now - 8 * DAY_MS)),
            Action::Remove(recent.remove_at(now - DAY_MS)),
        ],
    )
    .await
}

fn tombstone_names(snapshot: &Snapshot) -> Vec<&str> {
    snapshot
        .tombstones()
        .keys()
        .map(|k| k.rsplit('/').next().unwrap_or(k))
        .collect()
}

#[tokio::test]
async fn tombstones_past_the_retention_leave_the_checkpoint() {
    let (_dir, table) = local_table();
    let s1 = table_with_tombstones(&table, &[]).await;
    assert_eq!(tombstone_names(&s1), ["old.parquet", "recent.parquet"]);

    // The default retention is a week: the tombstone of 8 days ago goes.
    let info = table.checkpoint(&s1).await.unwrap();
    assert_eq!((info.rows, info.expired_tombstones), (4, 1));
    let read = table.snapshot().await.unwrap().unwrap();
    assert_eq!(read.checkpoint_version(), Some(1));
    assert_eq!(tombstone_names(&read), ["recent.parquet"]);
    assert_eq!(read.files().len(), 1);

    // Its file is now an orphan to vacuum: kept while younger than the retention by its
    // own age, deleted after.
    let retention = std::time::Duration::from_secs(7 * 86_400);
    let old = table.object("export_date=2026-01-01/old.parquet").unwrap();
    table
        .vacuum(&read, VacuumOptions::new(retention))
        .await
        .unwrap();
    assert!(table.store().head(&old).await.is_ok());
    table
        .vacuum(
            &read,
            VacuumOptions::new(retention).at(now_ms() + 8 * DAY_MS),
        )
        .await
        .unwrap();
    assert!(table.store().head(&old).await.is_err());
    let live = table.object("export_date=2026-01-02/live.parquet").unwrap();
    assert!(table.store().head(&live).await.is_ok());
}

#[tokio::test]
async fn a_longer_retention_keeps_tombstones_in_the_checkpoint() {
    // The table's own property.
    let (_dir, table) = local_table();
    let s1 = table_with_tombstones(
        &table,
        &[("delta.deletedFileRetentionDuration", "interval 30 days")],
    )
    .await;
    let info = table.checkpoint(&s1).await.unwrap();
    assert_eq!(info.expired_tombstones, 0);
    let read = table.snapshot().await.unwrap().unwrap();
    assert_eq!(tombstone_names(&read), ["old.parquet", "recent.parquet"]);

    // The handle's minimum (the warehouse's vacuum retention) over the default week.
    let (_dir, table) = local_table();
    let table = table.with_min_tombstone_retention(std::time::Duration::from_secs(10 * 86_400));
    let s1 = table_with_tombstones(&table, &[]).await;
    assert_eq!(table.checkpoint(&s1).await.unwrap().expired_tombstones, 0);

    // A property that cannot be read drops nothing.
    let (_dir, table) = local_table();
    let s1 = table_with_tombstones(
        &table,
        &[("delta.deletedFileRetentionDuration", "interval 1 month")],
    )
    .await;
    assert_eq!(s1.deleted_file_retention(), None);
    assert_eq!(table.checkpoint(&s1).await.unwrap().expired_tombstones, 0);
}
