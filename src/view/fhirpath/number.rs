//! Decimal precision: what FHIRPath's decimal boundaries need and the tape does not keep.
//!
//! simd-json's tape holds parsed numbers (`1.50` becomes the f64 1.5), but the precision
//! of a FHIR decimal is part of its value for `lowBoundary()`/`highBoundary()`. When the
//! caller hands over the original line, the exact text of a number is found there: the
//! n-th number node of the tape is the n-th number token of the line.

use simd_json::{Node, StaticNode};

/// The spans of the number tokens of one line, found on first use.
#[derive(Debug, Default)]
pub(crate) struct NumberSpans {
    spans: Vec<(u32, u32)>,
    scanned: bool,
}

impl NumberSpans {
    /// Forgets the previous line.
    pub(crate) fn reset(&mut self) {
        self.spans.clear();
        self.scanned = false;
    }

    /// The exact text of the number node at tape index `at`, if `line` is given.
    pub(crate) fn text<'l>(
        &mut self,
        tape: &[Node<'_>],
        line: Option<&'l [u8]>,
        at: usize,
    ) -> Option<&'l str> {
        let line = line?;
        if !self.scanned {
            scan_numbers(line, &mut self.spans);
            self.scanned = true;
        }
        let ordinal = tape[..at]
            .iter()
            .filter(|n| {
                matches!(
                    n,
                    Node::Static(StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_))
                )
            })
            .count();
        let &(start, end) = self.spans.get(ordinal)?;
        std::str::from_utf8(line.get(start as usize..end as usize)?).ok()
    }
}

/// Finds the spans of number tokens outside strings, in order.
fn scan_numbers(line: &[u8], spans: &mut Vec<(u32, u32)>) {
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'"' => {
                i += 1;
                while i < line.len() && line[i] != b'"' {
                    i += if line[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < line.len()
                    && matches!(line[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                spans.push((start as u32, i as u32));
            }
            _ => i += 1,
        }
    }
}

/// The number of digits after the decimal point of a number's text (`1.50` has 2),
/// or `None` for exponent notation.
pub(crate) fn scale_of(text: &str) -> Option<u8> {
    if text.contains(['e', 'E']) {
        return None;
    }
    Some(text.split_once('.').map_or(0, |(_, f)| f.len()) as u8)
}

/// The number of digits after the point of the shortest text of `v`: the best guess at
/// a decimal's precision when its text is not known.
pub(crate) fn guess_scale(v: f64) -> u8 {
    scale_of(&v.to_string()).unwrap_or(0)
}

/// FHIRPath `lowBoundary`/`highBoundary` of a decimal `v` given with `scale` digits
/// after the point: the least (greatest) value that rounds to it, at `digits` digits
/// (default: one more than `scale`). `None` when out of range.
pub(crate) fn decimal_boundary(v: f64, scale: u8, high: bool, digits: Option<i64>) -> Option<f64> {
    let scale = u32::from(scale);
    let target = match digits {
        None => scale + 1,
        Some(d) if (0..=28).contains(&d) => d as u32,
        Some(_) => return None,
    };
    if scale > 18 {
        return None;
    }
    // The value as an integer count of 10^-(scale+1), then half a unit of the last
    // given digit either way.
    let units = (v * 10f64.powi(scale as i32)).round() as i128 * 10;
    let bound = if high { units + 5 } else { units - 5 };
    let fine = scale + 1;
    let value = if target >= fine {
        bound * 10i128.checked_pow(target - fine)?
    } else {
        let div = 10i128.checked_pow(fine - target)?;
        if high {
            -((-bound).div_euclid(div))
        } else {
            bound.div_euclid(div)
        }
    };
    format!("{}e-{}", value, target).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_text_is_found_by_ordinal() {
        let original = br#"{"a":"1,2","b":[1.50,-0],"c":{"d":2e3}}"#;
        let mut input = original.to_vec();
        let tape = simd_json::to_tape(&mut input).unwrap();
        let mut spans = NumberSpans::default();
        let at = |n: usize| {
            tape.0
                .iter()
                .enumerate()
                .filter(|(_, n)| matches!(n, Node::Static(StaticNode::F64(_) | StaticNode::I64(_))))
                .nth(n)
                .unwrap()
                .0
        };
        assert_eq!(spans.text(&tape.0, Some(original), at(0)), Some("1.50"));
        assert_eq!(spans.text(&tape.0, Some(original), at(2)), Some("2e3"));
        assert_eq!(spans.text(&tape.0, None, at(0)), None);
    }

    #[test]
    fn boundaries_follow_the_precision() {
        assert_eq!(decimal_boundary(1.0, 1, false, None), Some(0.95));
        assert_eq!(decimal_boundary(1.0, 1, true, None), Some(1.05));
        assert_eq!(decimal_boundary(1.587, 3, false, None), Some(1.5865));
        assert_eq!(decimal_boundary(1.587, 3, false, Some(2)), Some(1.58));
        assert_eq!(decimal_boundary(1.587, 3, true, Some(2)), Some(1.59));
        assert_eq!(decimal_boundary(-1.587, 3, false, None), Some(-1.5875));
        assert_eq!(decimal_boundary(1.0, 0, true, None), Some(1.5));
        assert_eq!(scale_of("1.50"), Some(2));
        assert_eq!(guess_scale(1.5), 1);
    }
}
