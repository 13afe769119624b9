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
        // Regression (issue 9, item 10): the byte where it is, not "at character 0".
        "invalid JSON: not UTF-8: byte 0xFF at byte 32",
    );
    assert!(record["base64"].is_string(), "{record}");
}

/// Regression (issue 9, item 10): each kind of bad JSON is named in our words, at its
/// byte, never as simd-json's "InternalError" or "at character 0".
#[test]
fn bad_json_is_described_where_it_is() {
    for (bad, reason) in [
        (
            &b"{\"resourceType\":\"Patient\",\"id\":\"a\0b\"}"[..],
            "a control character (NUL (0x00)) inside a string at byte 33",
        ),
        (
            br#"{"resourceType":"Patient","id":"\ud800"}"#,
            r"invalid escape at byte 32: \ud800 is half of a UTF-16 surrogate pair",
        ),
        (
            br#"{"resourceType":"Patient","id":"x"}}"#,
            "'}' at byte 35, after the end of the JSON value",
        ),
        (
            br#"{"resourceType":"Patient","id":"#,
            "the line ends before an object opened at byte 0 is closed",
        ),
    ] {
        let record = assert_rejected("p.ndjson", bad, reason);
        let text = record["reason"].as_str().unwrap();
        assert!(
            !text.contains("InternalError") && !text.contains("character 0"),
            "{text}"
        );
    }
}

/// Regression (issue 9, item 10): a plain file that ends inside its last line says so,
/// as a truncated gzip stream does.
#[test]
fn a_plain_file_ending_inside_a_line_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("Patient.ndjson");
    std::fs::write(
        &input,
        format!("{GOOD}\n{GOOD}\n{{\"resourceType\":\"Patient\",\"id\":\"cu"),
    )
    .unwrap();
    let (_, summary) = ingest(&dir.path().join("wh"), &[input], 1.0);
    assert_eq!(summary.manifest.tables["history/Patient"].rows, 2);
    assert_eq!(summary.manifest.rejected.by_reason["truncated"], 1);
    let first = &summary.manifest.rejected.first[0];
    assert!(
        first.ends_with(":3: input ends inside this line: the file ends without a newline, and a string opened at byte 31 is not closed"),
        "{first}"
    );
}

/// Regression (issue 9, item 10): a file named .gz that is not gzip says so.
#[test]
fn a_gz_file_that_is_not_gzip_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("Patient.ndjson.gz");
    std::fs::write(&input, format!("{GOOD}\n")).unwrap();
    let warehouse = fhir_ingest::warehouse::Warehouse::open_local(&dir.path().join("wh")).unwrap();
    let error = ingest_into(&warehouse, &[input], None).unwrap_err();
    let text = fhir_ingest::message::chain(&error);
    assert!(
        text.contains("Patient.ndjson.gz") && text.contains("not gzip"),
        "{text}"
    );
}

/// Regression (issue 9, item 5): a byte-order mark at the start of a file is stripped
/// (its first line is kept) and counted in the run's input totals.
#[test]
fn a_leading_byte_order_mark_is_stripped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("Patient.ndjson");
    std::fs::write(&input, format!("\u{feff}{GOOD}\n{GOOD}\n")).unwrap();
    let (_, summary) = ingest(&dir.path().join("wh"), &[input], 0.0);
    assert_eq!(summary.outcome, fhir_ingest::ingest::Outcome::Complete);
    assert_eq!(summary.manifest.tables["history/Patient"].rows, 2);
    assert_eq!(summary.manifest.input.byte_order_marks, 1);
}

/// Regression (issue 9, item 6): a line with two different resourceType values is
/// quarantined as ambiguous, not put in the first one's table.
#[test]
fn two_different_resource_types_are_ambiguous() {
    let (records, summary, _dir) = quarantine_of(
        "export.ndjson",
        br#"{"resourceType":"Patient","id":"x","resourceType":"Observation"}"#,
        1.0,
    );
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        summary.manifest.rejected.by_reason["ambiguous_resource_type"],
        1
    );
    assert!(
        records[0]["reason"].as_str().unwrap().contains("ambiguous"),
        "{}",
        records[0]
    );
    assert_eq!(summary.manifest.tables["history/Patient"].rows, 2);
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
