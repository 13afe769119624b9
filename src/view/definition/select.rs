//! The tree of `select`s: each select's iteration (`forEach`, `forEachOrNull`,
//! `repeat`), its columns, nested `select`s and `unionAll` branches (which must agree
//! on their columns), compiled into [`SelectNode`]s with the buffers the row engine
//! fills.

use serde_json::Value;

use super::{
    ColumnDef, OutType, PathExpr, ViewError,
    loader::{Loader, is_sql_name},
};

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

impl Loader<'_> {
    pub(super) fn selects(
        &mut self,
        value: &Value,
        pointer: &str,
    ) -> Result<Vec<SelectNode>, ViewError> {
        let list = self.array(value, pointer, true)?;
        let mut out = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            out.push(self.select(s, &format!("{pointer}/{i}"))?);
        }
        Ok(out)
    }

    /// Compiles one select: its iteration, columns, nested selects and `unionAll`.
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

    /// Compiles one column and adds it to the output columns; returns its index and
    /// its expression.
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
    pub(super) fn node(
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

    /// Refuses a column name used twice.
    pub(super) fn check_unique_names(&self) -> Result<(), ViewError> {
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

#[cfg(test)]
mod tests {
    use crate::view::definition::tests::{load, problem};

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
}
