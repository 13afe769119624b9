//! Existence: `exists`, `all`, `allTrue`, `anyTrue`, `allFalse`, `anyFalse`,
//! `distinct`, `isDistinct`, and `hasValue` (`empty` and `count` are one-liners in
//! [`Evaluator::call`]).

use crate::view::fhirpath::{
    compile::{Expr, Func},
    eval::{Ctx, Evaluator, Input, Res, fault},
    value::{Item, Scalar},
};

impl Evaluator {
    /// `exists([criteria])`: whether the input has an item (for which the criteria is
    /// true).
    pub(super) fn exists(
        &mut self,
        inp: &Input<'_, '_>,
        criteria: Option<&Expr>,
        from: (usize, usize),
        cx: Ctx,
    ) -> Res<()> {
        let any = match criteria {
            Some(criteria) => self.any_criterion_is(inp, criteria, from, cx, true)?,
            None => from.1 > from.0,
        };
        self.items.push(Item::Bool(any));
        Ok(())
    }

    /// `all(criteria)`: whether the criteria is true for every item of the input.
    pub(super) fn all(
        &mut self,
        inp: &Input<'_, '_>,
        criteria: &Expr,
        from: (usize, usize),
        cx: Ctx,
    ) -> Res<()> {
        let all = !self.any_criterion_is(inp, criteria, from, cx, false)?;
        self.items.push(Item::Bool(all));
        Ok(())
    }

    /// Whether the criteria is true (`wanted`), or not true, for some item of the
    /// input; stops at the first such item.
    fn any_criterion_is(
        &mut self,
        inp: &Input<'_, '_>,
        criteria: &Expr,
        (lo, hi): (usize, usize),
        cx: Ctx,
        wanted: bool,
    ) -> Res<bool> {
        for i in lo..hi {
            if self.criterion(inp, criteria, lo, i, cx)? == wanted {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `allTrue()`, `anyTrue()`, `allFalse()`, `anyFalse()` on an input of booleans.
    pub(super) fn all_or_any(
        &mut self,
        inp: &Input<'_, '_>,
        func: &Func,
        (lo, hi): (usize, usize),
    ) -> Res<()> {
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
        Ok(())
    }

    /// `distinct()`: the input without repeated items; `isDistinct()`: whether it has
    /// none.
    pub(super) fn distinct(&mut self, inp: &Input<'_, '_>, func: &Func, (lo, hi): (usize, usize)) {
        let out = self.items.len();
        self.push_distinct(inp, lo..hi);
        if *func == Func::IsDistinct {
            let distinct = self.items.len() - out == hi - lo;
            self.items.truncate(out);
            self.items.push(Item::Bool(distinct));
        }
    }

    /// `hasValue()`: whether the input is a single primitive value.
    pub(super) fn has_value(&mut self, inp: &Input<'_, '_>, (lo, hi): (usize, usize)) {
        let data = self.data(inp);
        let v = hi - lo == 1 && !matches!(data.scalar(self.items[lo]), Scalar::Object(..));
        self.items.push(Item::Bool(v));
    }
}

#[cfg(test)]
mod tests {
    use crate::view::fhirpath::eval::testing::ok;

    #[test]
    fn existence() {
        assert_eq!(ok("name.exists(use = 'official')"), ["true"]);
        assert_eq!(ok("name.all(family.exists())"), ["true"]);
        assert_eq!(ok("name.given.empty()"), ["false"]);
        assert_eq!(ok("name.given.count()"), ["3"]);
        assert_eq!(ok("(1 | 1 | 2).isDistinct()"), ["true"]);
        assert_eq!(ok("(true | false).anyFalse()"), ["true"]);
    }
}
