//! The official SQL on FHIR v2 test suite (`tests/sql-on-fhir-v2/*.json`, MIT, copied
//! from FHIR/sql-on-fhir-v2), run through the same [`ViewBuilder`] the ingester uses.
//!
//! For each test of each file: the view is compiled (a test with `expectError` passes
//! when the view is refused, or when evaluating it fails on one of the file's
//! resources); each resource is serialised to one JSON line and parsed into a simd-json
//! tape exactly as the decoder parses NDJSON lines; the rows of the resulting record
//! batch, as JSON objects, must equal `expect` in any order (numbers compared as
//! numbers), and the column names `expectColumns` in order when given.
//!
//! The report, in the specification's test-report format, goes to
//! `target/sof-test-report.json` (or `$SOF_TEST_REPORT`).

use std::{collections::BTreeMap, fs, path::PathBuf, sync::Arc};

use arrow_array::{
    Array, ArrayRef, RecordBatch,
    cast::AsArray,
    types::{Float64Type, Int32Type, Int64Type},
};
use arrow_schema::DataType;
use fhir_ingest::view::{ViewBuilder, ViewDefinition};
use serde_json::{Map, Value, json};
use simd_json::{Node, Tape};

/// Tests allowed to fail, as (file, test title), each with the reason in a comment.
/// The goal is an empty list; a listed test that passes fails the run too, so the list
/// stays true.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

/// Parses lines into tapes the way `decode::LineDecoder` does: a padded copy of the
/// line, reused buffers, `fill_tape_padded`.
struct TapeParser {
    buffers: simd_json::Buffers,
    input: Vec<u8>,
    tape: Option<Tape<'static>>,
}

impl TapeParser {
    fn new() -> Self {
        Self {
            buffers: simd_json::Buffers::default(),
            input: Vec::new(),
            tape: Some(Tape::null()),
        }
    }

    fn with<R>(&mut self, line: &[u8], f: impl FnOnce(&[Node<'_>]) -> R) -> Result<R, String> {
        let mut input = std::mem::take(&mut self.input);
        input.clear();
        input.extend_from_slice(line);
        input.resize(line.len() + simd_json::INPUT_PADDING, b' ');
        let mut tape = self.tape.take().unwrap_or_else(Tape::null).reset();
        let result =
            match simd_json::fill_tape_padded(&mut input, line.len(), &mut self.buffers, &mut tape)
            {
                Ok(()) => Ok(f(&tape.0)),
                Err(e) => Err(e.to_string()),
            };
        self.tape = Some(tape.reset());
        self.input = input;
        result
    }
}

/// The JSON value of row `row` of a column.
fn cell_json(array: &ArrayRef, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => json!(array.as_string::<i32>().value(row)),
        DataType::Boolean => json!(array.as_boolean().value(row)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => json!(array.as_primitive::<Float64Type>().value(row)),
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            Value::Array((0..items.len()).map(|i| cell_json(&items, i)).collect())
        }
        other => panic!("unexpected column type {other}"),
    }
}

fn batch_rows(batch: &RecordBatch) -> Vec<Map<String, Value>> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|row| {
            schema
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(f, c)| (f.name().clone(), cell_json(c, row)))
                .collect()
        })
        .collect()
}

/// JSON equality with numbers compared as numbers (`5` equals `5.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p == q || (p - q).abs() <= 1e-9 * p.abs().max(q.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Runs one test; `Err` says why it failed.
fn run_test(lines: &[String], test: &Value, parser: &mut TapeParser) -> Result<(), String> {
    let expect_error = test.get("expectError").and_then(Value::as_bool) == Some(true);
    let view_text = serde_json::to_string(&test["view"]).map_err(|e| e.to_string())?;
    let view = match ViewDefinition::from_json(&view_text, "view") {
        Ok(view) => view,
        Err(_) if expect_error => return Ok(()),
        Err(e) => return Err(format!("view refused: {e}")),
    };
    let mut builder = ViewBuilder::new(Arc::new(view));
    for line in lines {
        let appended = parser.with(line.as_bytes(), |tape| {
            builder.append_resource_line(tape, line.as_bytes())
        })?;
        match appended {
            Ok(_) => {}
            Err(_) if expect_error => return Ok(()),
            Err(e) => return Err(format!("evaluation failed: {e}")),
        }
    }
    if expect_error {
        return Err("the view was accepted and evaluated without error".into());
    }
    let batch = builder.finish().map_err(|e| e.to_string())?;
    if let Some(columns) = test.get("expectColumns").and_then(Value::as_array) {
        let expected: Vec<&str> = columns.iter().filter_map(Value::as_str).collect();
        let schema = batch.schema();
        let actual: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        if expected != actual {
            return Err(format!("columns {actual:?}, expected {expected:?}"));
        }
    }
    let actual = batch_rows(&batch);
    let expected: Vec<Value> = test
        .get("expect")
        .and_then(Value::as_array)
        .cloned()
        .ok_or("the test has neither expect nor expectError")?;
    let mut unused: Vec<Option<&Map<String, Value>>> = actual.iter().map(Some).collect();
    for row in &expected {
        let found = unused
            .iter_mut()
            .find(|a| a.is_some_and(|a| same(&Value::Object(a.clone()), row)));
        match found {
            Some(slot) => *slot = None,
            None => {
                return Err(format!(
                    "expected row {row} not found; got {}",
                    serde_json::to_string(&actual).unwrap_or_default()
                ));
            }
        }
    }
    if let Some(extra) = unused.into_iter().flatten().next() {
        return Err(format!(
            "{} rows, expected {}; e.g. unexpected {}",
            actual.len(),
            expected.len(),
            Value::Object(extra.clone())
        ));
    }
    Ok(())
}

#[test]
fn sql_on_fhir_v2_test_suite() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sql-on-fhir-v2");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("tests/sql-on-fhir-v2")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 22, "the suite has 22 files");

    let mut parser = TapeParser::new();
    let mut report = BTreeMap::new();
    let (mut passed, mut total) = (0, 0);
    let mut unexpected = Vec::new();
    for path in &files {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_owned();
        let suite: Value = serde_json::from_str(&fs::read_to_string(path).expect("read test file"))
            .expect("test file is JSON");
        let lines: Vec<String> = suite["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .map(|r| serde_json::to_string(r).expect("serialise resource"))
            .collect();
        let mut results = Vec::new();
        for test in suite["tests"].as_array().expect("tests") {
            let title = test["title"].as_str().expect("title").to_owned();
            let outcome = run_test(&lines, test, &mut parser);
            total += 1;
            let known = KNOWN_FAILURES.contains(&(file.as_str(), title.as_str()));
            let result = match &outcome {
                Ok(()) => {
                    passed += 1;
                    if known {
                        unexpected.push(format!(
                            "{file} / {title}: passes but is listed as a known failure"
                        ));
                    }
                    json!({"passed": true})
                }
                Err(reason) => {
                    if !known {
                        unexpected.push(format!("{file} / {title}: {reason}"));
                    }
                    json!({"passed": false, "reason": reason})
                }
            };
            results.push(json!({"name": title, "result": result}));
        }
        report.insert(file, json!({ "tests": results }));
    }

    let out = std::env::var_os("SOF_TEST_REPORT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/sof-test-report.json")
        });
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent).expect("report directory");
    }
    fs::write(
        &out,
        serde_json::to_string_pretty(&report).expect("report JSON"),
    )
    .expect("write report");
    println!(
        "SQL on FHIR v2 conformance: {passed}/{total} passed ({} known failures); report: {}",
        KNOWN_FAILURES.len(),
        out.display()
    );
    assert!(
        unexpected.is_empty(),
        "unexpected results:\n{}",
        unexpected.join("\n")
    );
}
