//! SQL on FHIR's keys: `getResourceKey([type])` (the resource's `id`) and
//! `getReferenceKey([type])` (the id part of a reference, `Patient/123` gives `123`).

use simd_json::Node;

use crate::view::fhirpath::{
    eval::{Evaluator, Input},
    types::Ty,
    value::{Item, Src},
};

impl Evaluator {
    /// `getResourceKey([type])`: the `id` of each resource of the input (of that type).
    pub(super) fn resource_keys(
        &mut self,
        inp: &Input<'_, '_>,
        resource: Option<&str>,
        (lo, hi): (usize, usize),
    ) {
        for i in lo..hi {
            let Item::Node { at, .. } = self.items[i] else {
                continue;
            };
            let data = self.data(inp);
            let Some(kind) = data.member_str(at, "resourceType") else {
                continue;
            };
            if resource.is_some_and(|r| r != kind) {
                continue;
            }
            if let Some(id) = data.member(at, "id")
                && matches!(inp.tape.get(id), Some(Node::String(_)))
            {
                self.items.push(Item::Node {
                    at: id as u32,
                    ty: Ty::Id,
                });
            }
        }
    }

    /// `getReferenceKey([type])`: the id of each reference of the input (to that type).
    pub(super) fn reference_keys(
        &mut self,
        inp: &Input<'_, '_>,
        resource: Option<&str>,
        (lo, hi): (usize, usize),
    ) {
        for i in lo..hi {
            let Item::Node { at, .. } = self.items[i] else {
                continue;
            };
            let data = self.data(inp);
            let Some(r) = data.member(at, "reference") else {
                continue;
            };
            let Some(Node::String(text)) = inp.tape.get(r) else {
                continue;
            };
            let Some((kind, start, len)) = reference_key(text) else {
                continue;
            };
            if let Some(wanted) = resource
                && kind != Some(wanted)
            {
                continue;
            }
            self.items.push(Item::Str {
                src: Src::Tape {
                    at: r as u32,
                    start: start as u32,
                    len: len as u32,
                },
                ty: Ty::Id,
            });
        }
    }
}

/// The type and id of a reference (`Patient/123`, `http://x/fhir/Patient/123/_history/2`,
/// `urn:uuid:...`), as the byte range of the id within `text`. `None` for references
/// without a key of their own: contained (`#x`), conditional (`Patient?identifier=`),
/// or empty.
fn reference_key(text: &str) -> Option<(Option<&str>, usize, usize)> {
    if text.is_empty() || text.starts_with('#') || text.contains('?') {
        return None;
    }
    for prefix in ["urn:uuid:", "urn:oid:"] {
        if let Some(id) = text.strip_prefix(prefix) {
            return (!id.is_empty()).then_some((None, prefix.len(), id.len()));
        }
    }
    let path = match text.find("/_history/") {
        Some(h) => &text[..h],
        None => text,
    };
    let path = path.trim_end_matches('/');
    let (head, id) = path.rsplit_once('/')?;
    let kind = head.rsplit('/').next().filter(|k| !k.is_empty());
    if id.is_empty() {
        return None;
    }
    Some((kind, head.len() + 1, id.len()))
}

#[cfg(test)]
mod tests {
    use super::reference_key;
    use crate::view::fhirpath::eval::testing::ok;

    #[test]
    fn resource_and_reference_keys() {
        assert_eq!(ok("getResourceKey()"), ["p1"]);
        assert_eq!(
            ok("managingOrganization.getReferenceKey(Organization)"),
            ["o1"]
        );
        assert_eq!(
            ok("managingOrganization.getReferenceKey(Patient)"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn reference_keys() {
        let key = |t: &'static str| reference_key(t).map(|(k, s, l)| (k, &t[s..s + l]));
        assert_eq!(key("Patient/123"), Some((Some("Patient"), "123")));
        assert_eq!(
            key("http://x.org/fhir/Patient/1/_history/2"),
            Some((Some("Patient"), "1"))
        );
        assert_eq!(key("urn:uuid:abc"), Some((None, "abc")));
        assert_eq!(key("#c1"), None);
        assert_eq!(key("Practitioner?identifier=a|b"), None);
        assert_eq!(key("123"), None);
    }
}
