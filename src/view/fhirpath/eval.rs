//! Evaluation of compiled expressions over one resource's tape.
//!
//! Collections live on one value stack ([`Evaluator::items`]), reused from resource to
//! resource: evaluating an expression pushes its result on top of the stack and returns
//! where the result starts; whatever it pushed below that while working is removed
//! first, so a result always starts where the stack ended when evaluation began. Inputs
//! and `$this` are ranges of the stack below the result. Nothing is allocated per value
//! once the buffers have grown.

use std::cmp::Ordering;

use simd_json::Node;

use super::{
    compile::{Expr, Func},
    number::{NumberSpans, decimal_boundary, guess_scale, scale_of},
    parser::BinOp,
    temporal::{Kind, Temporal},
    types::{Ty, TypeSpec},
    value::{Data, Item, Scalar, Src, span},
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
            } => {
                let from = self.input(inp, input.as_deref(), cx)?;
                let end = self.items.len();
                self.navigate(inp, from.0..from.1, name, *choice);
                self.items.drain(start..end);
            }
            Expr::Call { input, func, args } => {
                let from = self.input(inp, input.as_deref(), cx)?;
                let end = self.items.len();
                self.call(inp, func, args, from, cx)?;
                self.items.drain(start..end);
            }
            Expr::Indexer { input, index } => {
                let from = self.input(inp, Some(input), cx)?;
                let n = self.integer_arg(inp, index, cx, "an index")?;
                let end = self.items.len();
                if let Some(n) = n
                    && n >= 0
                    && (n as usize) < from.1 - from.0
                {
                    let item = self.items[from.0 + n as usize];
                    self.items.push(item);
                }
                self.items.drain(start..end);
            }
            Expr::Neg(operand) => {
                let r = self.eval(inp, operand, cx)?;
                let value = match self.single(inp, r, "unary -")? {
                    None => None,
                    Some(Scalar::Int(i)) => Some(Item::Int(
                        i.checked_neg()
                            .ok_or_else(|| Fault("integer overflow".into()))?,
                    )),
                    Some(Scalar::Dec(v)) => Some(Item::Dec {
                        v: -v,
                        scale: self.scale_of_item(inp, self.items[r]),
                    }),
                    Some(other) => return fault(format!("cannot negate {}", other.kind_name())),
                };
                self.items.truncate(start);
                self.items.extend(value);
            }
            Expr::Bin { op, lhs, rhs } => self.binary(inp, *op, lhs, rhs, cx)?,
        }
        Ok(start)
    }

    /// The input of an invocation: the result of `input`, or the context.
    fn input(&mut self, inp: &Input<'_, '_>, input: Option<&Expr>, cx: Ctx) -> Res<(usize, usize)> {
        match input {
            Some(e) => {
                let s = self.eval(inp, e, cx)?;
                Ok((s, self.items.len()))
            }
            None => Ok(cx.this),
        }
    }

    /// Pushes the elements `name` of the objects in `from` (array items one by one;
    /// nulls skipped). For a choice element, a key `name` + a type name
    /// (`valueQuantity` for `value`) is the element with that type; a key `name` itself
    /// wins (a choice element never has one, so the object is of another type, where
    /// `name` is a plain element).
    fn navigate(
        &mut self,
        inp: &Input<'_, '_>,
        from: std::ops::Range<usize>,
        name: &str,
        choice: bool,
    ) {
        let tape = inp.tape;
        for i in from {
            let Item::Node { at, .. } = self.items[i] else {
                continue;
            };
            let data = Data {
                tape,
                pool: inp.pool,
                arena: &self.arena,
            };
            if let Some(value) = data.member(at, name) {
                push_value(&mut self.items, tape, value, Ty::Unknown);
                continue;
            }
            if !choice {
                continue;
            }
            let at = at as usize;
            let Some(&Node::Object { len, .. }) = tape.get(at) else {
                continue;
            };
            let mut k = at + 1;
            for _ in 0..len {
                let value = k + 1;
                if let Some(Node::String(key)) = tape.get(k)
                    && let Some(suffix) = key.strip_prefix(name)
                    && let Some(ty) = Ty::from_choice_suffix(suffix)
                {
                    push_value(&mut self.items, tape, value, ty);
                }
                k = value + span(tape, value);
            }
        }
    }

    /// The single item of the result at `from`, if any; an error for more than one.
    fn single<'a>(
        &'a self,
        inp: &Input<'a, '_>,
        from: usize,
        what: &str,
    ) -> Res<Option<Scalar<'a>>> {
        match &self.items[from..] {
            [] => Ok(None),
            [item] => Ok(Some(self.data(inp).scalar(*item))),
            many => fault(format!(
                "{what} expects a single value, got {} values",
                many.len()
            )),
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
        let result = match keep {
            Ok(true) => {
                let item = self.arena_str(&tmp, ty);
                self.items.push(item);
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        self.tmp = tmp;
        result
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

    fn binary(
        &mut self,
        inp: &Input<'_, '_>,
        op: BinOp,
        lhs: &Expr,
        rhs: &Expr,
        cx: Ctx,
    ) -> Res<()> {
        let start = self.items.len();
        match op {
            BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Implies => {
                let l = self.eval(inp, lhs, cx)?;
                let a = self.boolean(inp, l, op.text())?;
                self.items.truncate(start);
                // Short cuts that do not depend on the right operand.
                let shortcut = match (op, a) {
                    (BinOp::And, Some(false)) => Some(false),
                    (BinOp::Or, Some(true)) => Some(true),
                    (BinOp::Implies, Some(false)) => Some(true),
                    _ => None,
                };
                if let Some(v) = shortcut {
                    self.items.push(Item::Bool(v));
                    return Ok(());
                }
                let r = self.eval(inp, rhs, cx)?;
                let b = self.boolean(inp, r, op.text())?;
                self.items.truncate(start);
                let v = match op {
                    BinOp::And => match (a, b) {
                        (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    BinOp::Or => match (a, b) {
                        (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                    BinOp::Xor => a.zip(b).map(|(a, b)| a != b),
                    _ => match (a, b) {
                        (Some(true), b) => b,
                        (None, Some(true)) => Some(true),
                        _ => None,
                    },
                };
                self.items.extend(v.map(Item::Bool));
                return Ok(());
            }
            _ => {}
        }
        let l = self.eval(inp, lhs, cx)?;
        let r = self.eval(inp, rhs, cx)?;
        let end = self.items.len();
        match op {
            BinOp::Eq | BinOp::Ne => {
                let v = self.collections_equal(inp, (l, r), (r, end));
                let v = if op == BinOp::Ne { v.map(|v| !v) } else { v };
                self.items.extend(v.map(Item::Bool));
            }
            BinOp::Equiv | BinOp::NotEquiv => {
                let v = self.collections_equivalent(inp, (l, r), (r, end));
                self.items
                    .push(Item::Bool(if op == BinOp::Equiv { v } else { !v }));
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let a = self.single_range(inp, l, r, op.text())?;
                let b = self.single_range(inp, r, end, op.text())?;
                if let (Some(a), Some(b)) = (a, b) {
                    let ord = compare(a, b)?;
                    let v = ord.map(|o| match op {
                        BinOp::Lt => o == Ordering::Less,
                        BinOp::Le => o != Ordering::Greater,
                        BinOp::Gt => o == Ordering::Greater,
                        _ => o != Ordering::Less,
                    });
                    self.items.extend(v.map(Item::Bool));
                }
            }
            BinOp::Union => {
                for i in l..end {
                    let item = self.items[i];
                    if !self.contains(inp, end..self.items.len(), item) {
                        self.items.push(item);
                    }
                }
            }
            BinOp::In | BinOp::Contains => {
                let (needle, hay) = if op == BinOp::In {
                    ((l, r), (r, end))
                } else {
                    ((r, end), (l, r))
                };
                match needle.1 - needle.0 {
                    0 => {}
                    1 => {
                        let item = self.items[needle.0];
                        let found = self.contains(inp, hay.0..hay.1, item);
                        self.items.push(Item::Bool(found));
                    }
                    n => return fault(format!("{} expects a single value, got {n}", op.text())),
                }
            }
            BinOp::Concat => {
                let (a, b) = ((l, r), (r, end));
                for (from, to) in [a, b] {
                    if to - from > 1 {
                        return fault(format!("& expects a single value, got {}", to - from));
                    }
                }
                self.push_built(inp, Ty::String, |data, items, out| {
                    for i in [a, b].into_iter().filter(|(f, t)| t > f).map(|(f, _)| f) {
                        write_text(data, items[i], out)?;
                    }
                    Ok(true)
                })?;
            }
            _ => self.arithmetic(inp, op, l, r, end)?,
        }
        let result_start = end;
        self.items.drain(start..result_start);
        Ok(())
    }

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

    fn arithmetic(
        &mut self,
        inp: &Input<'_, '_>,
        op: BinOp,
        l: usize,
        r: usize,
        end: usize,
    ) -> Res<()> {
        let (Some(a), Some(b)) = (
            self.single_range(inp, l, r, op.text())?,
            self.single_range(inp, r, end, op.text())?,
        ) else {
            return Ok(());
        };
        if let (BinOp::Add, Scalar::Str(..), Scalar::Str(..)) = (op, a, b) {
            let (ia, ib) = (self.items[l], self.items[r]);
            return self.push_built(inp, Ty::String, |data, _, out| {
                write_text(data, ia, out)?;
                write_text(data, ib, out)?;
                Ok(true)
            });
        }
        let (sa, sb) = (self.items[l], self.items[r]);
        let (scale_a, scale_b) = (self.scale_of_item(inp, sa), self.scale_of_item(inp, sb));
        let data = self.data(inp);
        let (a, b) = (data.scalar(sa), data.scalar(sb));
        let overflow = || Fault("integer overflow".into());
        let result = match (a, b) {
            (Scalar::Int(x), Scalar::Int(y)) => match op {
                BinOp::Add => Some(Item::Int(x.checked_add(y).ok_or_else(overflow)?)),
                BinOp::Sub => Some(Item::Int(x.checked_sub(y).ok_or_else(overflow)?)),
                BinOp::Mul => Some(Item::Int(x.checked_mul(y).ok_or_else(overflow)?)),
                BinOp::Div => (y != 0).then(|| Item::Dec {
                    v: x as f64 / y as f64,
                    scale: None,
                }),
                BinOp::IntDiv => x.checked_div(y).map(Item::Int),
                _ => x.checked_rem(y).map(Item::Int),
            },
            _ => {
                let (Some(x), Some(y)) = (a.number(), b.number()) else {
                    return fault(format!(
                        "{} is not defined for {} and {}",
                        op.text(),
                        a.kind_name(),
                        b.kind_name()
                    ));
                };
                let scale = match op {
                    BinOp::Add | BinOp::Sub => scale_a.zip(scale_b).map(|(p, q)| p.max(q)),
                    BinOp::Mul => scale_a.zip(scale_b).map(|(p, q)| p.saturating_add(q)),
                    _ => None,
                };
                match op {
                    BinOp::Add => Some(Item::Dec { v: x + y, scale }),
                    BinOp::Sub => Some(Item::Dec { v: x - y, scale }),
                    BinOp::Mul => Some(Item::Dec { v: x * y, scale }),
                    BinOp::Div => (y != 0.0).then(|| Item::Dec { v: x / y, scale }),
                    BinOp::IntDiv => (y != 0.0).then(|| Item::Int((x / y).trunc() as i64)),
                    _ => (y != 0.0).then(|| Item::Dec { v: x % y, scale }),
                }
            }
        };
        self.items.extend(result);
        Ok(())
    }

    /// FHIRPath `=` on two collections: empty if either is empty.
    fn collections_equal(
        &self,
        inp: &Input<'_, '_>,
        a: (usize, usize),
        b: (usize, usize),
    ) -> Option<bool> {
        let (la, lb) = (a.1 - a.0, b.1 - b.0);
        if la == 0 || lb == 0 {
            return None;
        }
        if la != lb {
            return Some(false);
        }
        let data = self.data(inp);
        let mut result = Some(true);
        for i in 0..la {
            match items_equal(&data, self.items[a.0 + i], self.items[b.0 + i]) {
                Some(true) => {}
                Some(false) => return Some(false),
                None => result = None,
            }
        }
        result
    }

    /// FHIRPath `~` on two collections: order-free, never empty.
    fn collections_equivalent(
        &self,
        inp: &Input<'_, '_>,
        a: (usize, usize),
        b: (usize, usize),
    ) -> bool {
        if a.1 - a.0 != b.1 - b.0 {
            return false;
        }
        let data = self.data(inp);
        (a.0..a.1)
            .all(|i| (b.0..b.1).any(|j| items_equivalent(&data, self.items[i], self.items[j])))
    }

    /// Whether an item equal to `item` is in `range`.
    fn contains(&self, inp: &Input<'_, '_>, range: std::ops::Range<usize>, item: Item) -> bool {
        let data = self.data(inp);
        self.items[range]
            .iter()
            .any(|other| items_equal(&data, *other, item) == Some(true))
    }

    /// Whether `item` is of the type `spec` names.
    fn type_matches(&self, inp: &Input<'_, '_>, item: Item, spec: &TypeSpec) -> bool {
        let data = self.data(inp);
        match (item, spec) {
            (Item::Node { at, .. }, TypeSpec::Resource(name)) => {
                data.member_str(at, "resourceType") == Some(&**name)
            }
            (_, TypeSpec::Resource(_)) => false,
            (
                Item::Node {
                    ty: Ty::Resource, ..
                },
                _,
            ) => false,
            (
                Item::Node {
                    at,
                    ty: Ty::Unknown,
                },
                spec,
            ) => {
                if data.member(at, "resourceType").is_some() {
                    return false;
                }
                data.json_kind(at).is_some_and(|k| spec.matches_unknown(k))
            }
            (other, spec) => spec.matches_known(data.known_type(other)),
        }
    }

    /// Applies `func` to the input range `from`, pushing the result.
    fn call(
        &mut self,
        inp: &Input<'_, '_>,
        func: &Func,
        args: &[Expr],
        from: (usize, usize),
        cx: Ctx,
    ) -> Res<()> {
        let (lo, hi) = from;
        let n = hi - lo;
        match func {
            Func::Empty => self.items.push(Item::Bool(n == 0)),
            Func::Count => self.items.push(Item::Int(n as i64)),
            Func::Where | Func::Exists | Func::All => {
                let Some(criteria) = args.first() else {
                    self.items.push(Item::Bool(n > 0));
                    return Ok(());
                };
                let mut any = false;
                let mut all = true;
                for i in lo..hi {
                    let item = self.items[i];
                    let mark = self.items.len();
                    self.items.push(item);
                    let sub = Ctx {
                        this: (mark, mark + 1),
                        index: (i - lo) as i64,
                        row_index: cx.row_index,
                    };
                    let r = self.eval(inp, criteria, sub)?;
                    let v = self.boolean(inp, r, "the criteria")? == Some(true);
                    self.items.truncate(mark);
                    any |= v;
                    all &= v;
                    if v && *func == Func::Where {
                        self.items.push(item);
                    }
                    if (*func == Func::Exists && any) || (*func == Func::All && !all) {
                        break;
                    }
                }
                match func {
                    Func::Exists => self.items.push(Item::Bool(any)),
                    Func::All => self.items.push(Item::Bool(all)),
                    _ => {}
                }
            }
            Func::Select => {
                for i in lo..hi {
                    let item = self.items[i];
                    let mark = self.items.len();
                    self.items.push(item);
                    let sub = Ctx {
                        this: (mark, mark + 1),
                        index: (i - lo) as i64,
                        row_index: cx.row_index,
                    };
                    self.eval(inp, &args[0], sub)?;
                    self.items.remove(mark);
                }
            }
            Func::AllTrue | Func::AnyTrue | Func::AllFalse | Func::AnyFalse => {
                // allTrue: no false; anyTrue: some true; allFalse: no true; anyFalse: some false.
                let wanted = matches!(func, Func::AllTrue | Func::AnyTrue);
                let every = matches!(func, Func::AllTrue | Func::AllFalse);
                let data = self.data(inp);
                let mut found = false;
                let mut all = true;
                for &item in &self.items[lo..hi] {
                    match data.scalar(item) {
                        Scalar::Bool(b) => {
                            found |= b == wanted;
                            all &= b == wanted;
                        }
                        other => {
                            return fault(format!("expects booleans, got {}", other.kind_name()));
                        }
                    }
                }
                self.items.push(Item::Bool(if every { all } else { found }));
            }
            Func::Distinct | Func::IsDistinct => {
                let out = self.items.len();
                for i in lo..hi {
                    let item = self.items[i];
                    if !self.contains(inp, out..self.items.len(), item) {
                        self.items.push(item);
                    }
                }
                if *func == Func::IsDistinct {
                    let distinct = self.items.len() - out == n;
                    self.items.truncate(out);
                    self.items.push(Item::Bool(distinct));
                }
            }
            Func::OfType(spec) | Func::As(spec) => {
                for i in lo..hi {
                    let item = self.items[i];
                    if self.type_matches(inp, item, spec) {
                        self.items.push(item);
                    }
                }
            }
            Func::Is(spec) => match n {
                0 => {}
                1 => {
                    let v = self.type_matches(inp, self.items[lo], spec);
                    self.items.push(Item::Bool(v));
                }
                _ => return fault(format!("is expects a single value, got {n}")),
            },
            Func::First | Func::Last if n == 0 => {}
            Func::First => self.items.push(self.items[lo]),
            Func::Last => self.items.push(self.items[hi - 1]),
            Func::Tail => self.items.extend_from_within((lo + 1).min(hi)..hi),
            Func::Skip | Func::Take => {
                let k = self
                    .integer_arg(inp, &args[0], cx, "the count")?
                    .unwrap_or(0)
                    .clamp(0, n as i64) as usize;
                if *func == Func::Skip {
                    self.items.extend_from_within(lo + k..hi);
                } else {
                    self.items.extend_from_within(lo..lo + k);
                }
            }
            Func::Single => match n {
                0 => {}
                1 => self.items.push(self.items[lo]),
                _ => return fault(format!("single() on {n} values")),
            },
            Func::Not => {
                let v = match &self.items[lo..hi] {
                    [] => None,
                    [item] => Some(match self.data(inp).scalar(*item) {
                        Scalar::Bool(b) => !b,
                        _ => false,
                    }),
                    _ => return fault(format!("not() expects a single value, got {n}")),
                };
                self.items.extend(v.map(Item::Bool));
            }
            Func::Iif => {
                if n > 1 {
                    return fault(format!("iif() expects at most one input value, got {n}"));
                }
                let sub = Ctx { this: from, ..cx };
                let r = self.eval(inp, &args[0], sub)?;
                let c = self.boolean(inp, r, "the iif() criterion")?;
                self.items.truncate(r);
                let branch = if c == Some(true) {
                    args.get(1)
                } else {
                    args.get(2)
                };
                if let Some(branch) = branch {
                    let s = self.eval(inp, branch, sub)?;
                    debug_assert_eq!(s, r);
                }
            }
            Func::Extension => {
                let Some(url) = self.string_arg(inp, &args[0], cx, "the extension url")? else {
                    return Ok(());
                };
                self.extensions(inp, lo..hi, url);
            }
            Func::GetResourceKey(resource) => {
                for i in lo..hi {
                    let Item::Node { at, .. } = self.items[i] else {
                        continue;
                    };
                    let data = self.data(inp);
                    let Some(kind) = data.member_str(at, "resourceType") else {
                        continue;
                    };
                    if resource.as_deref().is_some_and(|r| r != kind) {
                        continue;
                    }
                    if let Some(id) = data.member(at, "id")
                        && matches!(inp.tape.get(id), Some(Node::String(_)))
                    {
                        self.items.push(Item::Node {
                            at: id as u32,
                            ty: Ty::Id,
                        });
                    }
                }
            }
            Func::GetReferenceKey(resource) => {
                for i in lo..hi {
                    let Item::Node { at, .. } = self.items[i] else {
                        continue;
                    };
                    let data = self.data(inp);
                    let Some(r) = data.member(at, "reference") else {
                        continue;
                    };
                    let Some(Node::String(text)) = inp.tape.get(r) else {
                        continue;
                    };
                    let Some((kind, start, len)) = reference_key(text) else {
                        continue;
                    };
                    if let Some(wanted) = resource.as_deref()
                        && kind != Some(wanted)
                    {
                        continue;
                    }
                    self.items.push(Item::Str {
                        src: Src::Tape {
                            at: r as u32,
                            start: start as u32,
                            len: len as u32,
                        },
                        ty: Ty::Id,
                    });
                }
            }
            Func::Join => {
                let sep = match args.first() {
                    Some(arg) => self.string_arg(inp, arg, cx, "the separator")?,
                    None => None,
                };
                self.push_built(inp, Ty::String, |data, items, out| {
                    let sep = sep.map_or("", |s| data.text(s).unwrap_or(""));
                    for (k, &item) in items[lo..hi].iter().enumerate() {
                        if k > 0 {
                            out.push_str(sep);
                        }
                        write_text(data, item, out)?;
                    }
                    Ok(true)
                })?;
            }
            Func::LowBoundary | Func::HighBoundary => {
                let digits = match args.first() {
                    Some(arg) => self.integer_arg(inp, arg, cx, "the precision")?,
                    None => None,
                };
                let high = *func == Func::HighBoundary;
                for i in lo..hi {
                    self.boundary(inp, self.items[i], high, digits);
                }
            }
            Func::ToString => {
                if let Some(item) = self.single_item(lo, hi, "toString()")? {
                    self.push_built(inp, Ty::String, |data, _, out| {
                        Ok(!matches!(data.scalar(item), Scalar::Object(..))
                            && write_text(data, item, out).is_ok())
                    })?;
                }
            }
            Func::ToInteger | Func::ToDecimal => {
                if let Some(item) = self.single_item(lo, hi, "the conversion")? {
                    let data = self.data(inp);
                    let v = match (data.scalar(item), func) {
                        (Scalar::Int(i), Func::ToInteger) => Some(Item::Int(i)),
                        (Scalar::Int(i), _) => Some(Item::Dec {
                            v: i as f64,
                            scale: Some(0),
                        }),
                        (Scalar::Dec(v), Func::ToDecimal) => Some(Item::Dec { v, scale: None }),
                        (Scalar::Bool(b), Func::ToInteger) => Some(Item::Int(i64::from(b))),
                        (Scalar::Bool(b), _) => Some(Item::Dec {
                            v: f64::from(u8::from(b)),
                            scale: Some(1),
                        }),
                        (Scalar::Str(s, _), Func::ToInteger) => s.parse().ok().map(Item::Int),
                        (Scalar::Str(s, _), _) => s.parse().ok().map(|v| Item::Dec {
                            v,
                            scale: scale_of(s),
                        }),
                        _ => None,
                    };
                    self.items.extend(v);
                }
            }
            Func::HasValue => {
                let data = self.data(inp);
                let v = n == 1 && !matches!(data.scalar(self.items[lo]), Scalar::Object(..));
                self.items.push(Item::Bool(v));
            }
            Func::StartsWith | Func::EndsWith | Func::Contains => {
                let Some(item) = self.single_item(lo, hi, "the string function")? else {
                    return Ok(());
                };
                let Some(needle) = self.string_arg(inp, &args[0], cx, "the argument")? else {
                    return Ok(());
                };
                let data = self.data(inp);
                let (Some(s), Some(needle)) = (data.text(item), data.text(needle)) else {
                    return fault("expects a string input");
                };
                let v = match func {
                    Func::StartsWith => s.starts_with(needle),
                    Func::EndsWith => s.ends_with(needle),
                    _ => s.contains(needle),
                };
                self.items.push(Item::Bool(v));
            }
            Func::Length => {
                if let Some(item) = self.single_item(lo, hi, "length()")? {
                    let Some(s) = self.data(inp).text(item) else {
                        return fault("length() expects a string");
                    };
                    let len = s.chars().count() as i64;
                    self.items.push(Item::Int(len));
                }
            }
            Func::Upper | Func::Lower | Func::Trim => {
                if let Some(item) = self.single_item(lo, hi, "the string function")? {
                    let func = func.clone();
                    self.push_built(inp, Ty::String, |data, _, out| {
                        let Some(s) = data.text(item) else {
                            return fault("expects a string");
                        };
                        match func {
                            Func::Upper => out.push_str(&s.to_uppercase()),
                            Func::Lower => out.push_str(&s.to_lowercase()),
                            _ => out.push_str(s.trim()),
                        }
                        Ok(true)
                    })?;
                }
            }
            Func::Substring => {
                let Some(item) = self.single_item(lo, hi, "substring()")? else {
                    return Ok(());
                };
                let start = self.integer_arg(inp, &args[0], cx, "the start")?;
                let length = match args.get(1) {
                    Some(arg) => self.integer_arg(inp, arg, cx, "the length")?,
                    None => None,
                };
                let Some(start) = start else { return Ok(()) };
                self.push_built(inp, Ty::String, |data, _, out| {
                    let Some(s) = data.text(item) else {
                        return fault("substring() expects a string");
                    };
                    let count = s.chars().count() as i64;
                    if start < 0 || start >= count {
                        return Ok(false);
                    }
                    let take = length.map_or(count, |l| l.max(0)) as usize;
                    out.extend(s.chars().skip(start as usize).take(take));
                    Ok(true)
                })?;
            }
            Func::Union | Func::Combine => {
                let other = self.eval(inp, &args[0], cx)?;
                let end = self.items.len();
                for i in (lo..hi).chain(other..end) {
                    let item = self.items[i];
                    if *func == Func::Combine || !self.contains(inp, end..self.items.len(), item) {
                        self.items.push(item);
                    }
                }
                self.items.drain(other..end);
            }
        }
        Ok(())
    }

    fn single_item(&self, lo: usize, hi: usize, what: &str) -> Res<Option<Item>> {
        match hi - lo {
            0 => Ok(None),
            1 => Ok(Some(self.items[lo])),
            n => fault(format!("{what} expects a single value, got {n}")),
        }
    }

    /// Pushes the extensions with url `url` of the objects in `range`.
    fn extensions(&mut self, inp: &Input<'_, '_>, range: std::ops::Range<usize>, url: Item) {
        let data = Data {
            tape: inp.tape,
            pool: inp.pool,
            arena: &self.arena,
        };
        let Some(url) = data.text(url) else { return };
        let extension = Ty::from_fhir_name("Extension").unwrap_or(Ty::Unknown);
        for i in range {
            let Item::Node { at, .. } = self.items[i] else {
                continue;
            };
            let Some(list) = data.member(at, "extension") else {
                continue;
            };
            let (first, count) = match inp.tape.get(list) {
                Some(Node::Array { len, .. }) => (list + 1, *len),
                Some(Node::Object { .. }) => (list, 1),
                _ => continue,
            };
            let mut e = first;
            for _ in 0..count {
                if data.member_str(e as u32, "url") == Some(url) {
                    self.items.push(Item::Node {
                        at: e as u32,
                        ty: extension,
                    });
                }
                e += span(inp.tape, e);
            }
        }
    }

    /// Pushes the low or high boundary of a decimal, date, date-time or time.
    fn boundary(&mut self, inp: &Input<'_, '_>, item: Item, high: bool, digits: Option<i64>) {
        let scalar = self.data(inp).scalar(item);
        match scalar {
            Scalar::Int(_) | Scalar::Dec(_) => {
                let v = scalar.number().unwrap_or(0.0);
                let scale = self
                    .scale_of_item(inp, item)
                    .unwrap_or_else(|| guess_scale(v));
                if let Some(b) = decimal_boundary(v, scale, high, digits) {
                    let target = digits.map_or(scale + 1, |d| d as u8);
                    self.items.push(Item::Dec {
                        v: b,
                        scale: Some(target),
                    });
                }
            }
            Scalar::Str(text, ty) => {
                let Some((t, ty)) = temporal_of(text, ty) else {
                    return;
                };
                let mut out = std::mem::take(&mut self.arena);
                let start = out.len();
                let ok = t.boundary(high, digits, &mut out);
                let len = out.len() - start;
                self.arena = out;
                if ok {
                    self.items.push(Item::Str {
                        src: Src::Arena {
                            start: start as u32,
                            len: len as u32,
                        },
                        ty,
                    });
                }
            }
            _ => {}
        }
    }
}

/// Pushes the value at tape index `value`: each item of an array, nothing for null.
fn push_value(items: &mut Vec<Item>, tape: &[Node<'_>], value: usize, ty: Ty) {
    match tape.get(value) {
        Some(Node::Array { len, .. }) => {
            let mut i = value + 1;
            for _ in 0..*len {
                if !matches!(tape.get(i), Some(Node::Static(simd_json::StaticNode::Null))) {
                    push_value(items, tape, i, ty);
                }
                i += span(tape, i);
            }
        }
        Some(Node::Static(simd_json::StaticNode::Null)) | None => {}
        Some(_) => items.push(Item::Node {
            at: value as u32,
            ty,
        }),
    }
}

/// The temporal value of a string of type `ty`, and its type; strings of unknown type
/// are read by their shape (`12:30` a time, `2020-01` a date, with `T` a date-time).
fn temporal_of(text: &str, ty: Ty) -> Option<(Temporal, Ty)> {
    let (kind, ty) = match ty {
        Ty::Date => (Kind::Date, Ty::Date),
        Ty::DateTime => (Kind::DateTime, Ty::DateTime),
        Ty::Instant => (Kind::DateTime, Ty::Instant),
        Ty::Time => (Kind::Time, Ty::Time),
        Ty::Unknown | Ty::String => {
            if text.as_bytes().get(2) == Some(&b':') {
                (Kind::Time, Ty::Time)
            } else if text.contains('T') {
                (Kind::DateTime, Ty::DateTime)
            } else {
                (Kind::Date, Ty::Date)
            }
        }
        _ => return None,
    };
    Temporal::parse(text, kind).map(|t| (t, ty))
}

/// Parses both sides as temporal values when either is typed as one.
fn temporal_pair(a: (&str, Ty), b: (&str, Ty)) -> Option<(Temporal, Temporal)> {
    if !a.1.is_temporal() && !b.1.is_temporal() {
        return None;
    }
    // A date compared with a date-time reads as a date-time of day precision.
    let widen = |ty: Ty| if ty == Ty::Date { Ty::DateTime } else { ty };
    let (ta, _) = temporal_of(a.0, widen(a.1))?;
    let (tb, _) = temporal_of(b.0, widen(b.1))?;
    ta.comparable(&tb).then_some((ta, tb))
}

/// FHIRPath `=` on two items: `None` when the answer is empty (dates of different
/// precision).
fn items_equal(data: &Data<'_, '_>, a: Item, b: Item) -> Option<bool> {
    match (data.scalar(a), data.scalar(b)) {
        (Scalar::Bool(x), Scalar::Bool(y)) => Some(x == y),
        (Scalar::Int(x), Scalar::Int(y)) => Some(x == y),
        (Scalar::Str(x, tx), Scalar::Str(y, ty)) => match temporal_pair((x, tx), (y, ty)) {
            Some((p, q)) => p.compare(&q).map(|o| o == Ordering::Equal),
            None => Some(x == y),
        },
        (Scalar::Object(x, _), Scalar::Object(y, _)) => {
            Some(data.same_json(x as usize, y as usize))
        }
        (x, y) => match (x.number(), y.number()) {
            (Some(p), Some(q)) => Some(p == q),
            _ => Some(false),
        },
    }
}

/// FHIRPath `~` on two items: case- and whitespace-insensitive strings, never empty.
fn items_equivalent(data: &Data<'_, '_>, a: Item, b: Item) -> bool {
    match (data.scalar(a), data.scalar(b)) {
        (Scalar::Str(x, tx), Scalar::Str(y, ty)) if temporal_pair((x, tx), (y, ty)).is_none() => {
            let norm = |s: &str| {
                s.split_whitespace()
                    .map(str::to_lowercase)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            norm(x) == norm(y)
        }
        _ => items_equal(data, a, b) == Some(true),
    }
}

/// FHIRPath ordering of two values: `None` when the answer is empty.
fn compare(a: Scalar<'_>, b: Scalar<'_>) -> Res<Option<Ordering>> {
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => Ok(Some(x.cmp(&y))),
        (Scalar::Str(x, tx), Scalar::Str(y, ty)) => Ok(match temporal_pair((x, tx), (y, ty)) {
            Some((p, q)) => p.compare(&q),
            None if tx.is_temporal() || ty.is_temporal() => {
                return fault(format!("cannot compare '{x}' with '{y}'"));
            }
            None => Some(x.cmp(y)),
        }),
        (x, y) => match (x.number(), y.number()) {
            (Some(p), Some(q)) => Ok(p.partial_cmp(&q)),
            _ => fault(format!(
                "cannot compare {} with {}",
                x.kind_name(),
                y.kind_name()
            )),
        },
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

/// The type and id of a reference (`Patient/123`, `http://x/fhir/Patient/123/_history/2`,
/// `urn:uuid:...`), as the byte range of the id within `text`. `None` for references
/// without a key of their own: contained (`#x`), conditional (`Patient?identifier=`),
/// or empty.
fn reference_key(text: &str) -> Option<(Option<&str>, usize, usize)> {
    if text.is_empty() || text.starts_with('#') || text.contains('?') {
        return None;
    }
    for prefix in ["urn:uuid:", "urn:oid:"] {
        if let Some(id) = text.strip_prefix(prefix) {
            return (!id.is_empty()).then_some((None, prefix.len(), id.len()));
        }
    }
    let path = match text.find("/_history/") {
        Some(h) => &text[..h],
        None => text,
    };
    let path = path.trim_end_matches('/');
    let (head, id) = path.rsplit_once('/')?;
    let kind = head.rsplit('/').next().filter(|k| !k.is_empty());
    if id.is_empty() {
        return None;
    }
    Some((kind, head.len() + 1, id.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::fhirpath::compile::{Scope, compile};

    const PATIENT: &str = r#"{"resourceType":"Patient","id":"p1","active":true,
        "name":[{"use":"official","family":"Doe","given":["A","B"]},{"family":"Roe","given":[null,"C"]}],
        "birthDate":"1970-06","deceasedDateTime":"2001-02-03T04:05:06+01:00",
        "managingOrganization":{"reference":"Organization/o1"},
        "extension":[{"url":"u1","valueDecimal":1.50},{"url":"u2","valueString":"x"}]}"#;

    /// Evaluates `expr` on `resource` and renders the result.
    fn run(resource: &str, expr: &str) -> Result<Vec<String>, String> {
        let mut pool = Vec::new();
        let constants = vec![("two".to_owned(), Item::Int(2))];
        let compiled = compile(
            expr,
            &mut Scope {
                pool: &mut pool,
                constants: &constants,
            },
        )
        .map_err(|e| e.to_string())?;
        let mut bytes = resource.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut bytes).map_err(|e| e.to_string())?;
        let inp = Input {
            tape: &tape.0,
            line: Some(resource.as_bytes()),
            pool: &pool,
        };
        let mut eval = Evaluator::default();
        let root = Item::Node {
            at: 0,
            ty: Ty::Resource,
        };
        let s = eval
            .eval_on(&inp, &compiled.expr, Some(root), 0)
            .map_err(|Fault(m)| m)?;
        let data = eval.data(&inp);
        Ok(eval.items[s..]
            .iter()
            .map(|item| match data.scalar(*item) {
                Scalar::Bool(b) => b.to_string(),
                Scalar::Int(i) => i.to_string(),
                Scalar::Dec(v) => format!("{v}"),
                Scalar::Str(s, _) => s.to_owned(),
                Scalar::Object(..) => "{}".to_owned(),
            })
            .collect())
    }

    fn ok(expr: &str) -> Vec<String> {
        run(PATIENT, expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    #[test]
    fn navigation_flattens_and_skips_nulls() {
        assert_eq!(ok("name.given"), ["A", "B", "C"]);
        assert_eq!(ok("Patient.name[1].family"), ["Roe"]);
        assert_eq!(ok("Observation.id"), Vec::<String>::new());
        assert_eq!(ok("name.where(use = 'official').family"), ["Doe"]);
        assert_eq!(ok("name.select(given.first())"), ["A", "C"]);
        assert_eq!(ok("name.given.where($index > 0)"), ["B", "C"]);
        assert_eq!(ok("name[%two - 1].family"), ["Roe"]);
        assert_eq!(ok("name.given.tail().skip(1)"), ["C"]);
        assert_eq!(ok("name.given.take(2).last()"), ["B"]);
        assert_eq!(ok("(name.family | name.family).count()"), ["2"]);
        assert_eq!(ok("name.family.combine(name.family).count()"), ["4"]);
        assert_eq!(ok("name.given.join('-')"), ["A-B-C"]);
    }

    #[test]
    fn choice_elements_and_types() {
        assert_eq!(
            ok("deceased.ofType(dateTime)"),
            ["2001-02-03T04:05:06+01:00"]
        );
        assert_eq!(ok("deceased.ofType(boolean)"), Vec::<String>::new());
        assert_eq!(ok("deceased is dateTime"), ["true"]);
        assert_eq!(ok("extension('u1').value.ofType(decimal)"), ["1.5"]);
        assert_eq!(ok("extension.value.ofType(string)"), ["x"]);
        let goal = r#"{"resourceType":"Goal","status":"active","statusDate":"2020-01-01"}"#;
        assert_eq!(run(goal, "status").unwrap(), ["active"]);
        let no_status = r#"{"resourceType":"Goal","statusDate":"2020-01-01"}"#;
        assert_eq!(run(no_status, "status").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn three_valued_logic() {
        for (expr, expected) in [
            ("{} and true", None),
            ("{} and false", Some("false")),
            ("{} or true", Some("true")),
            ("{} or false", None),
            ("true xor {}", None),
            ("true xor false", Some("true")),
            ("{} implies true", Some("true")),
            ("{} implies false", None),
            ("false implies {}", Some("true")),
            ("true implies {}", None),
            ("{}.not()", None),
            ("active.not()", Some("false")),
        ] {
            let got = ok(expr);
            assert_eq!(got.first().map(String::as_str), expected, "{expr}");
        }
    }

    #[test]
    fn comparisons_and_arithmetic() {
        assert_eq!(ok("1 + 2 * 3"), ["7"]);
        assert_eq!(ok("7 div 2"), ["3"]);
        assert_eq!(ok("7 mod 2"), ["1"]);
        assert_eq!(ok("3 / 2"), ["1.5"]);
        assert_eq!(ok("1 / 0"), Vec::<String>::new());
        assert_eq!(ok("-(2 - 5)"), ["3"]);
        assert_eq!(ok("'a' + 'b' & {} & 1"), ["ab1"]);
        assert_eq!(ok("{} + 1"), Vec::<String>::new());
        assert_eq!(ok("1 = 1.0"), ["true"]);
        assert_eq!(ok("'a' < 'b'"), ["true"]);
        assert_eq!(ok("name.family = 'Doe'"), ["false"]);
        assert_eq!(ok("name.family ~ ('roe' | 'doe')"), ["true"]);
        assert_eq!(ok("'Doe' in name.family"), ["true"]);
        assert_eq!(ok("birthDate < @1970-07-01"), ["true"]);
        assert_eq!(ok("birthDate = @1970-06-15"), Vec::<String>::new());
        assert_eq!(ok("birthDate = @1970-06"), ["true"]);
        assert_eq!(
            ok("deceased.ofType(dateTime) = @2001-02-03T03:05:06Z"),
            ["true"]
        );
        assert!(
            run(PATIENT, "9223372036854775807 + 1")
                .unwrap_err()
                .contains("overflow")
        );
        assert!(
            run(PATIENT, "1 < 'a'")
                .unwrap_err()
                .contains("cannot compare")
        );
        assert!(
            run(PATIENT, "name.family < 'Z'")
                .unwrap_err()
                .contains("single value")
        );
    }

    #[test]
    fn functions() {
        assert_eq!(ok("name.exists(use = 'official')"), ["true"]);
        assert_eq!(ok("name.all(family.exists())"), ["true"]);
        assert_eq!(ok("name.given.empty()"), ["false"]);
        assert_eq!(ok("name.given.count()"), ["3"]);
        assert_eq!(ok("(1 | 1 | 2).isDistinct()"), ["true"]);
        assert_eq!(ok("(true | false).anyFalse()"), ["true"]);
        assert_eq!(ok("iif(active, 'yes', 'no')"), ["yes"]);
        assert_eq!(ok("getResourceKey()"), ["p1"]);
        assert_eq!(
            ok("managingOrganization.getReferenceKey(Organization)"),
            ["o1"]
        );
        assert_eq!(
            ok("managingOrganization.getReferenceKey(Patient)"),
            Vec::<String>::new()
        );
        assert_eq!(ok("name.family.first().upper()"), ["DOE"]);
        assert_eq!(ok("name.family.first().substring(1, 1)"), ["o"]);
        assert_eq!(ok("name.family.first().startsWith('D')"), ["true"]);
        assert_eq!(ok("name.family.first().length()"), ["3"]);
        assert_eq!(ok("'12'.toInteger() + 1"), ["13"]);
        assert_eq!(ok("1.toString() & true.toString()"), ["1true"]);
        assert!(
            run(PATIENT, "name.single()")
                .unwrap_err()
                .contains("single()")
        );
    }

    #[test]
    fn boundaries_keep_decimal_precision_from_the_line() {
        assert_eq!(
            ok("extension('u1').value.ofType(decimal).lowBoundary()"),
            ["1.495"]
        );
        assert_eq!(
            ok("extension('u1').value.ofType(decimal).highBoundary()"),
            ["1.505"]
        );
        assert_eq!(ok("birthDate.lowBoundary()"), ["1970-06-01"]);
        assert_eq!(ok("birthDate.highBoundary()"), ["1970-06-30"]);
        assert_eq!(ok("@T10:30.highBoundary()"), ["10:30:59.999"]);
        assert_eq!(ok("2.5.lowBoundary()"), ["2.45"]);
    }

    #[test]
    fn reference_keys() {
        let key = |t: &'static str| reference_key(t).map(|(k, s, l)| (k, &t[s..s + l]));
        assert_eq!(key("Patient/123"), Some((Some("Patient"), "123")));
        assert_eq!(
            key("http://x.org/fhir/Patient/1/_history/2"),
            Some((Some("Patient"), "1"))
        );
        assert_eq!(key("urn:uuid:abc"), Some((None, "abc")));
        assert_eq!(key("#c1"), None);
        assert_eq!(key("Practitioner?identifier=a|b"), None);
        assert_eq!(key("123"), None);
    }
}
