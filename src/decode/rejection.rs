//! [`Rejection`]: why a line was not ingested, with a stable kind name and a reason in
//! words.

use std::fmt;

/// Why a line was not ingested. Each rejected line is quarantined with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not JSON, or not UTF-8: what is wrong and where (a byte offset into the line),
    /// in our words.
    InvalidJson(String),
    /// Valid JSON, but not an object.
    NotAnObject,
    /// No `resourceType` member, or not a string.
    MissingResourceType,
    /// `resourceType` given twice with different values: which table the line belongs
    /// to is ambiguous (a reader taking the first and one taking the last would
    /// disagree).
    AmbiguousResourceType {
        /// The first value.
        first: String,
        /// The other value (its JSON text when it is not a string).
        other: String,
    },
    /// A `resourceType` that R4 does not define.
    UnknownResourceType(String),
    /// The file holds another resource type.
    TypeMismatch {
        /// The type the file (or the export manifest) says it holds.
        expected: String,
        /// The type of the line.
        found: String,
    },
    /// Longer than the configured limit.
    LineTooLong {
        /// The line's length so far, in bytes.
        length: u64,
        /// The limit.
        limit: u64,
    },
    /// The input ended in the middle of this line (a truncated download, gzip stream
    /// or file): what was cut.
    Truncated(String),
}

impl Rejection {
    /// A short, stable name of the rejection's kind (counts in the run manifest).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingResourceType => "missing_resource_type",
            Self::AmbiguousResourceType { .. } => "ambiguous_resource_type",
            Self::UnknownResourceType(_) => "unknown_resource_type",
            Self::TypeMismatch { .. } => "type_mismatch",
            Self::LineTooLong { .. } => "line_too_long",
            Self::Truncated(_) => "truncated",
        }
    }

    fn write_reason(&self, f: &mut impl fmt::Write) -> fmt::Result {
        match self {
            Self::InvalidJson(e) => write!(f, "invalid JSON: {e}"),
            Self::NotAnObject => f.write_str("not a JSON object"),
            Self::MissingResourceType => f.write_str("no resourceType string"),
            Self::AmbiguousResourceType { first, other } => write!(
                f,
                "ambiguous: resourceType given twice, as {first:?} and as {other}"
            ),
            Self::UnknownResourceType(t) => write!(f, "unknown resourceType {t:?}"),
            Self::TypeMismatch { expected, found } => {
                write!(f, "resourceType {found:?} in a file of {expected:?}")
            }
            Self::LineTooLong { length, limit } => {
                write!(f, "line longer than {limit} bytes (at least {length})")
            }
            Self::Truncated(e) => write!(f, "input ends inside this line: {e}"),
        }
    }
}

impl fmt::Display for Rejection {
    /// The reason in words, scrubbed of secrets (a reason may quote the line, and the
    /// reasons go to the quarantine, the run manifest and the log).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.write_reason(&mut text)?;
        f.write_str(&crate::message::scrub(&text))
    }
}
