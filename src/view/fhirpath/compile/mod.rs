//! Syntax tree to evaluable expression: names resolved, the subset checked, types
//! inferred where they can be known.
//!
//! Everything outside the supported subset is refused here, with the position in the
//! text, so that an unsupported expression is never evaluated wrongly: unknown
//! functions, wrong argument counts, quantity literals, `$total`, undefined constants,
//! type names that name nothing. Function calls are compiled in [`functions`].

mod functions;

pub(crate) use functions::Func;

use functions::call;

use super::{
    PathError,
    number::scale_of,
    parser::{Ast, BinOp, parse},
    temporal::{Kind, Temporal},
    types::{Ty, TypeSpec, is_choice_name},
    value::{Item, intern},
};

/// A compiled expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// A literal or a constant.
    Lit(Item),
    /// `{}`.
    Empty,
    /// `%rowIndex`: the index of the current row's focus in its iteration.
    RowIndex,
    /// `%resource` / `%rootResource`: the resource being evaluated.
    Resource,
    /// `$this`.
    This,
    /// `$index`, inside `where`, `select`, `exists`, `all`.
    Index,
    /// An element of the input (or of the context when `input` is `None`). A choice
    /// element `value` also matches `valueQuantity`, `valueString`, ...
    Member {
        input: Option<Box<Expr>>,
        name: Box<str>,
        /// A choice element's name: keys `name` + a type name match too.
        choice: bool,
    },
    /// A function applied to the input (or to the context).
    Call {
        input: Option<Box<Expr>>,
        func: Func,
        args: Vec<Expr>,
    },
    /// `input[index]`.
    Indexer { input: Box<Expr>, index: Box<Expr> },
    /// Unary minus.
    Neg(Box<Expr>),
    Bin {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
}

/// What compiling an expression needs from the view.
pub(crate) struct Scope<'a> {
    /// The view's string pool: literal text goes here.
    pub pool: &'a mut Vec<Box<str>>,
    /// The view's constants, by name, with their types.
    pub constants: &'a [(String, Item)],
}

/// A compiled expression and the FHIR type of its items, when known.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub expr: Expr,
    pub ty: Option<Ty>,
}

/// Parses and compiles `text`.
pub(crate) fn compile(text: &str, scope: &mut Scope<'_>) -> Result<Compiled, PathError> {
    let ast = parse(text)?;
    let (expr, ty) = lower(&ast, scope)?;
    Ok(Compiled { expr, ty })
}

type Lowered = (Expr, Option<Ty>);

fn lower(ast: &Ast, scope: &mut Scope<'_>) -> Result<Lowered, PathError> {
    Ok(match ast {
        Ast::Empty => (Expr::Empty, None),
        Ast::Bool(b) => (Expr::Lit(Item::Bool(*b)), Some(Ty::Boolean)),
        Ast::Number(text) => number(text)?,
        Ast::Str(s) => {
            let src = intern(scope.pool, s);
            (
                Expr::Lit(Item::Str {
                    src,
                    ty: Ty::String,
                }),
                Some(Ty::String),
            )
        }
        Ast::DateTime(text, pos) => {
            let kind = if text.contains('T') {
                Kind::DateTime
            } else {
                Kind::Date
            };
            Temporal::parse(text, kind)
                .ok_or_else(|| PathError::new(*pos, format!("invalid date/time @{text}")))?;
            let ty = if kind == Kind::Date {
                Ty::Date
            } else {
                Ty::DateTime
            };
            // `@2020-01-01T` is a date-time of day precision: keep the text without the
            // dangling `T`, as FHIR writes it.
            let src = intern(scope.pool, text.strip_suffix('T').unwrap_or(text));
            (Expr::Lit(Item::Str { src, ty }), Some(ty))
        }
        Ast::Time(text, pos) => {
            Temporal::parse(text, Kind::Time)
                .ok_or_else(|| PathError::new(*pos, format!("invalid time @T{text}")))?;
            let src = intern(scope.pool, text);
            (Expr::Lit(Item::Str { src, ty: Ty::Time }), Some(Ty::Time))
        }
        Ast::Quantity(pos) => {
            return Err(PathError::new(*pos, "quantity literals are not supported"));
        }
        Ast::Env(name, pos) => env(name, *pos, scope)?,
        Ast::Special(name, pos) => match name.as_str() {
            "this" => (Expr::This, None),
            "index" => (Expr::Index, Some(Ty::Integer)),
            _ => {
                return Err(PathError::new(*pos, format!("${name} is not supported")));
            }
        },
        Ast::Ident(name, pos) => {
            if name.as_bytes().first().is_some_and(u8::is_ascii_uppercase) {
                // `Patient.name`: a path may start with the type of its context.
                let spec = TypeSpec::resolve(None, name)
                    .ok_or_else(|| PathError::new(*pos, format!("'{name}' is not a type name")))?;
                let ty = spec_type(&spec);
                (
                    Expr::Call {
                        input: None,
                        func: Func::OfType(spec),
                        args: Vec::new(),
                    },
                    ty,
                )
            } else {
                (
                    Expr::Member {
                        input: None,
                        name: name.as_str().into(),
                        choice: is_choice_name(name),
                    },
                    None,
                )
            }
        }
        Ast::Member { input, name, .. } => {
            let (input, _) = lower(input, scope)?;
            (
                Expr::Member {
                    input: Some(Box::new(input)),
                    name: name.as_str().into(),
                    choice: is_choice_name(name),
                },
                None,
            )
        }
        Ast::Index { input, index } => {
            let (input, ty) = lower(input, scope)?;
            let (index, _) = lower(index, scope)?;
            (
                Expr::Indexer {
                    input: Box::new(input),
                    index: Box::new(index),
                },
                ty,
            )
        }
        Ast::Neg(operand, _) => {
            let (operand, ty) = lower(operand, scope)?;
            (Expr::Neg(Box::new(operand)), ty)
        }
        Ast::Binary { op, lhs, rhs, .. } => {
            let (lhs, lt) = lower(lhs, scope)?;
            let (rhs, rt) = lower(rhs, scope)?;
            let ty = binary_type(*op, lt, rt);
            (
                Expr::Bin {
                    op: *op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                ty,
            )
        }
        Ast::TypeOp {
            is,
            expr,
            qualifier,
            name,
            pos,
        } => {
            let (input, _) = lower(expr, scope)?;
            let spec = TypeSpec::resolve(qualifier.as_deref(), name)
                .ok_or_else(|| PathError::new(*pos, format!("unknown type '{name}'")))?;
            let (func, ty) = type_operator(*is, spec);
            (
                Expr::Call {
                    input: Some(Box::new(input)),
                    func,
                    args: Vec::new(),
                },
                ty,
            )
        }
        Ast::Call {
            input,
            name,
            args,
            pos,
        } => call(input.as_deref(), name, args, *pos, scope)?,
    })
}

fn number(text: &str) -> Result<Lowered, PathError> {
    if text.contains('.') {
        let v: f64 = text
            .parse()
            .map_err(|_| PathError::new(0, format!("invalid number {text}")))?;
        Ok((
            Expr::Lit(Item::Dec {
                v,
                scale: scale_of(text),
            }),
            Some(Ty::Decimal),
        ))
    } else {
        let v: i64 = text
            .parse()
            .map_err(|_| PathError::new(0, format!("integer {text} is out of range")))?;
        Ok((Expr::Lit(Item::Int(v)), Some(Ty::Integer)))
    }
}

/// `%name`: a view constant or a supported environment variable.
fn env(name: &str, pos: usize, scope: &mut Scope<'_>) -> Result<Lowered, PathError> {
    if let Some((_, item)) = scope.constants.iter().find(|(n, _)| n == name) {
        let ty = match item {
            Item::Bool(_) => Ty::Boolean,
            Item::Int(_) => Ty::Integer,
            Item::Dec { .. } => Ty::Decimal,
            Item::Str { ty, .. } | Item::Node { ty, .. } => *ty,
        };
        return Ok((Expr::Lit(*item), Some(ty)));
    }
    let url = match name {
        "rowIndex" => return Ok((Expr::RowIndex, Some(Ty::Integer))),
        "resource" | "rootResource" => return Ok((Expr::Resource, Some(Ty::Resource))),
        "ucum" => "http://unitsofmeasure.org",
        "sct" => "http://snomed.info/sct",
        "loinc" => "http://loinc.org",
        _ => {
            return Err(PathError::new(
                pos,
                format!("undefined constant %{name} (not in the view's `constant` list)"),
            ));
        }
    };
    let src = intern(scope.pool, url);
    Ok((Expr::Lit(Item::Str { src, ty: Ty::Uri }), Some(Ty::Uri)))
}

/// The FHIR type of the items a type test lets through.
fn spec_type(spec: &TypeSpec) -> Option<Ty> {
    Some(match spec {
        TypeSpec::Fhir(ty) => *ty,
        TypeSpec::System(system) => system.as_fhir(),
        TypeSpec::Resource(_) => Ty::Resource,
    })
}

/// The function of the `is` or `as` operator (or function) and the type it yields.
fn type_operator(is: bool, spec: TypeSpec) -> (Func, Option<Ty>) {
    if is {
        (Func::Is(spec), Some(Ty::Boolean))
    } else {
        let ty = spec_type(&spec);
        (Func::As(spec), ty)
    }
}

fn binary_type(op: BinOp, lt: Option<Ty>, rt: Option<Ty>) -> Option<Ty> {
    use BinOp::*;
    let numeric = |t: Option<Ty>| t.is_some_and(|t| t.is_integer() || t == Ty::Decimal);
    match op {
        Implies | Or | Xor | And | In | Contains | Eq | Equiv | Ne | NotEquiv | Lt | Le | Gt
        | Ge => Some(Ty::Boolean),
        Concat => Some(Ty::String),
        Union => (lt == rt).then_some(lt).flatten(),
        Add | Sub | Mul | Mod | IntDiv => match (lt, rt) {
            (Some(a), Some(b)) if a.is_integer() && b.is_integer() => Some(Ty::Integer),
            _ if op == IntDiv => Some(Ty::Integer),
            _ if numeric(lt) && numeric(rt) => Some(Ty::Decimal),
            (Some(a), Some(b)) if op == Add && a.is_string_like() && b.is_string_like() => {
                Some(Ty::String)
            }
            _ => None,
        },
        Div => Some(Ty::Decimal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles `text` with one constant, `%c` (the integer 1).
    pub(super) fn check(text: &str) -> Result<Compiled, PathError> {
        let mut pool = Vec::new();
        let constants = vec![("c".to_owned(), Item::Int(1))];
        compile(
            text,
            &mut Scope {
                pool: &mut pool,
                constants: &constants,
            },
        )
    }

    #[test]
    fn types_are_inferred_where_known() {
        assert_eq!(check("name.exists()").unwrap().ty, Some(Ty::Boolean));
        assert_eq!(check("name.family").unwrap().ty, None);
        assert_eq!(check("1 + %c").unwrap().ty, Some(Ty::Integer));
        assert_eq!(check("1.5 + 1").unwrap().ty, Some(Ty::Decimal));
        assert_eq!(check("value.ofType(Quantity).value").unwrap().ty, None);
        assert_eq!(
            check("value.ofType(dateTime)").unwrap().ty,
            Some(Ty::DateTime)
        );
        assert_eq!(check("name.given.join(',')").unwrap().ty, Some(Ty::String));
        assert_eq!(check("%rowIndex").unwrap().ty, Some(Ty::Integer));
    }

    #[test]
    fn outside_the_subset_is_refused_with_a_position() {
        assert!(
            check("%nope")
                .unwrap_err()
                .message
                .contains("undefined constant")
        );
        assert!(check("4 'mg'").is_err());
        assert!(check("$total").is_err());
        assert!(check("@2020-13").is_err());
    }

    #[test]
    fn resource_type_at_path_start_is_a_type_filter() {
        let c = check("Patient.name").unwrap();
        let Expr::Member {
            input: Some(input), ..
        } = c.expr
        else {
            panic!()
        };
        assert!(matches!(
            *input,
            Expr::Call {
                func: Func::OfType(TypeSpec::Resource(_)),
                ..
            }
        ));
    }
}
