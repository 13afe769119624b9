//! FHIRPath text to tokens.
//!
//! Keywords (`and`, `true`, `div`, ...) come out as identifiers: the parser decides by
//! position whether one is an operator, a literal or a name, as the grammar does.

use super::PathError;

/// One token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: Tok,
    pub pos: usize,
}

/// The kinds of token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An identifier or keyword.
    Ident(String),
    /// A `` `delimited` `` identifier: never a keyword.
    Delimited(String),
    /// A `'string'` literal, unescaped.
    Str(String),
    /// A number literal as written (`12`, `1.50`).
    Number(String),
    /// A `@2020-01-02` or `@2020-01-02T10:00:00Z` literal, without the `@`.
    DateTime(String),
    /// A `@T10:00` literal, without the `@T`.
    Time(String),
    /// `%`, the start of an environment variable or constant.
    Percent,
    /// `$this`, `$index`, `$total`: the name without `$`.
    Special(String),
    /// A punctuation or operator symbol.
    Sym(&'static str),
    /// The end of the text.
    Eof,
}

/// The symbols, longest first so that `<=` wins over `<`.
const SYMBOLS: &[&str] = &[
    "<=", ">=", "!=", "!~", ".", ",", "(", ")", "[", "]", "{", "}", "+", "-", "*", "/", "&", "|",
    "=", "~", "<", ">",
];

/// Splits `text` into tokens, ending with [`Tok::Eof`].
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, PathError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if text[i..].starts_with("//") {
            i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
            continue;
        }
        if text[i..].starts_with("/*") {
            let end = text[i + 2..]
                .find("*/")
                .ok_or_else(|| PathError::new(i, "unterminated comment"))?;
            i += end + 4;
            continue;
        }
        let start = i;
        let kind = match b {
            b'\'' => {
                let (s, next) = quoted(text, i, b'\'')?;
                i = next;
                Tok::Str(s)
            }
            b'`' => {
                let (s, next) = quoted(text, i, b'`')?;
                i = next;
                Tok::Delimited(s)
            }
            b'@' => {
                let (kind, next) = temporal(text, i)?;
                i = next;
                kind
            }
            b'%' => {
                i += 1;
                Tok::Percent
            }
            b'$' => {
                let end = ident_end(bytes, i + 1);
                if end == i + 1 {
                    return Err(PathError::new(i, "expected a name after '$'"));
                }
                i = end;
                Tok::Special(text[start + 1..end].to_owned())
            }
            b'0'..=b'9' => {
                i = number_end(bytes, i);
                Tok::Number(text[start..i].to_owned())
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                i = ident_end(bytes, i);
                Tok::Ident(text[start..i].to_owned())
            }
            _ => {
                let sym = SYMBOLS
                    .iter()
                    .find(|s| text[i..].starts_with(**s))
                    .ok_or_else(|| {
                        let c = text[i..].chars().next().unwrap_or('?');
                        PathError::new(i, format!("unexpected character {c:?}"))
                    })?;
                i += sym.len();
                Tok::Sym(sym)
            }
        };
        tokens.push(Token { kind, pos: start });
    }
    tokens.push(Token {
        kind: Tok::Eof,
        pos: bytes.len(),
    });
    Ok(tokens)
}

fn ident_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    i
}

/// The end of `digits('.' digits)?` starting at `i`. A dot not followed by a digit is
/// not part of the number: `1.exists()` invokes `exists` on `1`.
fn number_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
    }
    i
}

/// A quoted string or delimited identifier starting at `start` (the quote), unescaped;
/// and the index just past the closing quote.
fn quoted(text: &str, start: usize, quote: u8) -> Result<(String, usize), PathError> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = start + 1;
    let mut run = i;
    while i < bytes.len() {
        match bytes[i] {
            b if b == quote => {
                out.push_str(&text[run..i]);
                return Ok((out, i + 1));
            }
            b'\\' => {
                out.push_str(&text[run..i]);
                let esc = *bytes
                    .get(i + 1)
                    .ok_or_else(|| PathError::new(i, "unterminated escape"))?;
                i += 2;
                match esc {
                    b'\'' | b'"' | b'`' | b'\\' | b'/' => out.push(esc as char),
                    b'n' => out.push('\n'),
                    b'r' => out.push('\r'),
                    b't' => out.push('\t'),
                    b'f' => out.push('\u{c}'),
                    b'u' => {
                        let hex = text
                            .get(i..i + 4)
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .and_then(char::from_u32)
                            .ok_or_else(|| PathError::new(i - 2, "invalid \\u escape"))?;
                        out.push(hex);
                        i += 4;
                    }
                    _ => return Err(PathError::new(i - 2, "invalid escape sequence")),
                }
                run = i;
            }
            _ => i += 1,
        }
    }
    Err(PathError::new(start, "unterminated quoted text"))
}

/// A date, date-time or time literal starting at `start` (the `@`). The shape is
/// checked loosely here (the characters a temporal literal may contain) and exactly by
/// the compiler, which parses the value.
fn temporal(text: &str, start: usize) -> Result<(Tok, usize), PathError> {
    let bytes = text.as_bytes();
    let mut i = start + 1;
    let is_time = bytes.get(i) == Some(&b'T');
    if is_time {
        i += 1;
        i = time_end(bytes, i);
        if i == start + 2 {
            return Err(PathError::new(start, "invalid time literal"));
        }
        return Ok((Tok::Time(text[start + 2..i].to_owned()), i));
    }
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'-') {
        i += 1;
    }
    if i == start + 1 {
        return Err(PathError::new(start, "invalid date literal after '@'"));
    }
    if bytes.get(i) == Some(&b'T') {
        i += 1;
        i = time_end(bytes, i);
        // Time zone: `Z` or `+hh:mm` / `-hh:mm`.
        match bytes.get(i) {
            Some(b'Z') => i += 1,
            Some(b'+' | b'-') if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b':') {
                    i += 1;
                }
            }
            _ => {}
        }
    }
    Ok((Tok::DateTime(text[start + 1..i].to_owned()), i))
}

/// The end of `hh:mm:ss.fff` at `i`; a `.` not followed by a digit is an invocation.
fn time_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len()
        && (bytes[i].is_ascii_digit()
            || bytes[i] == b':'
            || (bytes[i] == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)))
    {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Tok> {
        tokenize(text)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn paths_functions_and_operators() {
        assert_eq!(
            kinds("name.where(use = 'x\\'y').family <= 1.50"),
            [
                Tok::Ident("name".into()),
                Tok::Sym("."),
                Tok::Ident("where".into()),
                Tok::Sym("("),
                Tok::Ident("use".into()),
                Tok::Sym("="),
                Tok::Str("x'y".into()),
                Tok::Sym(")"),
                Tok::Sym("."),
                Tok::Ident("family".into()),
                Tok::Sym("<="),
                Tok::Number("1.50".into()),
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn temporal_literals_constants_and_comments() {
        assert_eq!(
            kinds("@2020-01-02T10:00:00.5+02:00 // c\n@T12:30 /* x */ %a $this `div`"),
            [
                Tok::DateTime("2020-01-02T10:00:00.5+02:00".into()),
                Tok::Time("12:30".into()),
                Tok::Percent,
                Tok::Ident("a".into()),
                Tok::Special("this".into()),
                Tok::Delimited("div".into()),
                Tok::Eof,
            ]
        );
        assert_eq!(kinds("1.first()")[0], Tok::Number("1".into()));
    }

    #[test]
    fn malformed_text_is_an_error_with_its_position() {
        assert_eq!(tokenize("@@").unwrap_err().pos, 0);
        assert_eq!(tokenize("a # b").unwrap_err().pos, 2);
        assert!(tokenize("'open").is_err());
        assert!(tokenize("'\\q'").is_err());
    }
}
