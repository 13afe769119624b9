//! A ViewDefinition's JSON, checked and compiled once into a [`ViewDefinition`].
//!
//! Every problem is reported with the JSON Pointer of the offending part of the view
//! (`/select/0/column/2/path`), so a view author can find it. Checked here: the
//! structure (required and known members, their JSON types), constants (exactly one
//! `value[x]` of a supported type), column names (database-friendly and unique),
//! `unionAll` branches (same column names in the same order), column types (FHIR
//! primitive types), and every FHIRPath expression (parsed and inside the subset).
//!
//! This module has the public face ([`ViewDefinition`], [`ViewError`]) and the output
//! columns; the loader reads the view's JSON (`loader`), its constants (`constants`)
//! and its tree of selects (`select`).

mod constants;
mod loader;
mod select;

pub(crate) use select::{Iteration, SelectNode};

use arrow_schema::{DataType, SchemaRef};
use serde_json::Value;

use super::fhirpath::{compile::Expr, types::Ty};
use loader::Loader;

/// Why a ViewDefinition was refused.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The text is not JSON.
    #[error("{origin}: not JSON")]
    Json {
        /// Where the view came from (a file name).
        origin: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The view is JSON but not a valid or supported ViewDefinition.
    #[error("{origin}: {pointer}: {problem}")]
    Invalid {
        /// Where the view came from (a file name).
        origin: String,
        /// JSON Pointer to the offending part of the view (`""` is the whole view).
        pointer: String,
        /// What is wrong.
        problem: String,
    },
}

/// The name of the item field of list columns (the Parquet LIST convention, as in the
/// rest of the warehouse).
pub(crate) const LIST_ITEM: &str = "element";

/// The Arrow type of one value of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutType {
    Utf8,
    Boolean,
    Int32,
    Int64,
    Float64,
}

impl OutType {
    /// The output type of a FHIR primitive type name, `None` for other names.
    fn of_fhir_type(name: &str) -> Option<Self> {
        Some(match name {
            "string" | "code" | "id" | "uri" | "url" | "canonical" | "markdown"
            | "base64Binary" | "oid" | "uuid" | "xhtml" | "date" | "dateTime" | "instant"
            | "time" => Self::Utf8,
            "boolean" => Self::Boolean,
            "integer" | "unsignedInt" | "positiveInt" => Self::Int32,
            "integer64" => Self::Int64,
            "decimal" => Self::Float64,
            _ => return None,
        })
    }

    /// The output type for values of an inferred FHIR type (strings when unknown).
    fn of_ty(ty: Option<Ty>) -> Self {
        match ty {
            Some(Ty::Boolean) => Self::Boolean,
            Some(Ty::Integer | Ty::UnsignedInt | Ty::PositiveInt) => Self::Int32,
            Some(Ty::Integer64) => Self::Int64,
            Some(Ty::Decimal) => Self::Float64,
            _ => Self::Utf8,
        }
    }

    pub(crate) fn data_type(self) -> DataType {
        match self {
            Self::Utf8 => DataType::Utf8,
            Self::Boolean => DataType::Boolean,
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "string",
            Self::Boolean => "boolean",
            Self::Int32 => "integer",
            Self::Int64 => "integer64",
            Self::Float64 => "decimal",
        }
    }
}

/// An output column.
#[derive(Debug, Clone)]
pub(crate) struct ColumnDef {
    pub name: String,
    pub out: OutType,
    pub collection: bool,
    /// Whether the type was given (`type`) rather than inferred.
    explicit: bool,
    /// JSON Pointer of the column's `path`, for messages.
    pub pointer: String,
}

/// A compiled expression and where it is in the view.
#[derive(Debug)]
pub(crate) struct PathExpr {
    pub expr: Expr,
    pub pointer: String,
}

/// A compiled ViewDefinition: load it once with [`ViewDefinition::from_json`], then
/// evaluate it over any number of resources with a [`ViewBuilder`](super::ViewBuilder).
#[derive(Debug)]
pub struct ViewDefinition {
    name: String,
    resource: String,
    pub(crate) pool: Vec<Box<str>>,
    pub(crate) wheres: Vec<PathExpr>,
    pub(crate) root: SelectNode,
    pub(crate) columns: Vec<ColumnDef>,
    pub(crate) buffers: usize,
    pub(crate) nodes: usize,
    schema: SchemaRef,
}

impl ViewDefinition {
    /// Parses, checks and compiles a ViewDefinition. `origin` (a file name) prefixes
    /// error messages.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, ViewError> {
        let value: Value = serde_json::from_str(text).map_err(|source| ViewError::Json {
            origin: origin.to_owned(),
            source,
        })?;
        Loader::new(origin).view(&value)
    }

    /// The view's `name`, or the origin's file name without extension when it has none.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The resource type the view selects from (`Patient`).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The Arrow schema of the view's rows: its columns, in order, all nullable.
    pub fn arrow_schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn load(json: &str) -> Result<ViewDefinition, ViewError> {
        ViewDefinition::from_json(json, "t.json")
    }

    pub(super) fn problem(json: &str) -> (String, String) {
        match load(json).unwrap_err() {
            ViewError::Invalid {
                pointer, problem, ..
            } => (pointer, problem),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn schema_follows_column_order_and_types() {
        let view = load(
            r#"{"resource":"Patient","name":"p","select":[
                {"column":[{"name":"id","path":"id","type":"id"},
                           {"name":"active","path":"active","type":"boolean"}]},
                {"forEach":"name","column":[{"name":"given","path":"given","collection":true},
                                            {"name":"n","path":"given.count()"}]}]}"#,
        )
        .unwrap();
        assert_eq!(view.name(), "p");
        assert_eq!(view.resource(), "Patient");
        let schema = view.arrow_schema();
        let types: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone()))
            .collect();
        assert_eq!(types[0], ("id", DataType::Utf8));
        assert_eq!(types[1], ("active", DataType::Boolean));
        assert!(matches!(types[2].1, DataType::List(_)));
        assert_eq!(types[3], ("n", DataType::Int32));
    }
}
