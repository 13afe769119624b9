//! Choice elements (`value[x]`): which element names are choice elements, and which
//! type a JSON key's suffix names (`valueQuantity` is the `value` of type `Quantity`).

use super::{PRIMITIVES, Ty};

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

impl Ty {
    /// The type named by the suffix of a choice element's JSON key: `Quantity` in
    /// `valueQuantity`, `DateTime` in `effectiveDateTime`. Primitive type names are
    /// capitalised in keys.
    pub(crate) fn from_choice_suffix(suffix: &str) -> Option<Self> {
        let first = suffix.as_bytes().first()?;
        if !first.is_ascii_uppercase() {
            return None;
        }
        let primitive = PRIMITIVES.iter().find(|(n, _)| {
            n.len() == suffix.len()
                && n.as_bytes()[0].eq_ignore_ascii_case(first)
                && n[1..] == suffix[1..]
        });
        match primitive {
            Some(&(_, ty)) => Some(ty),
            None => Self::complex(suffix),
        }
    }
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
}
