//! The values of FHIRPath collections during evaluation.
//!
//! An [`Item`] is small and `Copy`: either a node of the resource's tape (by index) or
//! a computed value. Computed text lives in the view's string pool (literals and
//! constants), in a substring of a tape string (`getReferenceKey`), or in the per-resource
//! arena (`join`, `&`, boundaries), so no item owns memory.

use simd_json::{Node, StaticNode};

use super::types::{JsonKind, Ty};

/// Where the text of a computed string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Src {
    /// The view's string pool (literals, constants).
    Pool(u32),
    /// Bytes `start..start+len` of the string node at tape index `at`.
    Tape { at: u32, start: u32, len: u32 },
    /// Bytes `start..start+len` of the per-resource arena.
    Arena { start: u32, len: u32 },
}

/// Adds `s` to the view's string pool (once) and returns where it is.
pub(crate) fn intern(pool: &mut Vec<Box<str>>, s: &str) -> Src {
    if let Some(i) = pool.iter().position(|p| &**p == s) {
        return Src::Pool(i as u32);
    }
    pool.push(s.into());
    Src::Pool(pool.len() as u32 - 1)
}

/// One value of a collection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Item {
    /// The tape node at `at` (never an array or null), and its FHIR type when known.
    Node {
        at: u32,
        ty: Ty,
    },
    Bool(bool),
    Int(i64),
    /// A decimal and the digits after its point, when known.
    Dec {
        v: f64,
        scale: Option<u8>,
    },
    /// A string, date, date-time or time (`ty` says which).
    Str {
        src: Src,
        ty: Ty,
    },
}

/// The value of an item as operators see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar<'a> {
    Bool(bool),
    Int(i64),
    Dec(f64),
    Str(&'a str, Ty),
    /// A JSON object at this tape index (a complex value or a resource).
    Object(u32, Ty),
}

impl Scalar<'_> {
    /// A name for the kind of value, for messages.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Self::Bool(_) => "a boolean",
            Self::Int(_) => "an integer",
            Self::Dec(_) => "a decimal",
            Self::Str(_, ty) if ty.is_temporal() => "a date/time",
            Self::Str(..) => "a string",
            Self::Object(..) => "a complex value",
        }
    }

    /// The number, if the value is one.
    pub(crate) fn number(&self) -> Option<f64> {
        match *self {
            Self::Int(i) => Some(i as f64),
            Self::Dec(d) => Some(d),
            _ => None,
        }
    }
}

/// What reading items needs: the tape, the string pool and the arena.
#[derive(Clone, Copy)]
pub(crate) struct Data<'a, 't> {
    pub tape: &'a [Node<'t>],
    pub pool: &'a [Box<str>],
    pub arena: &'a [u8],
}

impl<'a> Data<'a, '_> {
    /// The text of a computed string.
    pub(crate) fn src_text(&self, src: Src) -> &'a str {
        match src {
            Src::Pool(i) => self.pool.get(i as usize).map_or("", |s| s),
            Src::Tape { at, start, len } => match self.tape.get(at as usize) {
                Some(Node::String(s)) => {
                    s.get(start as usize..(start + len) as usize).unwrap_or("")
                }
                _ => "",
            },
            // The arena only ever receives whole `str`s, so this cannot fail.
            Src::Arena { start, len } => self
                .arena
                .get(start as usize..(start + len) as usize)
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
        }
    }

    /// The value of an item.
    pub(crate) fn scalar(&self, item: Item) -> Scalar<'a> {
        match item {
            Item::Bool(b) => Scalar::Bool(b),
            Item::Int(i) => Scalar::Int(i),
            Item::Dec { v, .. } => Scalar::Dec(v),
            Item::Str { src, ty } => Scalar::Str(self.src_text(src), ty),
            Item::Node { at, ty } => match self.tape.get(at as usize) {
                Some(Node::String(s)) => Scalar::Str(s, ty),
                Some(Node::Static(StaticNode::Bool(b))) => Scalar::Bool(*b),
                Some(Node::Static(StaticNode::I64(i))) if ty != Ty::Decimal => Scalar::Int(*i),
                Some(Node::Static(StaticNode::U64(u))) if ty != Ty::Decimal => {
                    i64::try_from(*u).map_or(Scalar::Dec(*u as f64), Scalar::Int)
                }
                Some(Node::Static(StaticNode::I64(i))) => Scalar::Dec(*i as f64),
                Some(Node::Static(StaticNode::U64(u))) => Scalar::Dec(*u as f64),
                Some(Node::Static(StaticNode::F64(f))) => Scalar::Dec(*f),
                _ => Scalar::Object(at, ty),
            },
        }
    }

    /// The text of an item that is a string (of any string-like or temporal type).
    pub(crate) fn text(&self, item: Item) -> Option<&'a str> {
        match self.scalar(item) {
            Scalar::Str(s, _) => Some(s),
            _ => None,
        }
    }

    /// The FHIR type of an item when known, from its value for computed items.
    pub(crate) fn known_type(&self, item: Item) -> Ty {
        match item {
            Item::Node { ty, .. } => ty,
            Item::Bool(_) => Ty::Boolean,
            Item::Int(_) => Ty::Integer,
            Item::Dec { .. } => Ty::Decimal,
            Item::Str { ty, .. } => ty,
        }
    }

    /// The JSON kind of a tape node, for type tests on values of unknown type.
    pub(crate) fn json_kind(&self, at: u32) -> Option<JsonKind> {
        Some(match self.tape.get(at as usize)? {
            Node::String(_) => JsonKind::String,
            Node::Static(StaticNode::Bool(_)) => JsonKind::Bool,
            Node::Static(StaticNode::I64(_) | StaticNode::U64(_)) => JsonKind::Integer,
            Node::Static(StaticNode::F64(_)) => JsonKind::Decimal,
            Node::Object { .. } => JsonKind::Object,
            _ => return None,
        })
    }

    /// The tape index of the value of member `key` of the object at `at`.
    pub(crate) fn member(&self, at: u32, key: &str) -> Option<usize> {
        let at = at as usize;
        let Some(&Node::Object { len, .. }) = self.tape.get(at) else {
            return None;
        };
        let mut k = at + 1;
        for _ in 0..len {
            let value = k + 1;
            if let Some(Node::String(name)) = self.tape.get(k)
                && *name == key
            {
                return Some(value);
            }
            k = value + span(self.tape, value);
        }
        None
    }

    /// The string value of member `key` of the object at `at`.
    pub(crate) fn member_str(&self, at: u32, key: &str) -> Option<&'a str> {
        match self.tape.get(self.member(at, key)?)? {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the subtrees at `a` and `b` hold the same JSON (object keys in any order).
    pub(crate) fn same_json(&self, a: usize, b: usize) -> bool {
        match (self.tape.get(a), self.tape.get(b)) {
            (Some(Node::Object { len: la, .. }), Some(Node::Object { len: lb, .. })) => {
                if la != lb {
                    return false;
                }
                let mut k = a + 1;
                for _ in 0..*la {
                    let value = k + 1;
                    let Some(Node::String(key)) = self.tape.get(k) else {
                        return false;
                    };
                    match self.member(b as u32, key) {
                        Some(other) if self.same_json(value, other) => {}
                        _ => return false,
                    }
                    k = value + span(self.tape, value);
                }
                true
            }
            (Some(Node::Array { len: la, .. }), Some(Node::Array { len: lb, .. })) => {
                if la != lb {
                    return false;
                }
                let (mut i, mut j) = (a + 1, b + 1);
                for _ in 0..*la {
                    if !self.same_json(i, j) {
                        return false;
                    }
                    i += span(self.tape, i);
                    j += span(self.tape, j);
                }
                true
            }
            (Some(Node::String(x)), Some(Node::String(y))) => x == y,
            (Some(Node::Static(x)), Some(Node::Static(y))) => x == y,
            _ => false,
        }
    }
}

/// The number of tape nodes of the value at `index` (itself included).
pub(crate) fn span(tape: &[Node<'_>], index: usize) -> usize {
    match tape.get(index) {
        Some(Node::Object { count, .. } | Node::Array { count, .. }) => count + 1,
        _ => 1,
    }
}
