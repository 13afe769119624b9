use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    StructArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use parquet::{arrow::ArrowWriter, file::properties::WriterProperties};

use super::*;

#[test]
fn timestamps_are_floored_to_milliseconds() {
    assert_eq!(
        format_timestamp_micros(1_767_323_045_123_999),
        "2026-01-02T03:04:05.123Z"
    );
    assert_eq!(format_timestamp_micros(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(format_timestamp_micros(-1), "1969-12-31T23:59:59.999Z");
}

#[test]
fn builder_nests_columns() {
    let mut stats = Stats::new(3);
    stats
        .column(
            "id",
            Some(StatValue::String("a".into())),
            Some(StatValue::String("c".into())),
            Some(0),
        )
        .column(
            "meta.lastUpdated",
            Some(StatValue::TimestampMicros(1_767_323_045_123_456)),
            Some(StatValue::TimestampMicros(1_767_323_045_999_999)),
            Some(1),
        )
        .column(
            "x",
            Some(StatValue::Double(f64::NAN)),
            Some(StatValue::Double(2.5)),
            None,
        )
        .column(
            "d",
            Some(StatValue::Date(20_455)),
            Some(StatValue::Date(20_455)),
            Some(0),
        )
        .column(
            "b",
            Some(StatValue::Boolean(false)),
            Some(StatValue::Long(7)),
            None,
        );
    assert_eq!(
        stats.to_json(),
        r#"{"numRecords":3,"minValues":{"id":"a","meta":{"lastUpdated":"2026-01-02T03:04:05.123Z"},"d":"2026-01-02","b":false},"maxValues":{"id":"c","meta":{"lastUpdated":"2026-01-02T03:04:05.999Z"},"x":2.5,"d":"2026-01-02","b":7},"nullCount":{"id":0,"meta":{"lastUpdated":1},"d":0}}"#
    );
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A file of five rows in row groups of two: `id`, `meta {lastUpdated_ts, note}`, `n`,
/// `x`, `b`, `i`, and `empty` (nulls in the first row group only).
fn footer() -> ParquetMetaData {
    let meta_fields = Fields::from(vec![
        Field::new("lastUpdated_ts", ts_type(), true),
        Field::new("note", DataType::Utf8, true),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("meta", DataType::Struct(meta_fields.clone()), true),
        Field::new("n", DataType::Int64, true),
        Field::new("x", DataType::Float64, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("i", DataType::Int32, true),
        Field::new("partly", DataType::Utf8, true),
    ]));
    let ts: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from(vec![
            Some(1_767_323_045_123_456),
            None,
            Some(1_767_323_040_000_001),
            Some(1_767_323_049_999_999),
            Some(1_767_323_041_000_000),
        ])
        .with_timezone("UTC"),
    );
    let note: ArrayRef = Arc::new(StringArray::from(vec![
        Some("z"),
        None,
        Some("b"),
        None,
        None,
    ]));
    let meta = StructArray::new(meta_fields, vec![ts, note], None);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["p3", "p1", "p5", "p2", "p4"])),
        Arc::new(meta),
        Arc::new(Int64Array::from(vec![
            Some(5),
            Some(-2),
            None,
            Some(9),
            Some(0),
        ])),
        Arc::new(Float64Array::from(vec![1.5, -0.5, 2.0, 3.25, 0.0])),
        Arc::new(BooleanArray::from(vec![true, true, false, true, true])),
        Arc::new(Int32Array::from(vec![3, 1, 4, 1, 5])),
        Arc::new(StringArray::from(vec![
            None,
            None,
            Some("q"),
            Some("r"),
            None,
        ])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(2))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap()
}

#[test]
fn footer_stats_combine_row_groups() {
    let metadata = footer();
    assert_eq!(metadata.num_row_groups(), 3);
    let columns = [
        "id",
        "meta.lastUpdated_ts",
        "meta.note",
        "n",
        "x",
        "b",
        "i",
        "partly",
    ];
    let json: Value =
        serde_json::from_str(&stats_from_parquet(&metadata, &columns).unwrap().to_json()).unwrap();
    let expected: Value = serde_json::from_str(
        r#"{"numRecords":5,
        "minValues":{"id":"p1","meta":{"lastUpdated_ts":"2026-01-02T03:04:00.000Z","note":"b"},"n":-2,"x":-0.5,"b":false,"i":1,"partly":"q"},
        "maxValues":{"id":"p5","meta":{"lastUpdated_ts":"2026-01-02T03:04:09.999Z","note":"z"},"n":9,"x":3.25,"b":true,"i":5,"partly":"r"},
        "nullCount":{"id":0,"meta":{"lastUpdated_ts":1,"note":3},"n":1,"x":0,"b":0,"i":0,"partly":3}}"#,
    )
    .unwrap();
    assert_eq!(json, expected);
}

#[test]
fn footer_stats_refuse_unknown_columns() {
    let metadata = footer();
    let err = stats_from_parquet(&metadata, &["meta"]).unwrap_err();
    assert!(err.to_string().contains("meta"), "{err}");
    assert!(stats_from_parquet(&metadata, &["nope"]).is_err());
}
