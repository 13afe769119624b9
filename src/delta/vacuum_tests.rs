use object_store::{ObjectStoreExt, PutPayload};

use super::*;
use crate::delta::{
    Action,
    testing::{commit, create, local_table, put_file},
};

const HOUR_MS: i64 = 3_600_000;

#[tokio::test]
async fn vacuum_keeps_live_files_and_deletes_expired_tombstones_and_old_orphans() {
    let (_dir, table) = local_table();
    let now = crate::delta::now_ms();
    let live = put_file(&table, "export_date=2026-01-01/live.parquet", "2026-01-01").await;
    let old_gone = put_file(
        &table,
        "export_date=2026-01-01/old gone.parquet",
        "2026-01-01",
    )
    .await;
    let new_gone = put_file(
        &table,
        "export_date=2026-01-01/new-gone.parquet",
        "2026-01-01",
    )
    .await;
    let s0 = create(
        &table,
        vec![live.clone(), old_gone.clone(), new_gone.clone()],
    )
    .await;
    let s1 = commit(
        &table,
        &s0,
        vec![
            Action::Remove(old_gone.remove_at(now - 3 * HOUR_MS)),
            Action::Remove(new_gone.remove_at(now)),
        ],
    )
    .await;
    // An orphan of a lost commit, and files vacuum never touches.
    put_file(
        &table,
        "export_date=2026-01-02/orphan.parquet",
        "2026-01-02",
    )
    .await;
    for hidden in ["_hidden/x", ".tmp/y", "export_date=2026-01-01/.z.crc"] {
        table
            .store()
            .put(&table.object(hidden).unwrap(), PutPayload::from("h"))
            .await
            .unwrap();
    }
    let count = || async {
        let listed: Vec<_> = table
            .store()
            .list(Some(table.root()))
            .try_collect()
            .await
            .unwrap();
        listed.len()
    };
    let before = count().await;

    let retention = Duration::from_secs(3600);
    let dry = table
        .vacuum(&s1, VacuumOptions::new(retention).at(now).dry_run())
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.deleted, ["export_date=2026-01-01/old gone.parquet"]);
    assert_eq!(count().await, before, "a dry run deletes nothing");

    let report = table
        .vacuum(&s1, VacuumOptions::new(retention).at(now))
        .await
        .unwrap();
    assert_eq!(report.deleted, dry.deleted);
    assert_eq!(
        (
            report.tombstone_files,
            report.orphan_files,
            report.live_files,
            report.recent_files
        ),
        (1, 0, 1, 2)
    );
    assert_eq!(report.tombstone_bytes, old_gone.size as u64);
    assert_eq!(count().await, before - 1);

    // Two hours later the recent tombstone and the orphan have expired too.
    let report = table
        .vacuum(&s1, VacuumOptions::new(retention).at(now + 2 * HOUR_MS))
        .await
        .unwrap();
    assert_eq!(
        report.deleted,
        [
            "export_date=2026-01-01/new-gone.parquet",
            "export_date=2026-01-02/orphan.parquet"
        ]
    );
    assert_eq!(
        (
            report.tombstone_files,
            report.orphan_files,
            report.live_files
        ),
        (1, 1, 1)
    );
    assert!(report.orphan_bytes > 0);

    // Even with no retention at all, live files, hidden files and the log stay.
    let report = table
        .vacuum(
            &s1,
            VacuumOptions::new(Duration::ZERO).at(now + 10 * HOUR_MS),
        )
        .await
        .unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    let live_path = table.object("export_date=2026-01-01/live.parquet").unwrap();
    assert!(table.store().head(&live_path).await.is_ok());
    assert_eq!(table.snapshot().await.unwrap().unwrap().version(), 1);
    assert_eq!(count().await, before - 3);
}

#[tokio::test]
async fn vacuum_matches_live_keys_with_percent_signs() {
    let (_dir, table) = local_table();
    let odd = put_file(&table, "export_date=2026-01-01/a%b c.parquet", "2026-01-01").await;
    let s0 = create(&table, vec![odd]).await;
    let far = crate::delta::now_ms() + 100 * HOUR_MS;
    let report = table
        .vacuum(&s0, VacuumOptions::new(Duration::ZERO).at(far))
        .await
        .unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(report.live_files, 1);
}

#[test]
fn hidden_segments() {
    assert!(is_hidden("_delta_log"));
    assert!(is_hidden(".x"));
    assert!(!is_hidden("_p=1"));
    assert!(!is_hidden("export_date=2026-01-01"));
}
