//! Numbers as they were written.
//!
//! serde_json (with `arbitrary_precision`) keeps a number's digits but respells its
//! exponent: `1E-400` becomes `1e-400`, `0.1e1` becomes `0.1e+1`. The rebuilt value is
//! compared as JSON, where that is the same number; but `to-ndjson` must give back the
//! text as written. So the rebuild notes, by JSON Pointer, every number whose text
//! serde_json would respell ([`Spellings`]), from the `_text` columns and from the
//! `_overflow` text, and [`Spellings::write_json`] writes the resource with them.

use std::{collections::BTreeMap, str::FromStr};

use serde_json::{Number, Value};

/// The numbers of one rebuilt resource whose text serde_json would respell: JSON
/// Pointer → the text as written. Empty for almost every resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spellings(BTreeMap<String, String>);

impl Spellings {
    /// Whether serde_json's own output is exact for this resource.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Notes `text` at `pointer` when serde_json would spell it otherwise (only an
    /// exponent is ever respelled).
    fn note(&mut self, pointer: &str, text: &str) {
        if !text.bytes().any(|b| b == b'e' || b == b'E') {
            return;
        }
        if spelled(text).is_some_and(|own| own != text) {
            self.0.insert(pointer.to_owned(), text.to_owned());
        }
    }

    /// Notes the numbers of an `_overflow` object (`{"<pointer>": <value>, ...}`, as
    /// the decoder writes it, numbers with their original text): each at its pointer.
    pub(super) fn note_overflow(&mut self, overflow: &str) {
        let text = overflow.as_bytes();
        if !text.iter().any(|b| *b == b'e' || *b == b'E') {
            return;
        }
        let mut walker = Walker {
            text,
            pointer: String::new(),
            spellings: self,
        };
        walker.entries();
    }

    /// `value` as JSON text, numbers spelled as noted (a noted spelling is used only
    /// where it is the same number as the value's, so a value replaced since keeps its
    /// own).
    pub fn write_json(&self, value: &Value, out: &mut String) {
        let mut pointer = String::new();
        self.write_at(value, &mut pointer, out);
    }

    fn write_at(&self, value: &Value, pointer: &mut String, out: &mut String) {
        match value {
            Value::Number(n) => {
                let own = n.to_string();
                match self.0.get(pointer.as_str()) {
                    Some(text) if spelled(text).as_deref() == Some(own.as_str()) => {
                        out.push_str(text)
                    }
                    _ => out.push_str(&own),
                }
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let mark = enter(pointer, &i.to_string());
                    self.write_at(item, pointer, out);
                    pointer.truncate(mark);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    let mark = enter(pointer, key);
                    self.write_at(item, pointer, out);
                    pointer.truncate(mark);
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
}

/// How serde_json spells the number `text` (`None` when it is not a number).
fn spelled(text: &str) -> Option<String> {
    Number::from_str(text).ok().map(|n| n.to_string())
}

/// Appends `/segment` (escaped as RFC 6901 says) to `pointer`; returns the length to
/// truncate back to.
pub(super) fn enter(pointer: &mut String, segment: &str) -> usize {
    let mark = pointer.len();
    pointer.push('/');
    for c in segment.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
    mark
}

/// Where the rebuild of the typed columns is, and the spellings noted so far.
#[derive(Default)]
pub(super) struct Tracker {
    pointer: String,
    /// The spellings noted.
    pub spellings: Spellings,
}

impl Tracker {
    /// Goes into member or item `segment`; [`leave`](Self::leave) with the result.
    pub fn enter(&mut self, segment: &str) -> usize {
        enter(&mut self.pointer, segment)
    }

    /// Comes back out.
    pub fn leave(&mut self, mark: usize) {
        self.pointer.truncate(mark);
    }

    /// Notes the text of the number at the current place.
    pub fn note(&mut self, text: &str) {
        self.spellings.note(&self.pointer, text);
    }

    /// The spellings of the resource done; starts anew.
    pub fn take(&mut self) -> Spellings {
        self.pointer.clear();
        std::mem::take(&mut self.spellings)
    }
}

/// Walks an overflow object's text, noting each number at its pointer. The text is the
/// decoder's own (valid JSON); anything unexpected just ends the walk.
struct Walker<'a> {
    text: &'a [u8],
    pointer: String,
    spellings: &'a mut Spellings,
}

impl Walker<'_> {
    /// The top-level entries: each key is a whole pointer.
    fn entries(&mut self) {
        let mut i = self.skip_blank(0);
        if self.text.get(i) != Some(&b'{') {
            return;
        }
        i += 1;
        loop {
            i = self.skip_blank(i);
            let Some((key, after)) = self.string(i) else {
                return;
            };
            i = self.skip_blank(after);
            if self.text.get(i) != Some(&b':') {
                return;
            }
            self.pointer = key;
            let Some(next) = self.value(i + 1) else {
                return;
            };
            i = self.skip_blank(next);
            if self.text.get(i) != Some(&b',') {
                return;
            }
            i += 1;
        }
    }

    /// Walks the value at `i`; the index past it.
    fn value(&mut self, i: usize) -> Option<usize> {
        let i = self.skip_blank(i);
        match *self.text.get(i)? {
            b'{' => self.members(i + 1),
            b'[' => self.items(i + 1),
            b'"' => self.string(i).map(|(_, end)| end),
            b'-' | b'0'..=b'9' => {
                let end = i + self.text[i..]
                    .iter()
                    .take_while(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .count();
                let number = std::str::from_utf8(&self.text[i..end]).ok()?;
                self.spellings.note(&self.pointer, number);
                Some(end)
            }
            _ => Some(
                i + self.text[i..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphabetic())
                    .count(),
            ),
        }
    }

    fn members(&mut self, mut i: usize) -> Option<usize> {
        loop {
            i = self.skip_blank(i);
            match *self.text.get(i)? {
                b'}' => return Some(i + 1),
                b',' => i += 1,
                _ => {
                    let (key, after) = self.string(i)?;
                    i = self.skip_blank(after) + 1;
                    let mark = enter(&mut self.pointer, &key);
                    i = self.value(i)?;
                    self.pointer.truncate(mark);
                }
            }
        }
    }

    fn items(&mut self, mut i: usize) -> Option<usize> {
        let mut n = 0usize;
        loop {
            i = self.skip_blank(i);
            match *self.text.get(i)? {
                b']' => return Some(i + 1),
                b',' => i += 1,
                _ => {
                    let mark = enter(&mut self.pointer, &n.to_string());
                    i = self.value(i)?;
                    self.pointer.truncate(mark);
                    n += 1;
                }
            }
        }
    }

    /// The string at `i` unescaped, and the index past it.
    fn string(&self, i: usize) -> Option<(String, usize)> {
        if self.text.get(i) != Some(&b'"') {
            return None;
        }
        let mut j = i + 1;
        while j < self.text.len() {
            match self.text[j] {
                b'\\' => j += 2,
                b'"' => {
                    let value = serde_json::from_slice(&self.text[i..=j]).ok()?;
                    return Some((value, j + 1));
                }
                _ => j += 1,
            }
        }
        None
    }

    fn skip_blank(&self, mut i: usize) -> usize {
        while self.text.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respelled_numbers_are_written_as_noted() {
        let mut spellings = Spellings::default();
        spellings.note_overflow(r#"{"/a":[1E5,{"b/c":0.1e1}],"/d":2,"/e":1e400}"#);
        spellings.note("/f", "1E-400");
        spellings.note("/g", "1.50");
        let value: Value = serde_json::from_str(
            r#"{"a":[1E5,{"b/c":0.1e1}],"d":2,"e":1e400,"f":1E-400,"g":1.50,"h":1e1}"#,
        )
        .unwrap();
        let mut out = String::new();
        spellings.write_json(&value, &mut out);
        assert_eq!(
            out,
            r#"{"a":[1E5,{"b/c":0.1e1}],"d":2,"e":1e400,"f":1E-400,"g":1.50,"h":1e+1}"#
        );
    }
}
