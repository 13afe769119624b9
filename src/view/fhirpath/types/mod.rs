//! FHIR types as the evaluator knows them: the primitive types, the complex data types
//! of R4 (and the few R5 ones a view may name), and resources.
//!
//! A value read from the tape carries a [`Ty`] when its type is known: from the key of a
//! choice element (`valueQuantity` is a `Quantity`, see [`choice`]) or from the literal
//! or function that made it. Values reached through ordinary elements have
//! [`Ty::Unknown`]: the engine has no model of FHIR, so type tests on them fall back to
//! the JSON kind of the value (see [`TypeSpec::matches_unknown`]).

mod choice;
mod spec;

pub(crate) use choice::is_choice_name;
pub(crate) use spec::{JsonKind, TypeSpec};

/// The FHIR type of a value, when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// Reached through an element whose type the engine does not know.
    Unknown,
    Boolean,
    Integer,
    UnsignedInt,
    PositiveInt,
    Integer64,
    Decimal,
    String,
    Code,
    Id,
    Markdown,
    Uri,
    Url,
    Canonical,
    Oid,
    Uuid,
    Base64Binary,
    Xhtml,
    Date,
    DateTime,
    Instant,
    Time,
    /// A complex data type: an index into [`COMPLEX`].
    Complex(u8),
    /// A resource (the root of the tape, or a contained resource).
    Resource,
}

/// The primitive types: (FHIR name, type).
const PRIMITIVES: &[(&str, Ty)] = &[
    ("boolean", Ty::Boolean),
    ("integer", Ty::Integer),
    ("unsignedInt", Ty::UnsignedInt),
    ("positiveInt", Ty::PositiveInt),
    ("integer64", Ty::Integer64),
    ("decimal", Ty::Decimal),
    ("string", Ty::String),
    ("code", Ty::Code),
    ("id", Ty::Id),
    ("markdown", Ty::Markdown),
    ("uri", Ty::Uri),
    ("url", Ty::Url),
    ("canonical", Ty::Canonical),
    ("oid", Ty::Oid),
    ("uuid", Ty::Uuid),
    ("base64Binary", Ty::Base64Binary),
    ("xhtml", Ty::Xhtml),
    ("date", Ty::Date),
    ("dateTime", Ty::DateTime),
    ("instant", Ty::Instant),
    ("time", Ty::Time),
];

/// The complex data types of FHIR R4, plus the R5 ones that appear in choice elements.
pub(crate) const COMPLEX: &[&str] = &[
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "BackboneElement",
    "CodeableConcept",
    "CodeableReference",
    "Coding",
    "ContactDetail",
    "ContactPoint",
    "Contributor",
    "Count",
    "DataRequirement",
    "Distance",
    "Dosage",
    "Duration",
    "Element",
    "ElementDefinition",
    "Expression",
    "Extension",
    "HumanName",
    "Identifier",
    "MarketingStatus",
    "Meta",
    "Money",
    "MoneyQuantity",
    "Narrative",
    "ParameterDefinition",
    "Period",
    "Population",
    "ProdCharacteristic",
    "ProductShelfLife",
    "Quantity",
    "Range",
    "Ratio",
    "RatioRange",
    "Reference",
    "RelatedArtifact",
    "SampledData",
    "Signature",
    "SimpleQuantity",
    "SubstanceAmount",
    "Timing",
    "TriggerDefinition",
    "UsageContext",
];

/// The data types derived from `Quantity` (a `valueAge` is a `Quantity` too).
const QUANTITY_KINDS: &[&str] = &[
    "Age",
    "Count",
    "Distance",
    "Duration",
    "MoneyQuantity",
    "SimpleQuantity",
];

impl Ty {
    /// The type of a FHIR type name (`dateTime`, `Quantity`), if it is a data type.
    pub(crate) fn from_fhir_name(name: &str) -> Option<Self> {
        match PRIMITIVES.iter().find(|(n, _)| *n == name) {
            Some(&(_, ty)) => Some(ty),
            None => Self::complex(name),
        }
    }

    /// The complex data type named `name`.
    fn complex(name: &str) -> Option<Self> {
        COMPLEX
            .iter()
            .position(|c| *c == name)
            .map(|i| Self::Complex(i as u8))
    }

    /// The FHIR name of the type (`"unknown"` when unknown).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Resource => "Resource",
            Self::Complex(i) => COMPLEX.get(i as usize).copied().unwrap_or("Element"),
            prim => PRIMITIVES
                .iter()
                .find(|(_, t)| *t == prim)
                .map_or("unknown", |(n, _)| n),
        }
    }

    /// Whether a value of this type is a string in JSON and in FHIRPath's `String`.
    pub(crate) fn is_string_like(self) -> bool {
        matches!(
            self,
            Self::String
                | Self::Code
                | Self::Id
                | Self::Markdown
                | Self::Uri
                | Self::Url
                | Self::Canonical
                | Self::Oid
                | Self::Uuid
                | Self::Base64Binary
                | Self::Xhtml
        )
    }

    /// Whether the type is a date, date-time, instant or time.
    pub(crate) fn is_temporal(self) -> bool {
        matches!(
            self,
            Self::Date | Self::DateTime | Self::Instant | Self::Time
        )
    }

    /// Whether a value of this type is an integer.
    pub(crate) fn is_integer(self) -> bool {
        matches!(
            self,
            Self::Integer | Self::UnsignedInt | Self::PositiveInt | Self::Integer64
        )
    }

    /// The parent of the type in FHIR's type hierarchy, as far as type tests need it
    /// (`code` is a `string`, `url` a `uri`, `positiveInt` an `integer`, `Age` a
    /// `Quantity`).
    fn parent(self) -> Option<Self> {
        Some(match self {
            Self::Code | Self::Id | Self::Markdown => Self::String,
            Self::Url | Self::Canonical | Self::Oid | Self::Uuid => Self::Uri,
            Self::UnsignedInt | Self::PositiveInt => Self::Integer,
            Self::Complex(i) => {
                let name = COMPLEX.get(i as usize)?;
                if QUANTITY_KINDS.contains(name) {
                    Self::from_fhir_name("Quantity")?
                } else {
                    return None;
                }
            }
            _ => return None,
        })
    }

    /// Whether a value of type `self` is of type `target` (itself or a descendant).
    pub(crate) fn is_a(self, target: Self) -> bool {
        let mut ty = Some(self);
        while let Some(t) = ty {
            if t == target {
                return true;
            }
            ty = t.parent();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy_follows_fhir() {
        assert!(Ty::Code.is_a(Ty::String));
        assert!(Ty::Url.is_a(Ty::Uri));
        assert!(!Ty::Url.is_a(Ty::String));
        assert!(Ty::PositiveInt.is_a(Ty::Integer));
        let age = Ty::from_fhir_name("Age").unwrap();
        let quantity = Ty::from_fhir_name("Quantity").unwrap();
        assert!(age.is_a(quantity));
        assert!(!quantity.is_a(age));
    }
}
