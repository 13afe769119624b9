//! Type tests: the type that `ofType(...)`, `is` or `as` names ([`TypeSpec`]: a FHIR
//! type, a FHIRPath System type or a resource type) and whether a value matches it, by
//! its known type or, when unknown, by its JSON kind.

use super::Ty;

/// The FHIRPath System types (`System.String`, or `String` unqualified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SystemType {
    Boolean,
    String,
    Integer,
    Decimal,
    Date,
    DateTime,
    Time,
}

impl SystemType {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "Boolean" => Self::Boolean,
            "String" => Self::String,
            "Integer" => Self::Integer,
            "Decimal" => Self::Decimal,
            "Date" => Self::Date,
            "DateTime" => Self::DateTime,
            "Time" => Self::Time,
            _ => return None,
        })
    }

    /// Whether a value of FHIR type `ty` converts implicitly to this System type.
    pub(crate) fn accepts(self, ty: Ty) -> bool {
        match self {
            Self::Boolean => ty == Ty::Boolean,
            Self::String => ty.is_string_like(),
            Self::Integer => ty.is_integer(),
            Self::Decimal => ty == Ty::Decimal,
            Self::Date => ty == Ty::Date,
            Self::DateTime => matches!(ty, Ty::DateTime | Ty::Instant),
            Self::Time => ty == Ty::Time,
        }
    }

    /// The FHIR type that stands for values of this System type.
    pub(crate) fn as_fhir(self) -> Ty {
        match self {
            Self::Boolean => Ty::Boolean,
            Self::String => Ty::String,
            Self::Integer => Ty::Integer,
            Self::Decimal => Ty::Decimal,
            Self::Date => Ty::Date,
            Self::DateTime => Ty::DateTime,
            Self::Time => Ty::Time,
        }
    }
}

/// The type named by `ofType(...)`, `is` or `as`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TypeSpec {
    /// A FHIR data type (`Quantity`, `dateTime`, `FHIR.string`).
    Fhir(Ty),
    /// A FHIRPath System type (`System.String`, `Boolean`).
    System(SystemType),
    /// A resource type (`Patient`): matched against `resourceType`.
    Resource(Box<str>),
}

impl TypeSpec {
    /// Resolves a (possibly qualified) type name; `None` when it names nothing known.
    pub(crate) fn resolve(qualifier: Option<&str>, name: &str) -> Option<Self> {
        match qualifier {
            Some("System") => SystemType::from_name(name).map(Self::System),
            Some("FHIR") | None => {
                if let Some(ty) = Ty::from_fhir_name(name) {
                    return Some(Self::Fhir(ty));
                }
                if qualifier.is_none()
                    && let Some(system) = SystemType::from_name(name)
                {
                    return Some(Self::System(system));
                }
                // Anything else capitalised is taken as a resource type name: the check
                // against `resourceType` happens on the data.
                let first = name.as_bytes().first()?;
                (first.is_ascii_uppercase() && name.bytes().all(|b| b.is_ascii_alphanumeric()))
                    .then(|| Self::Resource(name.into()))
            }
            Some(_) => None,
        }
    }

    /// Whether a value whose FHIR type is known to be `ty` matches.
    pub(crate) fn matches_known(&self, ty: Ty) -> bool {
        match self {
            Self::Fhir(target) => ty.is_a(*target),
            Self::System(system) => system.accepts(ty),
            Self::Resource(_) => false,
        }
    }

    /// Whether a value of unknown FHIR type matches, judged by its JSON kind: a JSON
    /// string may be any string-like or temporal type, a number any numeric type, an
    /// object any complex type. This is the best the engine can do without a model of
    /// FHIR; choice elements (the usual use of `ofType`) always have a known type.
    pub(crate) fn matches_unknown(&self, kind: JsonKind) -> bool {
        let ty = match self {
            Self::Fhir(ty) => *ty,
            Self::System(system) => system.as_fhir(),
            Self::Resource(_) => return false,
        };
        match kind {
            JsonKind::Bool => ty == Ty::Boolean,
            JsonKind::Integer => ty.is_integer() || ty == Ty::Decimal,
            JsonKind::Decimal => ty == Ty::Decimal,
            JsonKind::String => ty.is_string_like() || ty.is_temporal() || ty == Ty::Integer64,
            JsonKind::Object => matches!(ty, Ty::Complex(_)),
        }
    }
}

/// The JSON kind of a value, for type tests on values of unknown FHIR type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonKind {
    Bool,
    Integer,
    Decimal,
    String,
    Object,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_specs_resolve_qualified_names() {
        assert_eq!(
            TypeSpec::resolve(Some("FHIR"), "string"),
            Some(TypeSpec::Fhir(Ty::String))
        );
        assert_eq!(
            TypeSpec::resolve(Some("System"), "String"),
            Some(TypeSpec::System(SystemType::String))
        );
        assert_eq!(
            TypeSpec::resolve(None, "Patient"),
            Some(TypeSpec::Resource("Patient".into()))
        );
        assert_eq!(TypeSpec::resolve(None, "nothing"), None);
        assert_eq!(TypeSpec::resolve(Some("Other"), "string"), None);
    }
}
