//! FHIR types as the evaluator knows them: the primitive types, the complex data types
//! of R4 (and the few R5 ones a view may name), and resources.
//!
//! A value read from the tape carries a [`Ty`] when its type is known: from the key of a
//! choice element (`valueQuantity` is a `Quantity`) or from the literal or function that
//! made it. Values reached through ordinary elements have [`Ty::Unknown`]: the engine
//! has no model of FHIR, so type tests on them fall back to the JSON kind of the value
//! (see [`TypeSpec::matches_unknown`]).

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

/// The names of FHIR R4's choice elements (`value[x]`, `deceased[x]`, ...), sorted:
/// found in the definitions as a name followed by two or more type names
/// (`effectiveDateTime`, `effectivePeriod`). Only these match keys with a type suffix;
/// other names match their key exactly, so `status` never picks up `statusDate`.
const CHOICE_NAMES: &[&str] = &[
    "abatement",
    "additive",
    "age",
    "allowed",
    "amount",
    "answer",
    "asNeeded",
    "author",
    "born",
    "bounds",
    "characteristic",
    "chargeItem",
    "code",
    "collected",
    "content",
    "created",
    "date",
    "deceased",
    "defaultValue",
    "definingSubstance",
    "definition",
    "detail",
    "diagnosis",
    "dose",
    "doseNumber",
    "due",
    "effective",
    "entity",
    "event",
    "example",
    "fastingStatus",
    "fixed",
    "identified",
    "indication",
    "instantiates",
    "item",
    "legallyBinding",
    "location",
    "manufacturer",
    "maxValue",
    "medication",
    "minValue",
    "minimumVolume",
    "module",
    "multipleBirth",
    "name",
    "occurred",
    "occurrence",
    "offset",
    "onset",
    "outcome",
    "participantEffective",
    "pattern",
    "payment",
    "performed",
    "probability",
    "procedure",
    "product",
    "prognosis",
    "quantity",
    "rate",
    "reported",
    "scheduled",
    "seriesDoses",
    "serviced",
    "source",
    "start",
    "statusReason",
    "studyEffective",
    "subject",
    "substance",
    "target",
    "time",
    "timing",
    "topic",
    "used",
    "value",
    "when",
];

/// Whether `name` is the name of a choice element somewhere in FHIR R4.
pub(crate) fn is_choice_name(name: &str) -> bool {
    CHOICE_NAMES.binary_search(&name).is_ok()
}

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
        if let Some(&(_, ty)) = PRIMITIVES.iter().find(|(n, _)| *n == name) {
            return Some(ty);
        }
        COMPLEX
            .iter()
            .position(|c| *c == name)
            .map(|i| Self::Complex(i as u8))
    }

    /// The type named by the suffix of a choice element's JSON key: `Quantity` in
    /// `valueQuantity`, `DateTime` in `effectiveDateTime`. Primitive type names are
    /// capitalised in keys.
    pub(crate) fn from_choice_suffix(suffix: &str) -> Option<Self> {
        let first = suffix.as_bytes().first()?;
        if !first.is_ascii_uppercase() {
            return None;
        }
        if let Some(&(_, ty)) = PRIMITIVES.iter().find(|(n, _)| {
            n.len() == suffix.len()
                && n.as_bytes()[0].eq_ignore_ascii_case(first)
                && n[1..] == suffix[1..]
        }) {
            return Some(ty);
        }
        COMPLEX
            .iter()
            .position(|c| *c == suffix)
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
    fn choice_suffixes_name_types() {
        assert_eq!(
            Ty::from_choice_suffix("Quantity").map(Ty::name),
            Some("Quantity")
        );
        assert_eq!(Ty::from_choice_suffix("DateTime"), Some(Ty::DateTime));
        assert_eq!(
            Ty::from_choice_suffix("Base64Binary"),
            Some(Ty::Base64Binary)
        );
        assert_eq!(Ty::from_choice_suffix("Set"), None);
        assert_eq!(Ty::from_choice_suffix("string"), None);
        assert_eq!(Ty::from_choice_suffix(""), None);
    }

    #[test]
    fn choice_names_are_sorted_and_known() {
        assert!(CHOICE_NAMES.windows(2).all(|w| w[0] < w[1]));
        assert!(is_choice_name("value") && is_choice_name("deceased"));
        assert!(!is_choice_name("status") && !is_choice_name("name2"));
    }

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
