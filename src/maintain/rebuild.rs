//! Parquet back to FHIR JSON: the typed columns plus `_overflow` give the original
//! resource, equal as a JSON value, decimals with their original text; `to-ndjson`
//! writes every number exactly as it was written (`numbers`).
//!
//! This is both a user command (`fhir-ingest to-ndjson`) and the proof of losslessness
//! that the round-trip tests run over real data.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::{Path as FsPath, PathBuf},
    str::FromStr,
};

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch,
    StructArray, cast::AsArray,
};
use serde_json::{Map, Number, Value};

mod numbers;

pub use self::numbers::Spellings;
use self::numbers::Tracker;
use crate::{
    schema::{
        Element, ElementKind, LINEAGE_COLUMN, OVERFLOW_COLUMN, Primitive, Registry, ResourceSchema,
        companion, sparse,
    },
    warehouse::{TableKind, Warehouse, WarehouseError},
};

/// Errors of rebuilding resources.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// A column is not what the schema says (a file from another schema version).
    #[error("{resource_type}: column {column}: expected {expected}")]
    Column {
        /// The table.
        resource_type: String,
        /// The column or element name.
        column: String,
        /// The expected Arrow type.
        expected: &'static str,
    },
    /// A file's columns do not fit the table's schema.
    #[error("{resource_type}: a file's columns do not fit the table")]
    Shape {
        /// The table.
        resource_type: String,
        /// Why.
        source: arrow_schema::ArrowError,
    },
    /// `_overflow` is not a JSON object of pointers.
    #[error("{resource_type}: bad _overflow: {reason}")]
    Overflow {
        /// The table.
        resource_type: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading a data file failed.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: arrow_schema::ArrowError,
    },
    /// Writing an output file failed.
    #[error("writing {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A table of the warehouse has no schema in this version.
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    /// Listing the warehouse failed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
}

/// A rebuilt resource and where its row came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuilt {
    /// `_lineage.file`.
    pub file: String,
    /// `_lineage.line`.
    pub line: i64,
    /// The resource.
    pub resource: Value,
    /// Its numbers whose text serde_json would respell (exponents), for writing it
    /// exactly ([`Spellings::write_json`]).
    pub spellings: Spellings,
}

impl Rebuilt {
    /// The resource as JSON text, every number as it was written.
    pub fn to_json(&self) -> String {
        if self.spellings.is_empty() {
            return self.resource.to_string();
        }
        let mut out = String::new();
        self.spellings.write_json(&self.resource, &mut out);
        out
    }
}

/// Rebuilds every row of a batch of `schema`'s table.
pub fn rebuild_batch(
    schema: &ResourceSchema,
    batch: &RecordBatch,
) -> Result<Vec<Rebuilt>, RebuildError> {
    let rt = &schema.resource_type;
    // Files hold only the leaves with values: rebuilding walks the whole schema.
    let batch =
        &sparse::conform(batch, &schema.arrow_schema()).map_err(|source| RebuildError::Shape {
            resource_type: rt.clone(),
            source,
        })?;
    let column_error = |column: &str, expected| RebuildError::Column {
        resource_type: rt.clone(),
        column: column.into(),
        expected,
    };
    let lineage = batch
        .column_by_name(LINEAGE_COLUMN)
        .and_then(|c| c.as_struct_opt())
        .ok_or_else(|| column_error(LINEAGE_COLUMN, "struct"))?;
    let files = lineage
        .column_by_name("file")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| column_error("_lineage.file", "utf8"))?;
    let lines = lineage
        .column_by_name("line")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(|| column_error("_lineage.line", "int64"))?;
    // Tombstones of deleted resources (history tables) are no resources.
    let deleted = lineage
        .column_by_name("deleted")
        .and_then(|c| c.as_any().downcast_ref::<BooleanArray>());
    let overflow = batch
        .column_by_name(OVERFLOW_COLUMN)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| column_error(OVERFLOW_COLUMN, "utf8"))?;
    let columns = batch.columns();
    let mut out = Vec::with_capacity(batch.num_rows());
    let mut at = Tracker::default();
    for row in 0..batch.num_rows() {
        if deleted.is_some_and(|d| d.value(row)) {
            continue;
        }
        let mut object = Map::new();
        object.insert("resourceType".into(), Value::String(rt.clone()));
        fill_object(rt, &schema.elements, columns, row, &mut object, &mut at)?;
        let mut resource = Value::Object(object);
        if overflow.is_valid(row) {
            let text = overflow.value(row);
            apply_overflow(&mut resource, text).map_err(|reason| RebuildError::Overflow {
                resource_type: rt.clone(),
                reason,
            })?;
            at.spellings.note_overflow(text);
        }
        out.push(Rebuilt {
            file: files.value(row).to_owned(),
            line: lines.value(row),
            resource,
            spellings: at.take(),
        });
    }
    Ok(out)
}

/// Sets the members of `object` from the typed columns of `elements` at `row`.
fn fill_object(
    rt: &str,
    elements: &[Element],
    columns: &[ArrayRef],
    row: usize,
    object: &mut Map<String, Value>,
    at: &mut Tracker,
) -> Result<(), RebuildError> {
    let mut k = 0;
    for element in elements {
        let array = columns.get(k).ok_or_else(|| RebuildError::Column {
            resource_type: rt.into(),
            column: element.name.clone(),
            expected: "a column",
        })?;
        let text = companion(element).and_then(|_| columns.get(k + 1));
        k += 1 + usize::from(companion(element).is_some());
        if array.is_null(row) {
            continue;
        }
        let mark = at.enter(&element.name);
        let value = if element.repeated {
            let list = array
                .as_list_opt::<i32>()
                .ok_or_else(|| column_error(rt, element, "list"))?;
            list_value(rt, element, list, row, at)?
        } else {
            value_at(rt, element, array, text, row, at)?
        };
        at.leave(mark);
        object.insert(element.name.clone(), value);
    }
    Ok(())
}

fn column_error(rt: &str, element: &Element, expected: &'static str) -> RebuildError {
    RebuildError::Column {
        resource_type: rt.into(),
        column: element.name.clone(),
        expected,
    }
}

/// The JSON value of `values[i]` for `element` (a single value, or an item of a list;
/// a single decimal takes its exact text from `text`, its companion column).
fn value_at(
    rt: &str,
    element: &Element,
    values: &ArrayRef,
    text: Option<&ArrayRef>,
    i: usize,
    at: &mut Tracker,
) -> Result<Value, RebuildError> {
    let err = |expected| column_error(rt, element, expected);
    Ok(match &element.kind {
        ElementKind::Primitive(Primitive::Boolean) => Value::Bool(
            values
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| err("boolean"))?
                .value(i),
        ),
        ElementKind::Primitive(Primitive::Integer) => Value::from(
            values
                .as_any()
                .downcast_ref::<Int32Array>()
                .ok_or_else(|| err("int32"))?
                .value(i),
        ),
        // Repeated decimals are stored as their text.
        ElementKind::Primitive(Primitive::Decimal) if element.repeated => {
            number(string_at(values, i).ok_or_else(|| err("utf8"))?, at)
        }
        ElementKind::Primitive(Primitive::Decimal) => match text {
            Some(text) if text.is_valid(i) => {
                number(string_at(text, i).ok_or_else(|| err("utf8"))?, at)
            }
            _ => {
                let value = values
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or_else(|| err("float64"))?
                    .value(i);
                Number::from_f64(value).map_or(Value::Null, Value::Number)
            }
        },
        ElementKind::Primitive(_) => {
            Value::String(string_at(values, i).ok_or_else(|| err("utf8"))?.to_owned())
        }
        ElementKind::Struct(children) => {
            let s: &StructArray = values.as_struct_opt().ok_or_else(|| err("struct"))?;
            let mut object = Map::new();
            fill_object(rt, children, s.columns(), i, &mut object, at)?;
            Value::Object(object)
        }
    })
}

fn string_at(array: &ArrayRef, i: usize) -> Option<&str> {
    array.as_string_opt::<i32>().map(|a| a.value(i))
}

fn list_value(
    rt: &str,
    element: &Element,
    list: &ListArray,
    row: usize,
    at: &mut Tracker,
) -> Result<Value, RebuildError> {
    let offsets = list.value_offsets();
    let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
    let values = list.values();
    let mut items = Vec::with_capacity(end - start);
    for i in start..end {
        items.push(if values.is_null(i) {
            Value::Null
        } else {
            let mark = at.enter(&(i - start).to_string());
            let item = value_at(rt, element, values, None, i, at)?;
            at.leave(mark);
            item
        });
    }
    Ok(Value::Array(items))
}

/// A JSON number with this text (serde_json may respell its exponent: the text is
/// noted for writing it back exactly).
fn number(text: &str, at: &mut Tracker) -> Value {
    at.note(text);
    Number::from_str(text).map_or_else(|_| Value::String(text.to_owned()), Value::Number)
}

/// Puts each `pointer: value` of an overflow object into `resource`.
pub fn apply_overflow(resource: &mut Value, overflow: &str) -> Result<(), String> {
    let entries: Map<String, Value> = serde_json::from_str(overflow).map_err(|e| e.to_string())?;
    for (pointer, value) in entries {
        set_pointer(resource, &pointer, value).map_err(|e| format!("{pointer}: {e}"))?;
    }
    Ok(())
}

fn set_pointer(root: &mut Value, pointer: &str, value: Value) -> Result<(), &'static str> {
    let tokens: Vec<String> = pointer
        .strip_prefix('/')
        .ok_or("not a JSON pointer")?
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (last, parents) = tokens.split_last().ok_or("empty pointer")?;
    let mut current = root;
    for token in parents {
        current = match current {
            Value::Object(map) => map
                .entry(token.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            Value::Array(items) => items.get_mut(index(token)?).ok_or("index past the end")?,
            _ => return Err("path goes through a primitive"),
        };
    }
    match current {
        Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        Value::Array(items) => {
            let i = index(last)?;
            if i >= items.len() {
                items.resize(i + 1, Value::Null);
            }
            items[i] = value;
        }
        _ => return Err("path goes through a primitive"),
    }
    Ok(())
}

fn index(token: &str) -> Result<usize, &'static str> {
    token.parse().map_err(|_| "not an array index")
}

/// Reads one Parquet file of the warehouse and rebuilds its resources.
pub async fn rebuild_file(
    warehouse: &Warehouse,
    schema: &ResourceSchema,
    path: &str,
) -> Result<Vec<Rebuilt>, RebuildError> {
    let reader = warehouse.read_parquet(path).await?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|source| RebuildError::Read {
            path: path.to_owned(),
            source,
        })?;
        out.extend(rebuild_batch(schema, &batch)?);
    }
    Ok(out)
}

/// Which version of the resources `to-ndjson` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Versions {
    /// Every version ingested (the `history/` tables), as ingested.
    #[default]
    All,
    /// The current version of each resource (the `current/` tables).
    Current,
}

/// Writes the resources of the warehouse as `<out>/<Type>.ndjson`, every version or
/// the current ones; returns the number of resources per type.
pub async fn to_ndjson(
    warehouse: &Warehouse,
    registry: &Registry,
    out_dir: &FsPath,
    only: &[String],
    versions: Versions,
) -> Result<Vec<(String, u64)>, RebuildError> {
    let io_error = |path: &PathBuf, source: std::io::Error| RebuildError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(out_dir).map_err(|e| io_error(&out_dir.to_path_buf(), e))?;
    let mut counts = Vec::new();
    for table in warehouse.delta_tables().await? {
        let resource_type = match (table.kind(), versions) {
            (TableKind::History(t), Versions::All) | (TableKind::Current(t), Versions::Current) => {
                t
            }
            _ => continue,
        };
        if !only.is_empty() && !only.iter().any(|t| t == resource_type) {
            continue;
        }
        let schema = registry.require(resource_type)?;
        let path = out_dir.join(format!("{resource_type}.ndjson"));
        let mut out = BufWriter::new(File::create(&path).map_err(|e| io_error(&path, e))?);
        let mut count = 0;
        for file in warehouse
            .live_files(&table)
            .await
            .map_err(WarehouseError::from)?
        {
            for rebuilt in rebuild_file(warehouse, schema, &file.path).await? {
                // Every number as it was written (serde_json would respell exponents).
                out.write_all(rebuilt.to_json().as_bytes())
                    .map_err(|e| io_error(&path, e))?;
                out.write_all(b"\n").map_err(|e| io_error(&path, e))?;
                count += 1;
            }
        }
        out.flush().map_err(|e| io_error(&path, e))?;
        counts.push((resource_type.to_owned(), count));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_set_nested_members_and_items() {
        let mut v: Value = serde_json::from_str(r#"{"a":[null,{"b":1}]}"#).unwrap();
        apply_overflow(&mut v, r#"{"/a/0":"x","/a/1/c~1d":[1.50],"/e":null}"#).unwrap();
        let expected: Value =
            serde_json::from_str(r#"{"a":["x",{"b":1,"c/d":[1.50]}],"e":null}"#).unwrap();
        assert_eq!(v, expected);
    }

    #[test]
    fn bad_pointers_are_errors() {
        let mut v: Value = serde_json::from_str(r#"{"a":"s"}"#).unwrap();
        assert!(apply_overflow(&mut v, r#"{"/a/b":1}"#).is_err());
        assert!(apply_overflow(&mut v, r#"{"x":1}"#).is_err());
        assert!(apply_overflow(&mut v, r#"[1]"#).is_err());
    }
}
