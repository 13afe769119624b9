//! The rows of a SQL on FHIR view, computed from the tape of each decoded resource (the
//! same parse as its table's row) and kept with the key of the resource they came from
//! and the run's lineage.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, RecordBatch, StructArray,
    builder::{Int64Builder, StringBuilder},
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use simd_json::Node;

use super::RunLineage;
use crate::{
    schema::{LINEAGE_COLUMN, lineage_fields},
    view::{EvalError, ViewBuilder, ViewDefinition},
};

/// The column of a view table naming the resource a row came from (its `id`, what
/// `getResourceKey()` gives).
pub const RESOURCE_KEY_COLUMN: &str = "_resource_key";

/// The schema of a view's table: the view's columns, then the resource key and the
/// lineage.
pub fn view_table_schema(view: &ViewDefinition) -> SchemaRef {
    let mut fields: Vec<Field> = view
        .arrow_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(RESOURCE_KEY_COLUMN, DataType::Utf8, true));
    fields.push(Field::new(
        LINEAGE_COLUMN,
        DataType::Struct(lineage_fields()),
        false,
    ));
    Arc::new(Schema::new(fields))
}

/// One view's rows being built by a decoder.
pub(crate) struct ViewTable {
    builder: ViewBuilder,
    schema: SchemaRef,
    key: StringBuilder,
    file: StringBuilder,
    line: Int64Builder,
}

impl ViewTable {
    pub fn new(view: Arc<ViewDefinition>) -> Self {
        Self {
            schema: view_table_schema(&view),
            builder: ViewBuilder::new(view),
            key: StringBuilder::new(),
            file: StringBuilder::new(),
            line: Int64Builder::new(),
        }
    }

    /// The view's name.
    pub fn name(&self) -> &str {
        self.builder.view().name()
    }

    /// Appends the rows of the resource on `tape` (parsed from `line`, line `line_no`
    /// of `file`); on error nothing is appended.
    pub fn append(
        &mut self,
        tape: &[Node<'_>],
        line: &[u8],
        file: &str,
        line_no: u64,
    ) -> Result<(), EvalError> {
        let rows = self.builder.append_resource_line(tape, line)?;
        let key = root_string(tape, "id");
        for _ in 0..rows {
            self.key.append_option(key);
            self.file.append_value(file);
            self.line.append_value(line_no as i64);
        }
        Ok(())
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn rows(&self) -> usize {
        self.builder.len()
    }

    /// The rows appended since the last call, with their key and lineage.
    pub fn finish(&mut self, lineage: &RunLineage) -> Result<RecordBatch, ArrowError> {
        let rows = self.builder.len();
        let view = self.builder.finish()?;
        let mut columns: Vec<ArrayRef> = view.columns().to_vec();
        columns.push(Arc::new(self.key.finish()));
        let file = Arc::new(self.file.finish());
        let line = Arc::new(self.line.finish());
        columns.push(Arc::new(lineage_array(lineage, file, line, rows)));
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

/// The `_lineage` column of `rows` rows: the run's constants and each row's file and line.
pub(crate) fn lineage_array(
    lineage: &RunLineage,
    file: ArrayRef,
    line: ArrayRef,
    rows: usize,
) -> StructArray {
    let constant = |value: Option<&str>| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(rows, value.map_or(0, str::len) * rows);
        for _ in 0..rows {
            b.append_option(value);
        }
        Arc::new(b.finish())
    };
    let columns: Vec<ArrayRef> = vec![
        constant(Some(&lineage.source)),
        constant(Some(&lineage.namespace)),
        constant(Some(&lineage.run_id)),
        constant(lineage.transaction_time.as_deref()),
        file,
        line,
        Arc::new(BooleanArray::from(vec![false; rows])),
    ];
    StructArray::new(lineage_fields(), columns, None)
}

/// The string value of a member of the resource's root object.
fn root_string<'t>(tape: &[Node<'t>], name: &str) -> Option<&'t str> {
    let Some(&Node::Object { len, .. }) = tape.first() else {
        return None;
    };
    let mut key = 1;
    for _ in 0..len {
        let value = key + 1;
        if let Node::String(k) = tape[key]
            && k == name
        {
            return match tape[value] {
                Node::String(s) => Some(s),
                _ => None,
            };
        }
        key = value + super::overflow::node_span(tape, value);
    }
    None
}
