//! Strings: `join`, `startsWith`, `endsWith`, `contains`, `length`, `upper`, `lower`,
//! `trim`, `substring`.

use crate::view::fhirpath::{
    compile::{Expr, Func},
    eval::{Ctx, Evaluator, Input, Res, fault, write_text},
    types::Ty,
    value::Item,
};

impl Evaluator {
    /// `join([separator])`: the texts of the input's items, separated.
    pub(super) fn join(
        &mut self,
        inp: &Input<'_, '_>,
        separator: Option<&Expr>,
        (lo, hi): (usize, usize),
        cx: Ctx,
    ) -> Res<()> {
        let sep = match separator {
            Some(arg) => self.string_arg(inp, arg, cx, "the separator")?,
            None => None,
        };
        self.push_built(inp, Ty::String, |data, items, out| {
            let sep = sep.map_or("", |s| data.text(s).unwrap_or(""));
            for (k, &item) in items[lo..hi].iter().enumerate() {
                if k > 0 {
                    out.push_str(sep);
                }
                write_text(data, item, out)?;
            }
            Ok(true)
        })
    }

    /// `startsWith(s)`, `endsWith(s)`, `contains(s)` on a single string.
    pub(super) fn string_test(
        &mut self,
        inp: &Input<'_, '_>,
        func: &Func,
        arg: &Expr,
        (lo, hi): (usize, usize),
        cx: Ctx,
    ) -> Res<()> {
        let Some(item) = self.single_item(lo, hi, "the string function")? else {
            return Ok(());
        };
        let Some(needle) = self.string_arg(inp, arg, cx, "the argument")? else {
            return Ok(());
        };
        let data = self.data(inp);
        let (Some(s), Some(needle)) = (data.text(item), data.text(needle)) else {
            return fault("expects a string input");
        };
        let v = match func {
            Func::StartsWith => s.starts_with(needle),
            Func::EndsWith => s.ends_with(needle),
            _ => s.contains(needle),
        };
        self.items.push(Item::Bool(v));
        Ok(())
    }

    /// `length()`: the number of characters of a single string.
    pub(super) fn length(&mut self, inp: &Input<'_, '_>, (lo, hi): (usize, usize)) -> Res<()> {
        if let Some(item) = self.single_item(lo, hi, "length()")? {
            let Some(s) = self.data(inp).text(item) else {
                return fault("length() expects a string");
            };
            let len = s.chars().count() as i64;
            self.items.push(Item::Int(len));
        }
        Ok(())
    }

    /// `upper()`, `lower()`, `trim()` of a single string.
    pub(super) fn change_string(
        &mut self,
        inp: &Input<'_, '_>,
        func: &Func,
        (lo, hi): (usize, usize),
    ) -> Res<()> {
        if let Some(item) = self.single_item(lo, hi, "the string function")? {
            self.push_built(inp, Ty::String, |data, _, out| {
                let Some(s) = data.text(item) else {
                    return fault("expects a string");
                };
                match func {
                    Func::Upper => out.push_str(&s.to_uppercase()),
                    Func::Lower => out.push_str(&s.to_lowercase()),
                    _ => out.push_str(s.trim()),
                }
                Ok(true)
            })?;
        }
        Ok(())
    }

    /// `substring(start [, length])` of a single string, by characters.
    pub(super) fn substring(
        &mut self,
        inp: &Input<'_, '_>,
        args: &[Expr],
        (lo, hi): (usize, usize),
        cx: Ctx,
    ) -> Res<()> {
        let Some(item) = self.single_item(lo, hi, "substring()")? else {
            return Ok(());
        };
        let start = self.integer_arg(inp, &args[0], cx, "the start")?;
        let length = match args.get(1) {
            Some(arg) => self.integer_arg(inp, arg, cx, "the length")?,
            None => None,
        };
        let Some(start) = start else { return Ok(()) };
        self.push_built(inp, Ty::String, |data, _, out| {
            let Some(s) = data.text(item) else {
                return fault("substring() expects a string");
            };
            let count = s.chars().count() as i64;
            if start < 0 || start >= count {
                return Ok(false);
            }
            let take = length.map_or(count, |l| l.max(0)) as usize;
            out.extend(s.chars().skip(start as usize).take(take));
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::view::fhirpath::eval::testing::ok;

    #[test]
    fn strings() {
        assert_eq!(ok("name.family.first().upper()"), ["DOE"]);
        assert_eq!(ok("name.family.first().substring(1, 1)"), ["o"]);
        assert_eq!(ok("name.family.first().startsWith('D')"), ["true"]);
        assert_eq!(ok("name.family.first().length()"), ["3"]);
    }
}
