//! Arithmetic: `+`, `-`, `*`, `/`, `div`, `mod` on integers (checked for overflow) and
//! decimals (keeping their precision where known), unary `-`, and string
//! concatenation (`+` on two strings, `&`).

use crate::view::fhirpath::{
    compile::Expr,
    eval::{Ctx, Evaluator, Fault, Input, Res, fault, write_text},
    parser::BinOp,
    types::Ty,
    value::{Item, Scalar},
};

impl Evaluator {
    /// `-operand`, pushing the result.
    pub(in crate::view::fhirpath::eval) fn negate(
        &mut self,
        inp: &Input<'_, '_>,
        operand: &Expr,
        cx: Ctx,
    ) -> Res<()> {
        let start = self.items.len();
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
        Ok(())
    }

    /// `a & b`: the texts of both (an empty operand adds nothing), pushing the result.
    pub(super) fn concat(
        &mut self,
        inp: &Input<'_, '_>,
        a: (usize, usize),
        b: (usize, usize),
    ) -> Res<()> {
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
        })
    }

    /// `a op b` for `+`, `-`, `*`, `/`, `div`, `mod`, pushing the result (empty when
    /// either operand is, or on division by zero).
    pub(super) fn arithmetic(
        &mut self,
        inp: &Input<'_, '_>,
        op: BinOp,
        (l, r): (usize, usize),
        (_, end): (usize, usize),
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
}

#[cfg(test)]
mod tests {
    use crate::view::fhirpath::eval::testing::{PATIENT, ok, run};

    #[test]
    fn arithmetic() {
        assert_eq!(ok("1 + 2 * 3"), ["7"]);
        assert_eq!(ok("7 div 2"), ["3"]);
        assert_eq!(ok("7 mod 2"), ["1"]);
        assert_eq!(ok("3 / 2"), ["1.5"]);
        assert_eq!(ok("1 / 0"), Vec::<String>::new());
        assert_eq!(ok("-(2 - 5)"), ["3"]);
        assert_eq!(ok("'a' + 'b' & {} & 1"), ["ab1"]);
        assert_eq!(ok("{} + 1"), Vec::<String>::new());
        assert!(
            run(PATIENT, "9223372036854775807 + 1")
                .unwrap_err()
                .contains("overflow")
        );
    }
}
