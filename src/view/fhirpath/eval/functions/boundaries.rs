//! Boundaries: `lowBoundary([precision])` and `highBoundary([precision])` of decimals
//! (from their known precision), dates, date-times and times.

use crate::view::fhirpath::{
    compile::Expr,
    eval::{Ctx, Evaluator, Input, Res, operators::temporal_of},
    number::{decimal_boundary, guess_scale},
    value::{Item, Scalar, Src},
};

impl Evaluator {
    /// Pushes the low (or `high`) boundary of each item of the input, to the precision
    /// the argument gives, if any.
    pub(super) fn boundaries(
        &mut self,
        inp: &Input<'_, '_>,
        precision: Option<&Expr>,
        high: bool,
        (lo, hi): (usize, usize),
        cx: Ctx,
    ) -> Res<()> {
        let digits = match precision {
            Some(arg) => self.integer_arg(inp, arg, cx, "the precision")?,
            None => None,
        };
        for i in lo..hi {
            self.boundary(inp, self.items[i], high, digits);
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use crate::view::fhirpath::eval::testing::ok;

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
}
