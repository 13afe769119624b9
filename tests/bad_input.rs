//! Bad input never panics and never stops the other lines: each rejected line is
//! quarantined with its file, line number and reason, and counted.

mod common;

use std::io::Write;

use common::*;
use serde_json::Value;

const GOOD: &str = r#"{"resourceType":"Patient","id":"ok"}"#;

/// Ingests one file holding `GOOD`, `bad`, `GOOD`; returns the quarantine records.
fn quarantine_of(
    file_name: &str,
    bad: &[u8],
    fraction: f64,
) -> (
    Vec<Value>,
    fhir_ingest::ingest::RunSummary,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(file_name);
    let mut content = Vec::new();
    content.extend_from_slice(GOOD.as_bytes());
    content.push(b'\n');
    content.extend_from_slice(bad);
    content.push(b'\n');
    content.extend_from_slice(GOOD.as_bytes());
    content.push(b'\n');
    std::fs::write(&input, content).unwrap();
    let (_, summary) = ingest(&dir.path().join("wh"), &[input], fraction);
    let records = match &summary.manifest.rejected.quarantine {
        Some(path) => std::fs::read_to_string(dir.path().join("wh").join(path))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        None => Vec::new(),
    };
    (records, summary, dir)
}

fn assert_rejected(file_name: &str, bad: &[u8], reason_part: &str) -> Value {
    let (records, summary, _dir) = quarantine_of(file_name, bad, 1.0);
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert!(
        record["file"].as_str().unwrap().ends_with(file_name),
        "{record}"
    );
    assert_eq!(record["line"], 2, "{record}");
    let reason = record["reason"].as_str().unwrap();
    assert!(
        reason.contains(reason_part),
        "reason {reason:?} lacks {reason_part:?}"
    );
    assert_eq!(summary.manifest.rejected.lines, 1);
    assert_eq!(
        summary.manifest.tables["history/Patient"].rows, 2,
        "the good lines around it are kept"
    );
    assert_eq!(summary.outcome, fhir_ingest::ingest::Outcome::Partial);
    record.clone()
}

#[test]
fn invalid_json_is_quarantined_with_its_text() {
    let record = assert_rejected(
        "p.ndjson",
        br#"{"resourceType":"Patient","id":"#,
        "invalid JSON",
    );
    assert_eq!(record["text"], r#"{"resourceType":"Patient","id":"#);
}

#[test]
fn invalid_utf8_is_quarantined_as_base64() {
    let record = assert_rejected(
        "p.ndjson",
        b"{\"resourceType\":\"Patient\",\"id\":\"\xff\xfe\"}",
        "invalid JSON",
    );
    assert!(record["base64"].is_string(), "{record}");
}

#[test]
fn a_line_that_is_not_an_object_is_quarantined() {
    assert_rejected("p.ndjson", b"[1,2,3]", "not a JSON object");
}

#[test]
fn missing_resource_type_is_quarantined() {
    assert_rejected("p.ndjson", br#"{"id":"x"}"#, "no resourceType");
    assert_rejected("p.ndjson", br#"{"resourceType":7}"#, "no resourceType");
}

#[test]
fn unknown_resource_type_is_quarantined() {
    assert_rejected(
        "p.ndjson",
        br#"{"resourceType":"Pateint","id":"x"}"#,
        "unknown resourceType \"Pateint\"",
    );
}

#[test]
fn a_resource_of_another_type_than_its_file_is_quarantined() {
    let record = assert_rejected(
        "Patient.ndjson",
        br#"{"resourceType":"Observation","id":"x"}"#,
        "in a file of \"Patient\"",
    );
    assert!(record["text"].as_str().unwrap().contains("Observation"));
}

#[test]
fn files_without_a_type_in_their_name_route_each_line_by_its_type() {
    let (records, summary, _dir) = quarantine_of(
        "export-1.ndjson",
        br#"{"resourceType":"Observation","id":"x","status":"final","code":{}}"#,
        1.0,
    );
    assert!(records.is_empty());
    assert_eq!(summary.manifest.tables["history/Patient"].rows, 2);
    assert_eq!(summary.manifest.tables["history/Observation"].rows, 1);
}

#[test]
fn an_over_long_line_is_quarantined_with_a_prefix() {
    // 65 MiB of one line, past the default 64 MiB limit.
    let long = format!(
        r#"{{"resourceType":"Patient","id":"{}"}}"#,
        "x".repeat(65 << 20)
    );
    let record = assert_rejected("p.ndjson", long.as_bytes(), "line longer than");
    assert_eq!(record["text_is_prefix"], true);
    assert!(record["text"].as_str().unwrap().len() <= 4096);
}

#[test]
fn a_truncated_gzip_keeps_the_lines_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("Patient.ndjson.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for i in 0..5000 {
        writeln!(
            gz,
            r#"{{"resourceType":"Patient","id":"p{i}","gender":"female"}}"#
        )
        .unwrap();
    }
    let bytes = gz.finish().unwrap();
    std::fs::write(&input, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (_, summary) = ingest(&dir.path().join("wh"), &[input], 1.0);
    let rows = summary.manifest.tables["history/Patient"].rows;
    assert!(rows > 1000 && rows < 5000, "{rows}");
    assert_eq!(summary.manifest.rejected.lines, 1);
    assert_eq!(summary.manifest.rejected.by_reason["truncated"], 1);
}

#[test]
fn past_the_threshold_the_run_is_not_committed() {
    let (records, summary, dir) = quarantine_of("p.ndjson", b"garbage", 0.1);
    assert_eq!(
        records.len(),
        1,
        "the quarantine is written even when the run fails"
    );
    assert_eq!(
        summary.outcome,
        fhir_ingest::ingest::Outcome::TooManyRejected
    );
    assert!(
        !dir.path().join("wh/_runs").exists(),
        "no manifest committed"
    );
}

#[test]
fn clean_input_is_complete() {
    let (records, summary, _dir) = quarantine_of("p.ndjson", GOOD.as_bytes(), 0.0);
    assert!(records.is_empty());
    assert_eq!(summary.outcome, fhir_ingest::ingest::Outcome::Complete);
    assert_eq!(summary.manifest.tables["history/Patient"].rows, 3);
    assert_eq!(summary.manifest.rejected.quarantine, None);
}
