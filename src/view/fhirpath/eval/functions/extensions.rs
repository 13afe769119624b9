//! `extension(url)`: the extensions of the input's elements with that url.

use simd_json::Node;

use crate::view::fhirpath::{
    compile::Expr,
    eval::{Ctx, Evaluator, Input, Res},
    types::Ty,
    value::{Data, Item, span},
};

impl Evaluator {
    /// Pushes the extensions with the url `url` evaluates to of the objects in the
    /// input.
    pub(super) fn extension(
        &mut self,
        inp: &Input<'_, '_>,
        url: &Expr,
        (lo, hi): (usize, usize),
        cx: Ctx,
    ) -> Res<()> {
        let Some(url) = self.string_arg(inp, url, cx, "the extension url")? else {
            return Ok(());
        };
        let data = Data {
            tape: inp.tape,
            pool: inp.pool,
            arena: &self.arena,
        };
        let Some(url) = data.text(url) else {
            return Ok(());
        };
        let extension = Ty::from_fhir_name("Extension").unwrap_or(Ty::Unknown);
        for i in lo..hi {
            let Item::Node { at, .. } = self.items[i] else {
                continue;
            };
            let Some(list) = data.member(at, "extension") else {
                continue;
            };
            let (first, count) = match inp.tape.get(list) {
                Some(Node::Array { len, .. }) => (list + 1, *len),
                Some(Node::Object { .. }) => (list, 1),
                _ => continue,
            };
            let mut e = first;
            for _ in 0..count {
                if data.member_str(e as u32, "url") == Some(url) {
                    self.items.push(Item::Node {
                        at: e as u32,
                        ty: extension,
                    });
                }
                e += span(inp.tape, e);
            }
        }
        Ok(())
    }
}
