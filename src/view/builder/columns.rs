//! The output columns of a view as Arrow arrays: one builder per column (a list for
//! `collection: true`), with each value checked against the column's type first.

use std::{fmt::Write as _, sync::Arc};

use arrow_array::{
    ArrayRef, ListArray,
    builder::{BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder},
};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field};
use simd_json::{Node, StaticNode};

use crate::view::{
    definition::{LIST_ITEM, OutType},
    fhirpath::{
        eval::{Evaluator, Input},
        value::{Data, Item, Scalar},
    },
    rows::Cell,
};

/// Whether `item` fits a column of type `out`; otherwise what it is.
pub(super) fn check(data: &Data<'_, '_>, item: Item, out: OutType) -> Result<(), &'static str> {
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
pub(super) struct OutColumn {
    values: Values,
    list: Option<(Vec<i32>, NullBufferBuilder)>,
}

impl OutColumn {
    pub(super) fn new(out: OutType, collection: bool) -> Self {
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
    pub(super) fn append(
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

    pub(super) fn finish(&mut self, data_type: &DataType) -> Result<ArrayRef, ArrowError> {
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
                            if matches!(
                                inp.tape.get(at as usize),
                                Some(Node::Static(StaticNode::F64(_)))
                            ) =>
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
