//! The operands of expressions: literals (a number with a unit is a quantity), `%`
//! and `$` names, `{}` and parentheses, names and function calls, and the type names
//! of `is` and `as`.

use super::{Ast, Parser, describe};
use crate::view::fhirpath::{
    PathError,
    lexer::{Tok, Token},
};

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
    pub(super) fn term(&mut self) -> Result<Ast, PathError> {
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
    pub(super) fn invocation(&mut self, input: Option<Ast>) -> Result<Ast, PathError> {
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
    pub(super) fn type_specifier(&mut self) -> Result<(Option<String>, String), PathError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::fhirpath::parser::parse;

    fn ident(name: &str, pos: usize) -> Ast {
        Ast::Ident(name.into(), pos)
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
}
