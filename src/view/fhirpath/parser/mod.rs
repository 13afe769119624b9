//! Tokens to a syntax tree, by precedence climbing over the FHIRPath grammar
//! (<https://hl7.org/fhirpath/N1/grammar.html>).
//!
//! Precedence, loosest first: `implies`; `or` `xor`; `and`; `in` `contains`; `=` `~`
//! `!=` `!~`; `<` `<=` `>` `>=`; `|`; `is` `as`; `+` `-` `&`; `*` `/` `div` `mod`;
//! unary `+` `-`; then `.` and `[]`. All binary operators associate to the left.

mod ast;
mod terms;

pub(crate) use ast::{Ast, BinOp};

use super::{
    PathError,
    lexer::{Tok, Token, tokenize},
};

/// Parses a whole expression.
pub(crate) fn parse(text: &str) -> Result<Ast, PathError> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, at: 0 };
    let ast = p.expression(0)?;
    match p.peek() {
        Tok::Eof => Ok(ast),
        other => Err(PathError::new(
            p.pos(),
            format!("unexpected {} after the expression", describe(other)),
        )),
    }
}

/// The state of parsing one expression: its tokens and the index of the next one.
struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

/// Binding power of the `is` / `as` type operators.
const TYPE_OP_PREC: u8 = 8;

/// The binary operator a token stands for, and its binding power.
fn binary_op(tok: &Tok) -> Option<(BinOp, u8)> {
    Some(match tok {
        Tok::Ident(word) => match word.as_str() {
            "implies" => (BinOp::Implies, 1),
            "or" => (BinOp::Or, 2),
            "xor" => (BinOp::Xor, 2),
            "and" => (BinOp::And, 3),
            "in" => (BinOp::In, 4),
            "contains" => (BinOp::Contains, 4),
            "div" => (BinOp::IntDiv, 10),
            "mod" => (BinOp::Mod, 10),
            _ => return None,
        },
        Tok::Sym(sym) => match *sym {
            "=" => (BinOp::Eq, 5),
            "~" => (BinOp::Equiv, 5),
            "!=" => (BinOp::Ne, 5),
            "!~" => (BinOp::NotEquiv, 5),
            "<" => (BinOp::Lt, 6),
            "<=" => (BinOp::Le, 6),
            ">" => (BinOp::Gt, 6),
            ">=" => (BinOp::Ge, 6),
            "|" => (BinOp::Union, 7),
            "+" => (BinOp::Add, 9),
            "-" => (BinOp::Sub, 9),
            "&" => (BinOp::Concat, 9),
            "*" => (BinOp::Mul, 10),
            "/" => (BinOp::Div, 10),
            _ => return None,
        },
        _ => return None,
    })
}

impl Parser {
    /// The current token (the last one, `Eof`, once past the end).
    fn current(&self) -> &Token {
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn peek(&self) -> &Tok {
        &self.current().kind
    }

    fn pos(&self) -> usize {
        self.current().pos
    }

    fn next(&mut self) -> Token {
        let t = self.current().clone();
        if self.at < self.tokens.len() {
            self.at += 1;
        }
        t
    }

    fn expect_sym(&mut self, sym: &'static str) -> Result<(), PathError> {
        if *self.peek() == Tok::Sym(sym) {
            self.at += 1;
            Ok(())
        } else {
            Err(PathError::new(
                self.pos(),
                format!("expected '{sym}', found {}", describe(self.peek())),
            ))
        }
    }

    fn expression(&mut self, min_prec: u8) -> Result<Ast, PathError> {
        let mut lhs = self.unary()?;
        loop {
            let pos = self.pos();
            if let Tok::Ident(word) = self.peek()
                && (word == "is" || word == "as")
            {
                if TYPE_OP_PREC < min_prec {
                    break;
                }
                let is = word == "is";
                self.at += 1;
                let (qualifier, name) = self.type_specifier()?;
                lhs = Ast::TypeOp {
                    is,
                    expr: Box::new(lhs),
                    qualifier,
                    name,
                    pos,
                };
                continue;
            }
            let Some((op, prec)) = binary_op(self.peek()) else {
                break;
            };
            if prec < min_prec {
                break;
            }
            self.at += 1;
            let rhs = self.expression(prec + 1)?;
            lhs = Ast::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                pos,
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Ast, PathError> {
        let pos = self.pos();
        match self.peek() {
            Tok::Sym("-") => {
                self.at += 1;
                let operand = self.unary()?;
                Ok(Ast::Neg(Box::new(operand), pos))
            }
            Tok::Sym("+") => {
                self.at += 1;
                self.unary()
            }
            _ => self.postfix(),
        }
    }

    fn postfix(&mut self) -> Result<Ast, PathError> {
        let mut expr = self.term()?;
        loop {
            match self.peek() {
                Tok::Sym(".") => {
                    self.at += 1;
                    expr = self.invocation(Some(expr))?;
                }
                Tok::Sym("[") => {
                    self.at += 1;
                    let index = self.expression(0)?;
                    self.expect_sym("]")?;
                    expr = Ast::Index {
                        input: Box::new(expr),
                        index: Box::new(index),
                    };
                }
                _ => return Ok(expr),
            }
        }
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Delimited(s) => format!("`{s}`"),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Number(s) => format!("number {s}"),
        Tok::DateTime(s) => format!("@{s}"),
        Tok::Time(s) => format!("@T{s}"),
        Tok::Percent => "'%'".into(),
        Tok::Special(s) => format!("${s}"),
        Tok::Sym(s) => format!("'{s}'"),
        Tok::Eof => "the end of the expression".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_associativity() {
        let ast = parse("a = 1 and b or c").unwrap();
        let Ast::Binary {
            op: BinOp::Or, lhs, ..
        } = ast
        else {
            panic!("{ast:?}")
        };
        let Ast::Binary {
            op: BinOp::And,
            lhs,
            ..
        } = *lhs
        else {
            panic!()
        };
        assert!(matches!(*lhs, Ast::Binary { op: BinOp::Eq, .. }));

        let ast = parse("1 - 2 - 3").unwrap();
        let Ast::Binary {
            op: BinOp::Sub,
            lhs,
            rhs,
            ..
        } = ast
        else {
            panic!()
        };
        assert!(matches!(*lhs, Ast::Binary { op: BinOp::Sub, .. }));
        assert_eq!(*rhs, Ast::Number("3".into()));

        // `-` binds looser than `.`: -(a.b)
        let ast = parse("-a.b").unwrap();
        assert!(matches!(ast, Ast::Neg(ref inner, _) if matches!(**inner, Ast::Member { .. })));
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = parse("name.").unwrap_err();
        assert_eq!(err.pos, 5, "{err}");
        let err = parse("a b").unwrap_err();
        assert!(err.message.contains("after the expression"), "{err}");
        assert!(parse("where(").is_err());
        assert!(parse("a.and").is_err());
        assert!(parse("(a").is_err());
    }
}
