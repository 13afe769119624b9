//! Binary operators. The boolean ones ([`logic`]) evaluate their right operand only
//! when its value matters; the others evaluate both operands, then compare them
//! ([`comparison`]: equality, ordering, membership, union) or compute a value
//! ([`arithmetic`]: numbers and string concatenation).

mod arithmetic;
mod comparison;
mod logic;

pub(super) use comparison::temporal_of;

use super::{Ctx, Evaluator, Input, Res};
use crate::view::fhirpath::{compile::Expr, parser::BinOp};

impl Evaluator {
    /// Evaluates `lhs op rhs`, pushing the result.
    pub(super) fn binary(
        &mut self,
        inp: &Input<'_, '_>,
        op: BinOp,
        lhs: &Expr,
        rhs: &Expr,
        cx: Ctx,
    ) -> Res<()> {
        if let BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Implies = op {
            return self.logic(inp, op, lhs, rhs, cx);
        }
        let start = self.items.len();
        let l = self.eval(inp, lhs, cx)?;
        let r = self.eval(inp, rhs, cx)?;
        let end = self.items.len();
        let (a, b) = ((l, r), (r, end));
        match op {
            BinOp::Eq | BinOp::Ne => self.equal(inp, op, a, b),
            BinOp::Equiv | BinOp::NotEquiv => self.equivalent(inp, op, a, b),
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => self.order(inp, op, a, b)?,
            BinOp::Union => self.push_distinct(inp, l..end),
            BinOp::In | BinOp::Contains => self.membership(inp, op, a, b)?,
            BinOp::Concat => self.concat(inp, a, b)?,
            _ => self.arithmetic(inp, op, a, b)?,
        }
        self.items.drain(start..end);
        Ok(())
    }
}
