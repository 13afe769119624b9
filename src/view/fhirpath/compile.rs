//! Syntax tree to evaluable expression: names resolved, the subset checked, types
//! inferred where they can be known.
//!
//! Everything outside the supported subset is refused here, with the position in the
//! text, so that an unsupported expression is never evaluated wrongly: unknown
//! functions, wrong argument counts, quantity literals, `$total`, undefined constants,
//! type names that name nothing.

use super::{
    PathError,
    parser::{Ast, BinOp, parse},
    temporal::{Kind, Temporal},
    types::{Ty, TypeSpec, is_choice_name},
    value::{Item, Src},
};
use crate::view::fhirpath::number::scale_of;

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

/// The supported functions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Func {
    Empty,
    Exists,
    All,
    AllTrue,
    AnyTrue,
    AllFalse,
    AnyFalse,
    Count,
    Distinct,
    IsDistinct,
    Where,
    Select,
    OfType(TypeSpec),
    /// The `is` operator or function.
    Is(TypeSpec),
    /// The `as` operator or function.
    As(TypeSpec),
    First,
    Last,
    Tail,
    Skip,
    Take,
    Single,
    Not,
    Iif,
    Extension,
    /// `getResourceKey([type])`.
    GetResourceKey(Option<Box<str>>),
    /// `getReferenceKey([type])`.
    GetReferenceKey(Option<Box<str>>),
    Join,
    LowBoundary,
    HighBoundary,
    ToString,
    ToInteger,
    ToDecimal,
    HasValue,
    StartsWith,
    EndsWith,
    Contains,
    Length,
    Upper,
    Lower,
    Trim,
    Substring,
    Union,
    Combine,
}

/// What compiling an expression needs from the view.
pub(crate) struct Scope<'a> {
    /// The view's string pool: literal text goes here.
    pub pool: &'a mut Vec<Box<str>>,
    /// The view's constants, by name, with their types.
    pub constants: &'a [(String, Item)],
}

impl Scope<'_> {
    fn intern(&mut self, s: &str) -> Src {
        if let Some(i) = self.pool.iter().position(|p| &**p == s) {
            return Src::Pool(i as u32);
        }
        self.pool.push(s.into());
        Src::Pool(self.pool.len() as u32 - 1)
    }
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
            let src = scope.intern(s);
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
            let src = scope.intern(text.strip_suffix('T').unwrap_or(text));
            (Expr::Lit(Item::Str { src, ty }), Some(ty))
        }
        Ast::Time(text, pos) => {
            Temporal::parse(text, Kind::Time)
                .ok_or_else(|| PathError::new(*pos, format!("invalid time @T{text}")))?;
            let src = scope.intern(text);
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
            let (func, ty) = if *is {
                (Func::Is(spec), Some(Ty::Boolean))
            } else {
                let ty = spec_type(&spec);
                (Func::As(spec), ty)
            };
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
    let src = scope.intern(url);
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

/// A function call: name resolved, arity checked, type arguments read.
fn call(
    input: Option<&Ast>,
    name: &str,
    args: &[Ast],
    pos: usize,
    scope: &mut Scope<'_>,
) -> Result<Lowered, PathError> {
    let arity = |min: usize, max: usize| -> Result<(), PathError> {
        if args.len() < min || args.len() > max {
            let expected = if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(PathError::new(
                pos,
                format!(
                    "{name}() takes {expected} argument(s), {} given",
                    args.len()
                ),
            ));
        }
        Ok(())
    };
    let (input, input_ty) = match input {
        Some(ast) => {
            let (e, t) = lower(ast, scope)?;
            (Some(Box::new(e)), t)
        }
        None => (None, None),
    };
    let type_arg = |i: usize| -> Result<TypeSpec, PathError> {
        let (qualifier, type_name) = type_name_of(&args[i]).ok_or_else(|| {
            PathError::new(pos, format!("{name}() expects a type name as argument"))
        })?;
        TypeSpec::resolve(qualifier, type_name)
            .ok_or_else(|| PathError::new(pos, format!("unknown type '{type_name}'")))
    };
    let resource_arg = |scope_args: &[Ast]| -> Result<Option<Box<str>>, PathError> {
        match scope_args.first() {
            None => Ok(None),
            Some(arg) => match type_name_of(arg) {
                Some((None | Some("FHIR"), t))
                    if t.as_bytes().first().is_some_and(u8::is_ascii_uppercase) =>
                {
                    Ok(Some(t.into()))
                }
                _ => Err(PathError::new(
                    pos,
                    format!("{name}() expects a resource type name as argument"),
                )),
            },
        }
    };
    let bool_ty = Some(Ty::Boolean);
    let (func, ty) = match name {
        "empty" => (arity(0, 0).map(|_| Func::Empty)?, bool_ty),
        "exists" => (arity(0, 1).map(|_| Func::Exists)?, bool_ty),
        "all" => (arity(1, 1).map(|_| Func::All)?, bool_ty),
        "allTrue" => (arity(0, 0).map(|_| Func::AllTrue)?, bool_ty),
        "anyTrue" => (arity(0, 0).map(|_| Func::AnyTrue)?, bool_ty),
        "allFalse" => (arity(0, 0).map(|_| Func::AllFalse)?, bool_ty),
        "anyFalse" => (arity(0, 0).map(|_| Func::AnyFalse)?, bool_ty),
        "count" => (arity(0, 0).map(|_| Func::Count)?, Some(Ty::Integer)),
        "distinct" => (arity(0, 0).map(|_| Func::Distinct)?, input_ty),
        "isDistinct" => (arity(0, 0).map(|_| Func::IsDistinct)?, bool_ty),
        "where" => (arity(1, 1).map(|_| Func::Where)?, input_ty),
        "select" => (arity(1, 1).map(|_| Func::Select)?, None),
        "ofType" => {
            arity(1, 1)?;
            let spec = type_arg(0)?;
            let ty = spec_type(&spec);
            return Ok((
                Expr::Call {
                    input,
                    func: Func::OfType(spec),
                    args: Vec::new(),
                },
                ty,
            ));
        }
        "is" | "as" => {
            arity(1, 1)?;
            let spec = type_arg(0)?;
            let (func, ty) = if name == "is" {
                (Func::Is(spec), bool_ty)
            } else {
                let ty = spec_type(&spec);
                (Func::As(spec), ty)
            };
            return Ok((
                Expr::Call {
                    input,
                    func,
                    args: Vec::new(),
                },
                ty,
            ));
        }
        "first" => (arity(0, 0).map(|_| Func::First)?, input_ty),
        "last" => (arity(0, 0).map(|_| Func::Last)?, input_ty),
        "tail" => (arity(0, 0).map(|_| Func::Tail)?, input_ty),
        "skip" => (arity(1, 1).map(|_| Func::Skip)?, input_ty),
        "take" => (arity(1, 1).map(|_| Func::Take)?, input_ty),
        "single" => (arity(0, 0).map(|_| Func::Single)?, input_ty),
        "not" => (arity(0, 0).map(|_| Func::Not)?, bool_ty),
        "iif" => (arity(2, 3).map(|_| Func::Iif)?, None),
        "extension" => (
            arity(1, 1).map(|_| Func::Extension)?,
            Ty::from_fhir_name("Extension"),
        ),
        "getResourceKey" | "getReferenceKey" => {
            arity(0, 1)?;
            let resource = resource_arg(args)?;
            let func = if name == "getResourceKey" {
                Func::GetResourceKey(resource)
            } else {
                Func::GetReferenceKey(resource)
            };
            return Ok((
                Expr::Call {
                    input,
                    func,
                    args: Vec::new(),
                },
                Some(Ty::Id),
            ));
        }
        "join" => (arity(0, 1).map(|_| Func::Join)?, Some(Ty::String)),
        "lowBoundary" => (arity(0, 1).map(|_| Func::LowBoundary)?, input_ty),
        "highBoundary" => (arity(0, 1).map(|_| Func::HighBoundary)?, input_ty),
        "toString" => (arity(0, 0).map(|_| Func::ToString)?, Some(Ty::String)),
        "toInteger" => (arity(0, 0).map(|_| Func::ToInteger)?, Some(Ty::Integer)),
        "toDecimal" => (arity(0, 0).map(|_| Func::ToDecimal)?, Some(Ty::Decimal)),
        "hasValue" => (arity(0, 0).map(|_| Func::HasValue)?, bool_ty),
        "startsWith" => (arity(1, 1).map(|_| Func::StartsWith)?, bool_ty),
        "endsWith" => (arity(1, 1).map(|_| Func::EndsWith)?, bool_ty),
        "contains" => (arity(1, 1).map(|_| Func::Contains)?, bool_ty),
        "length" => (arity(0, 0).map(|_| Func::Length)?, Some(Ty::Integer)),
        "upper" => (arity(0, 0).map(|_| Func::Upper)?, Some(Ty::String)),
        "lower" => (arity(0, 0).map(|_| Func::Lower)?, Some(Ty::String)),
        "trim" => (arity(0, 0).map(|_| Func::Trim)?, Some(Ty::String)),
        "substring" => (arity(1, 2).map(|_| Func::Substring)?, Some(Ty::String)),
        "union" => (arity(1, 1).map(|_| Func::Union)?, None),
        "combine" => (arity(1, 1).map(|_| Func::Combine)?, None),
        _ => {
            return Err(PathError::new(
                pos,
                format!("function {name}() is not supported"),
            ));
        }
    };
    let mut lowered = Vec::with_capacity(args.len());
    let mut arg_types = Vec::with_capacity(args.len());
    for arg in args {
        let (e, t) = lower(arg, scope)?;
        lowered.push(e);
        arg_types.push(t);
    }
    let ty = match func {
        Func::Select => arg_types[0],
        Func::Iif => {
            let other = arg_types.get(2).copied().flatten();
            (arg_types[1] == other || args.len() == 2)
                .then_some(arg_types[1])
                .flatten()
        }
        Func::Union | Func::Combine => (input_ty == arg_types[0]).then_some(input_ty).flatten(),
        _ => ty,
    };
    Ok((
        Expr::Call {
            input,
            func,
            args: lowered,
        },
        ty,
    ))
}

/// A type name argument: `Name` or `Qualifier.Name`.
fn type_name_of(ast: &Ast) -> Option<(Option<&str>, &str)> {
    match ast {
        Ast::Ident(name, _) => Some((None, name)),
        Ast::Member { input, name, .. } => match &**input {
            Ast::Ident(qualifier, _) => Some((Some(qualifier), name)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Compiled, PathError> {
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
        let err = check("name.foo()").unwrap_err();
        assert!(err.message.contains("foo() is not supported"), "{err}");
        assert_eq!(err.pos, 5);
        assert!(
            check("%nope")
                .unwrap_err()
                .message
                .contains("undefined constant")
        );
        assert!(check("first(1)").unwrap_err().message.contains("argument"));
        assert!(check("value.ofType(1)").is_err());
        assert!(check("value.ofType(nothing)").is_err());
        assert!(check("4 'mg'").is_err());
        assert!(check("$total").is_err());
        assert!(check("@2020-13").is_err());
        assert!(check("link.other.getReferenceKey('Patient')").is_err());
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
