//! The command line as a user runs it: exit codes, messages, the main commands.

mod common;

use std::process::{Command, Output};

use common::*;

fn fhir_ingest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fhir-ingest"))
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn help_explains_every_command() {
    let out = fhir_ingest(&["--help"]);
    assert!(out.status.success());
    let help = text(&out);
    for command in [
        "run",
        "convert",
        "to-ndjson",
        "status",
        "cleanup",
        "compact",
        "schema",
        "Exit status",
    ] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
}

#[test]
fn convert_then_to_ndjson_on_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let out = fhir_ingest(&[
        "convert",
        sample_dir().to_str().unwrap(),
        "--out",
        wh.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let summary = text(&out);
    assert!(
        summary.contains("Procedure") && summary.contains("2056") && summary.contains("committed"),
        "{summary}"
    );
    let nd = dir.path().join("nd");
    let out = fhir_ingest(&[
        "to-ndjson",
        "-w",
        wh.to_str().unwrap(),
        "-o",
        nd.to_str().unwrap(),
        "--type",
        "Patient",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let patients = std::fs::read_to_string(nd.join("Patient.ndjson")).unwrap();
    assert_eq!(patients.lines().count(), 13);
    assert!(!nd.join("Procedure.ndjson").exists(), "--type filters");
}

fn write_lines(dir: &std::path::Path, good: usize, bad: usize) -> std::path::PathBuf {
    let path = dir.join("Patient.ndjson");
    let mut lines: Vec<String> = (0..good)
        .map(|i| format!(r#"{{"resourceType":"Patient","id":"p{i}"}}"#))
        .collect();
    lines.extend((0..bad).map(|_| "not json".to_owned()));
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

#[test]
fn exit_status_tells_partial_from_failed() {
    let dir = tempfile::tempdir().unwrap();
    let partial = write_lines(dir.path(), 199, 1);
    let out = fhir_ingest(&[
        "convert",
        partial.to_str().unwrap(),
        "--out",
        dir.path().join("a").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("rejected 1 lines"), "{}", text(&out));

    std::fs::create_dir_all(dir.path().join("c")).unwrap();
    let many = write_lines(&dir.path().join("c"), 10, 5);
    let out = fhir_ingest(&[
        "convert",
        many.to_str().unwrap(),
        "--out",
        dir.path().join("wc").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("NOT committed"));
}

#[test]
fn config_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[parquet]\ncompresion = \"zstd\"\n").unwrap();
    let out = fhir_ingest(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let msg = text(&out);
    assert!(
        msg.contains("bad.toml") && msg.contains("compresion"),
        "{msg}"
    );
}

#[test]
fn unknown_source_is_an_error() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.toml");
    let out = fhir_ingest(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--source",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no source named \"nope\""),
        "{}",
        text(&out)
    );
}

#[test]
fn schema_show_prints_typed_columns() {
    let out = fhir_ingest(&["schema", "show", "Observation"]);
    assert!(out.status.success());
    let shown = text(&out);
    assert!(
        shown.contains("effectiveDateTime_ts: Timestamp(µs, \"UTC\")")
            || shown.contains("effectiveDateTime_ts: Timestamp(Microsecond"),
        "{shown}"
    );
    assert!(shown.contains("_overflow: Utf8"), "{shown}");
}

#[test]
fn a_rerun_of_a_committed_export_says_so_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), 20, 0);
    let wh = dir.path().join("wh");
    let convert = || {
        fhir_ingest(&[
            "convert",
            input.to_str().unwrap(),
            "--out",
            wh.to_str().unwrap(),
            "--transaction-time",
            "2026-01-02T03:04:05Z",
        ])
    };
    let first = convert();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let again = convert();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        text(&again).contains("already committed"),
        "{}",
        text(&again)
    );

    let status = fhir_ingest(&["status", "-w", wh.to_str().unwrap(), "--json"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["sources"]["files"]["runs"], 1, "{json}");
    assert_eq!(json["tables"]["history/Patient"]["rows"], 20, "{json}");

    let bad = fhir_ingest(&[
        "convert",
        input.to_str().unwrap(),
        "--out",
        "x",
        "--transaction-time",
        "yesterday",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("--transaction-time"), "{}", text(&bad));
}

#[test]
fn cleanup_is_a_dry_run_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), 5, 0);
    let wh = dir.path().join("wh");
    let out = fhir_ingest(&[
        "convert",
        input.to_str().unwrap(),
        "--out",
        wh.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A staged file of a run that never committed.
    let staged =
        wh.join("Patient/export_date=2026-01-01/part-20260101T000000Z-dead-beef-0000.parquet");
    std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
    std::fs::write(&staged, b"PAR1").unwrap();
    let status = fhir_ingest(&["status", "-w", wh.to_str().unwrap()]);
    assert!(
        text(&status).contains("tombstones expired): 1"),
        "{}",
        text(&status)
    );
    let dry = fhir_ingest(&["cleanup", "-w", wh.to_str().unwrap(), "--grace-hours", "0"]);
    assert!(text(&dry).contains("would delete staged"), "{}", text(&dry));
    assert!(staged.exists());
    let real = fhir_ingest(&[
        "cleanup",
        "-w",
        wh.to_str().unwrap(),
        "--grace-hours",
        "0",
        "--yes",
    ]);
    assert_eq!(real.status.code(), Some(0), "{}", text(&real));
    assert!(!staged.exists());
    let nd = dir.path().join("nd");
    let out = fhir_ingest(&[
        "to-ndjson",
        "-w",
        wh.to_str().unwrap(),
        "-o",
        nd.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let patients = std::fs::read_to_string(nd.join("Patient.ndjson")).unwrap();
    assert_eq!(patients.lines().count(), 5, "committed data is kept");
}

/// A store of the healthcheck tests: its URL variable (set by `scripts/test`), a
/// credential to spoil, a bucket that does not exist, and the words expected.
struct HealthcheckCase {
    url_var: &'static str,
    secret_var: &'static str,
    wrong_secret: &'static str,
    missing: &'static str,
    missing_says: &'static str,
    foreign_words: &'static str,
}

/// Wrong credentials and a missing bucket stop the program before any work, with what
/// to check in the store's own words; the right ones then work.
fn wrong_credentials_and_missing_bucket_fail_fast(case: &HealthcheckCase) {
    let Ok(url) = std::env::var(case.url_var) else {
        eprintln!("{} not set: healthcheck test skipped", case.url_var);
        return;
    };
    let sample = sample_dir();
    let target = format!("{url}/cli-healthcheck");
    let run = |out: &str, secret: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fhir-ingest"));
        command.args(["convert", sample.to_str().unwrap(), "--out", out]);
        if let Some(secret) = secret {
            command.env(case.secret_var, secret);
        }
        command.output().unwrap()
    };
    let wrong = run(&target, Some(case.wrong_secret));
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    let msg = text(&wrong);
    assert!(
        msg.contains("refused the credentials") && msg.contains(case.secret_var),
        "{msg}"
    );
    assert!(!msg.contains(case.foreign_words), "{msg}");
    assert!(!msg.contains("files ->"), "no work started: {msg}");

    let missing = run(case.missing, None);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    let msg = text(&missing);
    let name = case.missing.split('/').nth(2).unwrap_or_default();
    assert!(
        msg.contains(name) && msg.contains(case.missing_says),
        "{msg}"
    );

    let ok = run(&target, None);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
}

/// On S3 (SeaweedFS, started by `scripts/test`).
#[test]
fn s3_wrong_credentials_and_missing_bucket_fail_fast_and_clearly() {
    wrong_credentials_and_missing_bucket_fail_fast(&HealthcheckCase {
        url_var: "FHIR_INGEST_S3_URL",
        secret_var: "AWS_SECRET_ACCESS_KEY",
        wrong_secret: "not-the-secret",
        missing: "s3://no-such-bucket-fhir-ingest/x",
        missing_says: "the bucket does not exist",
        foreign_words: "AZURE_",
    });
}

/// On Azure (Azurite, started by `scripts/test`). Regression: the hints named AWS
/// variables.
#[test]
fn azure_wrong_key_and_missing_container_fail_fast_in_azure_words() {
    wrong_credentials_and_missing_bucket_fail_fast(&HealthcheckCase {
        url_var: "FHIR_INGEST_AZURE_URL",
        secret_var: "AZURE_STORAGE_ACCOUNT_KEY",
        // Well-formed base64, not the account's key.
        wrong_secret: "bm90LXRoZS1hY2NvdW50LWtleQ==",
        missing: "az://no-such-container-fhir-ingest/x",
        missing_says: "the container does not exist",
        foreign_words: "AWS_",
    });
}

/// Two ingester processes on the same export and warehouse (S3 when available, else
/// local disk): one commits it, the other says so and exits 0; the data is there once.
#[test]
fn two_ingester_processes_on_one_export_commit_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = match std::env::var("FHIR_INGEST_S3_URL") {
        Ok(url) => format!("{url}/cli-race-{}", std::process::id()),
        Err(_) => dir.path().join("wh").display().to_string(),
    };
    let sample = sample_dir();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_fhir-ingest"))
            .args(["convert", sample.to_str().unwrap(), "--out", &warehouse])
            .args([
                "--transaction-time",
                "2026-03-04T05:06:07Z",
                "--workers",
                "1",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    for out in &outputs {
        assert_eq!(out.status.code(), Some(0), "{}", text(out));
    }
    let committed = outputs
        .iter()
        .filter(|o| text(o).contains("  committed _runs/"))
        .count();
    let lost = outputs
        .iter()
        .filter(|o| {
            text(o).contains("already committed")
                || text(o).contains("committed _runs/") && text(o).contains("first")
        })
        .count();
    assert_eq!(
        (committed, lost),
        (1, 1),
        "{}\n---\n{}",
        text(&outputs[0]),
        text(&outputs[1])
    );
    let status = fhir_ingest(&["status", "-w", &warehouse, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["sources"]["files"]["runs"], 1, "{json}");
    assert_eq!(json["sources"]["files"]["rows"], 7160, "{json}");
}

#[test]
fn compact_after_run_merges_the_small_files_of_each_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), 30, 0);
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            "[warehouse]\nurl = \"wh\"\npartition_by = \"none\"\ncompact_after_run = true\ncompact_target_mib = 8\n\
             [[sources]]\nname = \"s\"\nkind = \"files\"\npaths = [{:?}]\n",
            input.display().to_string()
        ),
    )
    .unwrap();
    let run = || fhir_ingest(&["run", "--config", config.to_str().unwrap()]);
    let first = run();
    assert!(
        text(&first).contains("compact history/Patient: nothing to compact"),
        "{}",
        text(&first)
    );
    let second = run();
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(
        text(&second).contains("compact history/Patient: 2 files -> 1 files, 60 rows"),
        "{}",
        text(&second)
    );
    let status = fhir_ingest(&["status", "--config", config.to_str().unwrap(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["compactions"], 1, "{json}");
    assert_eq!(json["tables"]["history/Patient"]["files"], 1, "{json}");
    assert_eq!(json["tables"]["history/Patient"]["rows"], 60, "{json}");
    assert_eq!(json["replaced"].as_array().unwrap().len(), 2, "{json}");
}

/// Every line of `stderr` is one JSON object with a time, a level and a message.
fn assert_json_lines(stderr: &[u8]) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nstderr:\n{text}"));
            assert!(
                value["time"].is_string() && value["level"].is_string(),
                "{line}"
            );
            assert!(value["message"].is_string(), "{line}");
            value
        })
        .collect()
}

#[test]
fn json_log_mode_prints_only_json_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[warehouse]\nurl = {:?}\n[[sources]]\nname = \"s\"\nkind = \"files\"\npaths = [{:?}]\n",
            wh.to_str().unwrap(),
            sample_dir().join("Patient.ndjson.gz").to_str().unwrap()
        ),
    )
    .unwrap();
    let json = |args: &[&str]| {
        let mut all = vec!["--log-format", "json"];
        all.extend_from_slice(args);
        fhir_ingest(&all)
    };
    let config = config.to_str().unwrap();

    let run = json(&["run", "--config", config]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let lines = assert_json_lines(&run.stderr);
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("committed _runs/"))),
        "the report is logged: {lines:?}"
    );
    assert!(run.stdout.is_empty(), "{}", text(&run));

    let validate = json(&["validate-config", "--config", config]);
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate));
    assert_json_lines(&validate.stderr);

    let status = json(&["status", "--config", config]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert_json_lines(&status.stderr);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["tables"]["history/Patient"]["rows"], 13, "{report}");

    // A failure: the error is a JSON object too, with level error.
    let missing = dir.path().join("nowhere");
    let failed = json(&[
        "convert",
        missing.to_str().unwrap(),
        "--out",
        wh.to_str().unwrap(),
    ]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let lines = assert_json_lines(&failed.stderr);
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "error", "{last}");
    assert!(
        last["message"].as_str().unwrap().contains("nowhere"),
        "{last}"
    );
}

#[test]
fn views_from_configuration_to_a_file_and_a_bad_view_named_by_its_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let views = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/views");
    let config = dir.path().join("p.toml");
    let write = |view_path: &std::path::Path| {
        std::fs::write(
            &config,
            format!(
                "[warehouse]\nurl = \"wh\"\n[[sources]]\nname = \"s\"\nkind = \"files\"\npaths = [{:?}]\n[[views]]\npath = {:?}\n",
                sample_dir().to_str().unwrap(),
                view_path.to_str().unwrap()
            ),
        )
        .unwrap();
    };
    write(&views.join("patient_demographics.json"));
    let config_arg = config.to_str().unwrap();
    let validate = fhir_ingest(&["validate-config", "--config", config_arg]);
    assert!(
        text(&validate).contains("view patient_demographics over Patient"),
        "{}",
        text(&validate)
    );
    let run = fhir_ingest(&["run", "--config", config_arg]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        text(&run).contains("views/patient_demographics"),
        "{}",
        text(&run)
    );

    let show = fhir_ingest(&[
        "view",
        "show",
        views.join("patient_demographics.json").to_str().unwrap(),
    ]);
    assert!(
        text(&show).contains("_resource_key: Utf8"),
        "{}",
        text(&show)
    );
    let out = dir.path().join("out");
    let view_run = fhir_ingest(&[
        "view",
        "run",
        views.join("patient_demographics.json").to_str().unwrap(),
        "--config",
        config_arg,
        "--out",
        out.to_str().unwrap(),
        "--format",
        "ndjson",
    ]);
    assert_eq!(view_run.status.code(), Some(0), "{}", text(&view_run));
    let rows = std::fs::read_to_string(out.join("patient_demographics.ndjson")).unwrap();
    assert_eq!(rows.lines().count(), 13, "one row per patient");

    // A view with an unknown function: refused with the file and the JSON pointer.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"resourceType":"ViewDefinition","name":"bad","status":"active","resource":"Patient",
           "select":[{"column":[{"name":"x","path":"name.frobnicate()"}]}]}"#,
    )
    .unwrap();
    write(&bad);
    let refused = fhir_ingest(&["validate-config", "--config", config_arg]);
    assert_eq!(refused.status.code(), Some(1));
    let message = text(&refused);
    assert!(
        message.contains("bad.json")
            && message.contains("/select/0/column/0/path")
            && message.contains("views[0]"),
        "{message}"
    );
}

/// Regression (issue 9, item 9): an error shows its cause once, either in its own text
/// or as its source, never both; TOML errors are not quoted twice (nor the file's line).
#[test]
fn error_texts_show_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let once = |out: &Output, part: &str| {
        let msg = text(out);
        assert_eq!(out.status.code(), Some(1), "{msg}");
        assert_eq!(msg.matches(part).count(), 1, "{part:?} once in: {msg}");
    };
    let missing = dir.path().join("missing.tgz");
    let out = fhir_ingest(&[
        "schema",
        "generate",
        "--package",
        missing.to_str().unwrap(),
        "--out",
        dir.path().join("s").to_str().unwrap(),
    ]);
    once(&out, "(os error 2)");
    let out = fhir_ingest(&["run", "--config", missing.to_str().unwrap()]);
    once(&out, "(os error 2)");

    let config = dir.path().join("p.toml");
    std::fs::write(&config, "[parquet]\ncompression = 5\n").unwrap();
    let out = fhir_ingest(&["run", "--config", config.to_str().unwrap()]);
    once(&out, "wanted string or table");
    let msg = text(&out);
    assert!(
        msg.contains("`parquet.compression` (line 2, column 15)") && !msg.contains(" | "),
        "the key and place, not the file's text: {msg}"
    );

    let source = "[[sources]]\nname = \"s\"\nkind = \"files\"\npaths = [\"p.toml\"]\n";
    std::fs::write(
        &config,
        format!("{source}[[views]]\npath = \"nowhere.json\"\n"),
    )
    .unwrap();
    let out = fhir_ingest(&["validate-config", "--config", config.to_str().unwrap()]);
    once(&out, "(os error 2)");
    std::fs::write(dir.path().join("bad.json"), "{").unwrap();
    std::fs::write(&config, format!("{source}[[views]]\npath = \"bad.json\"\n")).unwrap();
    let out = fhir_ingest(&["validate-config", "--config", config.to_str().unwrap()]);
    once(&out, "EOF while parsing");
}

/// Regression (issue 9, item 8): a secret written inline is refused at its key, with how
/// to give it, and its value is never printed.
#[test]
fn an_inline_secret_is_refused_at_its_key_without_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        "[[sources]]\nname = \"e\"\nkind = \"bulk\"\n[sources.bulk]\nbase_url = \"http://x/fhir\"\n\
         [sources.bulk.auth]\ntype = \"bearer\"\ntoken = \"abc-inline-token\"\n",
    )
    .unwrap();
    for command in ["validate-config", "run"] {
        let out = fhir_ingest(&[command, "--config", config.to_str().unwrap()]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(1), "{msg}");
        assert!(
            msg.contains("`sources[0].bulk.auth.token`")
                && msg.contains("{ env = \"NAME\" }")
                && msg.contains("{ file = \"path\" }"),
            "{msg}"
        );
        assert!(
            !msg.contains("abc-inline-token"),
            "the value is echoed: {msg}"
        );
    }
}

/// Every file and directory under `root`, relative, sorted.
fn tree(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Regression (issue 9, item 13): `validate-config` writes nothing: a warehouse that
/// does not exist is not created (it says the first run will), and an existing one is
/// left as it was (no `_probe/`); reading commands say a missing warehouse is missing.
#[test]
fn validate_config_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), 3, 0);
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[warehouse]\nurl = \"wh\"\n[[sources]]\nname = \"s\"\nkind = \"files\"\npaths = [{:?}]\n",
            input.display().to_string()
        ),
    )
    .unwrap();
    let wh = dir.path().join("wh");
    let validate = || fhir_ingest(&["validate-config", "--config", config.to_str().unwrap()]);
    let out = validate();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("does not exist yet"), "{}", text(&out));
    assert!(!wh.exists(), "the warehouse directory was created");
    let status = fhir_ingest(&["status", "-w", wh.to_str().unwrap()]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    assert!(
        text(&status).contains("does not exist"),
        "{}",
        text(&status)
    );
    assert!(!wh.exists(), "status created the warehouse");

    let run = fhir_ingest(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let before = tree(&wh);
    let out = validate();
    assert!(text(&out).contains("reachable"), "{}", text(&out));
    assert_eq!(tree(&wh), before, "validate-config changed the warehouse");
    assert!(
        !before.iter().any(|p| p.starts_with("_probe/")),
        "{before:?}"
    );
    // Regression: the healthcheck of `run` left an empty `_probe/` directory.
    assert!(!wh.join("_probe").exists(), "{before:?}");
}

/// Regression (issue 9, item 11): an S3 warehouse with no credentials at all says so and
/// where credentials are looked for (the instance metadata service is pointed at a
/// closed local port, so the lookup fails at once).
#[test]
fn s3_without_any_credentials_says_where_they_are_looked_for() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fhir-ingest"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    let sample = sample_dir().join("Patient.ndjson.gz");
    let out = command
        .args([
            "convert",
            sample.to_str().unwrap(),
            "--out",
            "s3://fhir-ingest-no-credentials/x",
        ])
        .env("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_REGION", "eu-west-1")
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("no credentials were found"), "{msg}");
    assert!(
        msg.contains("AWS_ACCESS_KEY_ID") && msg.contains("AWS_WEB_IDENTITY_TOKEN_FILE"),
        "{msg}"
    );
    assert!(!msg.contains("cannot be reached"), "{msg}");
}

/// The Parquet a run writes (issue 12): page indexes only where queries filter, only
/// the leaves with a value, zstd, no ARROW:schema in the footer.
#[test]
fn written_files_carry_page_indexes_where_queries_filter_and_only_leaves_with_values() {
    use parquet::{
        basic::Compression,
        file::reader::{FileReader, SerializedFileReader},
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let out = fhir_ingest(&[
        "convert",
        sample_dir().to_str().unwrap(),
        "--out",
        wh.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let history = wh.join("history/Encounter");
    let partition = std::fs::read_dir(&history)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && !p.ends_with("_delta_log"))
        .unwrap();
    let file = std::fs::read_dir(partition)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
    let metadata = reader.metadata();
    let keys = metadata.file_metadata().key_value_metadata();
    assert!(
        !keys.is_some_and(|kv| kv.iter().any(|k| k.key == "ARROW:schema")),
        "no ARROW:schema"
    );
    let schema = metadata.file_metadata().schema_descr();
    let leaf = |path: &str| {
        (0..schema.num_columns())
            .find(|&i| schema.column(i).path().string() == path)
            .unwrap_or_else(|| panic!("no column {path}"))
    };
    let row_group = metadata.row_group(0);
    // A column index (page statistics) is written only where asked for.
    let indexed = |path: &str| row_group.column(leaf(path)).column_index_offset().is_some();
    assert!(indexed("id"));
    assert!(indexed("subject.reference"));
    assert!(indexed("period.start_ts"));
    assert!(!indexed("status"));
    assert!(!indexed("period.start"));
    // Only the leaves with a value are in the file; the table's schema has them all.
    let empty: Vec<_> = row_group
        .columns()
        .iter()
        .filter(|c| {
            c.statistics()
                .and_then(|s| s.null_count_opt())
                .is_some_and(|n| n == c.num_values() as u64)
        })
        .map(|c| c.column_path().string())
        .collect();
    assert!(empty.is_empty(), "leaves without a value: {empty:?}");
    let table_leaves = parquet::arrow::ArrowSchemaConverter::new()
        .convert(
            &fhir_ingest::schema::Registry::embedded()
                .unwrap()
                .require("Encounter")
                .unwrap()
                .arrow_schema(),
        )
        .unwrap()
        .num_columns();
    assert!(
        schema.num_columns() * 4 < table_leaves,
        "{} of {table_leaves} leaves",
        schema.num_columns()
    );
    assert!(matches!(
        row_group.column(leaf("id")).compression(),
        Compression::ZSTD(_)
    ));
}
