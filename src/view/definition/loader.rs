//! The loader: the state of loading one view, reading its JSON (members known, types
//! right, every problem with its JSON Pointer) and its top level: `resource`, `name`,
//! `constant`, `where`, `select`, and the Arrow schema of its columns.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use serde_json::{Map, Value};

use super::{ColumnDef, Iteration, LIST_ITEM, PathExpr, ViewDefinition, ViewError};
use crate::view::fhirpath::{
    PathError,
    compile::{Compiled, Scope, compile},
    types::Ty,
    value::Item,
};

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

const WHERE_MEMBERS: &[&str] = &["path", "description", "extension"];

/// The state of loading one view.
pub(super) struct Loader<'o> {
    origin: &'o str,
    pub(super) pool: Vec<Box<str>>,
    pub(super) constants: Vec<(String, Item)>,
    pub(super) columns: Vec<ColumnDef>,
    pub(super) buffers: usize,
    pub(super) nodes: usize,
}

impl<'o> Loader<'o> {
    /// A loader for a view from `origin` (a file name, for messages).
    pub(super) fn new(origin: &'o str) -> Self {
        Self {
            origin,
            pool: Vec::new(),
            constants: Vec::new(),
            columns: Vec::new(),
            buffers: 0,
            nodes: 0,
        }
    }

    /// The error for a problem at `pointer` (`""`: the whole view).
    pub(super) fn err(&self, pointer: &str, problem: impl Into<String>) -> ViewError {
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

    /// Loads the whole view.
    pub(super) fn view(mut self, value: &Value) -> Result<ViewDefinition, ViewError> {
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
    pub(super) fn object<'v>(
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
    pub(super) fn array<'v>(
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
    pub(super) fn path(
        &mut self,
        value: &Value,
        pointer: &str,
    ) -> Result<(PathExpr, Option<Ty>), ViewError> {
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

    /// Compiles the required member `path` of the object at `pointer`.
    pub(super) fn required_path(
        &mut self,
        obj: &Map<String, Value>,
        pointer: &str,
    ) -> Result<(PathExpr, Option<Ty>), ViewError> {
        let value = obj
            .get("path")
            .ok_or_else(|| self.err(&format!("{pointer}/path"), "required"))?;
        self.path(value, &format!("{pointer}/path"))
    }
}

/// A name usable as an SQL column name: `^[A-Za-z][A-Za-z0-9_]*$`.
pub(super) fn is_sql_name(name: &str) -> bool {
    name.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A JSON Pointer token (RFC 6901).
pub(super) fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The file name of `origin` without directories and extension.
fn default_name(origin: &str) -> String {
    let file = origin.rsplit(['/', '\\']).next().unwrap_or(origin);
    file.split('.').next().unwrap_or(file).to_owned()
}

#[cfg(test)]
mod tests {
    use crate::view::definition::tests::problem;

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
}
