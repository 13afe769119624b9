//! The append of a run to a `history/<Type>` table: the run's files of the type, and a
//! tombstone row for each resource its export says was deleted (`id`, `_lineage` with
//! `deleted` true, every other column null), so that history answers "what did we know
//! on date D".

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, StructArray, new_null_array,
};
use arrow_schema::SchemaRef;

use super::{
    CommitError, RunInfo,
    tables::{self, Committed, NewTable, commit_guarded, partition_columns},
};
use crate::{
    delta::Action,
    schema::{LINEAGE_COLUMN, lineage_fields},
    sink::{TableWriter, writer_properties},
    warehouse::{TableId, TableManifest, WrittenFile},
};

/// The lineage `file` of tombstone rows (the export's `deleted[]` lists).
pub const DELETED_FILE: &str = "deleted[]";

/// Appends `staged` (the run's files of the type) and tombstones of `deleted` (ids) to
/// `history/<Type>`; returns the commit and the files added.
pub fn append(
    run: &RunInfo<'_>,
    resource_type: &str,
    staged: &[WrittenFile],
    deleted: &[String],
) -> Result<(Committed, TableManifest), CommitError> {
    let table = TableId::history(resource_type);
    let schema = run.resource_schema(resource_type)?;
    let mut added = TableManifest::default();
    for file in staged {
        added.push(file.clone());
    }
    if !deleted.is_empty() {
        for file in write_tombstones(run, &table, &schema, deleted)?.files {
            added.push(file);
        }
    }
    let mut adds = Vec::with_capacity(added.files.len());
    for file in &added.files {
        adds.push(Action::Add(tables::add_of(&table, file)?));
    }
    let partitions = partition_columns(run.partition.is_some());
    let committed = commit_guarded(
        run.cx,
        &table,
        NewTable {
            schema: &schema,
            partition_columns: &partitions,
        },
        (run.source, run.seq),
        "WRITE",
        |_| Ok(Some(adds.clone())),
    )?;
    Ok((committed, added))
}

/// Writes the tombstones of `ids` into the run's history partition.
fn write_tombstones(
    run: &RunInfo<'_>,
    table: &TableId,
    schema: &SchemaRef,
    ids: &[String],
) -> Result<TableManifest, CommitError> {
    let batch = tombstones(run, schema, ids).map_err(|source| CommitError::Read {
        path: table.to_string(),
        source,
    })?;
    let mut writer = TableWriter::new(
        run.files("t"),
        table.clone(),
        run.partition.map(str::to_owned),
        Some(schema.clone()),
        writer_properties(run.parquet),
        run.parquet.max_file_bytes,
    );
    writer.write(&batch)?;
    Ok(writer.finish()?)
}

/// The tombstone rows of `ids`: the id, the lineage with `deleted` true, nulls elsewhere.
fn tombstones(
    run: &RunInfo<'_>,
    schema: &SchemaRef,
    ids: &[String],
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let n = ids.len();
    let constant = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
    let lineage = StructArray::try_new(
        lineage_fields(),
        vec![
            constant(run.source),
            constant(run.namespace),
            constant(run.run_id),
            Arc::new(StringArray::from(vec![run.transaction_time; n])),
            constant(DELETED_FILE),
            Arc::new(Int64Array::from_iter_values(1..=n as i64)),
            Arc::new(BooleanArray::from(vec![true; n])),
        ],
        None,
    )?;
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            "id" => Arc::new(StringArray::from_iter_values(ids)) as ArrayRef,
            LINEAGE_COLUMN => Arc::new(lineage.clone()),
            _ => new_null_array(field.data_type(), n),
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns)
}
