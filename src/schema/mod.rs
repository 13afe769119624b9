//! The table schema of every FHIR resource type.
//!
//! The schemas are generated from the official FHIR R4 StructureDefinitions by
//! [`generate`] and committed under `schemas/r4/<Type>.schema`; the build embeds them, so
//! the same binary always writes the same schema, whatever the data. A schema file lists
//! one element a line, depth first: `<dotted path> <FHIR type> <max>`, for example
//!
//! ```text
//! name HumanName *
//! name.family string 1
//! name.given string *
//! ```
//!
//! [`ResourceSchema::arrow_schema`] maps the element tree onto Arrow (see
//! `schemas/README.md` for the rules): elements keep their JSON names, complex elements
//! become structs, `*` becomes a list, decimals and date/times get a typed companion, and
//! every table ends with the `_lineage` and `_overflow` columns.

pub mod generate;
pub mod sparse;

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

include!(concat!(env!("OUT_DIR"), "/embedded_schemas.rs"));

/// Name of the per-row JSON column holding whatever the typed columns cannot.
pub const OVERFLOW_COLUMN: &str = "_overflow";
/// Name of the struct column that says where a row came from.
pub const LINEAGE_COLUMN: &str = "_lineage";
/// Suffix of the exact-text companion of a decimal column.
pub const TEXT_SUFFIX: &str = "_text";
/// Suffix of the timestamp companion of a date, dateTime or instant column.
pub const TIMESTAMP_SUFFIX: &str = "_ts";
/// Name of the item field of every list (the Parquet LIST convention).
pub const LIST_ITEM: &str = "element";

/// Errors of loading a schema file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SchemaError {
    /// A line of a schema file does not have the `<path> <type> <max>` shape.
    #[error("schema {resource_type}, line {line}: {reason}: {text:?}")]
    BadLine {
        /// The resource type of the file.
        resource_type: String,
        /// 1-based line number in the file.
        line: usize,
        /// What is wrong.
        reason: &'static str,
        /// The line itself.
        text: String,
    },
    /// No committed schema for a resource type.
    #[error("no schema for resource type {0:?} (not an R4 resource type)")]
    UnknownType(String),
}

/// How a primitive FHIR value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    /// `boolean`: Boolean.
    Boolean,
    /// `integer`, `positiveInt`, `unsignedInt`: Int32.
    Integer,
    /// `decimal`: Float64, plus the exact JSON text in `<name>_text` where the float's
    /// shortest form is not that text (null where it is).
    Decimal,
    /// `date`, `dateTime`, `instant`: the exact text, plus a UTC timestamp in `<name>_ts`.
    Temporal,
    /// Every other primitive (string, code, uri, id, time, base64Binary, ...): Utf8.
    String,
}

impl Primitive {
    /// The storage of a FHIR type code, or `None` when the type is complex.
    pub fn of_fhir_type(code: &str) -> Option<Self> {
        Some(match code {
            "boolean" => Self::Boolean,
            "integer" | "positiveInt" | "unsignedInt" => Self::Integer,
            "decimal" => Self::Decimal,
            "date" | "dateTime" | "instant" => Self::Temporal,
            "string" | "code" | "id" | "uri" | "url" | "canonical" | "oid" | "uuid"
            | "markdown" | "base64Binary" | "xhtml" | "time" => Self::String,
            _ => return None,
        })
    }
}

/// What an element holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ElementKind {
    /// A primitive value.
    Primitive(Primitive),
    /// A complex or backbone element: its typed children.
    Struct(Vec<Element>),
}

/// One element of a resource, as typed columns see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    /// The JSON name (choice elements already expanded: `valueQuantity`).
    pub name: String,
    /// The FHIR type code from the definitions (`HumanName`, `dateTime`, ...).
    pub fhir_type: String,
    /// `max = *` in the definitions: stored as a list.
    pub repeated: bool,
    /// Primitive or struct.
    pub kind: ElementKind,
}

/// The schema of one resource type: its element tree and its Arrow schema.
#[derive(Debug)]
pub struct ResourceSchema {
    /// The resource type (`Patient`).
    pub resource_type: String,
    /// Top-level elements, in definition order.
    pub elements: Vec<Element>,
    arrow: SchemaRef,
}

impl ResourceSchema {
    /// Parses the text of a schema file.
    pub fn parse(resource_type: &str, text: &str) -> Result<Self, SchemaError> {
        let mut root: Vec<Element> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason| SchemaError::BadLine {
                resource_type: resource_type.to_owned(),
                line: line_no,
                reason,
                text: line.to_owned(),
            };
            let mut parts = line.split(' ');
            let (Some(path), Some(fhir_type), Some(max), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("expected `<path> <type> <max>`"));
            };
            let repeated = match max {
                "1" => false,
                "*" => true,
                _ => return Err(bad("max must be 1 or *")),
            };
            let kind = match Primitive::of_fhir_type(fhir_type) {
                Some(p) => ElementKind::Primitive(p),
                None => ElementKind::Struct(Vec::new()),
            };
            let (parent, name) = match path.rsplit_once('.') {
                Some((parent, name)) => (Some(parent), name),
                None => (None, path),
            };
            let siblings = match parent {
                None => &mut root,
                Some(parent) => children_of(&mut root, parent)
                    .ok_or_else(|| bad("parent element not listed before"))?,
            };
            siblings.push(Element {
                name: name.to_owned(),
                fhir_type: fhir_type.to_owned(),
                repeated,
                kind,
            });
        }
        prune_empty_structs(&mut root);
        let arrow = Arc::new(arrow_schema_of(&root));
        Ok(Self {
            resource_type: resource_type.to_owned(),
            elements: root,
            arrow,
        })
    }

    /// The Arrow schema of the table: typed columns, then `_lineage` and `_overflow`.
    pub fn arrow_schema(&self) -> SchemaRef {
        self.arrow.clone()
    }
}

/// The children list of the struct element at `path` (dotted), if it is a struct.
fn children_of<'a>(elements: &'a mut [Element], path: &str) -> Option<&'a mut Vec<Element>> {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let element = elements.iter_mut().rev().find(|e| e.name == head)?;
    let ElementKind::Struct(children) = &mut element.kind else {
        return None;
    };
    match rest {
        None => Some(children),
        Some(rest) => children_of(children, rest),
    }
}

/// Structs without typed children would be empty columns: their values go to overflow.
fn prune_empty_structs(elements: &mut Vec<Element>) {
    elements.retain_mut(|e| match &mut e.kind {
        ElementKind::Primitive(_) => true,
        ElementKind::Struct(children) => {
            prune_empty_structs(children);
            !children.is_empty()
        }
    });
}

/// The Arrow type of a timestamp companion column.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn arrow_schema_of(elements: &[Element]) -> Schema {
    let mut fields = fields_of(elements);
    fields.push(Field::new(
        LINEAGE_COLUMN,
        DataType::Struct(lineage_fields()),
        false,
    ));
    fields.push(Field::new(OVERFLOW_COLUMN, DataType::Utf8, true));
    Schema::new(fields)
}

/// The fields of the `_lineage` struct column: where a row came from (source, run,
/// export, file and line), the namespace its resource's identity belongs to, and
/// whether it is the tombstone of a resource deleted on the server.
pub fn lineage_fields() -> Fields {
    Fields::from(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("namespace", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("transaction_time", DataType::Utf8, true),
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("deleted", DataType::Boolean, false),
    ])
}

/// The Arrow fields of a list of elements, companions included, in element order.
pub fn fields_of(elements: &[Element]) -> Vec<Field> {
    let mut fields = Vec::with_capacity(elements.len());
    for element in elements {
        let main = value_type(element);
        let wrap = |dt: DataType| if element.repeated { list_of(dt) } else { dt };
        fields.push(Field::new(&element.name, wrap(main), true));
        if let Some((suffix, dt)) = companion(element) {
            fields.push(Field::new(format!("{}{suffix}", element.name), dt, true));
        }
    }
    fields
}

/// The Arrow type of one value of the element (before list wrapping).
pub fn value_type(element: &Element) -> DataType {
    match &element.kind {
        ElementKind::Primitive(Primitive::Boolean) => DataType::Boolean,
        ElementKind::Primitive(Primitive::Integer) => DataType::Int32,
        // A repeated decimal is stored as its text: no companion lists.
        ElementKind::Primitive(Primitive::Decimal) if !element.repeated => DataType::Float64,
        ElementKind::Primitive(_) => DataType::Utf8,
        ElementKind::Struct(children) => DataType::Struct(Fields::from(fields_of(children))),
    }
}

/// The companion column of a single decimal or temporal element, if it has one.
pub fn companion(element: &Element) -> Option<(&'static str, DataType)> {
    match (&element.kind, element.repeated) {
        (ElementKind::Primitive(Primitive::Decimal), false) => Some((TEXT_SUFFIX, DataType::Utf8)),
        (ElementKind::Primitive(Primitive::Temporal), false) => {
            Some((TIMESTAMP_SUFFIX, timestamp_type()))
        }
        _ => None,
    }
}

/// A list of nullable items, named as the Parquet LIST convention wants.
pub fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new(LIST_ITEM, item, true)))
}

/// Every committed resource schema, each parsed the first time it is asked for (a run
/// touches a few of the 146 types; parsing them all was most of a small run's start).
#[derive(Debug)]
pub struct Registry {
    by_type: HashMap<&'static str, Embedded>,
}

/// An embedded schema file and, once asked for, what parsing it gave.
#[derive(Debug)]
struct Embedded {
    text: &'static str,
    parsed: OnceLock<Result<Arc<ResourceSchema>, SchemaError>>,
}

impl Registry {
    /// The embedded schema files (parsed when first asked for).
    pub fn embedded() -> Result<Self, SchemaError> {
        let by_type = EMBEDDED
            .iter()
            .map(|(resource_type, text)| {
                let parsed = OnceLock::new();
                (*resource_type, Embedded { text, parsed })
            })
            .collect();
        Ok(Self { by_type })
    }

    /// The schema of a resource type, or `None` when it is not an R4 resource type.
    pub fn get(&self, resource_type: &str) -> Option<&Arc<ResourceSchema>> {
        self.require(resource_type).ok()
    }

    /// The schema of a resource type, as an error when unknown.
    pub fn require(&self, resource_type: &str) -> Result<&Arc<ResourceSchema>, SchemaError> {
        let (name, embedded) = self
            .by_type
            .get_key_value(resource_type)
            .ok_or_else(|| SchemaError::UnknownType(resource_type.to_owned()))?;
        embedded
            .parsed
            .get_or_init(|| ResourceSchema::parse(name, embedded.text).map(Arc::new))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// All resource types with a schema, sorted.
    pub fn resource_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self.by_type.keys().copied().collect();
        types.sort_unstable();
        types
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# comment\nid id 1\nname HumanName *\nname.family string 1\nname.given string *\n\
        birthDate date 1\nmultipleBirthInteger integer 1\nempty Period 1\nvalueQuantity Quantity 1\nvalueQuantity.value decimal 1\n";

    #[test]
    fn parses_tree_and_maps_to_arrow() {
        let schema = ResourceSchema::parse("Test", SAMPLE).unwrap();
        let names: Vec<_> = schema.elements.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "name",
                "birthDate",
                "multipleBirthInteger",
                "valueQuantity"
            ]
        );
        let arrow = schema.arrow_schema();
        let names: Vec<_> = arrow.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "name",
                "birthDate",
                "birthDate_ts",
                "multipleBirthInteger",
                "valueQuantity",
                "_lineage",
                "_overflow"
            ]
        );
        let DataType::Struct(q) = arrow.field_with_name("valueQuantity").unwrap().data_type()
        else {
            panic!()
        };
        assert_eq!(q[0].data_type(), &DataType::Float64);
        assert_eq!(q[1].name(), "value_text");
        let DataType::List(item) = arrow.field_with_name("name").unwrap().data_type() else {
            panic!()
        };
        assert_eq!(item.name(), LIST_ITEM);
    }

    #[test]
    fn rejects_malformed_lines_with_position() {
        let err = ResourceSchema::parse("Test", "id id 1\nname.given string *\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = ResourceSchema::parse("Test", "id id 2\n").unwrap_err();
        assert!(err.to_string().contains("max must be"), "{err}");
    }

    #[test]
    fn embedded_registry_has_every_r4_resource() {
        let registry = Registry::embedded().unwrap();
        let types = registry.resource_types();
        assert!(types.len() >= 145, "{} types", types.len());
        // Parsed when first asked for: every embedded file must parse.
        for t in &types {
            registry.require(t).unwrap();
        }
        for t in [
            "Patient",
            "Observation",
            "ExplanationOfBenefit",
            "Claim",
            "Questionnaire",
        ] {
            assert!(registry.get(t).is_some(), "{t}");
        }
        assert!(registry.get("Foo").is_none());
    }
}
