//! Comparison: equality (`=`, `!=`), equivalence (`~`, `!~`), ordering (`<`, `<=`,
//! `>`, `>=`), and the collection operators built on equality: membership (`in`,
//! `contains`) and union (`|`, also `distinct()` and `union()`). Strings typed as (or
//! compared with) dates, date-times and times compare as such.

use std::{cmp::Ordering, ops::Range};

use crate::view::fhirpath::{
    eval::{Evaluator, Input, Res, fault},
    parser::BinOp,
    temporal::{Kind, Temporal},
    types::Ty,
    value::{Data, Item, Scalar},
};

impl Evaluator {
    /// `a = b` or `a != b`, pushing the result.
    pub(super) fn equal(
        &mut self,
        inp: &Input<'_, '_>,
        op: BinOp,
        a: (usize, usize),
        b: (usize, usize),
    ) {
        let v = self.collections_equal(inp, a, b);
        let v = if op == BinOp::Ne { v.map(|v| !v) } else { v };
        self.items.extend(v.map(Item::Bool));
    }

    /// `a ~ b` or `a !~ b`, pushing the result.
    pub(super) fn equivalent(
        &mut self,
        inp: &Input<'_, '_>,
        op: BinOp,
        a: (usize, usize),
        b: (usize, usize),
    ) {
        let v = self.collections_equivalent(inp, a, b);
        self.items
            .push(Item::Bool(if op == BinOp::Equiv { v } else { !v }));
    }

    /// `a < b`, `a <= b`, `a > b` or `a >= b`, pushing the result.
    pub(super) fn order(
        &mut self,
        inp: &Input<'_, '_>,
        op: BinOp,
        a: (usize, usize),
        b: (usize, usize),
    ) -> Res<()> {
        let x = self.single_range(inp, a.0, a.1, op.text())?;
        let y = self.single_range(inp, b.0, b.1, op.text())?;
        if let (Some(x), Some(y)) = (x, y) {
            let ord = compare(x, y)?;
            let v = ord.map(|o| match op {
                BinOp::Lt => o == Ordering::Less,
                BinOp::Le => o != Ordering::Greater,
                BinOp::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            });
            self.items.extend(v.map(Item::Bool));
        }
        Ok(())
    }

    /// `a in b` or `a contains b`, pushing the result.
    pub(super) fn membership(
        &mut self,
        inp: &Input<'_, '_>,
        op: BinOp,
        a: (usize, usize),
        b: (usize, usize),
    ) -> Res<()> {
        let (needle, hay) = if op == BinOp::In { (a, b) } else { (b, a) };
        match needle.1 - needle.0 {
            0 => {}
            1 => {
                let item = self.items[needle.0];
                let found = self.contains(inp, hay.0..hay.1, item);
                self.items.push(Item::Bool(found));
            }
            n => return fault(format!("{} expects a single value, got {n}", op.text())),
        }
        Ok(())
    }

    /// Pushes the items at `indices`, in order, leaving out those equal to one pushed
    /// before them: `|`, `union()`, `distinct()`.
    pub(in crate::view::fhirpath::eval) fn push_distinct(
        &mut self,
        inp: &Input<'_, '_>,
        indices: impl IntoIterator<Item = usize>,
    ) {
        let out = self.items.len();
        for i in indices {
            let item = self.items[i];
            if !self.contains(inp, out..self.items.len(), item) {
                self.items.push(item);
            }
        }
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
    fn contains(&self, inp: &Input<'_, '_>, range: Range<usize>, item: Item) -> bool {
        let data = self.data(inp);
        self.items[range]
            .iter()
            .any(|other| items_equal(&data, *other, item) == Some(true))
    }
}

/// The temporal value of a string of type `ty`, and its type; strings of unknown type
/// are read by their shape (`12:30` a time, `2020-01` a date, with `T` a date-time).
pub(in crate::view::fhirpath::eval) fn temporal_of(text: &str, ty: Ty) -> Option<(Temporal, Ty)> {
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

#[cfg(test)]
mod tests {
    use crate::view::fhirpath::eval::testing::{PATIENT, ok, run};

    #[test]
    fn comparisons() {
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
}
