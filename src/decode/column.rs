//! Column decoders: one per schema element, built once per resource type, appending one
//! tape value at a time (the shape of arrow-json's tape decoder).
//!
//! Each decoder either accepts a value (appends it) or rejects it (appends a null); the
//! caller then records a rejected value in the row's overflow, so nothing is lost. A
//! decoder that rejects must not have claimed any number of the line: the overflow
//! writer claims it when it serializes the value.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, ListArray, StructArray,
    builder::{
        BooleanBuilder, Float64Builder, Int32Builder, StringBuilder, TimestampMicrosecondBuilder,
    },
};
use arrow_buffer::{NullBuffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, FieldRef, Fields};
use rustc_hash::FxHashMap;
use simd_json::{Node, StaticNode};

use super::overflow::{NumberTexts, OverflowWriter, Seg, node_span};
use crate::{
    schema::{Element, ElementKind, LIST_ITEM, Primitive, companion},
    temporal,
};

/// What a column decoder needs of the row being decoded.
pub(crate) struct Cx<'a, 't> {
    pub tape: &'a [Node<'t>],
    pub line: &'a [u8],
    /// Address of the parsed copy of `line` that the tape's strings point into.
    pub input_base: usize,
    pub numbers: &'a mut NumberTexts,
    pub path: &'a mut Vec<Seg>,
    pub overflow: &'a mut OverflowWriter,
}

impl Cx<'_, '_> {
    /// Sends the value at `index`, found at the current path plus `last`, to overflow.
    fn spill(&mut self, last: Seg, index: usize) {
        self.overflow.add(
            self.tape,
            self.line,
            self.numbers,
            self.path,
            Some(last),
            index,
        );
    }
}

/// A string builder that allocates nothing until its first value. Builders start
/// empty: a schema has hundreds of leaves, most never get a value, and arrow's default
/// capacity (1024 items) cost every decoder megabytes of page faults up front.
fn empty_strings() -> StringBuilder {
    StringBuilder::with_capacity(0, 0)
}

/// The decoder of one element (and its companion column, if any).
pub(crate) enum Column {
    Boolean(BooleanBuilder),
    Integer(Int32Builder),
    String(StringBuilder),
    /// Items of a repeated decimal: the exact text only.
    NumberText(StringBuilder),
    Decimal {
        value: Float64Builder,
        text: StringBuilder,
    },
    Temporal {
        text: StringBuilder,
        ts: TimestampMicrosecondBuilder,
    },
    Struct(StructColumn),
    List(Box<ListColumn>),
}

impl Column {
    /// The decoder of an element as the schema lays it out.
    pub(crate) fn for_element(element: &Element) -> Self {
        let value = Self::for_value(element);
        if element.repeated {
            Self::List(Box::new(ListColumn {
                field: Arc::new(Field::new(LIST_ITEM, value.data_type(), true)),
                offsets: vec![0],
                validity: NullBufferBuilder::new(0),
                item: value,
            }))
        } else {
            value
        }
    }

    /// The Arrow type this column finishes into (taken from the children already
    /// built: building it from the elements again at every level of nesting was
    /// quadratic in the depth).
    fn data_type(&self) -> DataType {
        match self {
            Self::Boolean(_) => DataType::Boolean,
            Self::Integer(_) => DataType::Int32,
            Self::String(_) | Self::NumberText(_) | Self::Temporal { .. } => DataType::Utf8,
            Self::Decimal { .. } => DataType::Float64,
            Self::Struct(s) => DataType::Struct(s.fields.clone()),
            Self::List(l) => DataType::List(l.field.clone()),
        }
    }

    fn for_value(element: &Element) -> Self {
        match &element.kind {
            ElementKind::Primitive(Primitive::Boolean) => {
                Self::Boolean(BooleanBuilder::with_capacity(0))
            }
            ElementKind::Primitive(Primitive::Integer) => {
                Self::Integer(Int32Builder::with_capacity(0))
            }
            ElementKind::Primitive(Primitive::String) => Self::String(empty_strings()),
            ElementKind::Primitive(Primitive::Decimal) if element.repeated => {
                Self::NumberText(empty_strings())
            }
            ElementKind::Primitive(Primitive::Decimal) => Self::Decimal {
                value: Float64Builder::with_capacity(0),
                text: empty_strings(),
            },
            ElementKind::Primitive(Primitive::Temporal) if element.repeated => {
                Self::String(empty_strings())
            }
            ElementKind::Primitive(Primitive::Temporal) => Self::Temporal {
                text: empty_strings(),
                ts: TimestampMicrosecondBuilder::with_capacity(0).with_timezone("UTC"),
            },
            ElementKind::Struct(children) => Self::Struct(StructColumn::new(children, &[])),
        }
    }

    /// Appends the value at tape `index`; `false` (and a null) when it does not fit.
    pub(crate) fn append(&mut self, cx: &mut Cx<'_, '_>, index: usize) -> bool {
        let node = cx.tape[index];
        match (self, node) {
            (Self::Boolean(b), Node::Static(StaticNode::Bool(v))) => b.append_value(v),
            (Self::String(b), Node::String(s)) => b.append_value(s),
            (Self::Temporal { text, ts }, Node::String(s)) => {
                text.append_value(s);
                ts.append_option(temporal::parse_micros(s));
            }
            (Self::Integer(b), Node::Static(n @ (StaticNode::I64(_) | StaticNode::U64(_)))) => {
                let Some(v) = as_i32(n) else {
                    b.append_null();
                    return false;
                };
                // `-0` parses as 0 but is not the same text: keep it in overflow.
                if v == 0 && cx.numbers.text(cx.line, cx.numbers.peek()) != "0" {
                    b.append_null();
                    return false;
                }
                cx.numbers.claim();
                b.append_value(v);
            }
            (
                Self::Decimal { value, text },
                Node::Static(n @ (StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_))),
            ) => {
                let ordinal = cx.numbers.claim();
                let float = as_f64(n);
                value.append_value(float);
                let exact = match index.checked_sub(1).map(|k| cx.tape[k]) {
                    Some(Node::String(key)) => {
                        cx.numbers
                            .text_after_key(cx.line, cx.input_base, key, ordinal)
                    }
                    _ => cx.numbers.text(cx.line, ordinal),
                };
                if float_spells(float, exact) {
                    text.append_null();
                } else {
                    text.append_value(exact);
                }
            }
            (
                Self::NumberText(b),
                Node::Static(StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_)),
            ) => {
                let ordinal = cx.numbers.claim();
                b.append_value(cx.numbers.text(cx.line, ordinal));
            }
            (Self::Struct(s), Node::Object { len, .. }) => s.append_object(cx, index, len),
            (Self::List(l), Node::Array { len, .. }) => l.append_array(cx, index, len),
            (column, _) => {
                column.append_null();
                return false;
            }
        }
        true
    }

    /// Appends a null (an absent element).
    pub(crate) fn append_null(&mut self) {
        self.append_nulls(1);
    }

    /// Appends `n` nulls. A struct's children are padded lazily, when they next get a
    /// value or the batch is finished, so the work per row is proportional to the
    /// elements present, not to the schema.
    fn append_nulls(&mut self, n: usize) {
        match self {
            Self::Boolean(b) => b.append_nulls(n),
            Self::Integer(b) => b.append_nulls(n),
            Self::String(b) | Self::NumberText(b) => b.append_nulls(n),
            Self::Decimal { value, text } => {
                value.append_nulls(n);
                text.append_nulls(n);
            }
            Self::Temporal { text, ts } => {
                text.append_nulls(n);
                ts.append_nulls(n);
            }
            Self::Struct(s) => {
                s.validity.append_n_nulls(n);
                s.rows += n;
            }
            Self::List(l) => {
                let last = l.offsets.last().copied().unwrap_or(0);
                l.offsets.resize(l.offsets.len() + n, last);
                l.validity.append_n_nulls(n);
            }
        }
    }

    /// Finishes the arrays built so far (one, or two with a companion) into `out`.
    pub(crate) fn finish(&mut self, out: &mut Vec<ArrayRef>) {
        match self {
            Self::Boolean(b) => out.push(Arc::new(b.finish())),
            Self::Integer(b) => out.push(Arc::new(b.finish())),
            Self::String(b) | Self::NumberText(b) => out.push(Arc::new(b.finish())),
            Self::Decimal { value, text } => {
                out.push(Arc::new(value.finish()));
                out.push(Arc::new(text.finish()));
            }
            Self::Temporal { text, ts } => {
                out.push(Arc::new(text.finish()));
                out.push(Arc::new(ts.finish()));
            }
            Self::Struct(s) => out.push(Arc::new(s.finish())),
            Self::List(l) => out.push(Arc::new(l.finish())),
        }
    }
}

fn as_i32(n: StaticNode) -> Option<i32> {
    match n {
        StaticNode::I64(v) => i32::try_from(v).ok(),
        StaticNode::U64(v) => i32::try_from(v).ok(),
        _ => None,
    }
}

fn as_f64(n: StaticNode) -> f64 {
    match n {
        StaticNode::I64(v) => v as f64,
        StaticNode::U64(v) => v as f64,
        StaticNode::F64(v) => v,
        _ => f64::NAN,
    }
}

/// A struct: one decoder per typed child, found by JSON key.
pub(crate) struct StructColumn {
    fields: Fields,
    columns: Vec<Column>,
    /// The key of each child, then the keys accepted and not stored (`resourceType`).
    names: Vec<Box<str>>,
    lookup: FxHashMap<Box<str>, u32>,
    /// The child found at each position of the last objects: servers write the keys
    /// of an element in the same order, so one comparison usually finds the child.
    order: Vec<u32>,
    validity: NullBufferBuilder,
    /// Rows of this batch (the validity's length, kept here: asking the builder is a
    /// call per value).
    rows: usize,
    /// Rows each child has values (or nulls) for; the rest are padded with nulls when
    /// the child next gets a value, or at the end of the batch.
    filled: Vec<usize>,
}

impl StructColumn {
    /// A struct decoder for `children`; keys in `skip` are accepted and not stored.
    pub(crate) fn new(children: &[Element], skip: &[&str]) -> Self {
        let names: Vec<Box<str>> = children
            .iter()
            .map(|c| c.name.as_str())
            .chain(skip.iter().copied())
            .map(Box::from)
            .collect();
        let lookup = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i as u32))
            .collect();
        let columns: Vec<Column> = children.iter().map(Column::for_element).collect();
        let mut fields = Vec::with_capacity(children.len() + 4);
        for (child, column) in children.iter().zip(&columns) {
            fields.push(Field::new(&child.name, column.data_type(), true));
            if let Some((suffix, data_type)) = companion(child) {
                fields.push(Field::new(
                    format!("{}{suffix}", child.name),
                    data_type,
                    true,
                ));
            }
        }
        Self {
            fields: Fields::from(fields),
            names,
            lookup,
            order: Vec::new(),
            validity: NullBufferBuilder::new(0),
            rows: 0,
            filled: vec![0; columns.len()],
            columns,
        }
    }

    /// The child (or skipped key, past the children) of `key`, the `position`th key of
    /// its object.
    fn find(&mut self, position: usize, key: &str) -> Option<usize> {
        if let Some(&c) = self.order.get(position)
            && same_key(&self.names[c as usize], key)
        {
            return Some(c as usize);
        }
        let c = *self.lookup.get(key)?;
        match self.order.len() {
            n if position < n => self.order[position] = c,
            n if position == n && n < self.names.len() => self.order.push(c),
            _ => {}
        }
        Some(c as usize)
    }

    /// Decodes the members of the object at `index` into the children.
    pub(crate) fn append_object(&mut self, cx: &mut Cx<'_, '_>, index: usize, len: usize) {
        let row = self.rows;
        let mut key_index = index + 1;
        for position in 0..len {
            let value = key_index + 1;
            let next = value + node_span(cx.tape, value);
            let Node::String(key) = cx.tape[key_index] else {
                unreachable!("object keys are strings")
            };
            let key_seg = Seg::Key(key_index as u32);
            match self.find(position, key) {
                Some(c) if c >= self.columns.len() => {}
                // A child already filled for `row` has a value: the key is repeated.
                Some(c) if self.filled[c] <= row => {
                    let column = &mut self.columns[c];
                    if self.filled[c] < row {
                        column.append_nulls(row - self.filled[c]);
                    }
                    self.filled[c] = row + 1;
                    cx.path.push(key_seg);
                    let accepted = column.append(cx, value);
                    cx.path.pop();
                    if !accepted {
                        cx.spill(key_seg, value);
                    }
                }
                // An unknown element, or a repeated key (the last one wins when read back).
                _ => cx.spill(key_seg, value),
            }
            key_index = next;
        }
        self.validity.append_non_null();
        self.rows += 1;
    }

    /// The children's arrays, in field order, and the struct's validity; starts anew.
    pub(crate) fn finish_columns(&mut self) -> (Vec<ArrayRef>, Option<NullBuffer>) {
        let mut arrays = Vec::with_capacity(self.fields.len());
        for (column, filled) in self.columns.iter_mut().zip(&mut self.filled) {
            if *filled < self.rows {
                column.append_nulls(self.rows - *filled);
            }
            column.finish(&mut arrays);
            *filled = 0;
        }
        self.rows = 0;
        (arrays, self.validity.finish())
    }

    fn finish(&mut self) -> StructArray {
        let (arrays, nulls) = self.finish_columns();
        StructArray::new(self.fields.clone(), arrays, nulls)
    }
}

/// A list: offsets and validity, and the decoder of its items.
pub(crate) struct ListColumn {
    field: FieldRef,
    offsets: Vec<i32>,
    validity: NullBufferBuilder,
    item: Column,
}

impl ListColumn {
    fn append_array(&mut self, cx: &mut Cx<'_, '_>, index: usize, len: usize) {
        let mut item_index = index + 1;
        for n in 0..len {
            let next = item_index + node_span(cx.tape, item_index);
            if matches!(cx.tape[item_index], Node::Static(StaticNode::Null)) {
                self.item.append_null();
            } else {
                let seg = Seg::Index(n as u32);
                cx.path.push(seg);
                let accepted = self.item.append(cx, item_index);
                cx.path.pop();
                if !accepted {
                    cx.spill(seg, item_index);
                }
            }
            item_index = next;
        }
        let last = self.offsets.last().copied().unwrap_or(0);
        self.offsets.push(last + len as i32);
        self.validity.append_non_null();
    }

    fn finish(&mut self) -> ListArray {
        let mut values = Vec::with_capacity(1);
        self.item.finish(&mut values);
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        ListArray::new(
            self.field.clone(),
            offsets,
            values.remove(0),
            self.validity.finish(),
        )
    }
}

/// Whether two keys are equal. Keys are short (most under 16 bytes): two overlapping
/// word loads compare them without a call to `memcmp`, which was a tenth of the time
/// of finding a child.
#[inline]
fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        8..=16 => {
            a.first_chunk::<8>() == b.first_chunk::<8>()
                && a.last_chunk::<8>() == b.last_chunk::<8>()
        }
        4..=7 => {
            a.first_chunk::<4>() == b.first_chunk::<4>()
                && a.last_chunk::<4>() == b.last_chunk::<4>()
        }
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// Whether `float`, written as the rebuild writes it (serde_json's shortest form, zmij:
/// `83.8`, `100.0`), is exactly `text`. Then the `_text` companion stays null: most
/// decimals need no second copy (a tenth of Observation's bytes on Synthea), and those
/// whose text the float would change (`1.50`, `100`, `1e2`, `-0`, `1e400`) keep it.
fn float_spells(float: f64, text: &str) -> bool {
    float.is_finite() && zmij::Buffer::new().format_finite(float) == text
}

#[cfg(test)]
mod tests {
    use super::{float_spells, same_key};

    /// Keys of every length class compare as `==` does, a difference anywhere counts.
    #[test]
    fn same_key_agrees_with_string_equality() {
        let base = "abcdefghijklmnopqrstuvwxyz";
        for len in 0..=base.len() {
            let key = &base[..len];
            assert!(same_key(key, key), "{key}");
            for at in 0..len {
                let mut other = key.as_bytes().to_vec();
                other[at] = b'_';
                let other = std::str::from_utf8(&other).unwrap();
                assert!(!same_key(key, other), "{key} vs {other}");
            }
            assert!(!same_key(key, &base[..len.saturating_sub(1)]) || len == 0);
        }
    }

    /// The rebuild writes a decimal without text through serde_json: `float_spells`
    /// must agree with it exactly, or a number would come back respelled.
    #[test]
    fn float_spells_as_serde_json_writes_the_float() {
        for (text, float) in [
            ("83.8", 83.8),
            ("0.1", 0.1),
            ("100.0", 100.0),
            ("1e21", 1e21),
            ("123456.789", 123456.789),
            ("5e-324", 5e-324),
            ("-2.5", -2.5),
        ] {
            let serde = serde_json::Number::from_f64(float).unwrap().to_string();
            assert_eq!(float_spells(float, text), serde == text, "{text}: {serde}");
            assert!(float_spells(float, &serde), "{serde}");
        }
        for (text, float) in [
            ("1.50", 1.5),
            ("100", 100.0),
            ("1e2", 100.0),
            ("-0", 0.0),
            ("1E400", f64::INFINITY),
        ] {
            assert!(!float_spells(float, text), "{text}");
        }
    }
}
