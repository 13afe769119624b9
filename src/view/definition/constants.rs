//! The view's `constant`s: each a name (not reserved, not repeated) and exactly one
//! `value[x]` of a primitive type, checked against that type, for `%name` in
//! expressions.

use serde_json::Value;

use super::{
    ViewError,
    loader::{Loader, escape, is_sql_name},
};
use crate::view::fhirpath::{
    number::scale_of,
    temporal,
    types::Ty,
    value::{Item, intern},
};

/// Constant types: the `value[x]` suffix and the FHIR type of the value.
const CONSTANT_TYPES: &[(&str, Ty)] = &[
    ("Base64Binary", Ty::Base64Binary),
    ("Boolean", Ty::Boolean),
    ("Canonical", Ty::Canonical),
    ("Code", Ty::Code),
    ("Date", Ty::Date),
    ("DateTime", Ty::DateTime),
    ("Decimal", Ty::Decimal),
    ("Id", Ty::Id),
    ("Instant", Ty::Instant),
    ("Integer", Ty::Integer),
    ("Integer64", Ty::Integer64),
    ("Markdown", Ty::Markdown),
    ("Oid", Ty::Oid),
    ("String", Ty::String),
    ("PositiveInt", Ty::PositiveInt),
    ("Time", Ty::Time),
    ("UnsignedInt", Ty::UnsignedInt),
    ("Uri", Ty::Uri),
    ("Url", Ty::Url),
    ("Uuid", Ty::Uuid),
];

/// Names that `%name` resolves to without a constant.
const RESERVED_CONSTANTS: &[&str] = &[
    "rowIndex",
    "resource",
    "rootResource",
    "ucum",
    "sct",
    "loinc",
];

impl Loader<'_> {
    /// Reads the view's `constant` list.
    pub(super) fn constants(&mut self, value: &Value) -> Result<(), ViewError> {
        for (i, c) in self.array(value, "/constant", false)?.iter().enumerate() {
            let pointer = format!("/constant/{i}");
            let obj = c
                .as_object()
                .ok_or_else(|| self.err(&pointer, "must be an object"))?;
            let name = match obj.get("name") {
                Some(Value::String(n)) if is_sql_name(n) => n.clone(),
                Some(_) => {
                    return Err(self.err(
                        &format!("{pointer}/name"),
                        "must be a name of letters, digits and '_', starting with a letter",
                    ));
                }
                None => return Err(self.err(&format!("{pointer}/name"), "required")),
            };
            if RESERVED_CONSTANTS.contains(&name.as_str()) {
                return Err(self.err(&format!("{pointer}/name"), format!("%{name} is reserved")));
            }
            if self.constants.iter().any(|(n, _)| *n == name) {
                return Err(self.err(
                    &format!("{pointer}/name"),
                    format!("constant {name:?} is defined twice"),
                ));
            }
            let mut values = obj.iter().filter(|(k, _)| k.starts_with("value"));
            let (key, v) = match (values.next(), values.next()) {
                (Some(one), None) => one,
                (None, _) => {
                    return Err(self.err(
                        &pointer,
                        "needs a value[x] (valueString, valueInteger, ...)",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(self.err(&pointer, "has more than one value[x]"));
                }
            };
            if let Some(other) = obj.keys().find(|k| {
                !k.starts_with("value") && !["name", "extension", "id"].contains(&k.as_str())
            }) {
                return Err(self.err(
                    &format!("{pointer}/{}", escape(other)),
                    format!("unknown member {other:?}"),
                ));
            }
            let value_pointer = format!("{pointer}/{}", escape(key));
            let item = self.constant_value(&key["value".len()..], v, &value_pointer)?;
            self.constants.push((name, item));
        }
        Ok(())
    }

    /// The value of a constant `value<suffix>`.
    fn constant_value(
        &mut self,
        suffix: &str,
        v: &Value,
        pointer: &str,
    ) -> Result<Item, ViewError> {
        let Some(&(_, ty)) = CONSTANT_TYPES.iter().find(|(s, _)| *s == suffix) else {
            return Err(self.err(
                pointer,
                format!("constants of type {suffix} are not supported (only primitive types)"),
            ));
        };
        let bad = |what: &str| self.err(pointer, format!("must be {what}"));
        Ok(match ty {
            Ty::Boolean => Item::Bool(v.as_bool().ok_or_else(|| bad("a boolean"))?),
            Ty::Integer | Ty::UnsignedInt | Ty::PositiveInt => {
                let i = v.as_i64().ok_or_else(|| bad("an integer"))?;
                if (ty == Ty::UnsignedInt && i < 0) || (ty == Ty::PositiveInt && i < 1) {
                    return Err(bad("in the range of its type"));
                }
                Item::Int(i)
            }
            // integer64 is a string in JSON (R5); accept a number too.
            Ty::Integer64 => Item::Int(
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| bad("an integer"))?,
            ),
            Ty::Decimal => {
                let Value::Number(n) = v else {
                    return Err(bad("a number"));
                };
                // With arbitrary precision, the number keeps its text: `1.50` has 2 digits.
                let text = n.to_string();
                Item::Dec {
                    v: n.as_f64().ok_or_else(|| bad("a number"))?,
                    scale: scale_of(&text),
                }
            }
            _ => {
                let s = v.as_str().ok_or_else(|| bad("a string"))?;
                if ty.is_temporal() && !temporal::valid(s, ty) {
                    return Err(bad(&format!("a valid {}", ty.name())));
                }
                let src = intern(&mut self.pool, s);
                Item::Str { src, ty }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use crate::view::definition::tests::{load, problem};

    #[test]
    fn constants_are_typed() {
        let view = load(
            r#"{"resource":"Patient","constant":[{"name":"d","valueDecimal":1.50},
                {"name":"b","valueBoolean":true},{"name":"s","valueDate":"2020-01"}],
                "select":[{"column":[{"name":"x","path":"%d + 1"},{"name":"y","path":"%b"}]}]}"#,
        )
        .unwrap();
        let fields = view.arrow_schema();
        assert_eq!(fields.field(0).data_type(), &DataType::Float64);
        assert_eq!(fields.field(1).data_type(), &DataType::Boolean);
        assert!(
            problem(r#"{"resource":"Patient","constant":[{"name":"s","valueDate":"2020-13"}],"select":[{"column":[{"name":"a","path":"id"}]}]}"#)
                .1
                .contains("valid date")
        );
        assert!(load("not json").is_err());
    }
}
