//! Sparse files: a data file holds only the leaves of its table's schema that have a
//! value in it, and reads back in the full schema.
//!
//! A FHIR table has hundreds of leaf columns (ExplanationOfBenefit ~860) and any one
//! export fills a few dozen. Writing the empty ones cost a column chunk, levels and
//! footer entries each: on Synthea, 6 of 20 MB of Parquet and most of a small query's
//! footer parsing. The table's schema stays whole in the Delta log; readers fill the
//! leaves a file lacks with nulls, as Delta's schema evolution asks of every engine, and
//! our own readers do it with [`conform`].
//!
//! [`Leaves`] is a set of leaf positions of a schema in depth-first order (the order of
//! Parquet's columns); [`prune`] keeps those leaves of a batch, [`conform`] restores
//! the others as nulls.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, ListArray, RecordBatch, StructArray, cast::AsArray, new_null_array,
};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields, Schema, SchemaRef};

use super::TEXT_SUFFIX;

/// A set of leaves of a schema, by depth-first position.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Leaves(Vec<bool>);

impl Leaves {
    /// The leaves a batch needs: those with a value, and where a struct or list has a
    /// non-null entry but no leaf below it has a value (`"meta": {}`, `[]`), its first
    /// leaf, whose definition levels record that the entry is there.
    pub fn of(batch: &RecordBatch) -> Self {
        let mut out = Vec::with_capacity(batch.num_columns() * 4);
        mark_children(batch.schema().fields(), batch.columns(), &mut out);
        Self(out)
    }

    /// How many leaves are kept.
    pub fn count(&self) -> usize {
        self.0.iter().filter(|kept| **kept).count()
    }

    /// Whether every leaf kept here is kept in `other` (of the same schema).
    pub fn is_subset(&self, other: &Leaves) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| !a || *b)
    }

    /// Adds the leaves of `other` (of the same schema).
    pub fn union(&mut self, other: &Leaves) {
        if self.0.is_empty() {
            self.0.clone_from(&other.0);
            return;
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= *b;
        }
    }

    /// `schema` with only these leaves; a struct or list left without leaves goes too.
    pub fn prune_schema(&self, schema: &Schema) -> SchemaRef {
        let mut at = 0;
        let fields: Vec<FieldRef> = schema
            .fields()
            .iter()
            .filter_map(|f| self.prune_field(f, &mut at))
            .collect();
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
    }

    fn prune_field(&self, field: &FieldRef, at: &mut usize) -> Option<FieldRef> {
        let data_type = match field.data_type() {
            DataType::Struct(children) => {
                let kept: Fields = children
                    .iter()
                    .filter_map(|c| self.prune_field(c, at))
                    .collect();
                (!kept.is_empty()).then_some(DataType::Struct(kept))?
            }
            DataType::List(item) => DataType::List(self.prune_field(item, at)?),
            _ => {
                *at += 1;
                return self.0[*at - 1].then(|| field.clone());
            }
        };
        Some(Arc::new(field.as_ref().clone().with_data_type(data_type)))
    }
}

/// Pushes, in depth-first order, whether each leaf under `array` is needed.
fn mark(array: &dyn Array, out: &mut Vec<bool>) {
    let start = out.len();
    match array.data_type() {
        DataType::Struct(fields) => mark_children(fields, array.as_struct().columns(), out),
        DataType::List(_) => mark(array.as_list::<i32>().values().as_ref(), out),
        _ => {
            out.push(has_entries(array));
            return;
        }
    }
    if has_entries(array) && !out[start..].contains(&true) && start < out.len() {
        out[start] = true;
    }
}

/// Marks the leaves of the children of a struct (or of a batch). A decimal with a
/// value takes its `_text` companion along even where it is null (the text is kept only
/// when the float would spell the number otherwise, so it shows up late): otherwise the
/// first such text in a table would finish its file.
fn mark_children(fields: &Fields, columns: &[ArrayRef], out: &mut Vec<bool>) {
    let mut decimal_with_value = None;
    for (field, column) in fields.iter().zip(columns) {
        let at = out.len();
        mark(column.as_ref(), out);
        // A struct without children has no leaf at `at`.
        let Some(first) = out.get_mut(at) else {
            decimal_with_value = None;
            continue;
        };
        if let Some(name) = decimal_with_value.take()
            && is_text_of(field.name(), name)
        {
            *first = true;
        }
        if field.data_type() == &DataType::Float64 && *first {
            decimal_with_value = Some(field.name().as_str());
        }
    }
}

/// Whether `name` is `decimal` + [`TEXT_SUFFIX`].
fn is_text_of(name: &str, decimal: &str) -> bool {
    name.strip_prefix(decimal) == Some(TEXT_SUFFIX)
}

fn has_entries(array: &dyn Array) -> bool {
    array.null_count() < array.len()
}

/// `batch` with only the leaves in `leaves`, in the schema `pruned`
/// (`leaves.prune_schema(batch.schema())`). No data is copied.
pub fn prune(
    batch: &RecordBatch,
    leaves: &Leaves,
    pruned: &SchemaRef,
) -> Result<RecordBatch, ArrowError> {
    let mut at = 0;
    let mut columns = Vec::with_capacity(pruned.fields().len());
    let mut kept = pruned.fields().iter().peekable();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let array = prune_array(column, field.data_type(), leaves, &mut at)?;
        if let Some(array) = array {
            match kept.next() {
                Some(f) if f.name() == field.name() => columns.push(array),
                _ => return Err(schema_mismatch(field.name())),
            }
        }
    }
    RecordBatch::try_new(pruned.clone(), columns)
}

fn schema_mismatch(name: &str) -> ArrowError {
    ArrowError::SchemaError(format!("column {name}: the pruned schema does not match"))
}

fn prune_array(
    array: &ArrayRef,
    data_type: &DataType,
    leaves: &Leaves,
    at: &mut usize,
) -> Result<Option<ArrayRef>, ArrowError> {
    match data_type {
        DataType::Struct(fields) => {
            let strukt = array.as_struct();
            let (mut kept_fields, mut kept) = (Vec::new(), Vec::new());
            for (field, child) in fields.iter().zip(strukt.columns()) {
                if let Some(child) = prune_array(child, field.data_type(), leaves, at)? {
                    let field = field
                        .as_ref()
                        .clone()
                        .with_data_type(child.data_type().clone());
                    kept_fields.push(Arc::new(field));
                    kept.push(child);
                }
            }
            if kept.is_empty() {
                return Ok(None);
            }
            let nulls = strukt.nulls().cloned();
            Ok(Some(Arc::new(StructArray::try_new(
                kept_fields.into(),
                kept,
                nulls,
            )?)))
        }
        DataType::List(item) => {
            let list = array.as_list::<i32>();
            let Some(values) = prune_array(list.values(), item.data_type(), leaves, at)? else {
                return Ok(None);
            };
            let item = item
                .as_ref()
                .clone()
                .with_data_type(values.data_type().clone());
            Ok(Some(Arc::new(ListArray::try_new(
                Arc::new(item),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?)))
        }
        _ => {
            *at += 1;
            Ok(leaves.0[*at - 1].then(|| array.clone()))
        }
    }
}

/// `batch`, read from a file holding some of `schema`'s leaves, in `schema`: the
/// columns it has by name, the others null. A leaf whose type differs is an error.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema_ref() == schema || batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(array) => conform_array(array, field, field.name()),
            None => Ok(new_null_array(field.data_type(), rows)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

fn conform_array(array: &ArrayRef, field: &Field, path: &str) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == field.data_type() {
        return Ok(array.clone());
    }
    match (field.data_type(), array.data_type()) {
        (DataType::Struct(fields), DataType::Struct(_)) => {
            let strukt = array.as_struct();
            let children = fields
                .iter()
                .map(|f| match strukt.column_by_name(f.name()) {
                    Some(child) => conform_array(child, f, &format!("{path}.{}", f.name())),
                    None => Ok(new_null_array(f.data_type(), strukt.len())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                strukt.nulls().cloned(),
            )?))
        }
        (DataType::List(item), DataType::List(_)) => {
            let list = array.as_list::<i32>();
            let values = conform_array(list.values(), item, path)?;
            Ok(Arc::new(ListArray::try_new(
                item.clone(),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?))
        }
        (expected, found) => Err(ArrowError::SchemaError(format!(
            "column {path} is {found} in the file and {expected} in the table"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{
        Int32Array, StringArray,
        builder::{ListBuilder, StringBuilder, StructBuilder},
    };

    use super::*;

    /// `id`, `meta {versionId, tag [ {code} ]}`, `n`: a small table of both nestings.
    fn table() -> SchemaRef {
        let tag = Fields::from(vec![Field::new("code", DataType::Utf8, true)]);
        let meta = Fields::from(vec![
            Field::new("versionId", DataType::Utf8, true),
            Field::new(
                "tag",
                DataType::List(Arc::new(Field::new("element", DataType::Struct(tag), true))),
                true,
            ),
        ]);
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("meta", DataType::Struct(meta), true),
            Field::new("n", DataType::Int32, true),
        ]))
    }

    /// A `meta` value: none, or its versionId and its tags' codes (none: no `tag`).
    type Meta<'a> = Option<(Option<&'a str>, Option<Vec<Option<&'a str>>>)>;

    fn meta_column(schema: &SchemaRef, rows: &[Meta<'_>]) -> ArrayRef {
        let DataType::Struct(fields) = schema.field(1).data_type() else {
            unreachable!()
        };
        let DataType::List(item) = fields[1].data_type() else {
            unreachable!()
        };
        let DataType::Struct(tag_fields) = item.data_type() else {
            unreachable!()
        };
        let tags = ListBuilder::new(StructBuilder::from_fields(tag_fields.clone(), 0))
            .with_field(item.clone());
        let mut builder = StructBuilder::new(
            fields.clone(),
            vec![Box::new(StringBuilder::new()), Box::new(tags)],
        );
        for row in rows {
            let (version, tag) = row.clone().unwrap_or((None, None));
            builder
                .field_builder::<StringBuilder>(0)
                .unwrap()
                .append_option(version);
            let list = builder
                .field_builder::<ListBuilder<StructBuilder>>(1)
                .unwrap();
            match tag {
                Some(codes) => {
                    for code in codes {
                        let s = list.values();
                        s.field_builder::<StringBuilder>(0)
                            .unwrap()
                            .append_option(code);
                        s.append(true);
                    }
                    list.append(true);
                }
                None => list.append(false),
            }
            builder.append(row.is_some());
        }
        Arc::new(builder.finish())
    }

    fn batch(meta: ArrayRef, n: Vec<Option<i32>>) -> RecordBatch {
        let schema = table();
        let ids = StringArray::from(vec![Some("a"); n.len()]);
        RecordBatch::try_new(
            schema,
            vec![Arc::new(ids), meta, Arc::new(Int32Array::from(n))],
        )
        .unwrap()
    }

    #[test]
    fn leaves_with_values_are_kept_and_an_empty_table_keeps_none() {
        let schema = table();
        let full = batch(
            meta_column(&schema, &[Some((Some("1"), Some(vec![Some("x")])))]),
            vec![Some(1)],
        );
        assert_eq!(Leaves::of(&full).0, vec![true, true, true, true]);
        let sparse = batch(meta_column(&schema, &[None, None]), vec![None, None]);
        assert_eq!(Leaves::of(&sparse).0, vec![true, false, false, false]);
        let pruned = Leaves::of(&sparse).prune_schema(&schema);
        assert_eq!(pruned.fields().len(), 1);
        assert_eq!(pruned.field(0).name(), "id");
    }

    #[test]
    fn an_entry_without_values_keeps_its_first_leaf() {
        let schema = table();
        // `"meta": {}` and `"meta": {"tag": [{}]}`: present, but no leaf has a value.
        let empty = batch(meta_column(&schema, &[Some((None, None))]), vec![None]);
        assert_eq!(Leaves::of(&empty).0, vec![true, true, false, false]);
        let empty_item = batch(
            meta_column(&schema, &[Some((None, Some(vec![None])))]),
            vec![None],
        );
        assert_eq!(Leaves::of(&empty_item).0, vec![true, false, true, false]);
    }

    #[test]
    fn prune_then_conform_gives_back_the_batch() {
        let schema = table();
        let rows = [
            Some((None, Some(vec![Some("x"), None]))),
            None,
            Some((None, None)),
            Some((None, Some(vec![]))),
        ];
        let original = batch(meta_column(&schema, &rows), vec![None; 4]);
        let leaves = Leaves::of(&original);
        assert_eq!(leaves.count(), 2);
        let pruned_schema = leaves.prune_schema(&schema);
        let pruned = prune(&original, &leaves, &pruned_schema).unwrap();
        assert_eq!(pruned.num_columns(), 2);
        let back = conform(&pruned, &schema).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn a_decimal_with_a_value_keeps_its_text_companion() {
        use arrow_array::Float64Array;
        let schema = Arc::new(Schema::new(vec![
            Field::new("value", DataType::Float64, true),
            Field::new("value_text", DataType::Utf8, true),
            Field::new("other", DataType::Float64, true),
            Field::new("other_text", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(vec![Some(1.5)])),
                Arc::new(StringArray::from(vec![None::<&str>])),
                Arc::new(Float64Array::from(vec![None])),
                Arc::new(StringArray::from(vec![None::<&str>])),
            ],
        )
        .unwrap();
        assert_eq!(Leaves::of(&batch).0, vec![true, true, false, false]);
    }

    #[test]
    fn a_struct_without_children_has_no_leaves_and_is_no_error() {
        let empty = Field::new("empty", DataType::Struct(Fields::empty()), true);
        let schema = Arc::new(Schema::new(vec![
            empty,
            Field::new("n", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StructArray::new_empty_fields(1, None)),
                Arc::new(Int32Array::from(vec![Some(1)])),
            ],
        )
        .unwrap();
        assert_eq!(Leaves::of(&batch).0, vec![true]);
    }

    #[test]
    fn union_and_subset() {
        let mut a = Leaves(vec![true, false, false]);
        let b = Leaves(vec![false, false, true]);
        assert!(!b.is_subset(&a));
        a.union(&b);
        assert!(b.is_subset(&a));
        assert_eq!(a.count(), 2);
        let mut empty = Leaves::default();
        empty.union(&b);
        assert_eq!(empty, b);
    }

    #[test]
    fn a_leaf_of_another_type_is_named() {
        let schema = table();
        let other = Arc::new(Schema::new(vec![Field::new("n", DataType::Utf8, true)]));
        let batch =
            RecordBatch::try_new(other, vec![Arc::new(StringArray::from(vec!["1"]))]).unwrap();
        let error = conform(&batch, &schema).unwrap_err().to_string();
        assert!(error.contains("column n is Utf8"), "{error}");
    }
}
