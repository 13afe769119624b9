//! Helpers of the unit tests: tables in temporary directories.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use object_store::{ObjectStoreExt, PutPayload, local::LocalFileSystem, path::Path};

use super::{Action, Add, CommitResult, DeltaTable, PartitionValues, Snapshot};

/// A table at `tables/Patient` in a fresh temporary directory.
pub(crate) fn local_table() -> (tempfile::TempDir, DeltaTable) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    (dir, DeltaTable::new(store, Path::from("tables/Patient")))
}

/// The data schema of the test tables: `id`.
pub(crate) fn data_schema() -> Schema {
    Schema::new(vec![Field::new("id", DataType::Utf8, false)])
}

/// The partition column of the test tables: `export_date`.
pub(crate) fn partition_columns() -> Vec<Field> {
    vec![Field::new("export_date", DataType::Utf8, true)]
}

/// Writes `bytes` at `relative` under the table root and returns its add (partition
/// `export_date=<date>`).
pub(crate) async fn put_file(table: &DeltaTable, relative: &str, date: &str) -> Add {
    let bytes = format!("data of {relative}");
    let path = table.object(relative).unwrap();
    table
        .store()
        .put(&path, PutPayload::from(bytes.clone()))
        .await
        .unwrap();
    let values = PartitionValues::from([("export_date".to_owned(), Some(date.to_owned()))]);
    Add::new(
        relative,
        values,
        bytes.len() as u64,
        super::now_ms(),
        Some(r#"{"numRecords":1}"#.into()),
    )
}

/// Creates the test table with `adds` and returns its snapshot.
pub(crate) async fn create(table: &DeltaTable, adds: Vec<Add>) -> Snapshot {
    let actions = adds.into_iter().map(Action::Add).collect();
    let result = table
        .create(
            &data_schema(),
            &partition_columns(),
            Default::default(),
            actions,
        )
        .await
        .unwrap();
    assert_eq!(result, CommitResult::Committed { version: 0 });
    table.snapshot().await.unwrap().unwrap()
}

/// Commits `actions` after `snapshot` (which must win) and returns the new snapshot.
pub(crate) async fn commit(
    table: &DeltaTable,
    snapshot: &Snapshot,
    actions: Vec<Action>,
) -> Snapshot {
    let result = table
        .commit(Some(snapshot), actions, "WRITE")
        .await
        .unwrap();
    assert_eq!(
        result,
        CommitResult::Committed {
            version: snapshot.version() + 1
        }
    );
    table.snapshot().await.unwrap().unwrap()
}
