//! Incremental `$export` runs against a real FHIR server: sekmet-fhir (PyPI), started by
//! `scripts/test` on 127.0.0.1 with its URL in `FHIR_INGEST_SEKMET_URL`. Skipped, with a
//! note, when that variable is not set (a plain `cargo test`).
//!
//! Loads a few hundred resources of the sample data, ingests a full export, updates and
//! deletes some, ingests the incremental export (`_since` = the checkpoint) and checks
//! that run 2 holds exactly the new versions and the checkpoint moved. sekmet lists no
//! `deleted[]`, so deletions show only as absences.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use fhir_ingest::{
    bulk::BulkConfig,
    ingest::{IngestSettings, Progress, RunContext, RunSummary},
    maintain::rebuild,
    source::{
        self,
        state::{Checkpoint, SourceState},
    },
    temporal,
    warehouse::{RunManifest, Warehouse},
};
use serde_json::{Value, json};

/// The first `limit` resources of a sample-data file.
fn sample(resource_type: &str, limit: usize) -> Vec<Value> {
    let path = common::sample_dir().join(format!("{resource_type}.ndjson.gz"));
    common::original_lines(&path)
        .into_iter()
        .take(limit)
        .map(|(_, v)| v)
        .collect()
}

fn put_entry(resource: &Value) -> Value {
    let url = format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    );
    json!({"fullUrl": url, "resource": resource, "request": {"method": "PUT", "url": url}})
}

async fn transaction(http: &reqwest::Client, base: &str, entries: Vec<Value>) {
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let response = http
        .post(base)
        .header("content-type", "application/fhir+json")
        .body(bundle.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "transaction: {status}: {text:.2000}");
}

/// What a bulk run committed, and the checkpoint it moved to.
struct BulkSummary {
    run: RunSummary,
    since: Option<String>,
    checkpoint: Option<Checkpoint>,
}

fn bulk_run(
    warehouse: &Warehouse,
    client: &BulkConfig,
    runtime: &tokio::runtime::Runtime,
) -> BulkSummary {
    let cx = RunContext {
        warehouse: warehouse.clone(),
        registry: common::registry(),
        runtime: runtime.handle().clone(),
        cancel: tokio_util::sync::CancellationToken::new(),
        progress: std::sync::Arc::new(Progress::default()),
    };
    let settings = IngestSettings {
        max_rejected_fraction: 0.0,
        ..IngestSettings::default()
    };
    let source = source::SourceConfig {
        name: "sekmet".into(),
        namespace: "sekmet".into(),
        kind: source::SourceKind::Bulk {
            client: Box::new(client.clone()),
        },
        schedule: None,
    };
    let run = source::bulk::run(&cx, &settings, &source, client, Vec::new()).unwrap();
    let export = run.export.unwrap();
    BulkSummary {
        run: run.summary.unwrap(),
        since: export.since,
        checkpoint: export.checkpoint,
    }
}

/// (type, id) → versionId of every row a run committed.
fn rows_of(warehouse: &Warehouse, run: &RunManifest) -> BTreeMap<(String, String), String> {
    let registry = common::registry();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = BTreeMap::new();
    for (table_id, table) in &run.tables {
        if !table_id.dir().starts_with("history/") {
            continue;
        }
        let resource_type = table_id.resource_type().unwrap().to_owned();
        let schema = registry.require(&resource_type).unwrap();
        for file in &table.files {
            for row in runtime
                .block_on(rebuild::rebuild_file(warehouse, schema, &file.path))
                .unwrap()
            {
                let r = row.resource;
                let key = (resource_type.clone(), r["id"].as_str().unwrap().to_owned());
                let version = r["meta"]["versionId"].as_str().unwrap_or("").to_owned();
                assert!(rows.insert(key, version).is_none(), "a resource twice");
            }
        }
    }
    rows
}

#[test]
fn full_then_incremental_export_from_sekmet() {
    let Ok(base) = std::env::var("FHIR_INGEST_SEKMET_URL") else {
        eprintln!("FHIR_INGEST_SEKMET_URL not set: sekmet test skipped (scripts/test runs it)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    // Only what this test loads: everything changed from now on (sekmet compares
    // `_since` with meta.lastUpdated as text, in this form).
    let start = temporal::now_rfc3339().replace('Z', ".000Z");
    std::thread::sleep(Duration::from_millis(1100));

    // Referenced by the others through conditional references (`Location?identifier=`).
    for master in ["Organization", "Location", "Practitioner"] {
        let entries = sample(master, 100).iter().map(put_entry).collect();
        runtime.block_on(transaction(&http, &base, entries));
    }
    let patients = sample("Patient", 100);
    let immunizations = sample("Immunization", 100);
    let conditions = sample("Condition", 150);
    let loaded: Vec<Value> = patients
        .iter()
        .chain(&immunizations)
        .chain(&conditions)
        .map(put_entry)
        .collect();
    runtime.block_on(transaction(&http, &base, loaded));

    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open_local(dir.path()).unwrap();
    let mut client = BulkConfig::new(base.clone());
    client.types = vec!["Patient".into(), "Immunization".into(), "Condition".into()];
    client.since = Some(start);
    client.poll_min_secs = 0.1;
    client.delete_after_download = true;

    let first = bulk_run(&warehouse, &client, &runtime);
    let m1 = &first.run.manifest;
    let count = |m: &RunManifest, t: &str| {
        m.tables
            .get(format!("history/{t}").as_str())
            .map_or(0, |t| t.rows)
    };
    assert_eq!(count(m1, "Patient"), patients.len() as u64);
    assert_eq!(count(m1, "Immunization"), immunizations.len() as u64);
    assert_eq!(count(m1, "Condition"), conditions.len() as u64);
    assert_eq!(m1.rejected.lines, 0);
    let t1 = m1.transaction_time.clone().unwrap();
    assert_eq!(first.checkpoint.as_ref().unwrap().transaction_time, t1);
    let rows1 = rows_of(&warehouse, m1);

    // Update 5 patients, delete 3 immunizations.
    let updated: Vec<Value> = patients[..5]
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p["active"] = json!(false);
            p
        })
        .collect();
    runtime.block_on(async {
        transaction(&http, &base, updated.iter().map(put_entry).collect()).await;
        for immunization in &immunizations[..3] {
            let url = format!(
                "{base}/Immunization/{}",
                immunization["id"].as_str().unwrap()
            );
            let status = http.delete(url).send().await.unwrap().status();
            assert!(status.is_success(), "{status}");
        }
    });

    let second = bulk_run(&warehouse, &client, &runtime);
    let m2 = &second.run.manifest;
    assert_eq!(second.since.as_deref(), Some(t1.as_str()));
    let rows2 = rows_of(&warehouse, m2);
    let expected: BTreeSet<(String, String)> = updated
        .iter()
        .map(|p| ("Patient".to_owned(), p["id"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(rows2.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for (key, version) in &rows2 {
        assert_ne!(Some(version), rows1.get(key), "{key:?}: a new version");
    }
    let t2 = m2.transaction_time.clone().unwrap();
    assert!(t2 > t1, "{t2} after {t1}");

    let (seq, checkpoint) = runtime
        .block_on(SourceState::new(warehouse.store(), "sekmet").checkpoint())
        .unwrap();
    assert_eq!((seq, checkpoint.unwrap().transaction_time), (2, t2));

    // current/: every resource once, at the server's latest version (sekmet lists no
    // deleted[], so the deleted immunizations cannot leave it).
    let mut expected_current = rows1.clone();
    expected_current.extend(rows2);
    let mut current = BTreeMap::new();
    for row in common::rebuild_current(&warehouse) {
        let r = row.resource;
        let key = (
            r["resourceType"].as_str().unwrap().to_owned(),
            r["id"].as_str().unwrap().to_owned(),
        );
        let version = r["meta"]["versionId"].as_str().unwrap_or("").to_owned();
        assert!(
            current.insert(key, version).is_none(),
            "a resource twice in current/"
        );
    }
    assert_eq!(current, expected_current);
}

/// The same through SMART Backend Services (sekmet with `server_auth.types: [smart]` and
/// `tests/fixtures/rsa_public.pem` registered for `fhir-ingest-test`): the token is
/// fetched with a signed assertion and sent with the downloads.
#[test]
fn export_from_sekmet_with_smart_backend_services() {
    let Ok(base) = std::env::var("FHIR_INGEST_SEKMET_SMART_URL") else {
        eprintln!("FHIR_INGEST_SEKMET_SMART_URL not set: sekmet SMART test skipped");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let smart = |scope: &str| fhir_ingest::auth::AuthConfig::Smart {
        client_id: "fhir-ingest-test".into(),
        private_key: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rsa_private.pem"),
        alg: fhir_ingest::auth::JwtAlgorithm::RS384,
        kid: "k1".into(),
        scope: scope.into(),
        token_url: None,
    };
    let patients = sample("Patient", 3);
    runtime.block_on(async {
        let writer =
            fhir_ingest::auth::Auth::new(&smart("system/*.write"), &base, reqwest::Client::new())
                .unwrap();
        let headers = writer.credentials().await.unwrap().headers;
        let bundle = json!({"resourceType": "Bundle", "type": "transaction",
            "entry": patients.iter().map(put_entry).collect::<Vec<_>>()});
        let response = reqwest::Client::new()
            .post(&base)
            .headers(headers)
            .header("content-type", "application/fhir+json")
            .body(bundle.to_string())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    });
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open_local(dir.path()).unwrap();
    let mut client = BulkConfig::new(base);
    client.types = vec!["Patient".into()];
    client.poll_min_secs = 0.1;
    client.auth = smart("system/*.read");
    let summary = bulk_run(&warehouse, &client, &runtime);
    let ids: BTreeSet<String> = rows_of(&warehouse, &summary.run.manifest)
        .into_keys()
        .map(|(_, id)| id)
        .collect();
    for patient in &patients {
        assert!(ids.contains(patient["id"].as_str().unwrap()));
    }
    assert!(summary.checkpoint.is_some());
}
