//! Boolean logic with FHIRPath's three values (true, false, empty): `and`, `or`,
//! `xor`, `implies`, and the function `not()`.

use crate::view::fhirpath::{
    compile::Expr,
    eval::{Ctx, Evaluator, Input, Res, fault},
    parser::BinOp,
    value::{Item, Scalar},
};

impl Evaluator {
    /// Evaluates `lhs op rhs` for a boolean operator, pushing the result. The right
    /// operand is not evaluated when the left one decides.
    pub(super) fn logic(
        &mut self,
        inp: &Input<'_, '_>,
        op: BinOp,
        lhs: &Expr,
        rhs: &Expr,
        cx: Ctx,
    ) -> Res<()> {
        let start = self.items.len();
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
        Ok(())
    }

    /// `not()` of the input `lo..hi`: empty for an empty input, and false for a single
    /// value that is not a boolean.
    pub(in crate::view::fhirpath::eval) fn not(
        &mut self,
        inp: &Input<'_, '_>,
        (lo, hi): (usize, usize),
    ) -> Res<()> {
        let v = match &self.items[lo..hi] {
            [] => None,
            [item] => Some(match self.data(inp).scalar(*item) {
                Scalar::Bool(b) => !b,
                _ => false,
            }),
            _ => {
                return fault(format!("not() expects a single value, got {}", hi - lo));
            }
        };
        self.items.extend(v.map(Item::Bool));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::view::fhirpath::eval::testing::ok;

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
}
