//! Evaluation of compiled expressions over one resource's tape.
//!
//! Collections live on one value stack ([`Evaluator::items`]), reused from resource to
//! resource: evaluating an expression pushes its result on top of the stack and returns
//! where the result starts; whatever it pushed below that while working is removed
//! first, so a result always starts where the stack ended when evaluation began. Inputs
//! and `$this` are ranges of the stack below the result. Nothing is allocated per value
//! once the buffers have grown.
//!
//! The evaluator core is here: the value stack, the evaluation of each kind of
//! expression, and the helpers that read arguments and build values. Member access and
//! indexers are in [`navigation`], operators in [`operators`], functions (by family) in
//! [`functions`].

mod functions;
mod navigation;
mod operators;
#[cfg(test)]
mod testing;

use simd_json::Node;

use super::{
    compile::Expr,
    number::{NumberSpans, guess_scale, scale_of},
    types::Ty,
    value::{Data, Item, Scalar, Src},
};

/// Why evaluating an expression failed (a message; the caller adds where).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault(pub String);

type Res<T> = Result<T, Fault>;

fn fault<T>(message: impl Into<String>) -> Res<T> {
    Err(Fault(message.into()))
}

/// The resource being evaluated and the view's string pool.
#[derive(Clone, Copy)]
pub(crate) struct Input<'a, 't> {
    pub tape: &'a [Node<'t>],
    /// The original JSON text of the resource, when the caller has it: gives decimals
    /// their exact precision.
    pub line: Option<&'a [u8]>,
    pub pool: &'a [Box<str>],
}

/// The evaluation context of an expression.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    /// `$this`: a range of the stack.
    this: (usize, usize),
    /// `$index`.
    index: i64,
    /// `%rowIndex`.
    row_index: i64,
}

/// Evaluates expressions; one per builder, its buffers reused for every resource.
#[derive(Debug, Default)]
pub(crate) struct Evaluator {
    /// The value stack.
    pub items: Vec<Item>,
    /// Text computed for the current resource (UTF-8; only whole `str`s are appended).
    arena: Vec<u8>,
    /// Scratch text for functions that build strings.
    tmp: String,
    numbers: NumberSpans,
}

impl Evaluator {
    /// Forgets the previous resource.
    pub(crate) fn reset(&mut self) {
        self.items.clear();
        self.arena.clear();
        self.numbers.reset();
    }

    /// Read access to items of the current resource.
    pub(crate) fn data<'a, 't>(&'a self, inp: &Input<'a, 't>) -> Data<'a, 't> {
        Data {
            tape: inp.tape,
            pool: inp.pool,
            arena: &self.arena,
        }
    }

    /// The exact text of a number node, when the resource's line was given.
    pub(crate) fn number_text<'l>(&mut self, inp: &Input<'l, '_>, at: u32) -> Option<&'l str> {
        self.numbers.text(inp.tape, inp.line, at as usize)
    }

    /// Evaluates `expr` with `focus` as its context (none: the empty collection) and
    /// pushes the result; returns where it starts.
    pub(crate) fn eval_on(
        &mut self,
        inp: &Input<'_, '_>,
        expr: &Expr,
        focus: Option<Item>,
        row_index: i64,
    ) -> Res<usize> {
        let start = self.items.len();
        self.items.extend(focus);
        let cx = Ctx {
            this: (start, self.items.len()),
            index: 0,
            row_index,
        };
        let result = self.eval(inp, expr, cx)?;
        self.items.drain(start..result);
        Ok(start)
    }

    /// Evaluates `expr`, pushing its result; returns where the result starts.
    fn eval(&mut self, inp: &Input<'_, '_>, expr: &Expr, cx: Ctx) -> Res<usize> {
        let start = self.items.len();
        match expr {
            Expr::Lit(item) => self.items.push(*item),
            Expr::Empty => {}
            Expr::RowIndex => self.items.push(Item::Int(cx.row_index)),
            Expr::Index => self.items.push(Item::Int(cx.index)),
            Expr::Resource => self.items.push(Item::Node {
                at: 0,
                ty: Ty::Resource,
            }),
            Expr::This => self.items.extend_from_within(cx.this.0..cx.this.1),
            Expr::Member {
                input,
                name,
                choice,
            } => self.invoke(inp, input.as_deref(), cx, |ev, from| {
                ev.navigate(inp, from, name, *choice);
                Ok(())
            })?,
            Expr::Call { input, func, args } => {
                self.invoke(inp, input.as_deref(), cx, |ev, from| {
                    ev.call(inp, func, args, from, cx)
                })?;
            }
            Expr::Indexer { input, index } => {
                self.invoke(inp, Some(input), cx, |ev, from| {
                    ev.index(inp, from, index, cx)
                })?;
            }
            Expr::Neg(operand) => self.negate(inp, operand, cx)?,
            Expr::Bin { op, lhs, rhs } => self.binary(inp, *op, lhs, rhs, cx)?,
        }
        Ok(start)
    }

    /// Evaluates an invocation on `input` (an expression, or the context when `None`):
    /// `apply` pushes its result given the input's range, then the input is removed.
    fn invoke(
        &mut self,
        inp: &Input<'_, '_>,
        input: Option<&Expr>,
        cx: Ctx,
        apply: impl FnOnce(&mut Self, (usize, usize)) -> Res<()>,
    ) -> Res<()> {
        let start = self.items.len();
        let from = match input {
            Some(e) => {
                let s = self.eval(inp, e, cx)?;
                (s, self.items.len())
            }
            None => cx.this,
        };
        let end = self.items.len();
        apply(self, from)?;
        self.items.drain(start..end);
        Ok(())
    }

    /// The single item of the result at `from`, if any; an error for more than one.
    fn single<'a>(
        &'a self,
        inp: &Input<'a, '_>,
        from: usize,
        what: &str,
    ) -> Res<Option<Scalar<'a>>> {
        self.single_range(inp, from, self.items.len(), what)
    }

    /// The single item of `items[from..to]`, if any; an error for more than one.
    fn single_range<'a>(
        &'a self,
        inp: &Input<'a, '_>,
        from: usize,
        to: usize,
        what: &str,
    ) -> Res<Option<Scalar<'a>>> {
        match &self.items[from..to] {
            [] => Ok(None),
            [item] => Ok(Some(self.data(inp).scalar(*item))),
            many => fault(format!(
                "{what} expects a single value, got {} values",
                many.len()
            )),
        }
    }

    /// The single item of the input `lo..hi`, if any; an error for more than one.
    fn single_item(&self, lo: usize, hi: usize, what: &str) -> Res<Option<Item>> {
        match hi - lo {
            0 => Ok(None),
            1 => Ok(Some(self.items[lo])),
            n => fault(format!("{what} expects a single value, got {n}")),
        }
    }

    /// The result at `from` as a boolean, by FHIRPath's singleton evaluation: empty is
    /// empty, one boolean is itself, one other value is true, more is an error.
    fn boolean(&self, inp: &Input<'_, '_>, from: usize, what: &str) -> Res<Option<bool>> {
        Ok(self.single(inp, from, what)?.map(|s| match s {
            Scalar::Bool(b) => b,
            _ => true,
        }))
    }

    /// Evaluates an argument that must be a single integer (or empty).
    fn integer_arg(
        &mut self,
        inp: &Input<'_, '_>,
        arg: &Expr,
        cx: Ctx,
        what: &str,
    ) -> Res<Option<i64>> {
        let r = self.eval(inp, arg, cx)?;
        let v = match self.single(inp, r, what)? {
            None => None,
            Some(Scalar::Int(i)) => Some(i),
            Some(other) => {
                return fault(format!(
                    "{what} must be an integer, not {}",
                    other.kind_name()
                ));
            }
        };
        self.items.truncate(r);
        Ok(v)
    }

    /// Evaluates an argument that must be a single string (or empty); returns the item
    /// (its text stays where it is: pool, tape or arena).
    fn string_arg(
        &mut self,
        inp: &Input<'_, '_>,
        arg: &Expr,
        cx: Ctx,
        what: &str,
    ) -> Res<Option<Item>> {
        let r = self.eval(inp, arg, cx)?;
        let v = match self.single(inp, r, what)? {
            None => None,
            Some(Scalar::Str(..)) => Some(self.items[r]),
            Some(other) => {
                return fault(format!(
                    "{what} must be a string, not {}",
                    other.kind_name()
                ));
            }
        };
        self.items.truncate(r);
        Ok(v)
    }

    /// Appends `text` to the arena and returns it as a string item of type `ty`.
    fn arena_str(&mut self, text: &str, ty: Ty) -> Item {
        let start = self.arena.len() as u32;
        self.arena.extend_from_slice(text.as_bytes());
        Item::Str {
            src: Src::Arena {
                start,
                len: text.len() as u32,
            },
            ty,
        }
    }

    /// Builds a string with `f` (given the data and the scratch string) and pushes it
    /// as an item of type `ty`; `f` returning `false` pushes nothing.
    fn push_built(
        &mut self,
        inp: &Input<'_, '_>,
        ty: Ty,
        f: impl FnOnce(&Data<'_, '_>, &[Item], &mut String) -> Res<bool>,
    ) -> Res<()> {
        let mut tmp = std::mem::take(&mut self.tmp);
        tmp.clear();
        let data = Data {
            tape: inp.tape,
            pool: inp.pool,
            arena: &self.arena,
        };
        let keep = f(&data, &self.items, &mut tmp);
        if let Ok(true) = keep {
            let item = self.arena_str(&tmp, ty);
            self.items.push(item);
        }
        self.tmp = tmp;
        keep.map(|_| ())
    }

    /// The known number of digits after the point of a numeric item.
    fn scale_of_item(&mut self, inp: &Input<'_, '_>, item: Item) -> Option<u8> {
        match item {
            Item::Dec { scale, .. } => scale,
            Item::Int(_) => Some(0),
            Item::Node { at, .. } => match inp.tape.get(at as usize) {
                Some(Node::Static(simd_json::StaticNode::F64(v))) => {
                    let v = *v;
                    Some(
                        self.number_text(inp, at)
                            .and_then(scale_of)
                            .unwrap_or_else(|| guess_scale(v)),
                    )
                }
                Some(Node::Static(_)) => Some(0),
                _ => None,
            },
            Item::Bool(_) | Item::Str { .. } => None,
        }
    }
}

/// Appends the text of an item (FHIRPath `toString`): an error for complex values.
fn write_text(data: &Data<'_, '_>, item: Item, out: &mut String) -> Res<()> {
    use std::fmt::Write as _;
    match data.scalar(item) {
        Scalar::Str(s, _) => out.push_str(s),
        Scalar::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Scalar::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Scalar::Dec(v) => {
            let _ = write!(out, "{v}");
        }
        Scalar::Object(..) => return fault("cannot convert a complex value to a string"),
    }
    Ok(())
}
