use object_store::{ObjectStoreExt, PutPayload};

use super::*;
use crate::delta::testing::{commit, create, local_table, put_file};

#[tokio::test]
async fn an_empty_root_has_no_snapshot() {
    let (_dir, table) = local_table();
    assert!(table.snapshot().await.unwrap().is_none());
}

#[tokio::test]
async fn replay_of_add_remove_and_txn() {
    let (_dir, table) = local_table();
    let a = put_file(&table, "export_date=2026-01-01/a.parquet", "2026-01-01").await;
    let b = put_file(&table, "export_date=2026-01-01/b c.parquet", "2026-01-01").await;
    let s0 = create(&table, vec![a.clone()]).await;
    assert_eq!(s0.version(), 0);
    assert_eq!(
        s0.files().keys().collect::<Vec<_>>(),
        ["export_date=2026-01-01/a.parquet"]
    );
    assert_eq!(s0.partition_columns(), ["export_date"]);
    assert_eq!(s0.txn_version("src"), None);

    let s1 = commit(
        &table,
        &s0,
        vec![
            Action::Remove(a.remove_at(5)),
            Action::Add(b.clone()),
            Action::Txn(Txn::new("src", 7)),
        ],
    )
    .await;
    assert_eq!(s1.version(), 1);
    assert_eq!(
        s1.files().keys().collect::<Vec<_>>(),
        ["export_date=2026-01-01/b c.parquet"]
    );
    assert_eq!(
        s1.files()["export_date=2026-01-01/b c.parquet"].path,
        "export_date=2026-01-01/b%20c.parquet"
    );
    assert_eq!(
        s1.tombstones().keys().collect::<Vec<_>>(),
        ["export_date=2026-01-01/a.parquet"]
    );
    assert_eq!(
        s1.tombstones()["export_date=2026-01-01/a.parquet"].deletion_timestamp,
        Some(5)
    );
    assert_eq!(s1.txn_version("src"), Some(7));
    assert_eq!(s1.commits_since_checkpoint(), 2);
    assert_eq!(s1.checkpoint_version(), None);

    // Re-adding a removed path makes it live again and forgets its tombstone; txns move on.
    let s2 = commit(
        &table,
        &s1,
        vec![
            Action::Add(a.clone()),
            Action::Txn(Txn::new("src", 8)),
            Action::Txn(Txn::new("other", 1)),
        ],
    )
    .await;
    assert_eq!(s2.files().len(), 2);
    assert!(s2.tombstones().is_empty());
    assert_eq!(s2.txn_version("src"), Some(8));
    assert_eq!(s2.txn_version("other"), Some(1));

    // Advancing in memory gives what reading the log gives.
    let advanced = s1
        .advance(
            2,
            &[
                Action::Add(a),
                Action::Txn(Txn::new("src", 8)),
                Action::Txn(Txn::new("other", 1)),
            ],
        )
        .unwrap();
    assert_eq!(
        advanced.files().keys().collect::<Vec<_>>(),
        s2.files().keys().collect::<Vec<_>>()
    );
    assert_eq!(advanced.txn_version("src"), Some(8));
    assert!(s1.advance(5, &[]).is_err());
}

#[tokio::test]
async fn commit_lines_are_json_actions_with_commit_info_first() {
    let (_dir, table) = local_table();
    let a = put_file(&table, "export_date=2026-01-01/a.parquet", "2026-01-01").await;
    create(&table, vec![a]).await;
    let path = table.log_file("00000000000000000000.json");
    let bytes = table
        .store()
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let text = std::str::from_utf8(&bytes).unwrap();
    let keys: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object().unwrap().keys().next().unwrap().clone()
        })
        .collect();
    assert_eq!(keys, ["commitInfo", "protocol", "metaData", "add"]);
    assert!(text.contains(r#""engineInfo":"fhir-ingest/"#), "{text}");
    assert!(
        text.contains(r#""format":{"provider":"parquet","options":{}}"#),
        "{text}"
    );
    assert!(
        text.contains(r#""partitionValues":{"export_date":"2026-01-01"}"#),
        "{text}"
    );
}

async fn put_log(table: &DeltaTable, name: &str, lines: &[&str]) {
    let body = lines.join("\n") + "\n";
    table
        .store()
        .put(&table.log_file(name), PutPayload::from(body))
        .await
        .unwrap();
}

const METADATA: &str = r#"{"metaData":{"id":"x","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[]}","partitionColumns":[],"configuration":{}}}"#;

#[tokio::test]
async fn other_protocols_are_refused_naming_the_table() {
    let (_dir, table) = local_table();
    let protocol = r#"{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors"]}}"#;
    put_log(&table, "00000000000000000000.json", &[protocol, METADATA]).await;
    let err = table.snapshot().await.unwrap_err();
    assert!(
        matches!(err, DeltaError::UnsupportedProtocol { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("tables/Patient")
            && text.contains(
                "3/7 reader features [deletionVectors] writer features [deletionVectors]"
            ),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_actions_are_ignored_and_bad_lines_named() {
    let (_dir, table) = local_table();
    let protocol = r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}"#;
    let cdc = r#"{"cdc":{"path":"x","partitionValues":{},"size":1,"dataChange":false}}"#;
    put_log(
        &table,
        "00000000000000000000.json",
        &[protocol, METADATA, cdc, ""],
    )
    .await;
    assert_eq!(table.snapshot().await.unwrap().unwrap().version(), 0);
    put_log(
        &table,
        "00000000000000000001.json",
        &[r#"{"add":{"path":"a"}}"#],
    )
    .await;
    let err = table.snapshot().await.unwrap_err();
    assert!(matches!(err, DeltaError::Json { line: 1, .. }), "{err}");
    assert!(
        err.to_string().contains("00000000000000000001.json"),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test]
async fn a_gap_in_the_commits_is_an_error() {
    let (_dir, table) = local_table();
    let protocol = r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}"#;
    put_log(&table, "00000000000000000000.json", &[protocol, METADATA]).await;
    put_log(
        &table,
        "00000000000000000002.json",
        &[r#"{"txn":{"appId":"a","version":1}}"#],
    )
    .await;
    let err = table.snapshot().await.unwrap_err();
    assert!(
        err.to_string().contains("00000000000000000001.json"),
        "{err}"
    );
}

#[test]
fn errors_leave_their_source_to_source() {
    let err = DeltaError::Store {
        table: "t".into(),
        path: "t/_delta_log/x.json".into(),
        source: object_store::Error::NotFound {
            path: "x".into(),
            source: "the inner reason".into(),
        },
    };
    assert!(!err.to_string().contains("inner reason"), "{err}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("inner reason"), "{source}");
}

#[test]
fn table_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let (_dir, table) = local_table();
    send(&table.snapshot());
    send(&table.commit(None, vec![], "WRITE"));
    send(&table.create(
        &crate::delta::testing::data_schema(),
        &[],
        Default::default(),
        vec![],
    ));
    send(&table.commit_with_retry(1, "WRITE", |_| Ok::<_, DeltaError>(None)));
    let snapshot = futures::executor::block_on(async { create(&table, vec![]).await });
    send(&table.checkpoint(&snapshot));
    send(&table.vacuum(
        &snapshot,
        crate::delta::VacuumOptions::new(std::time::Duration::ZERO),
    ));
    fn sync<T: Send + Sync>() {}
    sync::<Snapshot>();
    sync::<DeltaTable>();
}

#[test]
fn intervals_of_table_properties() {
    use std::time::Duration;

    use crate::delta::log::parse_interval;
    let day = Duration::from_secs(86_400);
    assert_eq!(parse_interval("interval 1 week"), Some(7 * day));
    assert_eq!(parse_interval("interval 7 days"), Some(7 * day));
    assert_eq!(
        parse_interval("INTERVAL 1 Day 12 hours"),
        Some(day + day / 2)
    );
    assert_eq!(parse_interval("168 hours"), Some(7 * day));
    assert_eq!(
        parse_interval("interval 90 seconds"),
        Some(Duration::from_secs(90))
    );
    assert_eq!(parse_interval("interval 1 month"), None);
    assert_eq!(parse_interval("interval"), None);
    assert_eq!(parse_interval(""), None);
    assert_eq!(parse_interval("interval x days"), None);
    assert_eq!(parse_interval("interval 3"), None);
}
