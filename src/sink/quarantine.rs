//! The quarantine of a run: every rejected line with where it was and why, one JSON
//! object a line, in `_quarantine/<run id>/rejected-<attempt>.ndjson`.
//!
//! ```text
//! {"file":"Patient.ndjson","line":7,"reason":"invalid JSON: ...","text":"{\"resourceType\":..."}
//! ```
//!
//! A line that is not UTF-8 is kept as `base64`; an over-long line keeps its first
//! bytes and says `"text_is_prefix": true`. The file is created at the first rejection.

use std::{fmt::Display, io::Write};

use object_store::path::Path;

use super::{ObjectWriter, RunFiles, SinkError};
use crate::warehouse::layout;

/// The quarantine file of a run's attempt.
pub struct Quarantine {
    files: RunFiles,
    path: Path,
    writer: Option<ObjectWriter>,
    record: String,
}

impl Quarantine {
    /// The quarantine of the run whose files are `files`; nothing is written until the
    /// first rejection.
    pub fn new(files: RunFiles) -> Self {
        let path = layout::quarantine_file(&files.run_id, &files.attempt);
        Self {
            files,
            path,
            writer: None,
            record: String::new(),
        }
    }

    /// Appends one rejected line: its file and number, the reason, and its bytes (or
    /// their first part, when `prefix_only`).
    pub fn write(
        &mut self,
        file: &str,
        line: u64,
        reason: &dyn Display,
        sample: &[u8],
        prefix_only: bool,
    ) -> Result<(), SinkError> {
        format_record(&mut self.record, file, line, reason, sample, prefix_only);
        let writer = self.writer.get_or_insert_with(|| {
            ObjectWriter::new(
                self.files.store.clone(),
                self.path.clone(),
                self.files.runtime.clone(),
            )
        });
        writer
            .write_all(self.record.as_bytes())
            .map_err(|e| SinkError::Store {
                path: self.path.to_string(),
                source: object_store::Error::Generic {
                    store: "quarantine",
                    source: Box::new(e),
                },
            })
    }

    /// Completes the file; its path if anything was rejected.
    pub fn finish(self) -> Result<Option<String>, SinkError> {
        match self.writer {
            Some(writer) => {
                writer.finish()?;
                Ok(Some(self.path.to_string()))
            }
            None => Ok(None),
        }
    }
}

/// One quarantine line: where, why, and the line itself (as text, or base64 when not UTF-8).
fn format_record(
    out: &mut String,
    file: &str,
    line: u64,
    reason: &dyn Display,
    sample: &[u8],
    prefix_only: bool,
) {
    use base64::Engine as _;
    out.clear();
    let mut record = serde_json::Map::new();
    record.insert("file".into(), file.into());
    record.insert("line".into(), line.into());
    record.insert("reason".into(), reason.to_string().into());
    match std::str::from_utf8(sample) {
        Ok(text) => record.insert("text".into(), text.into()),
        Err(_) => record.insert(
            "base64".into(),
            base64::engine::general_purpose::STANDARD
                .encode(sample)
                .into(),
        ),
    };
    if prefix_only {
        record.insert("text_is_prefix".into(), true.into());
    }
    out.push_str(&serde_json::Value::Object(record).to_string());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_text_or_base64() {
        let mut out = String::new();
        format_record(&mut out, "f", 3, &"bad", b"{\"a\"", false);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["text"], "{\"a\"");
        assert_eq!(value["line"], 3);
        format_record(&mut out, "f", 4, &"bad", &[0xff, 0xfe], true);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["base64"], "//4=");
        assert_eq!(value["text_is_prefix"], true);
    }
}
