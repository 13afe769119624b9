//! A view computed over a warehouse's tables already there (`fhir-ingest view run`): the
//! current resources of the view's type rebuilt from Parquet, parsed into a tape, and
//! evaluated by the same engine as during ingest. The rows go to a file (Parquet, CSV or
//! NDJSON) for trying a view out, or replace the view's table in the warehouse (a
//! backfill).

use std::{io::Write, sync::Arc};

use arrow_array::{Array, ArrayRef, RecordBatch, cast::AsArray, types::*};
use arrow_schema::DataType;
use serde_json::Value;

use super::rebuild::{RebuildError, rebuild_batch};
use crate::{
    decode::view_table_schema,
    schema::{LINEAGE_COLUMN, sparse},
    view::{EvalError, ViewBuilder, ViewDefinition},
    warehouse::{TableId, Warehouse, WarehouseError},
};

/// Errors of computing a view over a warehouse.
#[derive(Debug, thiserror::Error)]
pub enum ViewRunError {
    /// The resources cannot be read back.
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
    /// The warehouse cannot be read.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// The rows cannot be assembled.
    #[error("building the view's rows")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// The rows of `view` over the current resources of its type, as batches of the view's
/// table (its columns, `_resource_key`, and the `_lineage` of the resource row each came
/// from); resources whose rows fail are counted, not fatal (`id: problem`).
pub async fn compute(
    warehouse: &Warehouse,
    registry: &crate::schema::Registry,
    view: Arc<ViewDefinition>,
) -> Result<(Vec<RecordBatch>, Vec<String>), ViewRunError> {
    let resource_type = view.resource().to_owned();
    let schema = registry
        .require(&resource_type)
        .map_err(RebuildError::from)?;
    let table_schema = view_table_schema(&view);
    let table = TableId::current(&resource_type);
    let mut builder = ViewBuilder::new(view.clone());
    let (mut keys, mut lineage_rows) = (Vec::new(), Vec::new());
    let mut batches = Vec::new();
    let mut failures = Vec::new();
    let mut line = Vec::new();
    for file in warehouse
        .live_files(&table)
        .await
        .map_err(WarehouseError::from)?
    {
        for batch in warehouse.read_parquet(&file.path).await? {
            let batch = batch
                .and_then(|b| sparse::conform(&b, &schema.arrow_schema()))
                .map_err(|source| RebuildError::Read {
                    path: file.path.clone(),
                    source,
                })?;
            let lineage = batch
                .column_by_name(LINEAGE_COLUMN)
                .cloned()
                .ok_or_else(|| arrow_schema::ArrowError::SchemaError("no _lineage".into()))?;
            // Current tables hold no tombstones: rebuilt resources are the batch's rows.
            for (row, rebuilt) in rebuild_batch(schema, &batch)?.into_iter().enumerate() {
                line.clear();
                serde_json::to_writer(&mut line, &rebuilt.resource).map_err(|e| {
                    ViewRunError::Arrow(arrow_schema::ArrowError::JsonError(e.to_string()))
                })?;
                let text = line.clone();
                let id = rebuilt.resource["id"].as_str().map(str::to_owned);
                match append(&mut builder, &mut line, &text) {
                    Ok(rows) => {
                        keys.extend(std::iter::repeat_n(id, rows));
                        lineage_rows.extend(std::iter::repeat_n(row as u32, rows));
                    }
                    Err(e) => failures.push(format!("{}: {e}", id.as_deref().unwrap_or("?"))),
                }
            }
            if !builder.is_empty() {
                batches.push(finish(
                    &mut builder,
                    &mut keys,
                    &mut lineage_rows,
                    &lineage,
                    &table_schema,
                )?);
            }
        }
    }
    Ok((batches, failures))
}

/// Parses `bytes` (a resource's JSON) into a tape and appends its rows.
fn append(builder: &mut ViewBuilder, bytes: &mut [u8], text: &[u8]) -> Result<usize, String> {
    let tape = simd_json::to_tape(bytes).map_err(|e| e.to_string())?;
    builder
        .append_resource_line(&tape.0, text)
        .map_err(|e: EvalError| e.to_string())
}

/// The rows built so far, with their resource keys and the lineage (rows of `lineage`).
fn finish(
    builder: &mut ViewBuilder,
    keys: &mut Vec<Option<String>>,
    lineage_rows: &mut Vec<u32>,
    lineage: &ArrayRef,
    schema: &arrow_schema::SchemaRef,
) -> Result<RecordBatch, ViewRunError> {
    let view = builder.finish()?;
    let mut columns = view.columns().to_vec();
    columns.push(Arc::new(arrow_array::StringArray::from(std::mem::take(
        keys,
    ))));
    let indices = arrow_array::UInt32Array::from(std::mem::take(lineage_rows));
    columns.push(arrow_select::take::take(lineage, &indices, None)?);
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Replaces the rows of `view`'s table in the warehouse with `batches` (a backfill):
/// one commit removes its files and adds the new ones.
pub fn replace_table(
    cx: &crate::ingest::RunContext,
    view: &ViewDefinition,
    batches: &[RecordBatch],
    parquet: &crate::sink::ParquetConfig,
) -> Result<Option<i64>, crate::commit::CommitError> {
    let cx = &cx.commit_context();
    use crate::commit::tables::{self, Committed, NewTable, commit_guarded};
    let table = TableId::view(view.name());
    let schema = view_table_schema(view);
    let files = crate::sink::RunFiles {
        store: cx.warehouse.store(),
        runtime: cx.runtime.clone(),
        run_id: format!(
            "backfill-{}",
            crate::temporal::compact_utc(crate::temporal::unix_now())
        ),
        attempt: crate::warehouse::layout::new_attempt(),
    };
    let committed = commit_guarded(
        cx,
        &table,
        NewTable {
            schema: &schema,
            partition_columns: &[],
        },
        ("fhir-ingest-view-backfill", crate::temporal::now_micros()),
        "WRITE",
        |snapshot| {
            let mut writer = crate::sink::TableWriter::new(
                files.clone(),
                table.clone(),
                None,
                Some(schema.clone()),
                crate::sink::writer_properties(parquet),
                parquet.max_file_bytes,
            );
            for batch in batches.iter().filter(|b| b.num_rows() > 0) {
                writer.write(batch)?;
            }
            let mut actions: Vec<crate::delta::Action> = snapshot
                .into_iter()
                .flat_map(|s| s.files().values())
                .map(|add| crate::delta::Action::Remove(add.remove_now()))
                .collect();
            for file in writer.finish()?.files {
                actions.push(crate::delta::Action::Add(tables::add_of(&table, &file)?));
            }
            Ok((!actions.is_empty()).then_some(actions))
        },
    )?;
    Ok(match committed {
        Committed::Version(v) => Some(v),
        _ => None,
    })
}

/// The schema of `view`'s table in the warehouse (its columns, `_resource_key`,
/// `_lineage`), as `name: type` lines.
pub fn describe(view: &ViewDefinition) -> Vec<String> {
    view_table_schema(view)
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect()
}

/// Writes `batches` as NDJSON: one object a row, lists as arrays (`_lineage` left out).
pub fn write_ndjson(batches: &[RecordBatch], out: &mut impl Write) -> std::io::Result<()> {
    for batch in batches {
        for row in 0..batch.num_rows() {
            let object: serde_json::Map<String, Value> = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .filter(|(f, _)| f.name() != LINEAGE_COLUMN)
                .map(|(f, c)| (f.name().clone(), value(c, row)))
                .collect();
            serde_json::to_writer(&mut *out, &object)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Writes `batches` as CSV with a header; lists as JSON arrays in their cell.
pub fn write_csv(batches: &[RecordBatch], out: &mut impl Write) -> std::io::Result<()> {
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let shown = |name: &str| name != LINEAGE_COLUMN;
    let header: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .filter(|f| shown(f.name()))
        .map(|f| csv_cell(f.name()))
        .collect();
    writeln!(out, "{}", header.join(","))?;
    for batch in batches {
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .filter(|(f, _)| shown(f.name()))
                .map(|(_, c)| match value(c, row) {
                    Value::Null => String::new(),
                    Value::String(s) => csv_cell(&s),
                    other => csv_cell(&other.to_string()),
                })
                .collect();
            writeln!(out, "{}", cells.join(","))?;
        }
    }
    Ok(())
}

/// A CSV cell, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The JSON value of a view column's cell.
fn value(column: &ArrayRef, row: usize) -> Value {
    if column.is_null(row) {
        return Value::Null;
    }
    match column.data_type() {
        DataType::Utf8 => Value::from(column.as_string::<i32>().value(row)),
        DataType::Boolean => Value::from(column.as_boolean().value(row)),
        DataType::Int32 => Value::from(column.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Value::from(column.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => {
            serde_json::Number::from_f64(column.as_primitive::<Float64Type>().value(row))
                .map_or(Value::Null, Value::Number)
        }
        DataType::List(_) => {
            let items = column.as_list::<i32>().value(row);
            Value::Array((0..items.len()).map(|i| value(&items, i)).collect())
        }
        other => Value::from(format!("<{other}>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_when_needed() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
