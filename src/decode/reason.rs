//! Why a line is not JSON, in our words and at the right place.
//!
//! simd-json finds the problem but not always where it is: its stage 1 reports invalid
//! UTF-8, a raw control character or an unterminated string "at character 0", and some
//! structural problems as its own `InternalError`. So the reason is worked out here,
//! from the line itself: UTF-8 first, then escapes, then a byte scan that knows strings
//! and nesting, and simd-json's error kind only for what is left. Positions are byte
//! offsets into the line (0-based).

use simd_json::ErrorType;

/// The reason a line that simd-json refused is not JSON.
pub(crate) fn describe(line: &[u8], error: &simd_json::Error) -> String {
    if let Err(e) = std::str::from_utf8(line) {
        let at = e.valid_up_to();
        return match e.error_len() {
            Some(_) => format!("not UTF-8: byte 0x{:02X} at byte {at}", line[at]),
            None => format!("not UTF-8: the line ends inside a character at byte {at}"),
        };
    }
    if let Some(problem) = bad_escape(line) {
        return problem;
    }
    if starts_a_container(line)
        && let Some(problem) = structure(line)
    {
        return problem.describe(line);
    }
    by_kind(line, error)
}

/// When `line` is the beginning of a JSON object or array that is cut short (it ends
/// inside a string, an object or an array), what is open: for the last line of a file
/// without a newline, which is a truncated line rather than a bad one.
pub fn incomplete_json(line: &[u8]) -> Option<String> {
    if !starts_a_container(line) {
        return None;
    }
    match structure(line)? {
        Problem::Unclosed { what, at } => Some(format!("{what} opened at byte {at} is not closed")),
        _ => None,
    }
}

/// Whether the first non-blank byte opens an object or array (only then does the
/// structural scan mean anything; other lines are left to simd-json's words).
fn starts_a_container(line: &[u8]) -> bool {
    line.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['))
}

/// A structural problem found by the byte scan.
enum Problem {
    /// A raw control character inside a string.
    Control { at: usize, byte: u8 },
    /// The line ends inside a string, object or array opened at `at`.
    Unclosed { what: &'static str, at: usize },
    /// Something after the end of the JSON value.
    Trailing { at: usize },
}

impl Problem {
    fn describe(&self, line: &[u8]) -> String {
        match *self {
            Problem::Control { at, byte } => format!(
                "a control character ({}) inside a string at byte {at} (it must be escaped)",
                byte_name(byte)
            ),
            Problem::Unclosed { what, at } => {
                format!("the line ends before {what} opened at byte {at} is closed")
            }
            Problem::Trailing { at } => format!(
                "{} at byte {at}, after the end of the JSON value",
                byte_name(line[at])
            ),
        }
    }
}

/// A byte for a message: `'x'`, or its code with a name for control bytes.
fn byte_name(byte: u8) -> String {
    match byte {
        0 => "NUL (0x00)".to_owned(),
        b if b.is_ascii_graphic() => format!("{:?}", b as char),
        b => format!("byte 0x{b:02X}"),
    }
}

/// Scans strings (with escapes) and nesting; the first problem, if any.
fn structure(line: &[u8]) -> Option<Problem> {
    let mut open: Vec<(u8, usize)> = Vec::new();
    let mut ended = false;
    let mut i = 0;
    while i < line.len() {
        let byte = line[i];
        if byte.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if ended {
            return Some(Problem::Trailing { at: i });
        }
        match byte {
            b'"' => match string_problem(line, i) {
                Ok(end) => {
                    i = end;
                    continue;
                }
                Err(problem) => return Some(problem),
            },
            b'{' | b'[' => open.push((byte, i)),
            b'}' | b']' => {
                open.pop();
                ended = open.is_empty();
            }
            _ => {}
        }
        i += 1;
    }
    let &(byte, at) = open.last()?;
    let what = if byte == b'{' {
        "an object"
    } else {
        "an array"
    };
    Some(Problem::Unclosed { what, at })
}

/// The end of the string opening at `start`, or the problem inside it.
fn string_problem(line: &[u8], start: usize) -> Result<usize, Problem> {
    let mut i = start + 1;
    while i < line.len() {
        match line[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            byte if byte < 0x20 => return Err(Problem::Control { at: i, byte }),
            _ => i += 1,
        }
    }
    Err(Problem::Unclosed {
        what: "a string",
        at: start,
    })
}

/// The first `\u` escape that is not valid, or a lone surrogate, and where.
fn bad_escape(line: &[u8]) -> Option<String> {
    let mut i = 0;
    let mut in_string = false;
    while i < line.len() {
        match line[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                if line.get(i + 1) == Some(&b'u') {
                    if let Some(problem) = unicode_escape(line, i) {
                        return Some(problem);
                    }
                    i += 6;
                    continue;
                }
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The problem of the `\uXXXX` escape at `at`, if any (a high surrogate must be
/// followed by a low one, and a low one must follow a high one).
fn unicode_escape(line: &[u8], at: usize) -> Option<String> {
    let Some(code) = hex4(line, at + 2) else {
        return Some(format!(
            "invalid escape at byte {at}: \\u must be followed by 4 hex digits"
        ));
    };
    let text = |c: u16| format!("\\u{c:04x}");
    match code {
        0xD800..=0xDBFF => {
            let low = (line.get(at + 6) == Some(&b'\\') && line.get(at + 7) == Some(&b'u'))
                .then(|| hex4(line, at + 8))
                .flatten();
            match low {
                Some(0xDC00..=0xDFFF) => None,
                _ => Some(format!(
                    "invalid escape at byte {at}: {} is half of a UTF-16 surrogate pair, \
                     without its low half",
                    text(code)
                )),
            }
        }
        0xDC00..=0xDFFF => {
            let after_high = at >= 6
                && line[at - 6] == b'\\'
                && hex4(line, at - 4).is_some_and(|h| (0xD800..=0xDBFF).contains(&h));
            (!after_high).then(|| {
                format!(
                    "invalid escape at byte {at}: {} is the low half of a UTF-16 surrogate \
                     pair, without its high half",
                    text(code)
                )
            })
        }
        _ => None,
    }
}

fn hex4(line: &[u8], at: usize) -> Option<u16> {
    let digits = line.get(at..at + 4)?;
    u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// simd-json's error kind in words, at its position.
fn by_kind(line: &[u8], error: &simd_json::Error) -> String {
    let at = error.index().min(line.len());
    let found = line
        .get(at)
        .map_or("the end of the line".to_owned(), |b| byte_name(*b));
    let what = match error.error() {
        ErrorType::ExpectedNull | ErrorType::ExpectedTrue | ErrorType::ExpectedFalse => {
            "not a JSON value (expected an object, a string, a number, true, false or null)"
        }
        ErrorType::ExpectedObjectColon => "expected ':' after an object key",
        ErrorType::ExpectedMapComma | ErrorType::ExpectedMapEnd => {
            "expected ',' or '}' in an object"
        }
        ErrorType::ExpectedArrayComma => "expected ',' or ']' in an array",
        ErrorType::ExpectedString | ErrorType::KeyMustBeAString | ErrorType::BadKeyType => {
            "an object key must be a string"
        }
        ErrorType::InvalidNumber | ErrorType::InvalidExponent => "not a valid number",
        ErrorType::InvalidEscape => "an invalid escape sequence",
        ErrorType::Eof => "an empty line",
        _ => "unexpected character",
    };
    format!("{what} at byte {at} (found {found})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(line: &[u8]) -> String {
        let mut input = line.to_vec();
        let n = input.len();
        input.resize(n + simd_json::INPUT_PADDING, b' ');
        let mut tape = simd_json::Tape::null();
        let error = simd_json::fill_tape_padded(
            &mut input,
            n,
            &mut simd_json::Buffers::default(),
            &mut tape,
        )
        .expect_err("not JSON");
        describe(line, &error)
    }

    #[test]
    fn each_problem_is_named_where_it_is() {
        for (line, expected) in [
            (
                &b"{\"id\":\"ab\xff\xfe\"}"[..],
                "not UTF-8: byte 0xFF at byte 9",
            ),
            (
                b"{\"abc\":\"x\0y\"}",
                "a control character (NUL (0x00)) inside a string at byte 9 (it must be escaped)",
            ),
            (
                b"{\"abc\":1}\0",
                "NUL (0x00) at byte 9, after the end of the JSON value",
            ),
            (
                b"{\"abcdef\":\"x\",\"a\":\"\\ud800x\"}",
                "invalid escape at byte 19: \\ud800 is half of a UTF-16 surrogate pair, without its low half",
            ),
            (
                b"{\"resourceType\":\"Patient\",\"id\":\"ab",
                "the line ends before a string opened at byte 31 is closed",
            ),
            (
                b"{\"resourceType\":\"Patient\",\"id\":",
                "the line ends before an object opened at byte 0 is closed",
            ),
            (
                b"{\"a\":1}}",
                "'}' at byte 7, after the end of the JSON value",
            ),
            (
                b"not json",
                "not a JSON value (expected an object, a string, a number, true, false or null) at byte 0 (found 'n')",
            ),
        ] {
            assert_eq!(reason(line), expected, "{}", String::from_utf8_lossy(line));
        }
        assert!(!reason(b"\xef\xbb\xbf{\"a\":1}").contains("InternalError"));
    }

    #[test]
    fn only_cut_lines_are_incomplete() {
        assert_eq!(
            incomplete_json(b"{\"a\":\"x").as_deref(),
            Some("a string opened at byte 5 is not closed")
        );
        assert_eq!(
            incomplete_json(b"{\"a\":[1,").as_deref(),
            Some("an array opened at byte 5 is not closed")
        );
        assert_eq!(incomplete_json(b"{\"a\":1}"), None);
        assert_eq!(incomplete_json(b"{\"a\":1}}"), None);
        assert_eq!(incomplete_json(b"garbage"), None);
    }
}
