//! Losslessness: Parquet rebuilt into JSON equals the input, resource by resource,
//! decimals with their original text.

mod common;

use std::{collections::HashMap, path::PathBuf};

use common::*;

/// Ingests `inputs`, rebuilds every row and compares it with its source line.
fn assert_round_trip(inputs: &[PathBuf]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let (warehouse, summary) = ingest(dir.path(), inputs, 0.0);
    assert_eq!(
        summary.manifest.rejected.lines, 0,
        "{:?}",
        summary.manifest.rejected
    );
    let rebuilt: HashMap<(String, i64), serde_json::Value> = rebuild_all(&warehouse)
        .into_iter()
        .map(|r| ((r.file, r.line), r.resource))
        .collect();
    let files = fhir_ingest::input::discover(inputs, &registry()).unwrap();
    let mut compared = 0;
    let mut differences = Vec::new();
    for file in files {
        let fhir_ingest::input::Opener::Path(path) = &file.opener else {
            panic!("local files only");
        };
        for (line, original) in original_lines(path) {
            let key = (file.origin.file.to_string(), line);
            match rebuilt.get(&key) {
                Some(value) if *value == original => {}
                Some(value) => differences.push(format!(
                    "{}:{line}: rebuilt {value}\n  original {original}",
                    key.0
                )),
                None => differences.push(format!("{}:{line}: missing", key.0)),
            }
            compared += 1;
        }
    }
    assert_eq!(rebuilt.len(), compared, "rows written vs lines read");
    assert!(
        differences.is_empty(),
        "{} differences, first: {}",
        differences.len(),
        differences[0]
    );
    compared
}

#[test]
fn committed_sample_round_trips_exactly() {
    let n = assert_round_trip(&[sample_dir()]);
    assert_eq!(n, 7160);
}

#[test]
fn hand_made_edge_cases_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.ndjson");
    let lines = [
        // decimals keep their text; -0 and exponents too
        r#"{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"valueQuantity":{"value":100.50,"unit":"mg"},"referenceRange":[{"low":{"value":1e2}}]}"#,
        // unknown elements, primitive extensions, contained resources, wrong JSON types, nulls
        r#"{"resourceType":"Patient","id":"p1","birthDate":"1970","_birthDate":{"extension":[{"url":"u","valueString":"s"}]},"contained":[{"resourceType":"Organization","id":"c"}],"unknownThing":{"a":[1,2]},"gender":5,"active":"yes","name":[{"family":"F","given":["A",null,"B"]},"not-an-object",{"use":null}],"multipleBirthInteger":-0}"#,
        // empty containers, duplicate keys (the last wins), escapes and non-ASCII
        r#"{"resourceType":"Patient","id":"p2","name":[],"telecom":[{}],"id":"p2b","address":[{"line":["a\"b\\c\u0001","\u00e9\u4e2d"]}]}"#,
        // deeper than the schema goes (item.item... past the depth limit)
        r#"{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"group","item":[{"linkId":"1.1.1","type":"group","item":[{"linkId":"1.1.1.1","type":"group","item":[{"linkId":"1.1.1.1.1","type":"group","item":[{"linkId":"deep","type":"string","extension":[{"url":"x","valueInteger":3000000000}]}]}]}]}]}]}]}"#,
        // extension values of every kind, nested extensions past their depth
        r#"{"resourceType":"Patient","id":"p3","extension":[{"url":"a","valueCoding":{"code":"c"}},{"url":"b","extension":[{"url":"c","extension":[{"url":"d","valueString":"deep"}]}]},{"url":"e","valueAddress":{"city":"X"}},{"url":"f","valueDecimal":0.10}]}"#,
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    assert_eq!(assert_round_trip(&[file]), lines.len());
}

/// Every resource type of `../shared/data` (the first lines of each file), when it is
/// there: CI has it, a fresh clone may not.
#[test]
fn shared_data_round_trips_exactly() {
    let Some(shared) = shared_data() else {
        eprintln!("../shared/data not found: skipped");
        return;
    };
    let limit: usize = std::env::var("FHIR_INGEST_ROUNDTRIP_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    for set in ["synthea-sample", "bulk-export-10-patients"] {
        let set_dir = dir.path().join(set);
        std::fs::create_dir_all(&set_dir).unwrap();
        for entry in std::fs::read_dir(shared.join(set)).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches(".gz")
                .to_owned();
            let lines = original_lines(&path);
            let text: Vec<String> = lines
                .iter()
                .take(limit)
                .map(|(_, v)| v.to_string())
                .collect();
            // Re-serialised lines keep number text (arbitrary_precision), so the
            // comparison still sees every decimal as written.
            std::fs::write(set_dir.join(name), text.join("\n")).unwrap();
        }
        inputs.push(set_dir);
    }
    let n = assert_round_trip(&inputs);
    eprintln!("{n} resources round-tripped");
}

/// The number tokens of a JSON text (outside strings), sorted.
fn number_tokens(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'-' | b'0'..=b'9' if !in_string => {
                let end = i + bytes[i..]
                    .iter()
                    .take_while(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .count();
                out.push(text[i..end].to_owned());
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.sort();
    out
}

/// Regression (issue 9, item 4): numbers beyond the float range are kept, and
/// `to-ndjson` gives back every number exactly as written, exponents included
/// (`1E-400`, `0.1e1`), whether typed, in a list or in the overflow.
#[test]
fn to_ndjson_gives_back_every_number_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("numbers.ndjson");
    let lines = [
        r#"{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"valueQuantity":{"value":1E-400},"referenceRange":[{"low":{"value":0.1e1},"high":{"value":2E+3}}]}"#,
        r#"{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e400},"component":[{"code":{"text":"c"},"valueQuantity":{"value":-1E400}}]}"#,
        r#"{"resourceType":"Patient","id":"p1","multipleBirthInteger":1E2,"unknownThing":{"x":[1E5,0.1e1,-0e0,1e400]},"extension":[{"url":"u","valueDecimal":0.1E1}]}"#,
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    // Kept, and equal as JSON values.
    assert_eq!(assert_round_trip(std::slice::from_ref(&file)), lines.len());

    let (warehouse, _) = ingest(&dir.path().join("wh"), &[file], 0.0);
    let out = dir.path().join("out");
    let registry = registry();
    runtime()
        .block_on(fhir_ingest::maintain::rebuild::to_ndjson(
            &warehouse,
            &registry,
            &out,
            &[],
            fhir_ingest::maintain::rebuild::Versions::All,
        ))
        .unwrap();
    let mut written: HashMap<String, String> = HashMap::new();
    for name in ["Observation.ndjson", "Patient.ndjson"] {
        for line in std::fs::read_to_string(out.join(name)).unwrap().lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            written.insert(value["id"].as_str().unwrap().to_owned(), line.to_owned());
        }
    }
    for original in lines {
        let value: serde_json::Value = serde_json::from_str(original).unwrap();
        let back = &written[value["id"].as_str().unwrap()];
        assert_eq!(
            number_tokens(back),
            number_tokens(original),
            "\n  wrote    {back}\n  original {original}"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(back).unwrap(),
            value
        );
    }
}
