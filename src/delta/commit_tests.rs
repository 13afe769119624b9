use super::*;
use crate::delta::{
    PartitionValues, Txn,
    testing::{create, data_schema, local_table, partition_columns, put_file},
};

#[tokio::test]
async fn a_second_commit_of_a_version_conflicts() {
    let (_dir, table) = local_table();
    let s0 = create(&table, vec![]).await;
    let a = put_file(&table, "export_date=2026-01-01/a.parquet", "2026-01-01").await;
    let b = put_file(&table, "export_date=2026-01-01/b.parquet", "2026-01-01").await;
    let first = table
        .commit(Some(&s0), vec![Action::Add(a)], "WRITE")
        .await
        .unwrap();
    assert_eq!(first, CommitResult::Committed { version: 1 });
    let second = table
        .commit(Some(&s0), vec![Action::Add(b)], "WRITE")
        .await
        .unwrap();
    assert_eq!(second, CommitResult::Conflict { version: 1 });
    let again = table
        .create(
            &data_schema(),
            &partition_columns(),
            BTreeMap::new(),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(again, CommitResult::Conflict { version: 0 });
    let snapshot = table.snapshot().await.unwrap().unwrap();
    assert_eq!(
        snapshot.files().keys().collect::<Vec<_>>(),
        ["export_date=2026-01-01/a.parquet"]
    );
}

#[tokio::test]
async fn invalid_actions_are_refused_before_writing() {
    let (_dir, table) = local_table();
    let s0 = create(&table, vec![]).await;
    let mut a = put_file(&table, "export_date=2026-01-01/a.parquet", "2026-01-01").await;
    a.partition_values = PartitionValues::new();
    let err = table
        .commit(Some(&s0), vec![Action::Add(a.clone())], "WRITE")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("partition"), "{err}");
    a.partition_values = PartitionValues::from([("export_date".into(), None)]);
    a.path = "export_date=2026-01-01/a b.parquet".into();
    let err = table
        .commit(Some(&s0), vec![Action::Add(a.clone())], "WRITE")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not encoded"), "{err}");
    a.path = "../a.parquet".into();
    assert!(
        table
            .commit(Some(&s0), vec![Action::Add(a.clone())], "WRITE")
            .await
            .is_err()
    );
    let mut p = Protocol::supported();
    p.min_writer_version = 7;
    let err = table
        .commit(Some(&s0), vec![Action::Protocol(p)], "UPGRADE")
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeltaError::UnsupportedProtocol { .. }),
        "{err}"
    );
    // A file another writer removed already cannot be removed again.
    let b = put_file(&table, "export_date=2026-01-01/b.parquet", "2026-01-01").await;
    let err = table
        .commit(Some(&s0), vec![Action::Remove(b.remove_now())], "MERGE")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a live file"), "{err}");
    let err = table.commit(None, vec![], "WRITE").await.unwrap_err();
    assert!(
        matches!(err, DeltaError::InvalidCommit { version: 0, .. }),
        "{err}"
    );
    assert_eq!(table.snapshot().await.unwrap().unwrap().version(), 0);
}

#[tokio::test]
async fn retry_rereads_the_snapshot_after_a_conflict() {
    let (_dir, table) = local_table();
    let s0 = create(&table, vec![]).await;
    let a = put_file(&table, "export_date=2026-01-01/a.parquet", "2026-01-01").await;
    let b = put_file(&table, "export_date=2026-01-01/b.parquet", "2026-01-01").await;
    let mut seen = Vec::new();
    let outcome = table
        .commit_with_retry(3, "WRITE", |snapshot| {
            seen.push(snapshot.version());
            if snapshot.txn_version("job").is_some_and(|v| v >= 1) {
                return Ok::<_, DeltaError>(None);
            }
            if seen.len() == 1 {
                // Another writer takes version 1 between our read and our commit.
                let other = vec![Action::Add(a.clone())];
                let result = futures::executor::block_on(table.commit(Some(&s0), other, "WRITE"))?;
                assert_eq!(result, CommitResult::Committed { version: 1 });
            }
            Ok(Some(vec![
                Action::Add(b.clone()),
                Action::Txn(Txn::new("job", 1)),
            ]))
        })
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RetryOutcome::Committed {
            version: 2,
            attempts: 2
        }
    );
    assert_eq!(seen, [0, 1]);
    let again = table
        .commit_with_retry(3, "WRITE", |_| Ok::<_, DeltaError>(None))
        .await
        .unwrap();
    assert_eq!(again, RetryOutcome::NothingToDo { version: 2 });
    let snapshot = table.snapshot().await.unwrap().unwrap();
    assert_eq!(snapshot.files().len(), 2);
    assert_eq!(snapshot.txn_version("job"), Some(1));
}

#[tokio::test]
async fn retry_gives_up_after_max_attempts() {
    let (_dir, table) = local_table();
    create(&table, vec![]).await;
    let mut n = 0;
    let err = table
        .commit_with_retry(2, "WRITE", |snapshot| {
            n += 1;
            // Always lose: someone commits the version first.
            let taken = table.log_file(&commit_file_name(snapshot.version() + 1));
            let body = object_store::PutPayload::from(r#"{"txn":{"appId":"x","version":1}}"#);
            futures::executor::block_on(object_store::ObjectStoreExt::put(
                table.store().as_ref(),
                &taken,
                body,
            ))
            .map_err(table.store_error(&taken))?;
            Ok::<_, DeltaError>(Some(vec![Action::Txn(Txn::new("job", 1))]))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeltaError::TooManyConflicts { attempts: 2, .. }),
        "{err}"
    );
    assert_eq!(n, 2);
}

#[tokio::test]
async fn unknown_tables_cannot_be_retried() {
    let (_dir, table) = local_table();
    let err = table
        .commit_with_retry(1, "WRITE", |_| Ok::<_, DeltaError>(None))
        .await
        .unwrap_err();
    assert!(matches!(err, DeltaError::NotFound { .. }), "{err}");
}
