//! Member access (`name.given`, with choice elements: `value` matches `valueQuantity`)
//! and indexers (`name[0]`).

use simd_json::Node;

use super::{Ctx, Evaluator, Input, Res};
use crate::view::fhirpath::{
    compile::Expr,
    types::Ty,
    value::{Data, Item, span},
};

impl Evaluator {
    /// Pushes the elements `name` of the objects in `from` (array items one by one;
    /// nulls skipped). For a choice element, a key `name` + a type name
    /// (`valueQuantity` for `value`) is the element with that type; a key `name` itself
    /// wins (a choice element never has one, so the object is of another type, where
    /// `name` is a plain element).
    pub(super) fn navigate(
        &mut self,
        inp: &Input<'_, '_>,
        (lo, hi): (usize, usize),
        name: &str,
        choice: bool,
    ) {
        let tape = inp.tape;
        for i in lo..hi {
            let Item::Node { at, .. } = self.items[i] else {
                continue;
            };
            let data = Data {
                tape,
                pool: inp.pool,
                arena: &self.arena,
            };
            if let Some(value) = data.member(at, name) {
                push_value(&mut self.items, tape, value, Ty::Unknown);
                continue;
            }
            if !choice {
                continue;
            }
            let at = at as usize;
            let Some(&Node::Object { len, .. }) = tape.get(at) else {
                continue;
            };
            let mut k = at + 1;
            for _ in 0..len {
                let value = k + 1;
                if let Some(Node::String(key)) = tape.get(k)
                    && let Some(suffix) = key.strip_prefix(name)
                    && let Some(ty) = Ty::from_choice_suffix(suffix)
                {
                    push_value(&mut self.items, tape, value, ty);
                }
                k = value + span(tape, value);
            }
        }
    }

    /// `input[index]`: pushes the item of the input `from` at the index, if any.
    pub(super) fn index(
        &mut self,
        inp: &Input<'_, '_>,
        from: (usize, usize),
        index: &Expr,
        cx: Ctx,
    ) -> Res<()> {
        let n = self.integer_arg(inp, index, cx, "an index")?;
        if let Some(n) = n
            && n >= 0
            && (n as usize) < from.1 - from.0
        {
            let item = self.items[from.0 + n as usize];
            self.items.push(item);
        }
        Ok(())
    }
}

/// Pushes the value at tape index `value`: each item of an array, nothing for null.
fn push_value(items: &mut Vec<Item>, tape: &[Node<'_>], value: usize, ty: Ty) {
    match tape.get(value) {
        Some(Node::Array { len, .. }) => {
            let mut i = value + 1;
            for _ in 0..*len {
                if !matches!(tape.get(i), Some(Node::Static(simd_json::StaticNode::Null))) {
                    push_value(items, tape, i, ty);
                }
                i += span(tape, i);
            }
        }
        Some(Node::Static(simd_json::StaticNode::Null)) | None => {}
        Some(_) => items.push(Item::Node {
            at: value as u32,
            ty,
        }),
    }
}

#[cfg(test)]
mod tests {
    use crate::view::fhirpath::eval::testing::{ok, run};

    #[test]
    fn navigation_flattens_and_skips_nulls() {
        assert_eq!(ok("name.given"), ["A", "B", "C"]);
        assert_eq!(ok("Patient.name[1].family"), ["Roe"]);
        assert_eq!(ok("Observation.id"), Vec::<String>::new());
        assert_eq!(ok("name.where(use = 'official').family"), ["Doe"]);
        assert_eq!(ok("name.select(given.first())"), ["A", "C"]);
        assert_eq!(ok("name.given.where($index > 0)"), ["B", "C"]);
        assert_eq!(ok("name[%two - 1].family"), ["Roe"]);
        assert_eq!(ok("name.given.tail().skip(1)"), ["C"]);
        assert_eq!(ok("name.given.take(2).last()"), ["B"]);
        assert_eq!(ok("(name.family | name.family).count()"), ["2"]);
        assert_eq!(ok("name.family.combine(name.family).count()"), ["4"]);
        assert_eq!(ok("name.given.join('-')"), ["A-B-C"]);
    }

    #[test]
    fn choice_elements_and_types() {
        assert_eq!(
            ok("deceased.ofType(dateTime)"),
            ["2001-02-03T04:05:06+01:00"]
        );
        assert_eq!(ok("deceased.ofType(boolean)"), Vec::<String>::new());
        assert_eq!(ok("deceased is dateTime"), ["true"]);
        assert_eq!(ok("extension('u1').value.ofType(decimal)"), ["1.5"]);
        assert_eq!(ok("extension.value.ofType(string)"), ["x"]);
        let goal = r#"{"resourceType":"Goal","status":"active","statusDate":"2020-01-01"}"#;
        assert_eq!(run(goal, "status").unwrap(), ["active"]);
        let no_status = r#"{"resourceType":"Goal","statusDate":"2020-01-01"}"#;
        assert_eq!(run(no_status, "status").unwrap(), Vec::<String>::new());
    }
}
