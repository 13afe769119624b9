//! Function calls: [`Evaluator::call`] dispatches each function to its family. The
//! one-liners (`empty`, `count`, `first`, `last`, `tail`, `single`) are here, `not()` is
//! with the boolean operators.

mod boundaries;
mod conversion;
mod existence;
mod extensions;
mod filtering;
mod references;
mod strings;

use super::{Ctx, Evaluator, Input, Res, fault};
use crate::view::fhirpath::{
    compile::{Expr, Func},
    value::Item,
};

impl Evaluator {
    /// Applies `func` to the input range `from`, pushing the result.
    pub(super) fn call(
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
            // Existence.
            Func::Empty => self.items.push(Item::Bool(n == 0)),
            Func::Count => self.items.push(Item::Int(n as i64)),
            Func::Exists => self.exists(inp, args.first(), from, cx)?,
            Func::All => self.all(inp, &args[0], from, cx)?,
            Func::AllTrue | Func::AnyTrue | Func::AllFalse | Func::AnyFalse => {
                self.all_or_any(inp, func, from)?;
            }
            Func::Distinct | Func::IsDistinct => self.distinct(inp, func, from),
            Func::HasValue => self.has_value(inp, from),
            // Filtering, projection, subsetting, combining.
            Func::Where => self.filter(inp, &args[0], from, cx)?,
            Func::Select => self.select(inp, &args[0], from, cx)?,
            Func::OfType(spec) | Func::As(spec) => self.of_type(inp, spec, from),
            Func::Is(spec) => self.is_type(inp, spec, from)?,
            Func::First | Func::Last if n == 0 => {}
            Func::First => self.items.push(self.items[lo]),
            Func::Last => self.items.push(self.items[hi - 1]),
            Func::Tail => self.items.extend_from_within((lo + 1).min(hi)..hi),
            Func::Skip | Func::Take => self.skip_or_take(inp, func, &args[0], from, cx)?,
            Func::Single => match n {
                0 => {}
                1 => self.items.push(self.items[lo]),
                _ => return fault(format!("single() on {n} values")),
            },
            Func::Union | Func::Combine => self.union(inp, func, &args[0], from, cx)?,
            // Boolean logic.
            Func::Not => self.not(inp, from)?,
            // Conversion.
            Func::Iif => self.iif(inp, args, from, cx)?,
            Func::ToString => self.convert_to_string(inp, from)?,
            Func::ToInteger | Func::ToDecimal => self.convert_to_number(inp, func, from)?,
            // Strings.
            Func::Join => self.join(inp, args.first(), from, cx)?,
            Func::StartsWith | Func::EndsWith | Func::Contains => {
                self.string_test(inp, func, &args[0], from, cx)?;
            }
            Func::Length => self.length(inp, from)?,
            Func::Upper | Func::Lower | Func::Trim => self.change_string(inp, func, from)?,
            Func::Substring => self.substring(inp, args, from, cx)?,
            // Boundaries.
            Func::LowBoundary | Func::HighBoundary => {
                let high = *func == Func::HighBoundary;
                self.boundaries(inp, args.first(), high, from, cx)?;
            }
            // FHIR and SQL on FHIR.
            Func::Extension => self.extension(inp, &args[0], from, cx)?,
            Func::GetResourceKey(resource) => self.resource_keys(inp, resource.as_deref(), from),
            Func::GetReferenceKey(resource) => {
                self.reference_keys(inp, resource.as_deref(), from);
            }
        }
        Ok(())
    }

    /// Pushes item `i` of the input starting at `lo` as the focus of an iteration, and
    /// returns the context where it is `$this` and its position `$index`.
    fn focus(&mut self, lo: usize, i: usize, cx: Ctx) -> Ctx {
        let mark = self.items.len();
        self.items.push(self.items[i]);
        Ctx {
            this: (mark, mark + 1),
            index: (i - lo) as i64,
            row_index: cx.row_index,
        }
    }

    /// Whether `criteria` is true for item `i` of the input starting at `lo`.
    fn criterion(
        &mut self,
        inp: &Input<'_, '_>,
        criteria: &Expr,
        lo: usize,
        i: usize,
        cx: Ctx,
    ) -> Res<bool> {
        let sub = self.focus(lo, i, cx);
        let r = self.eval(inp, criteria, sub)?;
        let v = self.boolean(inp, r, "the criteria")? == Some(true);
        self.items.truncate(sub.this.0);
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use crate::view::fhirpath::eval::testing::{PATIENT, run};

    #[test]
    fn single_refuses_many_values() {
        assert!(
            run(PATIENT, "name.single()")
                .unwrap_err()
                .contains("single()")
        );
    }
}
