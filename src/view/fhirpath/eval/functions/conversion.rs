//! Conversion: `iif`, `toString`, `toInteger`, `toDecimal`.

use crate::view::fhirpath::{
    compile::{Expr, Func},
    eval::{Ctx, Evaluator, Input, Res, fault, write_text},
    number::scale_of,
    types::Ty,
    value::{Item, Scalar},
};

impl Evaluator {
    /// `iif(criterion, true-result [, otherwise-result])`, evaluated with the input (at
    /// most one item) as `$this`; only the chosen branch is evaluated.
    pub(super) fn iif(
        &mut self,
        inp: &Input<'_, '_>,
        args: &[Expr],
        from: (usize, usize),
        cx: Ctx,
    ) -> Res<()> {
        let n = from.1 - from.0;
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
        Ok(())
    }

    /// `toString()`: the text of a single primitive value.
    pub(super) fn convert_to_string(
        &mut self,
        inp: &Input<'_, '_>,
        (lo, hi): (usize, usize),
    ) -> Res<()> {
        if let Some(item) = self.single_item(lo, hi, "toString()")? {
            self.push_built(inp, Ty::String, |data, _, out| {
                Ok(!matches!(data.scalar(item), Scalar::Object(..))
                    && write_text(data, item, out).is_ok())
            })?;
        }
        Ok(())
    }

    /// `toInteger()`, `toDecimal()`: the number a single value stands for, if any.
    pub(super) fn convert_to_number(
        &mut self,
        inp: &Input<'_, '_>,
        func: &Func,
        (lo, hi): (usize, usize),
    ) -> Res<()> {
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::view::fhirpath::eval::testing::ok;

    #[test]
    fn conversions() {
        assert_eq!(ok("iif(active, 'yes', 'no')"), ["yes"]);
        assert_eq!(ok("'12'.toInteger() + 1"), ["13"]);
        assert_eq!(ok("1.toString() & true.toString()"), ["1true"]);
    }
}
