//! Filtering, projection, subsetting and combining: `where`, `select`, `ofType`, `is`,
//! `as`, `skip`, `take`, `union`, `combine` (`first`, `last`, `tail` and `single` are
//! one-liners in [`Evaluator::call`]).

use crate::view::fhirpath::{
    compile::{Expr, Func},
    eval::{Ctx, Evaluator, Input, Res, fault},
    types::{Ty, TypeSpec},
    value::Item,
};

impl Evaluator {
    /// `where(criteria)`: the items for which the criteria is true.
    pub(super) fn filter(
        &mut self,
        inp: &Input<'_, '_>,
        criteria: &Expr,
        (lo, hi): (usize, usize),
        cx: Ctx,
    ) -> Res<()> {
        for i in lo..hi {
            if self.criterion(inp, criteria, lo, i, cx)? {
                self.items.push(self.items[i]);
            }
        }
        Ok(())
    }

    /// `select(projection)`: the results of the projection on each item, in order.
    pub(super) fn select(
        &mut self,
        inp: &Input<'_, '_>,
        projection: &Expr,
        (lo, hi): (usize, usize),
        cx: Ctx,
    ) -> Res<()> {
        for i in lo..hi {
            let sub = self.focus(lo, i, cx);
            self.eval(inp, projection, sub)?;
            self.items.remove(sub.this.0);
        }
        Ok(())
    }

    /// `ofType(T)` and `as T`: the items of type `T`.
    pub(super) fn of_type(
        &mut self,
        inp: &Input<'_, '_>,
        spec: &TypeSpec,
        (lo, hi): (usize, usize),
    ) {
        for i in lo..hi {
            let item = self.items[i];
            if self.type_matches(inp, item, spec) {
                self.items.push(item);
            }
        }
    }

    /// `is T`: whether the single item is of type `T`.
    pub(super) fn is_type(
        &mut self,
        inp: &Input<'_, '_>,
        spec: &TypeSpec,
        (lo, hi): (usize, usize),
    ) -> Res<()> {
        match hi - lo {
            0 => {}
            1 => {
                let v = self.type_matches(inp, self.items[lo], spec);
                self.items.push(Item::Bool(v));
            }
            n => return fault(format!("is expects a single value, got {n}")),
        }
        Ok(())
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

    /// `skip(count)`, `take(count)`: the input without its first `count` items, or
    /// only those.
    pub(super) fn skip_or_take(
        &mut self,
        inp: &Input<'_, '_>,
        func: &Func,
        count: &Expr,
        (lo, hi): (usize, usize),
        cx: Ctx,
    ) -> Res<()> {
        let k = self
            .integer_arg(inp, count, cx, "the count")?
            .unwrap_or(0)
            .clamp(0, (hi - lo) as i64) as usize;
        if *func == Func::Skip {
            self.items.extend_from_within(lo + k..hi);
        } else {
            self.items.extend_from_within(lo..lo + k);
        }
        Ok(())
    }

    /// `union(other)`: the input and `other` without repeated items; `combine(other)`:
    /// both, repeats kept.
    pub(super) fn union(
        &mut self,
        inp: &Input<'_, '_>,
        func: &Func,
        other: &Expr,
        (lo, hi): (usize, usize),
        cx: Ctx,
    ) -> Res<()> {
        let other = self.eval(inp, other, cx)?;
        let end = self.items.len();
        if *func == Func::Combine {
            self.items.extend_from_within(lo..hi);
            self.items.extend_from_within(other..end);
        } else {
            self.push_distinct(inp, (lo..hi).chain(other..end));
        }
        self.items.drain(other..end);
        Ok(())
    }
}
