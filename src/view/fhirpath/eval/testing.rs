//! Test support: evaluating an expression on a resource and rendering its result.

use super::{Evaluator, Fault, Input};
use crate::view::fhirpath::{
    compile::{Scope, compile},
    types::Ty,
    value::{Item, Scalar},
};

/// A patient with names, a null given name, choice elements, a reference and
/// extensions.
pub(super) const PATIENT: &str = r#"{"resourceType":"Patient","id":"p1","active":true,
        "name":[{"use":"official","family":"Doe","given":["A","B"]},{"family":"Roe","given":[null,"C"]}],
        "birthDate":"1970-06","deceasedDateTime":"2001-02-03T04:05:06+01:00",
        "managingOrganization":{"reference":"Organization/o1"},
        "extension":[{"url":"u1","valueDecimal":1.50},{"url":"u2","valueString":"x"}]}"#;

/// Evaluates `expr` on `resource` and renders the result.
pub(super) fn run(resource: &str, expr: &str) -> Result<Vec<String>, String> {
    let mut pool = Vec::new();
    let constants = vec![("two".to_owned(), Item::Int(2))];
    let compiled = compile(
        expr,
        &mut Scope {
            pool: &mut pool,
            constants: &constants,
        },
    )
    .map_err(|e| e.to_string())?;
    let mut bytes = resource.as_bytes().to_vec();
    let tape = simd_json::to_tape(&mut bytes).map_err(|e| e.to_string())?;
    let inp = Input {
        tape: &tape.0,
        line: Some(resource.as_bytes()),
        pool: &pool,
    };
    let mut eval = Evaluator::default();
    let root = Item::Node {
        at: 0,
        ty: Ty::Resource,
    };
    let s = eval
        .eval_on(&inp, &compiled.expr, Some(root), 0)
        .map_err(|Fault(m)| m)?;
    let data = eval.data(&inp);
    Ok(eval.items[s..]
        .iter()
        .map(|item| match data.scalar(*item) {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Dec(v) => format!("{v}"),
            Scalar::Str(s, _) => s.to_owned(),
            Scalar::Object(..) => "{}".to_owned(),
        })
        .collect())
}

/// Evaluates `expr` on [`PATIENT`]; panics on an error.
pub(super) fn ok(expr: &str) -> Vec<String> {
    run(PATIENT, expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}
