//! A ViewDefinition's JSON, checked and compiled once into a [`ViewDefinition`].
//!
//! Every problem is reported with the JSON Pointer of the offending part of the view
//! (`/select/0/column/2/path`), so a view author can find it. Checked here: the
//! structure (required and known members, their JSON types), constants (exactly one
//! `value[x]` of a supported type), column names (database-friendly and unique),
//! `unionAll` branches (same column names in the same order), column types (FHIR
//! primitive types), and every FHIRPath expression (parsed and inside the subset).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde_json::{Map, Value};

use super::fhirpath::{
    PathError,
    compile::{Compiled, Expr, Scope, compile},
    types::Ty,
    value::{Item, Src},
};

/// Why a ViewDefinition was refused.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The text is not JSON.
    #[error("{origin}: not JSON: {source}")]
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

/// How a select iterates.
#[derive(Debug)]
pub(crate) enum Iteration {
    /// Once, over its parent's focus.
    Once,
    /// Once per item of the expression's result.
    ForEach(PathExpr),
    /// As `ForEach`, with one row of nulls when the result is empty.
    ForEachOrNull(PathExpr),
    /// Once per node reached by applying the expressions recursively.
    Repeat(Vec<PathExpr>),
}

/// A compiled `select` (the view itself is the root one).
#[derive(Debug)]
pub(crate) struct SelectNode {
    pub iteration: Iteration,
    /// The node's own columns: (output column index, expression).
    pub columns: Vec<(usize, PathExpr)>,
    pub selects: Vec<SelectNode>,
    pub union: Vec<SelectNode>,
    /// Number of output columns the node's rows cover (its own, its selects', its
    /// union's), contiguous in the output.
    pub width: usize,
    /// Buffer of the node's rows, of its own columns' row, of its union's rows.
    pub rows_buf: usize,
    pub own_buf: usize,
    pub union_buf: usize,
    /// The parts whose product makes a row: (buffer, width), own columns first.
    pub parts: Vec<(usize, usize)>,
    /// Index of the node's iteration scratch.
    pub id: usize,
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

/// The members a ViewDefinition may have (its own, and those of every canonical
/// resource, which are ignored).
const VIEW_MEMBERS: &[&str] = &[
    "resourceType",
    "id",
    "meta",
    "implicitRules",
    "language",
    "text",
    "contained",
    "extension",
    "modifierExtension",
    "url",
    "identifier",
    "version",
    "versionAlgorithmString",
    "versionAlgorithmCoding",
    "name",
    "title",
    "status",
    "experimental",
    "date",
    "publisher",
    "contact",
    "description",
    "useContext",
    "jurisdiction",
    "purpose",
    "copyright",
    "copyrightLabel",
    "resource",
    "resourceProfile",
    "fhirVersion",
    "profile",
    "constant",
    "select",
    "where",
];
const SELECT_MEMBERS: &[&str] = &[
    "column",
    "select",
    "unionAll",
    "forEach",
    "forEachOrNull",
    "repeat",
    "description",
    "extension",
];
const COLUMN_MEMBERS: &[&str] = &[
    "name",
    "path",
    "description",
    "collection",
    "type",
    "tag",
    "extension",
];
const WHERE_MEMBERS: &[&str] = &["path", "description", "extension"];

/// Constant types: the `value[x]` suffix and the FHIR type of the value.
const CONSTANT_TYPES: &[(&str, Ty)] = &[
    ("Base64Binary", Ty::Base64Binary),
    ("Boolean", Ty::Boolean),
    ("Canonical", Ty::Canonical),
    ("Code", Ty::Code),
    ("Date", Ty::Date),
    ("DateTime", Ty::DateTime),
    ("Decimal", Ty::Decimal),
    ("Id", Ty::Id),
    ("Instant", Ty::Instant),
    ("Integer", Ty::Integer),
    ("Integer64", Ty::Integer64),
    ("Markdown", Ty::Markdown),
    ("Oid", Ty::Oid),
    ("String", Ty::String),
    ("PositiveInt", Ty::PositiveInt),
    ("Time", Ty::Time),
    ("UnsignedInt", Ty::UnsignedInt),
    ("Uri", Ty::Uri),
    ("Url", Ty::Url),
    ("Uuid", Ty::Uuid),
];

/// Names that `%name` resolves to without a constant.
const RESERVED_CONSTANTS: &[&str] = &[
    "rowIndex",
    "resource",
    "rootResource",
    "ucum",
    "sct",
    "loinc",
];

/// The state of loading one view.
struct Loader<'o> {
    origin: &'o str,
    pool: Vec<Box<str>>,
    constants: Vec<(String, Item)>,
    columns: Vec<ColumnDef>,
    buffers: usize,
    nodes: usize,
}

impl<'o> Loader<'o> {
    fn new(origin: &'o str) -> Self {
        Self {
            origin,
            pool: Vec::new(),
            constants: Vec::new(),
            columns: Vec::new(),
            buffers: 0,
            nodes: 0,
        }
    }

    fn err(&self, pointer: &str, problem: impl Into<String>) -> ViewError {
        ViewError::Invalid {
            origin: self.origin.to_owned(),
            pointer: if pointer.is_empty() {
                "/".to_owned()
            } else {
                pointer.to_owned()
            },
            problem: problem.into(),
        }
    }

    fn view(mut self, value: &Value) -> Result<ViewDefinition, ViewError> {
        let obj = self.object(value, "", VIEW_MEMBERS)?;
        if let Some(rt) = obj.get("resourceType")
            && rt.as_str() != Some("ViewDefinition")
        {
            return Err(self.err("/resourceType", "must be \"ViewDefinition\""));
        }
        let resource = match obj.get("resource") {
            None => return Err(self.err("/resource", "required: the resource type to select from")),
            Some(Value::String(r))
                if r.as_bytes().first().is_some_and(u8::is_ascii_uppercase)
                    && r.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                r.clone()
            }
            Some(_) => {
                return Err(self.err(
                    "/resource",
                    "must be a resource type name such as \"Patient\"",
                ));
            }
        };
        let name = match obj.get("name") {
            None => default_name(self.origin),
            Some(Value::String(n)) => n.clone(),
            Some(_) => return Err(self.err("/name", "must be a string")),
        };
        if let Some(constants) = obj.get("constant") {
            self.constants(constants)?;
        }
        let mut wheres = Vec::new();
        if let Some(list) = obj.get("where") {
            for (i, w) in self.array(list, "/where", false)?.iter().enumerate() {
                let pointer = format!("/where/{i}");
                let w = self.object(w, &pointer, WHERE_MEMBERS)?;
                let (path, ty) = self.required_path(w, &pointer)?;
                if let Some(ty) = ty
                    && ty != Ty::Boolean
                {
                    return Err(self.err(
                        &path.pointer,
                        format!("must yield a boolean, but yields {}", ty.name()),
                    ));
                }
                wheres.push(path);
            }
        }
        let Some(selects) = obj.get("select") else {
            return Err(self.err("/select", "required: at least one select"));
        };
        let selects = self.selects(selects, "/select")?;
        let root = self.node(Iteration::Once, Vec::new(), selects, Vec::new(), 0);
        self.check_unique_names()?;
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                let item = c.out.data_type();
                let dt = if c.collection {
                    DataType::List(Arc::new(Field::new(LIST_ITEM, item, true)))
                } else {
                    item
                };
                Field::new(&c.name, dt, true)
            })
            .collect();
        Ok(ViewDefinition {
            name,
            resource,
            pool: self.pool,
            wheres,
            root,
            columns: self.columns,
            buffers: self.buffers,
            nodes: self.nodes,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// `value` as an object whose members are all in `known`.
    fn object<'v>(
        &self,
        value: &'v Value,
        pointer: &str,
        known: &[&str],
    ) -> Result<&'v Map<String, Value>, ViewError> {
        let obj = value
            .as_object()
            .ok_or_else(|| self.err(pointer, "must be an object"))?;
        if let Some(unknown) = obj.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(self.err(
                &format!("{pointer}/{}", escape(unknown)),
                format!(
                    "unknown member {unknown:?} (expected one of {})",
                    known.join(", ")
                ),
            ));
        }
        Ok(obj)
    }

    /// `value` as an array, non-empty when `non_empty`.
    fn array<'v>(
        &self,
        value: &'v Value,
        pointer: &str,
        non_empty: bool,
    ) -> Result<&'v Vec<Value>, ViewError> {
        let list = value
            .as_array()
            .ok_or_else(|| self.err(pointer, "must be an array"))?;
        if non_empty && list.is_empty() {
            return Err(self.err(pointer, "must not be empty"));
        }
        Ok(list)
    }

    /// Compiles the FHIRPath text at `pointer`.
    fn path(&mut self, value: &Value, pointer: &str) -> Result<(PathExpr, Option<Ty>), ViewError> {
        let text = value
            .as_str()
            .ok_or_else(|| self.err(pointer, "must be a FHIRPath expression (a string)"))?;
        let mut scope = Scope {
            pool: &mut self.pool,
            constants: &self.constants,
        };
        match compile(text, &mut scope) {
            Ok(Compiled { expr, ty }) => Ok((
                PathExpr {
                    expr,
                    pointer: pointer.to_owned(),
                },
                ty,
            )),
            Err(PathError { pos, message }) => Err(self.err(
                pointer,
                format!("{message} (at character {} of {text:?})", pos + 1),
            )),
        }
    }

    fn required_path(
        &mut self,
        obj: &Map<String, Value>,
        pointer: &str,
    ) -> Result<(PathExpr, Option<Ty>), ViewError> {
        let value = obj
            .get("path")
            .ok_or_else(|| self.err(&format!("{pointer}/path"), "required"))?;
        self.path(value, &format!("{pointer}/path"))
    }

    fn constants(&mut self, value: &Value) -> Result<(), ViewError> {
        for (i, c) in self.array(value, "/constant", false)?.iter().enumerate() {
            let pointer = format!("/constant/{i}");
            let obj = c
                .as_object()
                .ok_or_else(|| self.err(&pointer, "must be an object"))?;
            let name = match obj.get("name") {
                Some(Value::String(n)) if is_sql_name(n) => n.clone(),
                Some(_) => {
                    return Err(self.err(
                        &format!("{pointer}/name"),
                        "must be a name of letters, digits and '_', starting with a letter",
                    ));
                }
                None => return Err(self.err(&format!("{pointer}/name"), "required")),
            };
            if RESERVED_CONSTANTS.contains(&name.as_str()) {
                return Err(self.err(&format!("{pointer}/name"), format!("%{name} is reserved")));
            }
            if self.constants.iter().any(|(n, _)| *n == name) {
                return Err(self.err(
                    &format!("{pointer}/name"),
                    format!("constant {name:?} is defined twice"),
                ));
            }
            let mut values = obj.iter().filter(|(k, _)| k.starts_with("value"));
            let (key, v) = match (values.next(), values.next()) {
                (Some(one), None) => one,
                (None, _) => {
                    return Err(self.err(
                        &pointer,
                        "needs a value[x] (valueString, valueInteger, ...)",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(self.err(&pointer, "has more than one value[x]"));
                }
            };
            if let Some(other) = obj.keys().find(|k| {
                !k.starts_with("value") && !["name", "extension", "id"].contains(&k.as_str())
            }) {
                return Err(self.err(
                    &format!("{pointer}/{}", escape(other)),
                    format!("unknown member {other:?}"),
                ));
            }
            let value_pointer = format!("{pointer}/{}", escape(key));
            let item = self.constant_value(&key["value".len()..], v, &value_pointer)?;
            self.constants.push((name, item));
        }
        Ok(())
    }

    /// The value of a constant `value<suffix>`.
    fn constant_value(
        &mut self,
        suffix: &str,
        v: &Value,
        pointer: &str,
    ) -> Result<Item, ViewError> {
        let Some(&(_, ty)) = CONSTANT_TYPES.iter().find(|(s, _)| *s == suffix) else {
            return Err(self.err(
                pointer,
                format!("constants of type {suffix} are not supported (only primitive types)"),
            ));
        };
        let bad = |what: &str| self.err(pointer, format!("must be {what}"));
        Ok(match ty {
            Ty::Boolean => Item::Bool(v.as_bool().ok_or_else(|| bad("a boolean"))?),
            Ty::Integer | Ty::UnsignedInt | Ty::PositiveInt => {
                let i = v.as_i64().ok_or_else(|| bad("an integer"))?;
                if (ty == Ty::UnsignedInt && i < 0) || (ty == Ty::PositiveInt && i < 1) {
                    return Err(bad("in the range of its type"));
                }
                Item::Int(i)
            }
            // integer64 is a string in JSON (R5); accept a number too.
            Ty::Integer64 => Item::Int(
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| bad("an integer"))?,
            ),
            Ty::Decimal => {
                let Value::Number(n) = v else {
                    return Err(bad("a number"));
                };
                // With arbitrary precision, the number keeps its text: `1.50` has 2 digits.
                let text = n.to_string();
                Item::Dec {
                    v: n.as_f64().ok_or_else(|| bad("a number"))?,
                    scale: super::fhirpath::number::scale_of(&text),
                }
            }
            _ => {
                let s = v.as_str().ok_or_else(|| bad("a string"))?;
                if ty.is_temporal() && !super::fhirpath::temporal::valid(s, ty) {
                    return Err(bad(&format!("a valid {}", ty.name())));
                }
                let src = intern(&mut self.pool, s);
                Item::Str { src, ty }
            }
        })
    }

    fn selects(&mut self, value: &Value, pointer: &str) -> Result<Vec<SelectNode>, ViewError> {
        let list = self.array(value, pointer, true)?;
        let mut out = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            out.push(self.select(s, &format!("{pointer}/{i}"))?);
        }
        Ok(out)
    }

    fn select(&mut self, value: &Value, pointer: &str) -> Result<SelectNode, ViewError> {
        let obj = self.object(value, pointer, SELECT_MEMBERS)?;
        let iterations: Vec<&str> = ["forEach", "forEachOrNull", "repeat"]
            .into_iter()
            .filter(|k| obj.contains_key(*k))
            .collect();
        if iterations.len() > 1 {
            return Err(self.err(
                pointer,
                format!("{} cannot be combined", iterations.join(" and ")),
            ));
        }
        let iteration = if let Some(v) = obj.get("forEach") {
            Iteration::ForEach(self.path(v, &format!("{pointer}/forEach"))?.0)
        } else if let Some(v) = obj.get("forEachOrNull") {
            Iteration::ForEachOrNull(self.path(v, &format!("{pointer}/forEachOrNull"))?.0)
        } else if let Some(v) = obj.get("repeat") {
            let rp = format!("{pointer}/repeat");
            let list = self.array(v, &rp, true)?;
            let mut paths = Vec::with_capacity(list.len());
            for (i, p) in list.iter().enumerate() {
                paths.push(self.path(p, &format!("{rp}/{i}"))?.0);
            }
            Iteration::Repeat(paths)
        } else {
            Iteration::Once
        };
        let first = self.columns.len();
        let mut columns = Vec::new();
        if let Some(list) = obj.get("column") {
            let cp = format!("{pointer}/column");
            for (i, c) in self.array(list, &cp, true)?.iter().enumerate() {
                columns.push(self.column(c, &format!("{cp}/{i}"))?);
            }
        }
        let selects = match obj.get("select") {
            Some(v) => self.selects(v, &format!("{pointer}/select"))?,
            None => Vec::new(),
        };
        let union = match obj.get("unionAll") {
            Some(v) => self.union(v, &format!("{pointer}/unionAll"))?,
            None => Vec::new(),
        };
        Ok(self.node(iteration, columns, selects, union, first))
    }

    /// The branches of a `unionAll`: each must produce the same columns, in the same
    /// order, as the first; all map onto the first's output columns.
    fn union(&mut self, value: &Value, pointer: &str) -> Result<Vec<SelectNode>, ViewError> {
        let list = self.array(value, pointer, true)?;
        let base = self.columns.len();
        let mut branches = Vec::with_capacity(list.len());
        let mut first_columns: Vec<ColumnDef> = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let bp = format!("{pointer}/{i}");
            let mut branch = self.select(s, &bp)?;
            if i == 0 {
                first_columns = self.columns[base..].to_vec();
            } else {
                let mine: Vec<ColumnDef> =
                    self.columns.drain(base + first_columns.len()..).collect();
                let names =
                    |cols: &[ColumnDef]| cols.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
                if names(&mine) != names(&first_columns) {
                    return Err(self.err(
                        &bp,
                        format!(
                            "unionAll branches must have the same columns in the same order: [{}] here, [{}] in the first",
                            names(&mine).join(", "),
                            names(&first_columns).join(", ")
                        ),
                    ));
                }
                for (k, (a, b)) in first_columns.iter().zip(&mine).enumerate() {
                    self.reconcile(base + k, a, b)?;
                }
                // The branch's columns are the first branch's: point at those.
                shift_columns(&mut branch, first_columns.len());
            }
            branches.push(branch);
        }
        Ok(branches)
    }

    /// Makes the column at `index` (first defined by `first`) fit the same column of
    /// another union branch (`other`): same collection-ness, same or inferable type.
    fn reconcile(
        &mut self,
        index: usize,
        first: &ColumnDef,
        other: &ColumnDef,
    ) -> Result<(), ViewError> {
        if first.collection != other.collection {
            return Err(self.err(
                &other.pointer,
                format!(
                    "column {:?} is a collection in one unionAll branch only",
                    other.name
                ),
            ));
        }
        if first.out == other.out {
            return Ok(());
        }
        match (first.explicit, other.explicit) {
            (true, true) => Err(self.err(
                &other.pointer,
                format!(
                    "column {:?} is {} here but {} in the first unionAll branch",
                    other.name,
                    other.out.name(),
                    first.out.name()
                ),
            )),
            // An explicit type wins over an inferred one; two inferred types that differ
            // fall back to text.
            (true, false) => Ok(()),
            (false, true) => {
                self.columns[index].out = other.out;
                self.columns[index].explicit = true;
                Ok(())
            }
            (false, false) => {
                self.columns[index].out = OutType::Utf8;
                Ok(())
            }
        }
    }

    fn column(&mut self, value: &Value, pointer: &str) -> Result<(usize, PathExpr), ViewError> {
        let obj = self.object(value, pointer, COLUMN_MEMBERS)?;
        let name = match obj.get("name") {
            Some(Value::String(n)) if is_sql_name(n) => n.clone(),
            Some(_) => {
                return Err(self.err(
                    &format!("{pointer}/name"),
                    "must be a database-friendly name: letters, digits and '_', starting with a letter",
                ));
            }
            None => return Err(self.err(&format!("{pointer}/name"), "required")),
        };
        let (path, inferred) = self.required_path(obj, pointer)?;
        let collection = match obj.get("collection") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(self.err(&format!("{pointer}/collection"), "must be true or false"));
            }
        };
        let (out, explicit) = match obj.get("type") {
            None => (OutType::of_ty(inferred), false),
            Some(Value::String(t)) => {
                let t = t
                    .strip_prefix("http://hl7.org/fhir/StructureDefinition/")
                    .unwrap_or(t);
                let out = OutType::of_fhir_type(t).ok_or_else(|| {
                    self.err(
                        &format!("{pointer}/type"),
                        format!("{t:?} is not a FHIR primitive type"),
                    )
                })?;
                (out, true)
            }
            Some(_) => return Err(self.err(&format!("{pointer}/type"), "must be a string")),
        };
        if let Some(tags) = obj.get("tag") {
            self.array(tags, &format!("{pointer}/tag"), false)?;
        }
        self.columns.push(ColumnDef {
            name,
            out,
            collection,
            explicit,
            pointer: path.pointer.clone(),
        });
        Ok((self.columns.len() - 1, path))
    }

    /// Assembles a node whose output columns start at `first`.
    fn node(
        &mut self,
        iteration: Iteration,
        columns: Vec<(usize, PathExpr)>,
        selects: Vec<SelectNode>,
        union: Vec<SelectNode>,
        first: usize,
    ) -> SelectNode {
        let mut next_buffer = || {
            self.buffers += 1;
            self.buffers - 1
        };
        let (rows_buf, own_buf, union_buf) = (next_buffer(), next_buffer(), next_buffer());
        let mut parts = vec![(own_buf, columns.len())];
        parts.extend(selects.iter().map(|s| (s.rows_buf, s.width)));
        let union_width = union.first().map_or(0, |u| u.width);
        if !union.is_empty() {
            parts.push((union_buf, union_width));
        }
        let width = parts.iter().map(|(_, w)| w).sum();
        debug_assert_eq!(first + width, self.columns.len());
        self.nodes += 1;
        SelectNode {
            iteration,
            columns,
            selects,
            union,
            width,
            rows_buf,
            own_buf,
            union_buf,
            parts,
            id: self.nodes - 1,
        }
    }

    fn check_unique_names(&self) -> Result<(), ViewError> {
        for (i, c) in self.columns.iter().enumerate() {
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return Err(self.err(
                    &c.pointer.replace("/path", "/name"),
                    format!("column name {:?} is used twice", c.name),
                ));
            }
        }
        Ok(())
    }
}

/// Moves the output column indices of `node` and its descendants down by `by`.
fn shift_columns(node: &mut SelectNode, by: usize) {
    for (index, _) in &mut node.columns {
        *index -= by;
    }
    for child in node.selects.iter_mut().chain(&mut node.union) {
        shift_columns(child, by);
    }
}

/// Adds `s` to the pool (once).
fn intern(pool: &mut Vec<Box<str>>, s: &str) -> Src {
    if let Some(i) = pool.iter().position(|p| &**p == s) {
        return Src::Pool(i as u32);
    }
    pool.push(s.into());
    Src::Pool(pool.len() as u32 - 1)
}

/// A name usable as an SQL column name: `^[A-Za-z][A-Za-z0-9_]*$`.
fn is_sql_name(name: &str) -> bool {
    name.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A JSON Pointer token (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The file name of `origin` without directories and extension.
fn default_name(origin: &str) -> String {
    let file = origin.rsplit(['/', '\\']).next().unwrap_or(origin);
    file.split('.').next().unwrap_or(file).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str) -> Result<ViewDefinition, ViewError> {
        ViewDefinition::from_json(json, "t.json")
    }

    fn problem(json: &str) -> (String, String) {
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

    #[test]
    fn errors_name_the_json_pointer() {
        let (pointer, problem) = problem(
            r#"{"resource":"Patient","select":[{"column":[{"name":"a","path":"id"},
                {"name":"b","path":"id"},{"name":"c","path":"name.bogus()"}]}]}"#,
        );
        assert_eq!(pointer, "/select/0/column/2/path");
        assert!(problem.contains("bogus() is not supported"), "{problem}");

        assert_eq!(problem_pointer(r#"{"select":[]}"#), "/resource");
        assert_eq!(
            problem_pointer(r#"{"resource":"Patient","select":[]}"#),
            "/select"
        );
        assert_eq!(
            problem_pointer(r#"{"resource":"Patient","select":[{"forEach":1}]}"#),
            "/select/0/forEach"
        );
        assert_eq!(
            problem_pointer(r#"{"resource":"Patient","select":[{"colum":[]}]}"#),
            "/select/0/colum"
        );
        assert_eq!(
            problem_pointer(
                r#"{"resource":"Patient","constant":[{"name":"x"}],"select":[{"column":[{"name":"a","path":"%x"}]}]}"#
            ),
            "/constant/0"
        );
        assert_eq!(
            problem_pointer(
                r#"{"resource":"Patient","select":[{"column":[{"name":"a","path":"id"}]},{"column":[{"name":"a","path":"id"}]}]}"#
            ),
            "/select/1/column/0/name"
        );
        assert_eq!(
            problem_pointer(
                r#"{"resource":"Patient","select":[{"column":[{"name":"a","path":"id","type":"HumanName"}]}]}"#
            ),
            "/select/0/column/0/type"
        );
        assert_eq!(
            problem_pointer(
                r#"{"resource":"Patient","where":[{"path":"name.count()"}],"select":[{"column":[{"name":"a","path":"id"}]}]}"#
            ),
            "/where/0/path"
        );
    }

    fn problem_pointer(json: &str) -> String {
        problem(json).0
    }

    #[test]
    fn union_branches_must_agree() {
        let (pointer, problem) = problem(
            r#"{"resource":"Patient","select":[{"unionAll":[
                {"column":[{"name":"a","path":"id"},{"name":"b","path":"id"}]},
                {"column":[{"name":"b","path":"id"},{"name":"a","path":"id"}]}]}]}"#,
        );
        assert_eq!(pointer, "/select/0/unionAll/1");
        assert!(problem.contains("same columns"), "{problem}");
        let view = load(
            r#"{"resource":"Patient","select":[{"unionAll":[
                {"column":[{"name":"a","path":"id"}]},
                {"forEach":"name","column":[{"name":"a","path":"family"}]}]}]}"#,
        )
        .unwrap();
        assert_eq!(view.arrow_schema().fields().len(), 1);
    }

    #[test]
    fn constants_are_typed() {
        let view = load(
            r#"{"resource":"Patient","constant":[{"name":"d","valueDecimal":1.50},
                {"name":"b","valueBoolean":true},{"name":"s","valueDate":"2020-01"}],
                "select":[{"column":[{"name":"x","path":"%d + 1"},{"name":"y","path":"%b"}]}]}"#,
        )
        .unwrap();
        let fields = view.arrow_schema();
        assert_eq!(fields.field(0).data_type(), &DataType::Float64);
        assert_eq!(fields.field(1).data_type(), &DataType::Boolean);
        assert!(
            problem(r#"{"resource":"Patient","constant":[{"name":"s","valueDate":"2020-13"}],"select":[{"column":[{"name":"a","path":"id"}]}]}"#)
                .1
                .contains("valid date")
        );
        assert!(load("not json").is_err());
    }
}
