//! Rows of a view to Arrow: one [`ViewBuilder`] per view per worker thread.

use std::{fmt::Write as _, sync::Arc};

use arrow_array::{
    ArrayRef, ListArray, RecordBatch, RecordBatchOptions,
    builder::{BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder},
};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field};
use simd_json::{Node, StaticNode};

use super::{
    definition::{LIST_ITEM, OutType, ViewDefinition},
    fhirpath::{
        eval::{Evaluator, Input},
        value::{Data, Item, Scalar},
    },
    rows::{Cell, EvalError, RowEngine},
};

/// Appends the rows of a view over resources to Arrow arrays, and hands them over as
/// record batches. Evaluation buffers are reused from resource to resource.
///
/// ```
/// use std::sync::Arc;
/// use fhir_ingest::view::{ViewBuilder, ViewDefinition};
///
/// let view = ViewDefinition::from_json(
///     r#"{"resource":"Patient","select":[{"column":[{"name":"id","path":"id","type":"id"}]},
///         {"forEach":"name","column":[{"name":"family","path":"family","type":"string"}]}]}"#,
///     "example.json",
/// ).unwrap();
/// let mut builder = ViewBuilder::new(Arc::new(view));
/// let mut line = br#"{"resourceType":"Patient","id":"p1","name":[{"family":"A"},{"family":"B"}]}"#.to_vec();
/// let tape = simd_json::to_tape(&mut line).unwrap();
/// assert_eq!(builder.append_resource(&tape.0).unwrap(), 2);
/// let batch = builder.finish().unwrap();
/// assert_eq!(batch.num_rows(), 2);
/// ```
pub struct ViewBuilder {
    view: Arc<ViewDefinition>,
    engine: RowEngine,
    columns: Vec<OutColumn>,
    rows: usize,
    text: String,
}

impl ViewBuilder {
    /// A builder for `view`.
    pub fn new(view: Arc<ViewDefinition>) -> Self {
        let columns = view
            .columns
            .iter()
            .map(|c| OutColumn::new(c.out, c.collection))
            .collect();
        Self {
            view,
            engine: RowEngine::default(),
            columns,
            rows: 0,
            text: String::new(),
        }
    }

    /// The view this builder evaluates.
    pub fn view(&self) -> &Arc<ViewDefinition> {
        &self.view
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends the rows of one resource; `tape` is the whole resource (`tape[0]` is its
    /// object). A resource of another type than the view's yields no rows. Returns how
    /// many rows were appended. On error nothing is appended.
    ///
    /// Decimals are known here by their parsed value only; see
    /// [`append_resource_line`](Self::append_resource_line) for their exact precision.
    pub fn append_resource(&mut self, tape: &[Node<'_>]) -> Result<usize, EvalError> {
        self.append(tape, None)
    }

    /// As [`append_resource`](Self::append_resource), with the resource's original JSON
    /// text (the line the tape was parsed from): decimals then keep their exact text
    /// (`1.50`) in string columns and their precision in `lowBoundary()` and
    /// `highBoundary()`.
    pub fn append_resource_line(
        &mut self,
        tape: &[Node<'_>],
        line: &[u8],
    ) -> Result<usize, EvalError> {
        self.append(tape, Some(line))
    }

    fn append(&mut self, tape: &[Node<'_>], line: Option<&[u8]>) -> Result<usize, EvalError> {
        let view = &*self.view;
        let inp = Input {
            tape,
            line,
            pool: &view.pool,
        };
        let count = self.engine.run(view, &inp)?;
        let (cells, values, eval) = self.engine.parts(view);
        let width = view.columns.len();
        // Check every value first: an error must leave the builders untouched.
        let data = eval.data(&inp);
        for row in 0..count {
            for (c, def) in view.columns.iter().enumerate() {
                let cell = cells[row * width + c];
                for &item in &values[cell.range()] {
                    if let Err(found) = check(&data, item, def.out) {
                        return Err(EvalError::ColumnType {
                            pointer: def.pointer.clone(),
                            column: def.name.clone(),
                            expected: def.out.name(),
                            found: found.to_owned(),
                        });
                    }
                }
            }
        }
        for row in 0..count {
            for (c, column) in self.columns.iter_mut().enumerate() {
                let cell = cells[row * width + c];
                column.append(&inp, eval, &values[cell.range()], cell, &mut self.text);
            }
        }
        self.rows += count;
        Ok(count)
    }

    /// The rows appended since the last call, as a record batch of the view's schema.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let schema = self.view.arrow_schema();
        let arrays = self
            .columns
            .iter_mut()
            .zip(schema.fields())
            .map(|(c, f)| c.finish(f.data_type()))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = std::mem::take(&mut self.rows);
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(schema, arrays, &options)
    }
}

/// Whether `item` fits a column of type `out`; otherwise what it is.
fn check(data: &Data<'_, '_>, item: Item, out: OutType) -> Result<(), &'static str> {
    let scalar = data.scalar(item);
    let fits = match (out, scalar) {
        (_, Scalar::Object(..)) => false,
        (OutType::Utf8, _) => true,
        (OutType::Boolean, Scalar::Bool(_)) => true,
        (OutType::Int32, Scalar::Int(i)) => i32::try_from(i).is_ok(),
        (OutType::Int64, Scalar::Int(_)) => true,
        (OutType::Int64, Scalar::Str(s, _)) => s.parse::<i64>().is_ok(),
        (OutType::Float64, Scalar::Int(_) | Scalar::Dec(_)) => true,
        _ => false,
    };
    if fits {
        Ok(())
    } else if let (OutType::Int32, Scalar::Int(_)) = (out, scalar) {
        Err("an integer out of the 32-bit range")
    } else {
        Err(scalar.kind_name())
    }
}

/// The builder of one value of a column.
enum Values {
    Utf8(StringBuilder),
    Boolean(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
}

/// One output column: its values, and for collections the list offsets and validity.
struct OutColumn {
    values: Values,
    list: Option<(Vec<i32>, NullBufferBuilder)>,
}

impl OutColumn {
    fn new(out: OutType, collection: bool) -> Self {
        let values = match out {
            OutType::Utf8 => Values::Utf8(StringBuilder::new()),
            OutType::Boolean => Values::Boolean(BooleanBuilder::new()),
            OutType::Int32 => Values::Int32(Int32Builder::new()),
            OutType::Int64 => Values::Int64(Int64Builder::new()),
            OutType::Float64 => Values::Float64(Float64Builder::new()),
        };
        Self {
            values,
            list: collection.then(|| (vec![0], NullBufferBuilder::new(0))),
        }
    }

    /// Appends one cell (already checked to fit).
    fn append(
        &mut self,
        inp: &Input<'_, '_>,
        eval: &mut Evaluator,
        items: &[Item],
        cell: Cell,
        text: &mut String,
    ) {
        match &mut self.list {
            Some((offsets, validity)) => {
                for &item in items {
                    append_value(&mut self.values, inp, eval, item, text);
                }
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last + items.len() as i32);
                validity.append(cell != Cell::NULL);
            }
            None => match items.first() {
                Some(&item) => append_value(&mut self.values, inp, eval, item, text),
                None => match &mut self.values {
                    Values::Utf8(b) => b.append_null(),
                    Values::Boolean(b) => b.append_null(),
                    Values::Int32(b) => b.append_null(),
                    Values::Int64(b) => b.append_null(),
                    Values::Float64(b) => b.append_null(),
                },
            },
        }
    }

    fn finish(&mut self, data_type: &DataType) -> Result<ArrayRef, ArrowError> {
        let values: ArrayRef = match &mut self.values {
            Values::Utf8(b) => Arc::new(b.finish()),
            Values::Boolean(b) => Arc::new(b.finish()),
            Values::Int32(b) => Arc::new(b.finish()),
            Values::Int64(b) => Arc::new(b.finish()),
            Values::Float64(b) => Arc::new(b.finish()),
        };
        let Some((offsets, validity)) = &mut self.list else {
            return Ok(values);
        };
        let field = match data_type {
            DataType::List(field) => field.clone(),
            _ => Arc::new(Field::new(LIST_ITEM, values.data_type().clone(), true)),
        };
        let offsets = std::mem::replace(offsets, vec![0]);
        let list = ListArray::try_new(
            field,
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            values,
            validity.finish(),
        )?;
        Ok(Arc::new(list))
    }
}

/// Appends one checked value.
fn append_value(
    values: &mut Values,
    inp: &Input<'_, '_>,
    eval: &mut Evaluator,
    item: Item,
    text: &mut String,
) {
    let scalar = eval.data(inp).scalar(item);
    match (values, scalar) {
        (Values::Utf8(b), Scalar::Str(s, _)) => b.append_value(s),
        (Values::Utf8(b), scalar) => {
            text.clear();
            match scalar {
                Scalar::Bool(v) => text.push_str(if v { "true" } else { "false" }),
                Scalar::Int(i) => {
                    let _ = write!(text, "{i}");
                }
                Scalar::Dec(v) => {
                    // A decimal from the resource keeps its exact text when the line is known.
                    let exact = match item {
                        Item::Node { at, .. }
                            if matches!(inp.tape.get(at as usize), Some(Node::Static(StaticNode::F64(_)))) =>
                        {
                            eval.number_text(inp, at)
                        }
                        _ => None,
                    };
                    match exact {
                        Some(t) => text.push_str(t),
                        None => {
                            let _ = write!(text, "{v}");
                        }
                    }
                }
                Scalar::Str(..) | Scalar::Object(..) => {}
            }
            b.append_value(&*text);
        }
        (Values::Boolean(b), Scalar::Bool(v)) => b.append_value(v),
        (Values::Int32(b), Scalar::Int(i)) => b.append_option(i32::try_from(i).ok()),
        (Values::Int64(b), Scalar::Int(i)) => b.append_value(i),
        (Values::Int64(b), Scalar::Str(s, _)) => b.append_option(s.parse().ok()),
        (Values::Float64(b), scalar) => b.append_option(scalar.number()),
        (Values::Boolean(b), _) => b.append_null(),
        (Values::Int32(b), _) => b.append_null(),
        (Values::Int64(b), _) => b.append_null(),
    }
}
