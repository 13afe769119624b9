use super::*;

fn decoder() -> LineDecoder {
    let registry = Arc::new(Registry::embedded().unwrap());
    let lineage = Arc::new(RunLineage {
        source: "t".into(),
        namespace: "t".into(),
        run_id: "r".into(),
        transaction_time: None,
    });
    LineDecoder::new(registry, lineage)
}

const PARAMETERS: &[u8] = br#"{"resourceType":"Parameters","parameter":[]}"#;

#[test]
fn export_files_route_each_line_by_its_type_and_skip_parameters_headers() {
    let mut decoder = decoder();
    let origin = LineOrigin {
        file: "https://x/files/p1.ndjson".into(),
        expected_type: None,
        skip_parameters: true,
    };
    decoder.decode_line(PARAMETERS, &origin, 1).unwrap();
    decoder
        .decode_line(br#"{"resourceType":"Patient","id":"p1"}"#, &origin, 2)
        .unwrap();
    decoder
        .decode_line(
            br#"{"resourceType":"Observation","id":"o1","status":"final","code":{}}"#,
            &origin,
            3,
        )
        .unwrap();
    assert_eq!(decoder.take_skipped(), 1);
    let mut types: Vec<String> = decoder
        .finish_all()
        .unwrap()
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    types.sort();
    assert_eq!(types, ["Observation", "Patient"]);
}

/// Regression (issue 9, item 6): two different resourceType values are ambiguous.
#[test]
fn a_second_different_resource_type_is_ambiguous() {
    let mut decoder = decoder();
    let origin = LineOrigin {
        file: "export.ndjson".into(),
        expected_type: None,
        skip_parameters: false,
    };
    let err = decoder
        .decode_line(
            br#"{"resourceType":"Patient","id":"x","resourceType":"Observation"}"#,
            &origin,
            1,
        )
        .unwrap_err();
    assert_eq!(err.kind(), "ambiguous_resource_type");
    assert_eq!(
        err.to_string(),
        r#"ambiguous: resourceType given twice, as "Patient" and as "Observation""#
    );
    decoder
        .decode_line(
            br#"{"resourceType":"Patient","id":"y","resourceType":"Patient"}"#,
            &origin,
            2,
        )
        .expect("the same value twice is not ambiguous");
}

/// A decimal's `_text` holds its text only where the float would not give it
/// back (issue 12: the companion repeated every float).
#[test]
fn decimal_text_only_where_the_float_does_not_give_it_back() {
    let mut decoder = decoder();
    let origin = LineOrigin {
        file: "Observation.ndjson".into(),
        expected_type: None,
        skip_parameters: false,
    };
    for (line, value) in ["83.8", "1.50", "100", "1e2", "0.1", "-0"]
        .iter()
        .enumerate()
    {
        let json = format!(
            r#"{{"resourceType":"Observation","id":"o{line}","status":"final","code":{{}},"valueQuantity":{{"value":{value}}}}}"#
        );
        decoder
            .decode_line(json.as_bytes(), &origin, line as u64 + 1)
            .unwrap();
    }
    let batch = &decoder.finish_all().unwrap()[0].1;
    let texts: Vec<Option<&str>> = quantity_value::<arrow_array::StringArray>(batch, "value_text")
        .iter()
        .collect();
    assert_eq!(
        texts,
        [
            None,
            Some("1.50"),
            Some("100"),
            Some("1e2"),
            None,
            Some("-0")
        ]
    );
}

/// Regression (issue 9, item 4): numbers beyond the float range are kept: the
/// float column holds ±infinity, the text companion the exact text.
#[test]
fn numbers_beyond_the_float_range_are_kept() {
    let mut decoder = decoder();
    let origin = LineOrigin {
        file: "export.ndjson".into(),
        expected_type: None,
        skip_parameters: false,
    };
    decoder
        .decode_line(
            br#"{"resourceType":"Observation","id":"o","status":"final","code":{},"valueQuantity":{"value":-1E400},"referenceRange":[{"low":{"value":1e400}}]}"#,
            &origin,
            1,
        )
        .expect("1e400 is valid JSON");
    let batch = &decoder.finish_all().unwrap()[0].1;
    let value = quantity_value::<arrow_array::Float64Array>(batch, "value");
    assert_eq!(value.value(0), f64::NEG_INFINITY);
    let text = quantity_value::<arrow_array::StringArray>(batch, "value_text");
    assert_eq!(text.value(0), "-1E400");
}

/// The `child` column of `valueQuantity` in an Observation batch.
fn quantity_value<'a, T: 'static>(batch: &'a RecordBatch, child: &str) -> &'a T {
    batch
        .column_by_name("valueQuantity")
        .and_then(|c| c.as_any().downcast_ref::<StructArray>())
        .and_then(|q| q.column_by_name(child))
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .expect("valueQuantity child of the expected type")
}

#[test]
fn local_files_keep_parameters_and_reject_other_types() {
    let mut decoder = decoder();
    let origin = LineOrigin {
        file: "Patient.ndjson".into(),
        expected_type: Some("Patient".into()),
        skip_parameters: false,
    };
    let err = decoder.decode_line(PARAMETERS, &origin, 1).unwrap_err();
    assert!(matches!(err, Rejection::TypeMismatch { .. }), "{err}");
    assert_eq!(decoder.take_skipped(), 0);
}
