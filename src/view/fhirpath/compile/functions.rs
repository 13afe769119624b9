//! Function calls: the supported functions ([`Func`]), each checked for its number of
//! arguments, with type-name arguments read and the type of the result inferred.

use super::{Expr, Lowered, Scope, lower, spec_type, type_operator};
use crate::view::fhirpath::{
    PathError,
    parser::Ast,
    types::{Ty, TypeSpec},
};

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

/// A function call: name resolved, arity checked, type arguments read.
pub(super) fn call(
    input: Option<&Ast>,
    name: &str,
    args: &[Ast],
    pos: usize,
    scope: &mut Scope<'_>,
) -> Result<Lowered, PathError> {
    let (input, input_ty) = match input {
        Some(ast) => {
            let (e, t) = lower(ast, scope)?;
            (Some(Box::new(e)), t)
        }
        None => (None, None),
    };
    let bool_ty = Some(Ty::Boolean);
    // The function, its (min, max) number of arguments, the type of its result.
    let (func, (min, max), ty) = match name {
        "empty" => (Func::Empty, (0, 0), bool_ty),
        "exists" => (Func::Exists, (0, 1), bool_ty),
        "all" => (Func::All, (1, 1), bool_ty),
        "allTrue" => (Func::AllTrue, (0, 0), bool_ty),
        "anyTrue" => (Func::AnyTrue, (0, 0), bool_ty),
        "allFalse" => (Func::AllFalse, (0, 0), bool_ty),
        "anyFalse" => (Func::AnyFalse, (0, 0), bool_ty),
        "count" => (Func::Count, (0, 0), Some(Ty::Integer)),
        "distinct" => (Func::Distinct, (0, 0), input_ty),
        "isDistinct" => (Func::IsDistinct, (0, 0), bool_ty),
        "where" => (Func::Where, (1, 1), input_ty),
        "select" => (Func::Select, (1, 1), None),
        "ofType" | "is" | "as" => return type_test(input, name, args, pos),
        "first" => (Func::First, (0, 0), input_ty),
        "last" => (Func::Last, (0, 0), input_ty),
        "tail" => (Func::Tail, (0, 0), input_ty),
        "skip" => (Func::Skip, (1, 1), input_ty),
        "take" => (Func::Take, (1, 1), input_ty),
        "single" => (Func::Single, (0, 0), input_ty),
        "not" => (Func::Not, (0, 0), bool_ty),
        "iif" => (Func::Iif, (2, 3), None),
        "extension" => (Func::Extension, (1, 1), Ty::from_fhir_name("Extension")),
        "getResourceKey" | "getReferenceKey" => return resource_key(input, name, args, pos),
        "join" => (Func::Join, (0, 1), Some(Ty::String)),
        "lowBoundary" => (Func::LowBoundary, (0, 1), input_ty),
        "highBoundary" => (Func::HighBoundary, (0, 1), input_ty),
        "toString" => (Func::ToString, (0, 0), Some(Ty::String)),
        "toInteger" => (Func::ToInteger, (0, 0), Some(Ty::Integer)),
        "toDecimal" => (Func::ToDecimal, (0, 0), Some(Ty::Decimal)),
        "hasValue" => (Func::HasValue, (0, 0), bool_ty),
        "startsWith" => (Func::StartsWith, (1, 1), bool_ty),
        "endsWith" => (Func::EndsWith, (1, 1), bool_ty),
        "contains" => (Func::Contains, (1, 1), bool_ty),
        "length" => (Func::Length, (0, 0), Some(Ty::Integer)),
        "upper" => (Func::Upper, (0, 0), Some(Ty::String)),
        "lower" => (Func::Lower, (0, 0), Some(Ty::String)),
        "trim" => (Func::Trim, (0, 0), Some(Ty::String)),
        "substring" => (Func::Substring, (1, 2), Some(Ty::String)),
        "union" => (Func::Union, (1, 1), None),
        "combine" => (Func::Combine, (1, 1), None),
        _ => {
            return Err(PathError::new(
                pos,
                format!("function {name}() is not supported"),
            ));
        }
    };
    check_arity(name, args, pos, min, max)?;
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

/// Refuses a call to `name` with fewer than `min` or more than `max` arguments.
fn check_arity(
    name: &str,
    args: &[Ast],
    pos: usize,
    min: usize,
    max: usize,
) -> Result<(), PathError> {
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
}

/// `ofType(T)`, `is(T)`, `as(T)`: the argument is a type name, not an expression.
fn type_test(
    input: Option<Box<Expr>>,
    name: &str,
    args: &[Ast],
    pos: usize,
) -> Result<Lowered, PathError> {
    check_arity(name, args, pos, 1, 1)?;
    let (qualifier, type_name) = type_name_of(&args[0])
        .ok_or_else(|| PathError::new(pos, format!("{name}() expects a type name as argument")))?;
    let spec = TypeSpec::resolve(qualifier, type_name)
        .ok_or_else(|| PathError::new(pos, format!("unknown type '{type_name}'")))?;
    let (func, ty) = match name {
        "ofType" => {
            let ty = spec_type(&spec);
            (Func::OfType(spec), ty)
        }
        _ => type_operator(name == "is", spec),
    };
    Ok((
        Expr::Call {
            input,
            func,
            args: Vec::new(),
        },
        ty,
    ))
}

/// `getResourceKey([T])`, `getReferenceKey([T])`: the optional argument is a resource
/// type name.
fn resource_key(
    input: Option<Box<Expr>>,
    name: &str,
    args: &[Ast],
    pos: usize,
) -> Result<Lowered, PathError> {
    check_arity(name, args, pos, 0, 1)?;
    let resource = match args.first() {
        None => None,
        Some(arg) => match type_name_of(arg) {
            Some((None | Some("FHIR"), t))
                if t.as_bytes().first().is_some_and(u8::is_ascii_uppercase) =>
            {
                Some(t.into())
            }
            _ => {
                return Err(PathError::new(
                    pos,
                    format!("{name}() expects a resource type name as argument"),
                ));
            }
        },
    };
    let func = if name == "getResourceKey" {
        Func::GetResourceKey(resource)
    } else {
        Func::GetReferenceKey(resource)
    };
    Ok((
        Expr::Call {
            input,
            func,
            args: Vec::new(),
        },
        Some(Ty::Id),
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
    use crate::view::fhirpath::compile::tests::check;

    #[test]
    fn unsupported_functions_and_arguments_are_refused_with_a_position() {
        let err = check("name.foo()").unwrap_err();
        assert!(err.message.contains("foo() is not supported"), "{err}");
        assert_eq!(err.pos, 5);
        assert!(check("first(1)").unwrap_err().message.contains("argument"));
        assert!(check("value.ofType(1)").is_err());
        assert!(check("value.ofType(nothing)").is_err());
        assert!(check("link.other.getReferenceKey('Patient')").is_err());
    }
}
