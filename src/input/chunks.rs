//! Reading a byte stream as bounded chunks of whole lines.
//!
//! A chunk holds complete lines only, a few MiB at most (one over-long line excepted up
//! to the line limit), so decoders can work on chunks in parallel and memory stays flat
//! whatever the file size. Lines longer than the limit, and a partial last line of a
//! truncated file, are reported as rejections rather than stopping the file.

use std::io::{self, Read};

use super::InputError;
use crate::decode::Rejection;

/// Target size of a chunk of lines.
pub const CHUNK_BYTES: usize = 4 << 20;
/// Bytes of a rejected line kept in the quarantine when the line is too long to keep.
pub const SAMPLE_BYTES: usize = 4096;

/// Whole lines of one file.
#[derive(Debug)]
pub struct Chunk {
    /// Line number (1-based) of the first line of `data`.
    pub first_line: u64,
    /// Lines, each ended by `\n` except perhaps the last of the file.
    pub data: Vec<u8>,
}

/// What reading a file produces, in order.
#[derive(Debug)]
pub enum ReadEvent {
    /// Lines to decode.
    Chunk(Chunk),
    /// A line that cannot be decoded at all, with a sample of its bytes.
    Rejected {
        /// Its line number.
        line: u64,
        /// Why.
        rejection: Rejection,
        /// The line, or its first [`SAMPLE_BYTES`] bytes when too long.
        sample: Vec<u8>,
    },
}

/// Totals of one file read.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadTotals {
    /// Lines seen (blank ones included).
    pub lines: u64,
    /// Bytes after decompression.
    pub bytes: u64,
    /// UTF-8 byte-order marks stripped from the start of the file (0 or 1): a BOM is
    /// not JSON, and would make the first line a rejected one.
    pub byte_order_marks: u64,
}

/// The UTF-8 byte-order mark (U+FEFF), which some tools write at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads `reader` into chunks of whole lines, calling `emit` for each event; stops early
/// when `emit` returns false (the consumer is gone). `buffer` supplies empty buffers
/// (recycled ones, to spare the allocator fresh pages).
///
/// Reads go in blocks straight into the chunk; the bytes after the last newline (the
/// start of the next line) move to the next chunk.
pub fn read_chunks(
    mut reader: impl Read,
    name: &str,
    max_line_bytes: u64,
    max_total_bytes: u64,
    mut buffer: impl FnMut() -> Vec<u8>,
    mut emit: impl FnMut(ReadEvent) -> bool,
) -> Result<ReadTotals, InputError> {
    let mut totals = ReadTotals::default();
    let mut next_line = 1u64;
    let mut data = buffer();
    // A sample and the length so far of an over-long line being skipped.
    let mut skipping: Option<(Vec<u8>, u64)> = None;
    loop {
        let start = data.len();
        data.resize(start + READ_BYTES, 0);
        // A broken stream (truncated gzip, I/O error) ends the input like its end does,
        // except that the line it cuts is rejected rather than taken as the last line.
        let (n, error) = read_block(&mut reader, &mut data[start..]);
        data.truncate(start + n);
        let first_block = totals.bytes == 0;
        totals.bytes += n as u64;
        if first_block && data.starts_with(BOM) {
            data.drain(..BOM.len());
            totals.byte_order_marks = 1;
        }
        if totals.bytes > max_total_bytes {
            return Err(InputError::TooLarge {
                path: name.to_owned(),
                limit: max_total_bytes,
            });
        }
        let at_end = n == 0 || error.is_some();
        if let Some((sample, length)) = &mut skipping {
            let ended = match memchr::memchr(b'\n', &data) {
                Some(i) => {
                    *length += i as u64 + 1;
                    data.drain(..=i);
                    true
                }
                None if !at_end => {
                    *length += data.len() as u64;
                    data.clear();
                    continue;
                }
                None => {
                    *length += std::mem::take(&mut data).len() as u64;
                    error.is_none()
                }
            };
            let (sample, length) = (std::mem::take(sample), *length);
            skipping = None;
            totals.lines += 1;
            if let Some(e) = error.as_ref().filter(|_| !ended) {
                // The stream broke inside the long line: nothing follows it.
                let rejection = Rejection::Truncated(e.to_string());
                emit(ReadEvent::Rejected {
                    line: next_line,
                    rejection,
                    sample,
                });
                return Ok(totals);
            }
            let rejection = Rejection::LineTooLong {
                length,
                limit: max_line_bytes,
            };
            if !emit(ReadEvent::Rejected {
                line: next_line,
                rejection,
                sample,
            }) {
                return Ok(totals);
            }
            next_line += 1;
        }
        let last_line = memchr::memrchr(b'\n', &data).map_or(0, |i| i + 1);
        // A file (not a broken stream) whose last line has no newline: that line is
        // whole, unless it is JSON cut short, which is a truncated file.
        let cut = (at_end && error.is_none())
            .then(|| crate::decode::incomplete_json(&data[last_line..]))
            .flatten();
        let complete = if at_end && error.is_none() && cut.is_none() {
            data.len()
        } else {
            last_line
        };
        let partial = data.len() - complete;
        if !at_end && partial as u64 > max_line_bytes {
            // The line after the last newline is already too long: emit the lines
            // before it, keep a sample of it, and skip the rest of it.
            let mut rest = data.split_off(complete);
            rest.truncate(SAMPLE_BYTES);
            skipping = Some((rest, partial as u64));
            if !emit_lines(&mut data, &mut next_line, &mut totals, &mut emit) {
                return Ok(totals);
            }
            data = buffer();
            continue;
        }
        if complete > 0 && (data.len() >= CHUNK_BYTES || at_end) {
            let carry = data[complete..].to_vec();
            data.truncate(complete);
            if !emit_lines(&mut data, &mut next_line, &mut totals, &mut emit) {
                return Ok(totals);
            }
            data = buffer();
            data.extend_from_slice(&carry);
        }
        let truncation = match (error, cut) {
            (Some(e), _) => Some(e.to_string()),
            (None, Some(open)) => Some(format!("the file ends without a newline, and {open}")),
            (None, None) => None,
        };
        if let Some(what) = truncation {
            let mut sample = std::mem::take(&mut data);
            sample.truncate(max_line_bytes as usize);
            totals.lines += 1;
            emit(ReadEvent::Rejected {
                line: next_line,
                rejection: Rejection::Truncated(what),
                sample,
            });
            return Ok(totals);
        }
        if at_end {
            return Ok(totals);
        }
    }
}

/// Bytes asked of the reader at a time.
const READ_BYTES: usize = 1 << 20;

/// Reads until `buf` is full or the input ends; returns the count read, and the error
/// that stopped it early, if any (the bytes before it are good).
fn read_block(reader: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Some(e)),
        }
    }
    (filled, None)
}

/// Emits `data` (whole lines) as a chunk whose first line is `next_line`.
fn emit_lines(
    data: &mut Vec<u8>,
    next_line: &mut u64,
    totals: &mut ReadTotals,
    emit: &mut impl FnMut(ReadEvent) -> bool,
) -> bool {
    if data.is_empty() {
        return true;
    }
    let mut lines = memchr::memchr_iter(b'\n', data).count() as u64;
    if data.last() != Some(&b'\n') {
        lines += 1;
    }
    let chunk = Chunk {
        first_line: *next_line,
        data: std::mem::take(data),
    };
    *next_line += lines;
    totals.lines += lines;
    emit(ReadEvent::Chunk(chunk))
}

/// The lines of a chunk with their numbers, without line ends; blank lines skipped.
pub fn lines(chunk: &Chunk) -> impl Iterator<Item = (u64, &[u8])> {
    let data = chunk.data.strip_suffix(b"\n").unwrap_or(&chunk.data);
    // memchr finds the line ends a vector at a time (`split` tested every byte).
    let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
    let mut start = 0;
    ends.enumerate().filter_map(move |(i, end)| {
        let line = &data[start..end];
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (!line.iter().all(u8::is_ascii_whitespace)).then_some((chunk.first_line + i as u64, line))
    })
}

#[cfg(test)]
mod tests {
    use flate2::read::MultiGzDecoder;

    use super::*;

    type NumberedLine = (u64, Vec<u8>);

    fn read_all(
        input: impl Read,
        max_line: u64,
    ) -> (Vec<NumberedLine>, Vec<(u64, Rejection)>, ReadTotals) {
        let mut lines_out = Vec::new();
        let mut rejected = Vec::new();
        let totals = read_chunks(input, "t", max_line, u64::MAX, Vec::new, |event| {
            match event {
                ReadEvent::Chunk(c) => lines_out.extend(lines(&c).map(|(n, l)| (n, l.to_vec()))),
                ReadEvent::Rejected {
                    line, rejection, ..
                } => rejected.push((line, rejection)),
            }
            true
        })
        .unwrap();
        (lines_out, rejected, totals)
    }

    #[test]
    fn numbers_lines_and_skips_blank_ones() {
        let (lines, rejected, totals) = read_all(&b"{\"a\":1}\r\n\n  \n{\"b\":2}"[..], 100);
        assert_eq!(
            lines,
            vec![(1, b"{\"a\":1}".to_vec()), (4, b"{\"b\":2}".to_vec())]
        );
        assert!(rejected.is_empty());
        assert_eq!(totals.lines, 4);
    }

    #[test]
    fn over_long_line_is_rejected_and_the_next_lines_keep_their_numbers() {
        // Longer than a read block, so the reader sees it before it ends.
        let long = "x".repeat(3 * READ_BYTES);
        let input = format!("{{}}\n{long}\n{{\"c\":3}}\n");
        let (lines, rejected, _) = read_all(input.as_bytes(), READ_BYTES as u64);
        assert_eq!(lines, vec![(1, b"{}".to_vec()), (3, b"{\"c\":3}".to_vec())]);
        let length = long.len() as u64 + 1;
        assert_eq!(
            rejected,
            vec![(
                2,
                Rejection::LineTooLong {
                    length,
                    limit: READ_BYTES as u64
                }
            )]
        );
    }

    /// A reader that yields `data`, then fails.
    struct Broken<'a>(&'a [u8]);

    impl Read for Broken<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "cut",
                ));
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_stream_broken_inside_an_over_long_line_rejects_it_once() {
        let input = format!("{{}}\n{}", "x".repeat(3 * READ_BYTES));
        let (lines, rejected, _) = read_all(Broken(input.as_bytes()), READ_BYTES as u64);
        assert_eq!(lines, vec![(1, b"{}".to_vec())]);
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert!(
            matches!(rejected[0], (2, Rejection::Truncated(_))),
            "{rejected:?}"
        );
    }

    #[test]
    fn a_stream_broken_after_an_over_long_line_keeps_the_lines_between() {
        let input = format!("{}\n{{\"a\":1}}\n{{\"b\"", "x".repeat(3 * READ_BYTES));
        let (lines, rejected, _) = read_all(Broken(input.as_bytes()), READ_BYTES as u64);
        assert_eq!(lines, vec![(2, b"{\"a\":1}".to_vec())]);
        assert!(
            matches!(rejected[0], (1, Rejection::LineTooLong { .. })),
            "{rejected:?}"
        );
        assert!(
            matches!(rejected[1], (3, Rejection::Truncated(_))),
            "{rejected:?}"
        );
        assert_eq!(rejected.len(), 2);
    }

    #[test]
    fn chunks_hold_whole_lines_whatever_the_read_sizes() {
        let input: String = (0..200_000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        let (lines, rejected, totals) = read_all(input.as_bytes(), 100);
        assert!(rejected.is_empty());
        assert_eq!(lines.len(), 200_000);
        for (i, (n, line)) in lines.iter().enumerate() {
            assert_eq!(*n, i as u64 + 1);
            assert_eq!(line, format!("{{\"n\":{i}}}").as_bytes());
        }
        assert_eq!(totals.bytes, input.len() as u64);
    }

    #[test]
    fn truncated_gzip_keeps_complete_lines_and_rejects_the_rest() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(
            &mut gz,
            format!("{}\n", "{\"resourceType\":\"Patient\"}\n".repeat(2000)).as_bytes(),
        )
        .unwrap();
        let bytes = gz.finish().unwrap();
        let cut = &bytes[..bytes.len() / 2];
        let (lines, rejected, _) = read_all(MultiGzDecoder::new(cut), 1 << 20);
        assert!(!lines.is_empty() && lines.len() < 2000, "{}", lines.len());
        assert_eq!(rejected.len(), 1);
        assert!(matches!(rejected[0].1, Rejection::Truncated(_)));
        assert_eq!(rejected[0].0, lines.len() as u64 + 1);
    }

    /// Regression (issue 9, item 5): a leading byte-order mark is stripped and counted.
    #[test]
    fn a_leading_byte_order_mark_is_stripped_and_counted() {
        let (lines, rejected, totals) = read_all(&b"\xEF\xBB\xBF{\"a\":1}\n{\"b\":2}\n"[..], 100);
        assert_eq!(
            lines,
            vec![(1, b"{\"a\":1}".to_vec()), (2, b"{\"b\":2}".to_vec())]
        );
        assert!(rejected.is_empty());
        assert_eq!(totals.byte_order_marks, 1);
        let (_, _, totals) = read_all(&b"{\"a\":1}\n"[..], 100);
        assert_eq!(totals.byte_order_marks, 0);
    }

    /// Regression (issue 9, item 10): a plain file that ends inside a line says so, as a
    /// truncated gzip stream does; a last line without a newline that is whole is kept.
    #[test]
    fn a_file_ending_inside_a_line_is_truncated() {
        let (lines, rejected, totals) = read_all(&b"{\"a\":1}\n{\"b\":\"x"[..], 100);
        assert_eq!(lines, vec![(1, b"{\"a\":1}".to_vec())]);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].0, 2);
        assert_eq!(
            rejected[0].1.to_string(),
            "input ends inside this line: the file ends without a newline, and a string opened at byte 5 is not closed"
        );
        assert_eq!(totals.lines, 2);
        let (lines, rejected, _) = read_all(&b"{\"a\":1}\n{\"b\":2}"[..], 100);
        assert_eq!(lines.len(), 2);
        assert!(rejected.is_empty());
    }

    #[test]
    fn decompressed_size_is_bounded() {
        let err =
            read_chunks(&b"{}\n{}\n{}\n"[..], "f.ndjson", 100, 4, Vec::new, |_| true).unwrap_err();
        assert!(err.to_string().contains("f.ndjson"), "{err}");
    }
}
