//! The rows of one resource: the SQL on FHIR processing algorithm over compiled selects.
//!
//! For each focus of a select (its parent's focus, or each item of `forEach`,
//! `forEachOrNull` or `repeat`), the select's rows are the cartesian product of its own
//! columns (one row), the rows of each nested `select`, and the rows of all `unionAll`
//! branches together. A `forEachOrNull` with nothing to iterate evaluates its body once
//! over an empty focus (`%rowIndex` 0), and adds a row of nulls if that yields none.
//!
//! Rows are not materialised as values: a row is a slice of [`Cell`]s, each pointing at
//! the items of one column in [`RowEngine::values`]. Every buffer is reused from
//! resource to resource.

use simd_json::Node;

use super::{
    definition::{Iteration, PathExpr, SelectNode, ViewDefinition},
    fhirpath::{
        eval::{Evaluator, Fault, Input},
        value::{Item, Scalar},
    },
};

/// Why a resource yields no rows: the view cannot be evaluated over it. The builder is
/// left as it was before the resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The tape is not a JSON object.
    #[error("not a resource: the JSON value is not an object")]
    NotAnObject,
    /// An expression failed (a function on too many values, incomparable types, ...).
    #[error("{pointer}: {message}")]
    Expression {
        /// JSON Pointer of the expression in the view.
        pointer: String,
        /// What went wrong.
        message: String,
    },
    /// A column without `collection: true` got more than one value.
    #[error(
        "{pointer}: column {column:?} yields {count} values; declare it `collection: true` or select one value"
    )]
    NotASingleValue {
        /// JSON Pointer of the column's path.
        pointer: String,
        /// The column name.
        column: String,
        /// How many values the path yielded.
        count: usize,
    },
    /// A view-level `where` yielded something other than one boolean.
    #[error("{pointer}: `where` must yield a boolean, not {found}")]
    WhereNotBoolean {
        /// JSON Pointer of the `where` path.
        pointer: String,
        /// What it yielded.
        found: String,
    },
    /// A value does not fit the column's type.
    #[error("{pointer}: column {column:?} of type {expected} cannot hold {found}")]
    ColumnType {
        /// JSON Pointer of the column's path.
        pointer: String,
        /// The column name.
        column: String,
        /// The column's type.
        expected: &'static str,
        /// What the value is.
        found: String,
    },
}

fn at(expr: &PathExpr) -> impl FnOnce(Fault) -> EvalError + '_ {
    move |Fault(message)| EvalError::Expression {
        pointer: expr.pointer.clone(),
        message,
    }
}

/// The values of one column of one row: `values[start..start + len]`, or null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cell {
    pub start: u32,
    pub len: u32,
}

impl Cell {
    /// A null (no row value at all, as in the row a `forEachOrNull` adds).
    pub(crate) const NULL: Self = Self {
        start: 0,
        len: u32::MAX,
    };

    /// The range of the cell's values (empty for null).
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        if self == Self::NULL {
            0..0
        } else {
            self.start as usize..(self.start + self.len) as usize
        }
    }
}

/// Evaluates a view's selects over resources; one per builder.
#[derive(Debug, Default)]
pub(crate) struct RowEngine {
    pub eval: Evaluator,
    /// Column values of the current resource.
    pub values: Vec<Item>,
    /// Row buffers, by buffer id (see [`SelectNode`]).
    bufs: Vec<Vec<Cell>>,
    /// Rows in each buffer (a buffer of width 0 has rows but no cells).
    counts: Vec<usize>,
    /// Iteration foci, by node id.
    foci: Vec<Vec<Item>>,
    /// Mixed-radix counter of the cartesian product.
    odometer: Vec<usize>,
}

impl RowEngine {
    /// Computes the rows of one resource. Returns how many there are; see
    /// [`RowEngine::parts`].
    pub(crate) fn run(
        &mut self,
        view: &ViewDefinition,
        inp: &Input<'_, '_>,
    ) -> Result<usize, EvalError> {
        self.eval.reset();
        self.values.clear();
        self.bufs.resize_with(view.buffers, Vec::new);
        self.counts.resize(view.buffers, 0);
        self.foci.resize_with(view.nodes, Vec::new);
        if !matches!(inp.tape.first(), Some(Node::Object { .. })) {
            return Err(EvalError::NotAnObject);
        }
        let data = self.eval.data(inp);
        if data.member_str(0, "resourceType") != Some(view.resource()) {
            return Ok(0);
        }
        let root = Item::Node {
            at: 0,
            ty: super::fhirpath::types::Ty::Resource,
        };
        for w in &view.wheres {
            if !self.where_holds(inp, w, root)? {
                return Ok(0);
            }
        }
        self.process(view, inp, &view.root, Some(root), 0)?;
        Ok(self.counts[view.root.rows_buf])
    }

    /// The rows of the last [`run`](Self::run) (cells, row after row), the values the
    /// cells point at, and the evaluator (to read the values).
    pub(crate) fn parts(&mut self, view: &ViewDefinition) -> (&[Cell], &[Item], &mut Evaluator) {
        (&self.bufs[view.root.rows_buf], &self.values, &mut self.eval)
    }

    fn where_holds(
        &mut self,
        inp: &Input<'_, '_>,
        w: &PathExpr,
        root: Item,
    ) -> Result<bool, EvalError> {
        let s = self
            .eval
            .eval_on(inp, &w.expr, Some(root), 0)
            .map_err(at(w))?;
        let data = self.eval.data(inp);
        let result = match &self.eval.items[s..] {
            [] => Ok(false),
            [item] => match data.scalar(*item) {
                Scalar::Bool(b) => Ok(b),
                other => Err(other.kind_name().to_owned()),
            },
            many => Err(format!("{} values", many.len())),
        };
        self.eval.items.truncate(s);
        result.map_err(|found| EvalError::WhereNotBoolean {
            pointer: w.pointer.clone(),
            found,
        })
    }

    /// Fills the node's rows buffer with its rows for `focus`.
    fn process(
        &mut self,
        view: &ViewDefinition,
        inp: &Input<'_, '_>,
        node: &SelectNode,
        focus: Option<Item>,
        row_index: i64,
    ) -> Result<(), EvalError> {
        let mut out = std::mem::take(&mut self.bufs[node.rows_buf]);
        out.clear();
        let mut count = 0;
        match &node.iteration {
            Iteration::Once => count += self.body(view, inp, node, focus, row_index, &mut out)?,
            Iteration::ForEach(e) | Iteration::ForEachOrNull(e) => {
                let mut foci = std::mem::take(&mut self.foci[node.id]);
                foci.clear();
                let s = self
                    .eval
                    .eval_on(inp, &e.expr, focus, row_index)
                    .map_err(at(e))?;
                foci.extend_from_slice(&self.eval.items[s..]);
                self.eval.items.truncate(s);
                for (i, f) in foci.iter().enumerate() {
                    count += self.body(view, inp, node, Some(*f), i as i64, &mut out)?;
                }
                if foci.is_empty() && matches!(node.iteration, Iteration::ForEachOrNull(_)) {
                    count += self.body(view, inp, node, None, 0, &mut out)?;
                    if count == 0 {
                        out.extend(std::iter::repeat_n(Cell::NULL, node.width));
                        count = 1;
                    }
                }
                self.foci[node.id] = foci;
            }
            Iteration::Repeat(paths) => {
                let mut foci = std::mem::take(&mut self.foci[node.id]);
                foci.clear();
                if let Some(focus) = focus {
                    self.descend(inp, paths, focus, row_index, &mut foci)?;
                }
                for (i, f) in foci.iter().enumerate() {
                    count += self.body(view, inp, node, Some(*f), i as i64, &mut out)?;
                }
                self.foci[node.id] = foci;
            }
        }
        self.bufs[node.rows_buf] = out;
        self.counts[node.rows_buf] = count;
        Ok(())
    }

    /// Collects, depth first, the objects reached from `from` by the `repeat` paths.
    fn descend(
        &mut self,
        inp: &Input<'_, '_>,
        paths: &[PathExpr],
        from: Item,
        row_index: i64,
        out: &mut Vec<Item>,
    ) -> Result<(), EvalError> {
        for p in paths {
            let s = self
                .eval
                .eval_on(inp, &p.expr, Some(from), row_index)
                .map_err(at(p))?;
            let end = self.eval.items.len();
            for i in s..end {
                let child = self.eval.items[i];
                let is_object = matches!(
                    child,
                    Item::Node { at, .. } if matches!(inp.tape.get(at as usize), Some(Node::Object { .. }))
                );
                if is_object {
                    out.push(child);
                    self.descend(inp, paths, child, row_index, out)?;
                }
            }
            self.eval.items.truncate(s);
        }
        Ok(())
    }

    /// Appends to `out` the rows of the node for one focus; returns how many.
    fn body(
        &mut self,
        view: &ViewDefinition,
        inp: &Input<'_, '_>,
        node: &SelectNode,
        focus: Option<Item>,
        row_index: i64,
        out: &mut Vec<Cell>,
    ) -> Result<usize, EvalError> {
        // Own columns: one row.
        let mut own = std::mem::take(&mut self.bufs[node.own_buf]);
        own.clear();
        for &(index, ref path) in &node.columns {
            let cell = self.column(inp, path, focus, row_index)?;
            let def = &view.columns[index];
            if cell.len > 1 && !def.collection {
                return Err(EvalError::NotASingleValue {
                    pointer: path.pointer.clone(),
                    column: def.name.clone(),
                    count: cell.len as usize,
                });
            }
            own.push(cell);
        }
        self.bufs[node.own_buf] = own;
        self.counts[node.own_buf] = 1;
        for select in &node.selects {
            self.process(view, inp, select, focus, row_index)?;
        }
        if !node.union.is_empty() {
            let mut union = std::mem::take(&mut self.bufs[node.union_buf]);
            union.clear();
            let mut count = 0;
            for branch in &node.union {
                self.process(view, inp, branch, focus, row_index)?;
                union.extend_from_slice(&self.bufs[branch.rows_buf]);
                count += self.counts[branch.rows_buf];
            }
            self.bufs[node.union_buf] = union;
            self.counts[node.union_buf] = count;
        }
        Ok(self.product(node, out))
    }

    /// Evaluates a column for one focus into `values`.
    fn column(
        &mut self,
        inp: &Input<'_, '_>,
        path: &PathExpr,
        focus: Option<Item>,
        row_index: i64,
    ) -> Result<Cell, EvalError> {
        let s = self
            .eval
            .eval_on(inp, &path.expr, focus, row_index)
            .map_err(at(path))?;
        let start = self.values.len() as u32;
        self.values.extend_from_slice(&self.eval.items[s..]);
        self.eval.items.truncate(s);
        Ok(Cell {
            start,
            len: self.values.len() as u32 - start,
        })
    }

    /// Appends the cartesian product of the node's parts to `out`; returns the count.
    fn product(&mut self, node: &SelectNode, out: &mut Vec<Cell>) -> usize {
        let total: usize = node.parts.iter().map(|(b, _)| self.counts[*b]).product();
        if total == 0 {
            return 0;
        }
        self.odometer.clear();
        self.odometer.resize(node.parts.len(), 0);
        for _ in 0..total {
            for (k, &(buf, width)) in node.parts.iter().enumerate() {
                let r = self.odometer[k];
                out.extend_from_slice(&self.bufs[buf][r * width..(r + 1) * width]);
            }
            // The last part varies fastest.
            for k in (0..node.parts.len()).rev() {
                self.odometer[k] += 1;
                if self.odometer[k] < self.counts[node.parts[k].0] {
                    break;
                }
                self.odometer[k] = 0;
            }
        }
        total
    }
}
