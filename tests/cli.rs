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
    for command in ["run", "convert", "to-ndjson", "schema", "Exit status"] {
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
