//! Tokens to a syntax tree, by precedence climbing over the FHIRPath grammar
//! (<https://hl7.org/fhirpath/N1/grammar.html>).
//!
//! Precedence, loosest first: `implies`; `or` `xor`; `and`; `in` `contains`; `=` `~`
//! `!=` `!~`; `<` `<=` `>` `>=`; `|`; `is` `as`; `+` `-` `&`; `*` `/` `div` `mod`;
//! unary `+` `-`; then `.` and `[]`. All binary operators associate to the left.

use super::{
    PathError,
    lexer::{Tok, Token, tokenize},
};

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Implies,
    Or,
    Xor,
    And,
    In,
    Contains,
    Eq,
    Equiv,
    Ne,
    NotEquiv,
    Lt,
    Le,
    Gt,
    Ge,
    Union,
    Add,
    Sub,
    Concat,
    Mul,
    Div,
    IntDiv,
    Mod,
}

impl BinOp {
    /// The operator's text, for messages.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::Implies => "implies",
            Self::Or => "or",
            Self::Xor => "xor",
            Self::And => "and",
            Self::In => "in",
            Self::Contains => "contains",
            Self::Eq => "=",
            Self::Equiv => "~",
            Self::Ne => "!=",
            Self::NotEquiv => "!~",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Union => "|",
            Self::Add => "+",
            Self::Sub => "-",
            Self::Concat => "&",
            Self::Mul => "*",
            Self::Div => "/",
            Self::IntDiv => "div",
            Self::Mod => "mod",
        }
    }
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

/// A FHIRPath syntax tree. `pos` fields are byte offsets into the text, for messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ast {
    /// `{}`.
    Empty,
    Bool(bool),
    /// An integer or decimal literal, as written.
    Number(String),
    Str(String),
    /// `@...` date or date-time literal, without the `@`.
    DateTime(String, usize),
    /// `@T...` time literal, without the `@T`.
    Time(String, usize),
    /// A number followed by a unit: a quantity literal.
    Quantity(usize),
    /// `%name`.
    Env(String, usize),
    /// `$this`, `$index`, `$total`.
    Special(String, usize),
    /// A name at the start of a path (or after `.`): an element of the input.
    Ident(String, usize),
    /// A function call: `name(args)`, applied to `input` or, at the start of a path,
    /// to the context.
    Call {
        input: Option<Box<Ast>>,
        name: String,
        args: Vec<Ast>,
        pos: usize,
    },
    /// `input.name`.
    Member {
        input: Box<Ast>,
        name: String,
        pos: usize,
    },
    /// `input[index]`.
    Index {
        input: Box<Ast>,
        index: Box<Ast>,
    },
    /// Unary minus (unary plus is dropped).
    Neg(Box<Ast>, usize),
    Binary {
        op: BinOp,
        lhs: Box<Ast>,
        rhs: Box<Ast>,
        pos: usize,
    },
    /// `expr is Type` (`is` true) or `expr as Type`.
    TypeOp {
        is: bool,
        expr: Box<Ast>,
        qualifier: Option<String>,
        name: String,
        pos: usize,
    },
}

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

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

/// Calendar duration keywords: a number followed by one is a quantity literal.
const CALENDAR_UNITS: &[&str] = &[
    "year",
    "years",
    "month",
    "months",
    "week",
    "weeks",
    "day",
    "days",
    "hour",
    "hours",
    "minute",
    "minutes",
    "second",
    "seconds",
    "millisecond",
    "milliseconds",
];

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.at.min(self.tokens.len() - 1)].kind
    }

    fn pos(&self) -> usize {
        self.tokens[self.at.min(self.tokens.len() - 1)].pos
    }

    fn next(&mut self) -> Token {
        let t = self.tokens[self.at.min(self.tokens.len() - 1)].clone();
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

    fn term(&mut self) -> Result<Ast, PathError> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Number(text) => {
                self.at += 1;
                let unit = match self.peek() {
                    Tok::Str(_) => true,
                    Tok::Ident(unit) => CALENDAR_UNITS.contains(&unit.as_str()),
                    _ => false,
                };
                if unit {
                    self.at += 1;
                    return Ok(Ast::Quantity(pos));
                }
                Ok(Ast::Number(text))
            }
            Tok::Str(s) => {
                self.at += 1;
                Ok(Ast::Str(s))
            }
            Tok::DateTime(s) => {
                self.at += 1;
                Ok(Ast::DateTime(s, pos))
            }
            Tok::Time(s) => {
                self.at += 1;
                Ok(Ast::Time(s, pos))
            }
            Tok::Sym("{") => {
                self.at += 1;
                self.expect_sym("}")?;
                Ok(Ast::Empty)
            }
            Tok::Sym("(") => {
                self.at += 1;
                let inner = self.expression(0)?;
                self.expect_sym(")")?;
                Ok(inner)
            }
            Tok::Percent => {
                self.at += 1;
                match self.next().kind {
                    Tok::Ident(name) | Tok::Delimited(name) | Tok::Str(name) => {
                        Ok(Ast::Env(name, pos))
                    }
                    other => Err(PathError::new(
                        pos,
                        format!("expected a name after '%', found {}", describe(&other)),
                    )),
                }
            }
            Tok::Special(name) => {
                self.at += 1;
                Ok(Ast::Special(name, pos))
            }
            Tok::Ident(word) if word == "true" || word == "false" => {
                self.at += 1;
                Ok(Ast::Bool(word == "true"))
            }
            Tok::Ident(_) | Tok::Delimited(_) => self.invocation(None),
            other => Err(PathError::new(
                pos,
                format!("unexpected {}", describe(&other)),
            )),
        }
    }

    /// A name or a function call, applied to `input` (after `.`) or to the context.
    fn invocation(&mut self, input: Option<Ast>) -> Result<Ast, PathError> {
        let pos = self.pos();
        let (name, delimited) = match self.next().kind {
            Tok::Ident(name) => (name, false),
            Tok::Delimited(name) => (name, true),
            Tok::Special(name) if input.is_some() => {
                // `a.$this` is allowed by the grammar and means `a`.
                return match name.as_str() {
                    "this" => Ok(input.unwrap_or(Ast::Empty)),
                    _ => Err(PathError::new(pos, format!("unexpected ${name} after '.'"))),
                };
            }
            other => {
                return Err(PathError::new(
                    pos,
                    format!("expected a name, found {}", describe(&other)),
                ));
            }
        };
        if !delimited && is_reserved(&name) {
            return Err(PathError::new(
                pos,
                format!("'{name}' is a keyword; write `{name}` to use it as a name"),
            ));
        }
        if *self.peek() == Tok::Sym("(") {
            self.at += 1;
            let mut args = Vec::new();
            if *self.peek() != Tok::Sym(")") {
                loop {
                    args.push(self.expression(0)?);
                    if *self.peek() == Tok::Sym(",") {
                        self.at += 1;
                    } else {
                        break;
                    }
                }
            }
            self.expect_sym(")")?;
            return Ok(Ast::Call {
                input: input.map(Box::new),
                name,
                args,
                pos,
            });
        }
        Ok(match input {
            None => Ast::Ident(name, pos),
            Some(input) => Ast::Member {
                input: Box::new(input),
                name,
                pos,
            },
        })
    }

    /// A type specifier: `Name` or `Qualifier.Name`.
    fn type_specifier(&mut self) -> Result<(Option<String>, String), PathError> {
        let pos = self.pos();
        let first = match self.next().kind {
            Tok::Ident(n) | Tok::Delimited(n) => n,
            other => {
                return Err(PathError::new(
                    pos,
                    format!("expected a type name, found {}", describe(&other)),
                ));
            }
        };
        if *self.peek() == Tok::Sym(".")
            && let Some(Token {
                kind: Tok::Ident(second) | Tok::Delimited(second),
                ..
            }) = self.tokens.get(self.at + 1).cloned()
        {
            self.at += 2;
            return Ok((Some(first), second));
        }
        Ok((None, first))
    }
}

/// Keywords that cannot be names unless delimited (`is`, `as`, `in` and `contains` can).
fn is_reserved(word: &str) -> bool {
    matches!(
        word,
        "and" | "or" | "xor" | "implies" | "div" | "mod" | "true" | "false"
    )
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

    fn ident(name: &str, pos: usize) -> Ast {
        Ast::Ident(name.into(), pos)
    }

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
    fn invocations_indexers_and_type_operators() {
        let ast = parse("name[0].given.first()").unwrap();
        let Ast::Call {
            input: Some(input),
            name,
            args,
            ..
        } = ast
        else {
            panic!()
        };
        assert_eq!(name, "first");
        assert!(args.is_empty());
        let Ast::Member { input, name, .. } = *input else {
            panic!()
        };
        assert_eq!(name, "given");
        assert!(matches!(*input, Ast::Index { .. }));

        let ast = parse("value is FHIR.Quantity").unwrap();
        assert_eq!(
            ast,
            Ast::TypeOp {
                is: true,
                expr: Box::new(ident("value", 0)),
                qualifier: Some("FHIR".into()),
                name: "Quantity".into(),
                pos: 6,
            }
        );
        assert!(matches!(
            parse("where(x).exists()").unwrap(),
            Ast::Call { input: Some(_), .. }
        ));
        assert_eq!(parse("`div`").unwrap(), ident("div", 0));
    }

    #[test]
    fn literals() {
        assert_eq!(parse("{}").unwrap(), Ast::Empty);
        assert_eq!(parse("true").unwrap(), Ast::Bool(true));
        assert_eq!(parse("%a").unwrap(), Ast::Env("a".into(), 0));
        assert_eq!(parse("%`a b`").unwrap(), Ast::Env("a b".into(), 0));
        assert_eq!(parse("4 'mg'").unwrap(), Ast::Quantity(0));
        assert_eq!(parse("4 days").unwrap(), Ast::Quantity(0));
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
