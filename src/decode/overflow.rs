//! The `_overflow` column: whatever the typed columns of a row cannot hold.
//!
//! A row's overflow is a JSON object whose keys are JSON Pointers (RFC 6901) into the
//! resource and whose values are the JSON found there, for example
//! `{"/contained":[...],"/name/0/_family":{"extension":[...]}}`. The typed columns plus
//! these entries rebuild the resource exactly (see `maintain::rebuild`, which reads them).
//!
//! simd-json's tape keeps numbers parsed, not as text; a decimal's text matters in FHIR
//! (`1.50` is not `1.5`), so [`NumberTexts`] recovers the text of the n-th number of the
//! line from the original bytes, scanning a line only when one of its numbers needs it.

use std::fmt::Write as _;

use simd_json::{Node, StaticNode};

/// One step of the path from the resource root to the value being decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg {
    /// An object member; the tape index of its key.
    Key(u32),
    /// An array item.
    Index(u32),
}

/// The text of the numbers of one line, in document order, found on demand.
#[derive(Debug, Default)]
pub(crate) struct NumberTexts {
    next: usize,
    spans: Vec<(u32, u32)>,
    scanned: bool,
}

impl NumberTexts {
    /// Forgets the previous line.
    pub(crate) fn reset(&mut self) {
        self.next = 0;
        self.spans.clear();
        self.scanned = false;
    }

    /// The ordinal the next [`claim`](Self::claim) will return.
    pub(crate) fn peek(&self) -> usize {
        self.next
    }

    /// Claims the next number of the line (every number node must be claimed once, in
    /// document order); returns its ordinal.
    pub(crate) fn claim(&mut self) -> usize {
        self.next += 1;
        self.next - 1
    }

    /// The exact text of the `ordinal`-th number of `line`.
    pub(crate) fn text<'l>(&mut self, line: &'l [u8], ordinal: usize) -> &'l str {
        if !self.scanned {
            scan_numbers(line, &mut self.spans);
            self.scanned = true;
        }
        let Some(&(start, end)) = self.spans.get(ordinal) else {
            return "0";
        };
        // Number tokens are ASCII, so this slice is valid UTF-8.
        std::str::from_utf8(&line[start as usize..end as usize]).unwrap_or("0")
    }
}

impl NumberTexts {
    /// The exact text of the number that is the value of `key`, found from the key's
    /// place in the line instead of by scanning the line: `key` must point into the
    /// parsed copy of `line` that starts at address `base` (simd-json unescapes strings
    /// in place, so a key starts where its raw text starts). Falls back to the scan
    /// when the bytes there are not `"key": <number>`.
    pub(crate) fn text_after_key<'l>(
        &mut self,
        line: &'l [u8],
        base: usize,
        key: &str,
        ordinal: usize,
    ) -> &'l str {
        let start = (key.as_ptr() as usize).wrapping_sub(base);
        if start == 0 || start >= line.len() || line[start - 1] != b'"' {
            return self.text(line, ordinal);
        }
        let mut i = skip_string(line, start);
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if line.get(i) != Some(&b':') {
            return self.text(line, ordinal);
        }
        i += 1;
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        let end = number_end(line, i);
        match std::str::from_utf8(&line[i..end]) {
            Ok(text) if end > i => text,
            _ => self.text(line, ordinal),
        }
    }
}

/// Numbers beyond the float range (`1e400`, `-1e400`) are valid JSON, but simd-json
/// refuses them. [`huge_number_at`] tells such a number from an invalid one at the
/// place simd-json stopped; the line is then parsed again with the number blanked out
/// (a `0` and spaces in the parse buffer, so every offset stays), and [`mark_huge`]
/// puts the number back on the tape as the float it rounds to (±infinity). Its text is
/// still the line's, so the `_text` companion and the overflow keep it exactly.
pub(crate) fn huge_number_at(line: &[u8], index: usize) -> Option<(usize, usize)> {
    let end = number_end(line, index);
    let token = std::str::from_utf8(line.get(index..end)?).ok()?;
    (is_json_number(token.as_bytes()) && token.parse::<f64>().is_ok_and(f64::is_infinite))
        .then_some((index, end))
}

/// Whether `token` is a number by JSON's grammar: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(token: &[u8]) -> bool {
    let digits = |i: usize| token[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut i = usize::from(token.first() == Some(&b'-'));
    match digits(i) {
        0 => return false,
        n if n > 1 && token[i] == b'0' => return false,
        n => i += n,
    }
    if token.get(i) == Some(&b'.') {
        match digits(i + 1) {
            0 => return false,
            n => i += 1 + n,
        }
    }
    if matches!(token.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(token.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        match digits(i) {
            0 => return false,
            n => i += n,
        }
    }
    i == token.len()
}

/// Puts the numbers of `spans` (found by [`huge_number_at`], blanked out for the parse)
/// back on the tape as the floats they round to.
pub(crate) fn mark_huge(tape: &mut [Node<'_>], line: &[u8], spans: &[(usize, usize)]) {
    let mut all = Vec::new();
    scan_numbers(line, &mut all);
    let mut ordinal = 0;
    for node in tape.iter_mut() {
        let Node::Static(StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_)) = node
        else {
            continue;
        };
        if let Some(&(start, end)) = all.get(ordinal)
            && spans.contains(&(start as usize, end as usize))
        {
            let text = std::str::from_utf8(&line[start as usize..end as usize]).unwrap_or("0");
            *node = Node::Static(StaticNode::F64(text.parse().unwrap_or(f64::INFINITY)));
        }
        ordinal += 1;
    }
}

/// The end of the number token starting at `i`.
fn number_end(line: &[u8], mut i: usize) -> usize {
    while i < line.len() && matches!(line[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
        i += 1;
    }
    i
}

/// Finds the spans of number tokens outside strings, in order.
fn scan_numbers(line: &[u8], spans: &mut Vec<(u32, u32)>) {
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'"' => i = skip_string(line, i + 1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                i = number_end(line, i);
                spans.push((start as u32, i as u32));
            }
            _ => i += 1,
        }
    }
}

/// The index just past the closing quote of a string whose content starts at `i`.
fn skip_string(line: &[u8], mut i: usize) -> usize {
    while let Some(offset) = memchr::memchr2(b'"', b'\\', &line[i..]) {
        i += offset;
        if line[i] == b'\\' {
            i += 2;
        } else {
            return i + 1;
        }
    }
    line.len()
}

/// Builds one row's overflow object.
#[derive(Debug, Default)]
pub(crate) struct OverflowWriter {
    buf: String,
    pointer: String,
}

impl OverflowWriter {
    /// Starts a new row.
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
    }

    /// The row's overflow JSON, or `None` when everything was typed.
    pub(crate) fn finish(&mut self) -> Option<&str> {
        if self.buf.is_empty() {
            return None;
        }
        self.buf.push('}');
        Some(&self.buf)
    }

    /// Records the value at tape index `value` found at `path`, followed by `last`.
    pub(crate) fn add(
        &mut self,
        tape: &[Node<'_>],
        line: &[u8],
        numbers: &mut NumberTexts,
        path: &[Seg],
        last: Option<Seg>,
        value: usize,
    ) {
        self.buf.push(if self.buf.is_empty() { '{' } else { ',' });
        let pointer = &mut self.pointer;
        pointer.clear();
        for seg in path.iter().chain(last.as_ref()) {
            pointer.push('/');
            match *seg {
                Seg::Key(k) => {
                    let key = match tape[k as usize] {
                        Node::String(s) => s,
                        _ => "",
                    };
                    for c in key.chars() {
                        match c {
                            '~' => pointer.push_str("~0"),
                            '/' => pointer.push_str("~1"),
                            c => pointer.push(c),
                        }
                    }
                }
                Seg::Index(n) => {
                    let _ = write!(pointer, "{n}");
                }
            }
        }
        write_json_string(&mut self.buf, pointer);
        self.buf.push(':');
        write_value(&mut self.buf, tape, line, numbers, value);
    }
}

/// Serializes the tape value at `index` as JSON, numbers with their original text.
/// Returns the index just past the value.
pub(crate) fn write_value(
    out: &mut String,
    tape: &[Node<'_>],
    line: &[u8],
    numbers: &mut NumberTexts,
    index: usize,
) -> usize {
    match tape[index] {
        Node::String(s) => {
            write_json_string(out, s);
            index + 1
        }
        Node::Static(s) => {
            match s {
                StaticNode::Null => out.push_str("null"),
                StaticNode::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_) => {
                    let ordinal = numbers.claim();
                    out.push_str(numbers.text(line, ordinal));
                }
            }
            index + 1
        }
        Node::Array { len, .. } => {
            out.push('[');
            let mut i = index + 1;
            for n in 0..len {
                if n > 0 {
                    out.push(',');
                }
                i = write_value(out, tape, line, numbers, i);
            }
            out.push(']');
            i
        }
        Node::Object { len, .. } => {
            out.push('{');
            let mut i = index + 1;
            for n in 0..len {
                if n > 0 {
                    out.push(',');
                }
                if let Node::String(key) = tape[i] {
                    write_json_string(out, key);
                }
                out.push(':');
                i = write_value(out, tape, line, numbers, i + 1);
            }
            out.push('}');
            i
        }
    }
}

/// Appends `s` as a JSON string literal.
pub(crate) fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The number of tape nodes of the value at `index` (itself included).
pub(crate) fn node_span(tape: &[Node<'_>], index: usize) -> usize {
    match tape[index] {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_spans_skip_strings_with_escapes() {
        let line = br#"{"a":"x\"1,2","b":[1.50,-0,2e3],"c\\":7}"#;
        let mut spans = Vec::new();
        scan_numbers(line, &mut spans);
        let texts: Vec<_> = spans
            .iter()
            .map(|&(s, e)| std::str::from_utf8(&line[s as usize..e as usize]).unwrap())
            .collect();
        assert_eq!(texts, ["1.50", "-0", "2e3", "7"]);
    }

    #[test]
    fn values_serialize_with_original_number_text() {
        let original = br#"{"a":[1.50,{"b\n":null,"c":true}],"d":"\u0001q\"","e":-0,"f":12345678901234567890123}"#;
        let mut input = original.to_vec();
        let tape = simd_json::to_tape(&mut input).unwrap();
        let mut out = String::new();
        let mut numbers = NumberTexts::default();
        let end = write_value(&mut out, &tape.0, original, &mut numbers, 0);
        assert_eq!(end, tape.0.len());
        let a: serde_json::Value = serde_json::from_slice(original).unwrap();
        let b: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(a, b, "{out}");
        assert!(
            out.contains("1.50") && out.contains("-0") && out.contains("12345678901234567890123")
        );
    }

    #[test]
    fn decimal_text_is_found_after_its_key_even_with_escapes_and_spaces() {
        let original = br#"{"a\"b" : 1.50, "c":[2.0, 3.10], "d":-0}"#;
        let mut input = original.to_vec();
        let base = input.as_ptr() as usize;
        let tape = simd_json::to_tape(&mut input).unwrap();
        let key = |i: usize| match tape.0[i] {
            Node::String(s) => s,
            _ => panic!("not a key"),
        };
        let mut numbers = NumberTexts::default();
        assert_eq!(key(1), "a\"b");
        assert_eq!(numbers.text_after_key(original, base, key(1), 0), "1.50");
        assert_eq!(numbers.text_after_key(original, base, key(7), 3), "-0");
        // A string that is not in the line: falls back to the ordinal scan.
        assert_eq!(
            numbers.text_after_key(original, base, "elsewhere", 2),
            "3.10"
        );
    }

    #[test]
    fn only_valid_numbers_beyond_the_float_range_are_huge() {
        let line = b"[1e400,-1E400,1e-400,1.e400,01e400,2]";
        assert_eq!(huge_number_at(line, 1), Some((1, 6)));
        assert_eq!(huge_number_at(line, 7), Some((7, 13)));
        assert_eq!(huge_number_at(line, 14), None, "underflow is a number: 0");
        assert_eq!(huge_number_at(line, 21), None, "not JSON");
        assert_eq!(huge_number_at(line, 28), None, "not JSON");
        assert_eq!(huge_number_at(line, 35), None);
    }

    #[test]
    fn pointers_escape_slash_and_tilde() {
        let original = br#"{"a/b~c":1}"#;
        let mut input = original.to_vec();
        let tape = simd_json::to_tape(&mut input).unwrap();
        let mut w = OverflowWriter::default();
        let mut numbers = NumberTexts::default();
        w.add(
            &tape.0,
            original,
            &mut numbers,
            &[Seg::Index(3)],
            Some(Seg::Key(1)),
            2,
        );
        assert_eq!(w.finish(), Some(r#"{"/3/a~1b~0c":1}"#));
    }
}
