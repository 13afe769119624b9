//! Arrow schemas to Delta's JSON schema (the `schemaString` of `metaData`).
//!
//! | Arrow | Delta |
//! |---|---|
//! | Utf8 | `string` |
//! | Boolean | `boolean` |
//! | Int32 / Int64 | `integer` / `long` |
//! | Float64 | `double` |
//! | Timestamp(µs, `UTC` or `+00:00`) | `timestamp` |
//! | Date32 | `date` |
//! | Struct | `{"type":"struct","fields":[...]}` |
//! | List | `{"type":"array","elementType":...,"containsNull":true}` |
//!
//! Every other type is refused, naming the field: in particular a timestamp without a
//! UTC zone, which would be Delta's `timestamp_ntz` (reader 3 / writer 7). Every field
//! carries `nullable` and an empty `metadata`. Partition columns are not in the data
//! files: they are given apart and appended to the table schema.

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde_json::Value;

use super::DeltaError;

/// Characters Delta (without column mapping) does not allow in column names, plus `.`
/// (stats columns are named by dotted paths here).
const INVALID_NAME_CHARS: &[char] = &[' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '=', '.'];

/// The `schemaString` of a table whose data files have `data_schema` and whose partition
/// columns are `partition_columns` (appended, in order; primitive types only).
pub fn schema_string(
    data_schema: &Schema,
    partition_columns: &[Field],
) -> Result<String, DeltaError> {
    for field in partition_columns {
        if data_schema.field_with_name(field.name()).is_ok() {
            return Err(unsupported(
                field.name(),
                "is both a data column and a partition column",
            ));
        }
        if matches!(field.data_type(), DataType::Struct(_) | DataType::List(_)) {
            return Err(unsupported(
                field.name(),
                "a partition column must be of a primitive type",
            ));
        }
    }
    // Written directly, not through `serde_json::Value`: a FHIR table has ~1,000 fields,
    // and building a map per field was most of a small run's commit time.
    let mut out = String::with_capacity(128 * data_schema.fields().len());
    out.push_str(r#"{"type":"struct","fields":["#);
    let fields = data_schema.fields().iter().map(|f| f.as_ref());
    for (i, field) in fields.chain(partition_columns).enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_field(&mut out, field, field.name())?;
    }
    out.push_str("]}");
    Ok(out)
}

/// The names of the top-level fields of a `schemaString`, in order.
pub fn column_names(schema_string: &str) -> Result<Vec<String>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Struct {
        fields: Vec<Named>,
    }
    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }
    let parsed: Struct = serde_json::from_str(schema_string)?;
    Ok(parsed.fields.into_iter().map(|f| f.name).collect())
}

/// The Arrow schema of the data files of a table whose `schemaString` is
/// `schema_string`: the inverse of [`schema_string`], without the partition columns.
/// Lists get an `element` item, timestamps the `UTC` zone, as our tables have.
pub fn data_schema(
    schema_string: &str,
    partition_columns: &[String],
) -> Result<Schema, DeltaError> {
    let parsed: Value = serde_json::from_str(schema_string)
        .map_err(|e| unsupported("<schemaString>", &e.to_string()))?;
    let fields = struct_fields(&parsed, "")?
        .into_iter()
        .filter(|f| !partition_columns.iter().any(|p| p == f.name()))
        .collect::<Vec<_>>();
    Ok(Schema::new(fields))
}

fn struct_fields(value: &Value, path: &str) -> Result<Vec<Field>, DeltaError> {
    let fields = value["fields"]
        .as_array()
        .ok_or_else(|| unsupported(path, "a struct without fields"))?;
    fields
        .iter()
        .map(|f| {
            let name = f["name"]
                .as_str()
                .ok_or_else(|| unsupported(path, "a field without a name"))?;
            let path = if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            };
            let data_type = arrow_type(&f["type"], &path)?;
            Ok(Field::new(
                name,
                data_type,
                f["nullable"].as_bool().unwrap_or(true),
            ))
        })
        .collect()
}

fn arrow_type(value: &Value, path: &str) -> Result<DataType, DeltaError> {
    Ok(match value {
        Value::String(name) => match name.as_str() {
            "string" => DataType::Utf8,
            "boolean" => DataType::Boolean,
            "integer" => DataType::Int32,
            "long" => DataType::Int64,
            "double" => DataType::Float64,
            "date" => DataType::Date32,
            "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            other => return Err(unsupported(path, &format!("Delta type {other}"))),
        },
        Value::Object(object) => match object.get("type").and_then(Value::as_str) {
            Some("struct") => DataType::Struct(struct_fields(value, path)?.into()),
            Some("array") => {
                let item = arrow_type(&value["elementType"], &format!("{path}[]"))?;
                DataType::List(std::sync::Arc::new(Field::new(
                    "element",
                    item,
                    value["containsNull"].as_bool().unwrap_or(true),
                )))
            }
            _ => return Err(unsupported(path, &format!("Delta type {value}"))),
        },
        _ => return Err(unsupported(path, &format!("Delta type {value}"))),
    })
}

fn write_field(out: &mut String, field: &Field, path: &str) -> Result<(), DeltaError> {
    if field.name().is_empty() || field.name().contains(INVALID_NAME_CHARS) {
        return Err(unsupported(
            path,
            "the name is empty or has one of ` ,;{}()\\n\\t=.`",
        ));
    }
    out.push_str(r#"{"name":"#);
    out.push_str(&Value::from(field.name().as_str()).to_string());
    out.push_str(r#","type":"#);
    write_type(out, field.data_type(), path)?;
    out.push_str(if field.is_nullable() {
        r#","nullable":true,"metadata":{}}"#
    } else {
        r#","nullable":false,"metadata":{}}"#
    });
    Ok(())
}

fn write_type(out: &mut String, data_type: &DataType, path: &str) -> Result<(), DeltaError> {
    let primitive = match data_type {
        DataType::Utf8 => "string",
        DataType::Boolean => "boolean",
        DataType::Int32 => "integer",
        DataType::Int64 => "long",
        DataType::Float64 => "double",
        DataType::Date32 => "date",
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz))
            if tz.as_ref() == "UTC" || tz.as_ref() == "+00:00" =>
        {
            "timestamp"
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            let zone = tz.as_deref().unwrap_or("none");
            return Err(unsupported(
                path,
                &format!(
                    "timestamp with time zone {zone}: only UTC timestamps (\"UTC\" or \"+00:00\") \
                     are supported; without a zone it would be timestamp_ntz (reader 3/writer 7)"
                ),
            ));
        }
        DataType::Struct(fields) => {
            out.push_str(r#"{"type":"struct","fields":["#);
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_field(out, f, &format!("{path}.{}", f.name()))?;
            }
            out.push_str("]}");
            return Ok(());
        }
        DataType::List(item) => {
            out.push_str(r#"{"type":"array","elementType":"#);
            write_type(out, item.data_type(), &format!("{path}[]"))?;
            out.push_str(r#","containsNull":true}"#);
            return Ok(());
        }
        other => {
            return Err(unsupported(
                path,
                &format!("type {other} has no Delta mapping here"),
            ));
        }
    };
    out.push('"');
    out.push_str(primitive);
    out.push('"');
    Ok(())
}

fn unsupported(path: &str, reason: &str) -> DeltaError {
    DeltaError::Schema {
        field: path.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::Fields;

    use super::*;

    fn ts() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }

    #[test]
    fn nested_structs_lists_and_timestamps() {
        let tag = Field::new(
            "tag",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(Fields::from(vec![Field::new("code", DataType::Utf8, true)])),
                true,
            ))),
            true,
        );
        let meta = Field::new(
            "meta",
            DataType::Struct(Fields::from(vec![
                Field::new("lastUpdated", DataType::Utf8, true),
                Field::new("lastUpdated_ts", ts(), true),
                tag,
            ])),
            true,
        );
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            meta,
            Field::new("n", DataType::Int64, true),
            Field::new("i", DataType::Int32, true),
            Field::new("x", DataType::Float64, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("d", DataType::Date32, true),
            Field::new(
                "s",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
        ]);
        let parts = [Field::new("export_date", DataType::Utf8, true)];
        let text = schema_string(&schema, &parts).unwrap();
        let expected = r#"{"type":"struct","fields":[{"name":"id","type":"string","nullable":false,"metadata":{}},{"name":"meta","type":{"type":"struct","fields":[{"name":"lastUpdated","type":"string","nullable":true,"metadata":{}},{"name":"lastUpdated_ts","type":"timestamp","nullable":true,"metadata":{}},{"name":"tag","type":{"type":"array","elementType":{"type":"struct","fields":[{"name":"code","type":"string","nullable":true,"metadata":{}}]},"containsNull":true},"nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}},{"name":"n","type":"long","nullable":true,"metadata":{}},{"name":"i","type":"integer","nullable":true,"metadata":{}},{"name":"x","type":"double","nullable":true,"metadata":{}},{"name":"b","type":"boolean","nullable":true,"metadata":{}},{"name":"d","type":"date","nullable":true,"metadata":{}},{"name":"s","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}},{"name":"export_date","type":"string","nullable":true,"metadata":{}}]}"#;
        assert_eq!(text, expected);
        assert_eq!(column_names(&text).unwrap().last().unwrap(), "export_date");
        let back = data_schema(&text, &["export_date".to_owned()]).unwrap();
        assert_eq!(schema_string(&back, &parts).unwrap(), expected);
    }

    #[test]
    fn the_tables_of_a_resource_type_read_back_as_written() {
        let registry = crate::schema::Registry::embedded().unwrap();
        for name in ["Patient", "Observation", "ExplanationOfBenefit"] {
            let schema = registry.require(name).unwrap().arrow_schema();
            let text = schema_string(&schema, &[]).unwrap();
            assert_eq!(&data_schema(&text, &[]).unwrap(), schema.as_ref(), "{name}");
        }
    }

    #[test]
    fn unsupported_types_name_the_field() {
        let naive = Field::new(
            "lastUpdated_ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        );
        let schema = Schema::new(vec![Field::new(
            "meta",
            DataType::Struct(Fields::from(vec![naive])),
            true,
        )]);
        let err = schema_string(&schema, &[]).unwrap_err();
        assert!(err.to_string().contains("meta.lastUpdated_ts"), "{err}");
        assert!(err.to_string().contains("timestamp_ntz"), "{err}");

        let large = Schema::new(vec![Field::new(
            "l",
            DataType::List(Arc::new(Field::new("item", DataType::LargeUtf8, true))),
            true,
        )]);
        let err = schema_string(&large, &[]).unwrap_err();
        assert!(err.to_string().contains("l[]"), "{err}");

        let plain = Schema::new(vec![Field::new("id", DataType::Utf8, true)]);
        let clash = [Field::new("id", DataType::Utf8, true)];
        assert!(schema_string(&plain, &clash).is_err());
        let bad_name = Schema::new(vec![Field::new("a b", DataType::Utf8, true)]);
        assert!(schema_string(&bad_name, &[]).is_err());
    }
}
