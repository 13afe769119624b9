//! `fhir-ingest run` against an in-process mock Bulk Data server: incremental runs with
//! checkpoints, crashes at every step of a run (`FHIR_INGEST_FAIL_AT`), an expired export
//! on resume, and cancellation by SIGTERM.

mod common;

use std::{
    collections::{BTreeMap, HashSet},
    io::Write,
    path::Path,
    process::{Command, Output},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{body::Body, http::Response};
use common::mock::{Ctx, Mock, Recorded, accepted, json, ndjson, status, with_headers};
use fhir_ingest::{
    source::state::{Checkpoint, SourceState},
    warehouse::Warehouse,
};
use serde_json::json;

const T1: &str = "2026-01-01T00:00:00.000Z";
const T2: &str = "2026-01-02T00:00:00.000Z";

/// What the mock server knows between requests.
#[derive(Default)]
struct ServerState {
    /// `_since` of each kick-off, in order; the job id is the index.
    kickoffs: Vec<Option<String>>,
    /// Jobs that answer 404 (expired).
    expired: HashSet<usize>,
    /// Never complete (for the cancellation test).
    never_complete: bool,
    /// Answer the kick-off with the manifest at once (1upHealth).
    synchronous: bool,
    /// A file name that answers 500 (a server failing for good).
    failing_file: Option<String>,
    /// A file name whose body sends one line and then hangs.
    hanging_file: Option<String>,
    /// Answer every FHIR request 401 with a body quoting the Authorization header.
    echo_unauthorized: bool,
    /// Kick-offs to answer 429 (Retry-After 0.4 s) before accepting one.
    kickoffs_throttled: usize,
    /// The answers of the status polls (status, Retry-After), in order, before the
    /// manifest; empty: one 202, then the manifest.
    status_script: Vec<(u16, &'static str)>,
    /// A file name that answers 410 (expired).
    gone_file: Option<String>,
    /// The first export's `error[]` issue has severity `error` (a failed part), not
    /// `warning`.
    failed_parts: bool,
    /// The transactionTime of a job, instead of the one its `_since` gives.
    transaction_times: BTreeMap<usize, &'static str>,
}

fn patient(id: &str, version: u32) -> String {
    format!(
        r#"{{"resourceType":"Patient","id":"{id}","meta":{{"versionId":"{version}","lastUpdated":"2026-01-0{version}T00:00:00Z"}},"gender":"female"}}"#
    )
}

fn observation(id: &str) -> String {
    format!(
        r#"{{"resourceType":"Observation","id":"{id}","meta":{{"versionId":"1"}},"status":"final","code":{{"text":"hr"}},"valueQuantity":{{"value":72.0,"unit":"/min"}}}}"#
    )
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// The files of the first (full) export and of the second (`_since` = T1).
fn file_body(job_since: Option<&str>, name: &str, failed_parts: bool) -> Option<Vec<u8>> {
    let lines = |l: Vec<String>| Some((l.join("\n") + "\n").into_bytes());
    match (job_since, name) {
        (None, "Patient.ndjson") => lines(vec![patient("p1", 1), patient("p2", 1)]),
        // organizeOutputBy=Patient: a Parameters header, then the patient's resources.
        (None, "p3.ndjson") => lines(vec![
            r#"{"resourceType":"Parameters","parameter":[{"name":"header","valueReference":{"reference":"Patient/p3"}}]}"#.into(),
            patient("p3", 1),
            observation("o3"),
        ]),
        // Plain gzip bytes (no Content-Encoding): sniffed by the reader.
        (None, "Observation.ndjson") => Some(gzip(&format!(
            "{}\n{}\n",
            observation("o1"),
            observation("o2")
        ))),
        // A warning unless the test asks for a failed part (which holds the checkpoint).
        (None, "errors.ndjson") => lines(vec![json!({"resourceType":"OperationOutcome","issue":[
            {"severity": if failed_parts { "error" } else { "warning" }, "code":"processing",
             "diagnostics":"Could not export Observation/o9"}]})
        .to_string()]),
        (Some(T1), "Patient.ndjson") => lines(vec![patient("p1", 2), patient("p4", 2)]),
        // p2 listed twice (two Bundles, one with a version): recorded once.
        (Some(T1), "deleted.ndjson") => lines(vec![
            json!({"resourceType":"Bundle","type":"transaction",
                "entry":[{"request":{"method":"DELETE","url":"Patient/p2"}}]})
            .to_string(),
            json!({"resourceType":"Bundle","type":"transaction",
                "entry":[{"request":{"method":"DELETE","url":"Patient/p2/_history/2"}}]})
            .to_string(),
        ]),
        _ => None,
    }
}

fn manifest(base: &str, job: usize, since: Option<&str>) -> serde_json::Value {
    let file =
        |t: &str, name: &str| json!({"type": t, "url": format!("{base}/files/{job}/{name}")});
    match since {
        None => json!({
            "transactionTime": T1, "request": format!("{base}/fhir/$export"),
            "requiresAccessToken": true,
            "output": [file("Patient", "Patient.ndjson"), file("Patient", "p3.ndjson"),
                       file("Observation", "Observation.ndjson")],
            "error": [file("OperationOutcome", "errors.ndjson")],
        }),
        Some(T1) => json!({
            "transactionTime": T2, "request": format!("{base}/fhir/$export"),
            "requiresAccessToken": true,
            "output": [file("Patient", "Patient.ndjson")],
            "error": [],
            "deleted": [file("Bundle", "deleted.ndjson")],
        }),
        Some(_) => {
            json!({"transactionTime": T2, "requiresAccessToken": true, "output": [], "error": []})
        }
    }
}

fn handle(state: &Mutex<ServerState>, req: &Recorded, cx: &Ctx) -> Response<Body> {
    let mut state = state.lock().unwrap();
    let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    if state.echo_unauthorized {
        let quoted = req.header("authorization").unwrap_or("-");
        return json(
            401,
            json!({"error": "invalid_token", "detail": format!("rejected Authorization: {quoted}")}),
        );
    }
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", ["fhir", "metadata"]) => json(
            200,
            json!({"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "software": {"name": "mock"}}),
        ),
        ("GET", ["fhir", "$export"]) => {
            if req.header("accept") != Some("application/fhir+json")
                || req.header("prefer") != Some("respond-async")
            {
                return status(400);
            }
            let since = req.query.as_deref().and_then(|q| {
                q.split('&')
                    .find_map(|p| p.strip_prefix("_since="))
                    .map(|v| v.replace("%3A", ":"))
            });
            if state.kickoffs_throttled > 0 {
                state.kickoffs_throttled -= 1;
                return with_headers(429, &[("retry-after", "0.4")]);
            }
            state.kickoffs.push(since.clone());
            let job = state.kickoffs.len() - 1;
            if state.synchronous {
                return json(200, manifest(&cx.base, job, since.as_deref()));
            }
            accepted(&format!("{}/status/{job}", cx.base))
        }
        (method, ["status", job]) => {
            let job: usize = job.parse().unwrap();
            if state.expired.contains(&job) || job >= state.kickoffs.len() {
                return status(404);
            }
            if method == "DELETE" {
                state.expired.insert(job);
                return status(202);
            }
            if let Some(&(code, retry_after)) = state.status_script.get(cx.nth) {
                return with_headers(
                    code,
                    &[("x-progress", "collecting"), ("retry-after", retry_after)],
                );
            }
            if state.never_complete || (cx.nth == 0 && state.status_script.is_empty()) {
                return with_headers(202, &[("x-progress", "collecting"), ("retry-after", "0")]);
            }
            let mut body = manifest(&cx.base, job, state.kickoffs[job].as_deref());
            if let Some(time) = state.transaction_times.get(&job) {
                body["transactionTime"] = json!(time);
            }
            json(200, body)
        }
        ("GET", ["files", job, name]) => {
            let job: usize = job.parse().unwrap();
            if state.expired.contains(&job) {
                return status(404);
            }
            if state.failing_file.as_deref() == Some(*name) {
                return status(500);
            }
            if state.gone_file.as_deref() == Some(*name) {
                return status(410);
            }
            if state.hanging_file.as_deref() == Some(*name) {
                let first = futures::stream::iter([Ok::<_, std::io::Error>(
                    axum::body::Bytes::from(patient("p1", 1) + "\n"),
                )]);
                let hang = futures::stream::once(async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(axum::body::Bytes::new())
                });
                return ndjson(Body::from_stream(futures::StreamExt::chain(first, hang)));
            }
            match file_body(state.kickoffs[job].as_deref(), name, state.failed_parts) {
                Some(body) => ndjson(body),
                None => status(404),
            }
        }
        _ => status(404),
    }
}

/// A mock server, its state, and the runtime that serves it.
struct Server {
    mock: Mock,
    state: Arc<Mutex<ServerState>>,
    _runtime: tokio::runtime::Runtime,
}

fn server() -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let state = Arc::new(Mutex::new(ServerState::default()));
    let shared = state.clone();
    let mock = runtime.block_on(Mock::start(move |req, cx| handle(&shared, req, cx)));
    Server {
        mock,
        state,
        _runtime: runtime,
    }
}

const BEARER: &str = "type = \"bearer\"\ntoken = { env = \"FHIR_INGEST_TEST_TOKEN\" }";

fn write_config(dir: &Path, base: &str) -> std::path::PathBuf {
    write_config_with_auth(dir, base, BEARER)
}

fn write_config_with_auth(dir: &Path, base: &str, auth: &str) -> std::path::PathBuf {
    let path = dir.join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            r#"[warehouse]
url = "wh"
[decode]
workers = 1
[[sources]]
name = "ehr"
kind = "bulk"
[sources.bulk]
base_url = "{base}/fhir"
parallel_downloads = 2
poll_min_secs = 0.02
poll_max_secs = 0.2
retry_base_secs = 0.02
retries = 2
delete_after_download = true
[sources.bulk.auth]
{auth}
[[views]]
path = "{views}"
"#,
            views = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples/views/patient_demographics.json")
                .display()
        ),
    )
    .unwrap();
    path
}

fn run(config: &Path, fail_at: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fhir-ingest"));
    command
        .args(["run", "--config"])
        .arg(config)
        .env("FHIR_INGEST_TEST_TOKEN", "s3cret-token")
        .env("FHIR_INGEST_TEST_ONEUP_ID", "oneup-id")
        .env("FHIR_INGEST_TEST_ONEUP_SECRET", "s3cret-oneup")
        .env_remove(fhir_ingest::failpoint::ENV);
    if let Some(point) = fail_at {
        command.env(fhir_ingest::failpoint::ENV, point);
    }
    command.output().unwrap()
}

fn assert_ok(output: &Output) {
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{:?}\nstdout: {}\nstderr: {text}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(!text.contains("s3cret"), "secret in the log: {text}");
}

/// Every committed resource as (type, id, versionId) with how often it is there.
fn committed(root: &Path) -> BTreeMap<(String, String, String), usize> {
    let warehouse = Warehouse::open_local(root).unwrap();
    let mut counts = BTreeMap::new();
    for row in common::rebuild_all(&warehouse) {
        let r = &row.resource;
        let key = (
            r["resourceType"].as_str().unwrap().to_owned(),
            r["id"].as_str().unwrap().to_owned(),
            r["meta"]["versionId"].as_str().unwrap().to_owned(),
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
}

fn checkpoint(root: &Path) -> (u64, Option<Checkpoint>) {
    let warehouse = Warehouse::open_local(root).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(SourceState::new(warehouse.store(), "ehr").checkpoint())
        .unwrap()
}

/// (type, id, versionId) of every resource of the current tables.
fn current(root: &Path) -> Vec<(String, String, String)> {
    let warehouse = Warehouse::open_local(root).unwrap();
    let mut rows: Vec<_> = common::rebuild_current(&warehouse)
        .into_iter()
        .map(|row| {
            let r = row.resource;
            (
                r["resourceType"].as_str().unwrap().to_owned(),
                r["id"].as_str().unwrap().to_owned(),
                r["meta"]["versionId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The current state after both exports: p1 updated, p2 deleted, p4 new.
fn current_after_two_runs() -> Vec<(String, String, String)> {
    let mut rows: Vec<_> = [
        ("Observation", "o1", "1"),
        ("Observation", "o2", "1"),
        ("Observation", "o3", "1"),
        ("Patient", "p1", "2"),
        ("Patient", "p3", "1"),
        ("Patient", "p4", "2"),
    ]
    .into_iter()
    .map(|(t, i, v)| (t.into(), i.into(), v.into()))
    .collect();
    rows.sort();
    rows
}

/// The ids of the patient view's rows, sorted.
fn view_patients(root: &Path) -> Vec<String> {
    let path = root.join("views/patient_demographics");
    let warehouse = Warehouse::open_local(root).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let table = fhir_ingest::warehouse::TableId::view("patient_demographics");
    let mut ids = Vec::new();
    for file in runtime.block_on(warehouse.live_files(&table)).unwrap() {
        for batch in runtime
            .block_on(warehouse.read_parquet(&file.path))
            .unwrap()
        {
            let batch = batch.unwrap();
            let column = batch.column_by_name("id").unwrap();
            let strings = column
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap();
            ids.extend(strings.iter().map(|s| s.unwrap().to_owned()));
        }
    }
    assert!(path.is_dir());
    ids.sort();
    ids
}

fn expected_after_two_runs() -> BTreeMap<(String, String, String), usize> {
    [
        ("Patient", "p1", "1"),
        ("Patient", "p2", "1"),
        ("Patient", "p3", "1"),
        ("Observation", "o1", "1"),
        ("Observation", "o2", "1"),
        ("Observation", "o3", "1"),
        ("Patient", "p1", "2"),
        ("Patient", "p4", "2"),
    ]
    .into_iter()
    .map(|(t, i, v)| ((t.into(), i.into(), v.into()), 1))
    .collect()
}

#[test]
fn full_then_incremental_export_with_checkpoint() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.mock.base);
    let root = dir.path().join("wh");

    let first = run(&config, None);
    assert_ok(&first);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("collecting"), "X-Progress shown: {stderr}");
    assert!(
        stderr.contains("Could not export Observation/o9"),
        "{stderr}"
    );
    assert_eq!(checkpoint(&root).1.unwrap().transaction_time, T1);

    let second = run(&config, None);
    assert_ok(&second);
    let (seq, current) = checkpoint(&root);
    assert_eq!((seq, current.unwrap().transaction_time.as_str()), (2, T2));
    assert_eq!(committed(&root), expected_after_two_runs());
    assert_eq!(self::current(&root), current_after_two_runs());
    assert_eq!(view_patients(&root), ["p1", "p3", "p4"]);

    let warehouse = Warehouse::open_local(&root).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runs = runtime.block_on(warehouse.committed_runs()).unwrap();
    // Run ids of one second do not sort by time; transaction times do.
    runs.sort_by(|a, b| a.transaction_time.cmp(&b.transaction_time));
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].transaction_time.as_deref(), Some(T1));
    assert_eq!(runs[0].input.skipped, 1, "the Parameters header line");
    assert_eq!(runs[0].rejected.lines, 0, "{:?}", runs[0].rejected);
    // A warning: recorded and shown, and the checkpoint moves on.
    assert_eq!(
        runs[0].server_errors,
        ["warning (processing): Could not export Observation/o9"]
    );
    assert_eq!(runs[1].deleted.len(), 1, "each deleted resource once");
    assert_eq!(
        (
            runs[1].deleted[0].resource_type.as_str(),
            runs[1].deleted[0].id.as_str()
        ),
        ("Patient", "p2")
    );

    let state = server.state.lock().unwrap();
    assert_eq!(state.kickoffs, [None, Some(T1.to_owned())]);
    // delete_after_download: both exports were deleted on the server.
    assert_eq!(server.mock.requests_to("DELETE", "/status/0").len(), 1);
    assert_eq!(server.mock.requests_to("DELETE", "/status/1").len(), 1);
    // The bearer token went with every request to the server.
    for request in server.mock.requests() {
        assert_eq!(
            request.header("authorization"),
            Some("Bearer s3cret-token"),
            "{}",
            request.path
        );
    }
}

/// Crash at each point of the first run, rerun, then run the incremental export: every
/// resource is committed exactly once and the checkpoint is the second export's.
#[test]
fn a_crash_at_any_point_then_a_rerun_gives_every_resource_once() {
    for point in [
        "after-kick-off",
        "during-download",
        "after-data-files",
        "after-history-commit",
        "after-current-commit",
        "after-views-commit",
        "after-commit",
        "after-checkpoint",
    ] {
        let server = server();
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &server.mock.base);
        let root = dir.path().join("wh");

        let crashed = run(&config, Some(point));
        assert_eq!(
            crashed.status.code(),
            Some(fhir_ingest::failpoint::EXIT_STATUS),
            "{point}: {}",
            String::from_utf8_lossy(&crashed.stderr)
        );
        assert_ok(&run(&config, None));
        assert_ok(&run(&config, None));

        assert_eq!(committed(&root), expected_after_two_runs(), "{point}");
        assert_eq!(self::current(&root), current_after_two_runs(), "{point}");
        assert_eq!(view_patients(&root), ["p1", "p3", "p4"], "{point}");
        let (_, current) = checkpoint(&root);
        assert_eq!(current.unwrap().transaction_time, T2, "{point}");
        let kickoffs = server.state.lock().unwrap().kickoffs.clone();
        // The crashed export was resumed (or already committed), never asked for again;
        // after a crash past the commit, the second run is already the incremental one.
        assert_eq!(kickoffs[..2], [None, Some(T1.to_owned())], "{point}");
        assert_eq!(
            kickoffs.iter().filter(|k| k.is_none()).count(),
            1,
            "{point}"
        );
        assert!(
            !root.join("_state/ehr/in-flight.json").exists(),
            "{point}: in-flight left"
        );
    }
}

#[test]
fn an_expired_export_on_resume_is_reported_and_a_new_one_started() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.mock.base);
    let root = dir.path().join("wh");
    let crashed = run(&config, Some("after-kick-off"));
    assert_eq!(
        crashed.status.code(),
        Some(fhir_ingest::failpoint::EXIT_STATUS)
    );
    server.state.lock().unwrap().expired.insert(0);

    let rerun = run(&config, None);
    assert_ok(&rerun);
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(stderr.contains("no longer exists"), "{stderr}");
    assert_eq!(server.state.lock().unwrap().kickoffs, [None, None]);
    assert_eq!(checkpoint(&root).1.unwrap().transaction_time, T1);
}

#[cfg(unix)]
#[test]
fn sigterm_while_polling_cancels_the_export_and_keeps_the_checkpoint() {
    let server = server();
    server.state.lock().unwrap().never_complete = true;
    sigterm_when(&server, "GET", "/status/0", 2, false);
}

#[cfg(unix)]
#[test]
fn sigterm_while_downloading_cancels_the_export_and_keeps_the_checkpoint() {
    let server = server();
    server.state.lock().unwrap().hanging_file = Some("Patient.ndjson".into());
    sigterm_when(&server, "GET", "/files/0/Patient.ndjson", 1, false);
}

/// In JSON log mode, the signal's message and everything else on stderr are JSON.
#[cfg(unix)]
#[test]
fn sigterm_in_json_log_mode_logs_only_json() {
    let server = server();
    server.state.lock().unwrap().hanging_file = Some("Patient.ndjson".into());
    let stderr = sigterm_when(&server, "GET", "/files/0/Patient.ndjson", 1, true);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{stderr}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "warn"
                && l["message"].as_str().unwrap().contains("signal received")),
        "{stderr}"
    );
}

/// The library's cancellation: a bulk run whose token is cancelled while it polls
/// returns `Cancelled` (no process exit), cancels the export on the server, removes
/// the in-flight record and commits nothing.
#[test]
fn a_bulk_run_cancelled_through_its_token_cancels_the_export() {
    use fhir_ingest::{
        config::Config,
        ingest::{IngestSettings, Outcome},
        source::SourceKind,
    };
    let server = server();
    server.state.lock().unwrap().never_complete = true;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config_with_auth(dir.path(), &server.mock.base, "type = \"none\"");
    let config = Config::load(&path).unwrap();
    let SourceKind::Bulk { client } = &config.sources[0].kind else {
        panic!("a bulk source")
    };
    let root = dir.path().join("wh");
    let warehouse = Warehouse::open_local(&root).unwrap();
    let cx = common::context(&warehouse);
    let cancel = cx.cancel.clone();
    let mock = &server.mock;
    let run = std::thread::scope(|scope| {
        scope.spawn(|| {
            let started = Instant::now();
            while mock.requests_to("GET", "/status/0").len() < 2 {
                assert!(started.elapsed() < Duration::from_secs(20), "no polling");
                std::thread::sleep(Duration::from_millis(20));
            }
            cancel.cancel();
        });
        fhir_ingest::source::bulk::run(
            &cx,
            &IngestSettings::default(),
            &config.sources[0],
            client,
            Vec::new(),
        )
        .unwrap()
    });
    assert_eq!(run.outcome, Outcome::Cancelled);
    assert!(run.summary.is_none());
    assert_eq!(server.mock.requests_to("DELETE", "/status/0").len(), 1);
    assert_eq!(checkpoint(&root), (0, None));
    assert!(committed(&root).is_empty());
    assert!(!root.join("_state/ehr/in-flight.json").exists());
}

/// Runs the binary (with JSON logs if `json`), sends SIGTERM once `path` got
/// `requests` requests, and checks the export was cancelled on the server with nothing
/// committed; returns what the binary wrote on stderr.
#[cfg(unix)]
fn sigterm_when(server: &Server, method: &str, path: &str, requests: usize, json: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.mock.base);
    let root = dir.path().join("wh");
    let format = if json { "json" } else { "text" };
    let child = Command::new(env!("CARGO_BIN_EXE_fhir-ingest"))
        .args(["--log-format", format, "run", "--config"])
        .arg(&config)
        .env("FHIR_INGEST_TEST_TOKEN", "s3cret-token")
        .env_remove(fhir_ingest::failpoint::ENV)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while server.mock.requests_to(method, path).len() < requests {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no request to {path}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(server.mock.requests_to("DELETE", "/status/0").len(), 1);
    assert_eq!(checkpoint(&root), (0, None));
    assert!(committed(&root).is_empty());
    assert!(!root.join("_state/ehr/in-flight.json").exists());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Regression: a file that cannot be downloaded must fail the run (nothing committed,
/// checkpoint unchanged), not commit the lines before the failure.
#[test]
fn a_download_failing_for_good_commits_nothing_and_the_rerun_resumes() {
    let server = server();
    server.state.lock().unwrap().failing_file = Some("Observation.ndjson".into());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.mock.base);
    let root = dir.path().join("wh");

    let failed = run(&config, None);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("Observation.ndjson") && stderr.contains("500"),
        "{stderr}"
    );
    assert_eq!(checkpoint(&root), (0, None));
    assert!(committed(&root).is_empty());
    assert!(root.join("_state/ehr/in-flight.json").exists());

    server.state.lock().unwrap().failing_file = None;
    assert_ok(&run(&config, None));
    assert_eq!(server.state.lock().unwrap().kickoffs, [None]);
    assert_eq!(checkpoint(&root).1.unwrap().transaction_time, T1);
    assert_eq!(committed(&root).len(), 6);
}

/// 1upHealth: the kick-off answers with the manifest at once; the client headers go with
/// the kick-off and every download.
#[test]
fn synchronous_export_with_oneup_client_headers() {
    let server = server();
    server.state.lock().unwrap().synchronous = true;
    let dir = tempfile::tempdir().unwrap();
    let auth = "type = \"oneup\"\nclient_id = { env = \"FHIR_INGEST_TEST_ONEUP_ID\" }\n\
                client_secret = { env = \"FHIR_INGEST_TEST_ONEUP_SECRET\" }";
    let config = write_config_with_auth(dir.path(), &server.mock.base, auth);
    let root = dir.path().join("wh");
    let first = run(&config, None);
    assert_ok(&first);
    assert!(!String::from_utf8_lossy(&first.stderr).contains("s3cret-oneup"));
    assert_ok(&run(&config, None));
    assert_eq!(committed(&root), expected_after_two_runs());
    assert_eq!(checkpoint(&root).1.unwrap().transaction_time, T2);
    assert!(server.mock.requests_to("GET", "/status/0").is_empty());
    for request in server.mock.requests() {
        assert_eq!(
            request.header("client_id"),
            Some("oneup-id"),
            "{}",
            request.path
        );
        assert_eq!(request.header("client_secret"), Some("s3cret-oneup"));
        assert_eq!(request.header("x-oneup-user-id"), Some("client"));
        assert_eq!(request.header("authorization"), None);
    }
}

/// A `daemon` configuration: the bulk source on `schedule`, metrics on a free port.
fn write_daemon_config(dir: &Path, base: &str, schedule: &str) -> std::path::PathBuf {
    let path = write_config(dir, base);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "kind = \"bulk\"\n",
        &format!("kind = \"bulk\"\nschedule = \"{schedule}\"\n"),
    );
    let text = text.replace(
        "[decode]\n",
        "[daemon]\nlisten = \"127.0.0.1:0\"\n[decode]\n",
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `fhir-ingest daemon` and returns it with the metrics address it printed.
#[cfg(unix)]
fn start_daemon(
    config: &Path,
) -> (
    std::process::Child,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_fhir-ingest"))
        .args(["daemon", "--config"])
        .arg(config)
        .env("FHIR_INGEST_TEST_TOKEN", "s3cret-token")
        .env_remove(fhir_ingest::failpoint::ENV)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if let Some(at) = line.find("http://") {
                    return (child, line[at + "http://".len()..].trim().to_owned(), rx);
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the daemon did not print its address within 20 s");
            }
        }
    }
}

/// GET `path` from the daemon's endpoint.
fn http_get(address: &str, path: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[cfg(unix)]
fn sigterm(child: std::process::Child) -> Option<i32> {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait_with_output().unwrap().status.code()
}

#[cfg(unix)]
#[test]
fn daemon_runs_a_source_on_its_schedule_and_reports_the_runs() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let config = write_daemon_config(dir.path(), &server.mock.base, "*/2 * * * * *");
    let root = dir.path().join("wh");
    let (child, address, log) = start_daemon(&config);
    assert!(http_get(&address, "/healthz").ends_with("\r\n\r\nok\n"));
    let successes = "fhir_ingest_runs_total{source=\"ehr\",outcome=\"success\"}";
    let started = Instant::now();
    let mut body = String::new();
    while metric(&body, successes) < 2.0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "two runs within 30 s:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
        body = http_get(&address, "/metrics");
    }
    assert!(
        metric(&body, "fhir_ingest_rows_total{source=\"ehr\"}") >= 8.0,
        "{body}"
    );
    assert!(
        metric(
            &body,
            "fhir_ingest_last_success_timestamp_seconds{source=\"ehr\"}"
        ) > 1.7e9,
        "{body}"
    );
    let code = sigterm(child);
    let lines: Vec<String> = log.try_iter().collect();
    assert!(
        matches!(code, Some(0) | Some(130)),
        "{code:?}\n{}",
        lines.join("\n")
    );
    assert!(!lines.join("\n").contains("s3cret"), "secret in the log");
    // The scheduled runs were incremental: the first full, the next ones since T1, T2...
    let kickoffs = server.state.lock().unwrap().kickoffs.clone();
    assert_eq!(kickoffs[0], None);
    assert_eq!(kickoffs[1].as_deref(), Some(T1));
    // Every committed run moved the checkpoint; whatever a stop cut short is not committed.
    let (seq, checkpoint) = checkpoint(&root);
    assert!(seq >= 2, "{seq}");
    assert!(checkpoint.is_some());
    assert_eq!(committed(&root), expected_after_two_runs());
}

#[cfg(unix)]
#[test]
fn daemon_stopped_mid_run_cancels_the_export_and_keeps_the_checkpoint() {
    let server = server();
    server.state.lock().unwrap().never_complete = true;
    let dir = tempfile::tempdir().unwrap();
    let config = write_daemon_config(dir.path(), &server.mock.base, "* * * * * *");
    let root = dir.path().join("wh");
    let (child, _address, _log) = start_daemon(&config);
    let started = Instant::now();
    while server.mock.requests_to("GET", "/status/0").len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(20), "no polling");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sigterm(child), Some(130));
    assert_eq!(server.mock.requests_to("DELETE", "/status/0").len(), 1);
    assert_eq!(checkpoint(&root), (0, None));
    assert!(committed(&root).is_empty());
    assert!(!root.join("_state/ehr/in-flight.json").exists());
    assert_eq!(
        server.state.lock().unwrap().kickoffs.len(),
        1,
        "never two runs of a source at once"
    );
}

#[test]
fn status_shows_the_checkpoint_of_each_bulk_source() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.mock.base);
    assert_ok(&run(&config, None));
    let status = |json: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fhir-ingest"));
        command.args(["status", "--config"]).arg(&config);
        if json {
            command.arg("--json");
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let text = status(false);
    assert!(
        text.contains(&format!("checkpoint #1 at transactionTime {T1}")),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    assert_eq!(json["exports"]["ehr"]["checkpoint_seq"], 1);
    assert_eq!(json["exports"]["ehr"]["checkpoint"]["transaction_time"], T1);
    assert!(json["exports"]["ehr"]["in_flight"].is_null());
}

#[test]
fn validate_config_reaches_the_server_and_says_what_would_run_without_writing() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.mock.base);
    let validate = || {
        Command::new(env!("CARGO_BIN_EXE_fhir-ingest"))
            .args(["validate-config", "--config"])
            .arg(&config)
            .env("FHIR_INGEST_TEST_TOKEN", "s3cret-token")
            .output()
            .unwrap()
    };
    let output = validate();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("FHIR 4.0.1, mock") && text.contains("a full export"),
        "{text}"
    );
    assert_eq!(
        server.mock.requests_to("GET", "/fhir/metadata")[0].header("authorization"),
        Some("Bearer s3cret-token")
    );
    assert!(
        server.mock.requests_to("GET", "/fhir/$export").is_empty(),
        "nothing kicked off"
    );
    assert!(!text.contains("s3cret"));
    // Regression (issue 9, item 13): not even the warehouse directory is created.
    assert!(
        !dir.path().join("wh").exists(),
        "validate-config created the warehouse"
    );
    assert!(text.contains("does not exist yet"), "{text}");
    assert_ok(&run(&config, None));
    let text = String::from_utf8_lossy(&validate().stdout).into_owned();
    assert!(text.contains(&format!("changes since {T1}")), "{text}");
}

#[test]
fn json_log_lines_for_log_shippers() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.mock.base);
    let output = Command::new(env!("CARGO_BIN_EXE_fhir-ingest"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(&config)
        .env("FHIR_INGEST_TEST_TOKEN", "s3cret-token")
        .output()
        .unwrap();
    assert_ok(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Bulk Data export")),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["level"] == "info" && l["time"].is_string())
    );
}

/// Regression (issue 9, item 7): a server answering 401 with a body that quotes our
/// token: neither `run` (text or JSON logs) nor `validate-config` prints the token.
#[test]
fn a_token_echoed_by_the_server_is_never_printed() {
    let server = server();
    server.state.lock().unwrap().echo_unauthorized = true;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.mock.base);
    let binary = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_fhir-ingest"))
            .args(args)
            .arg(&config)
            .env("FHIR_INGEST_TEST_TOKEN", "s3cret-token")
            .env_remove(fhir_ingest::failpoint::ENV)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    };
    for args in [
        &["run", "--config"][..],
        &["--log-format", "json", "run", "--config"],
        &["validate-config", "--config"],
    ] {
        let (code, text) = binary(args);
        assert_eq!(code, Some(1), "{args:?}: {text}");
        assert!(text.contains("HTTP 401"), "{args:?}: {text}");
        assert!(
            text.contains("rejected Authorization: Bearer ***"),
            "{args:?}: {text}"
        );
        assert!(
            !text.contains("s3cret"),
            "{args:?}: the token is printed: {text}"
        );
    }
    let sent = server.mock.requests_to("GET", "/fhir/metadata");
    assert_eq!(sent[0].header("authorization"), Some("Bearer s3cret-token"));
}

/// Regression (issue 9, item 12): a kick-off answered 429 says how long it waits; each
/// poll line shows that poll's own answer and wait (a 429 and a 503 named as such).
#[test]
fn throttled_and_failed_polls_are_shown_with_their_own_wait() {
    let server = server();
    {
        let mut state = server.state.lock().unwrap();
        state.kickoffs_throttled = 1;
        state.status_script = vec![(202, "0.3"), (429, "0.6"), (503, "0")];
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.mock.base);
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace("poll_max_secs = 0.2", "poll_max_secs = 2")
        .replace("retry_base_secs = 0.02", "retry_base_secs = 0.5");
    std::fs::write(&config, text).unwrap();
    let output = run(&config, None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in [
        "kick-off answered HTTP 429 Too Many Requests: retrying in 0.4 s (retry 1 of 2)",
        "export in progress: collecting (poll 1, next in 0.3 s)",
        "status poll 2 answered HTTP 429 Too Many Requests: next poll in 0.6 s",
        "status poll 3 failed (HTTP 503",
    ] {
        assert!(stderr.contains(line), "{line:?} missing from:\n{stderr}");
    }
    assert!(!stderr.contains("in progress: -"), "{stderr}");
}

/// Regression (issue 9, item 12): a file that answers 410 fails the run with its URL
/// named once.
#[test]
fn a_file_gone_names_its_url_once() {
    let server = server();
    server.state.lock().unwrap().gone_file = Some("Observation.ndjson".into());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.mock.base);
    let output = run(&config, None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"));
    assert!(error.contains("HTTP 410"), "{error}");
    assert_eq!(
        error.matches("/files/0/Observation.ndjson").count(),
        1,
        "{error}"
    );
}

/// A bulk source's config with `on_server_errors = policy`.
fn write_config_with_policy(dir: &Path, base: &str, policy: &str) -> std::path::PathBuf {
    let path = write_config(dir, base);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "delete_after_download = true\n",
        &format!("delete_after_download = true\non_server_errors = \"{policy}\"\n"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn in_flight(root: &Path) -> bool {
    root.join("_state/ehr/in-flight.json").exists()
}

/// Regression (issue 9, item 1): failed parts of an export (error[] issues of severity
/// error) commit what arrived, keep the checkpoint and exit 3, naming what failed; the
/// next run asks again from the same _since (a new export, not the finished one), even
/// after a crash between the commit and the end of the run.
#[test]
fn failed_parts_of_an_export_hold_the_checkpoint() {
    let server = server();
    server.state.lock().unwrap().failed_parts = true;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.mock.base);
    let root = dir.path().join("wh");

    let first = run(&config, None);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert_eq!(
        first.status.code(),
        Some(3),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("INCOMPLETE")
            && stdout.contains("error (processing): Could not export Observation/o9")
            && stdout.contains("checkpoint held"),
        "{stdout}"
    );
    assert_eq!(checkpoint(&root), (0, None));
    assert!(!in_flight(&root), "the finished export is not resumed");
    assert_eq!(committed(&root).len(), 6, "what arrived is committed");
    let warehouse = Warehouse::open_local(&root).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let runs = runtime.block_on(warehouse.committed_runs()).unwrap();
    assert_eq!(
        runs[0].server_errors,
        ["error (processing): Could not export Observation/o9"],
        "the severity is kept"
    );

    // A crash after the commit of the next (still incomplete) export: the rerun does
    // not move the checkpoint to that committed run.
    server
        .state
        .lock()
        .unwrap()
        .transaction_times
        .insert(1, "2026-01-01T06:00:00.000Z");
    let crashed = run(&config, Some("after-commit"));
    assert_eq!(
        crashed.status.code(),
        Some(fhir_ingest::failpoint::EXIT_STATUS)
    );
    assert_eq!(run(&config, None).status.code(), Some(3));
    assert_eq!(checkpoint(&root), (0, None));

    // The server recovers: the next run asks again for a full export and moves on.
    {
        let mut state = server.state.lock().unwrap();
        state.failed_parts = false;
        state
            .transaction_times
            .insert(2, "2026-01-01T12:00:00.000Z");
    }
    assert_ok(&run(&config, None));
    assert_eq!(
        checkpoint(&root).1.unwrap().transaction_time,
        "2026-01-01T12:00:00.000Z"
    );
    assert_eq!(server.state.lock().unwrap().kickoffs, [None, None, None]);
}

/// Regression (issue 9, item 1): `on_server_errors = "fail"` commits nothing and
/// cancels the export; `"ignore"` moves the checkpoint on as before.
#[test]
fn on_server_errors_fail_and_ignore() {
    let failing = server();
    failing.state.lock().unwrap().failed_parts = true;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with_policy(dir.path(), &failing.mock.base, "fail");
    let root = dir.path().join("wh");
    let failed = run(&config, None);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("on_server_errors = \"fail\"")
            && stderr.contains("Could not export Observation/o9"),
        "{stderr}"
    );
    assert!(committed(&root).is_empty());
    assert_eq!(checkpoint(&root), (0, None));
    assert!(!in_flight(&root));
    assert_eq!(failing.mock.requests_to("DELETE", "/status/0").len(), 1);
    assert!(
        failing
            .mock
            .requests_to("GET", "/files/0/Patient.ndjson")
            .is_empty()
    );

    let other = server();
    other.state.lock().unwrap().failed_parts = true;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with_policy(dir.path(), &other.mock.base, "ignore");
    let root = dir.path().join("wh");
    assert_ok(&run(&config, None));
    assert_eq!(checkpoint(&root).1.unwrap().transaction_time, T1);
}

/// Regression (issue 9, item 2): an export that never completes is given up after
/// `max_export_wait`: cancelled on the server, forgotten, and the run fails clearly.
#[test]
fn a_stuck_export_is_cancelled_after_max_export_wait() {
    let server = server();
    server.state.lock().unwrap().never_complete = true;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.mock.base);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "delete_after_download = true\n",
        "delete_after_download = true\nmax_export_wait = \"0.5s\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let root = dir.path().join("wh");
    let started = Instant::now();
    let output = run(&config, None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "bounded");
    assert!(
        stderr.contains("did not complete within max_export_wait (0.5s)"),
        "{stderr}"
    );
    assert_eq!(server.mock.requests_to("DELETE", "/status/0").len(), 1);
    assert!(
        !in_flight(&root),
        "forgotten: the next run starts a new export"
    );
    assert_eq!(checkpoint(&root), (0, None));

    server.state.lock().unwrap().never_complete = false;
    assert_ok(&run(&config, None));
    assert_eq!(server.state.lock().unwrap().kickoffs, [None, None]);
}
