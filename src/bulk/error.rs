//! The error type of the bulk module.

use crate::auth::AuthError;

/// Errors of the Bulk Data client. URLs are redacted (no user info, no signature-like query
/// values); messages never contain tokens or secrets.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// The configuration is invalid.
    #[error("invalid bulk configuration: {0}")]
    Config(String),
    /// Authentication failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A transport error (connection refused or cut, timeout, TLS, …).
    #[error("{context} request to {url} failed")]
    Transport {
        /// What we were doing (`kick-off`, `status poll`, `download`, …).
        context: &'static str,
        /// Redacted URL.
        url: String,
        /// The transport error, without URL.
        source: reqwest::Error,
    },
    /// The server answered with an error status (after retries, where retries apply).
    #[error("{context} at {url} failed with HTTP {status}: {message}")]
    Server {
        /// What we were doing.
        context: &'static str,
        /// Redacted URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The OperationOutcome's issues in plain words, or an excerpt of the body.
        message: String,
    },
    /// The status URL answered 404 or 410: the export is gone (expired, cancelled or the
    /// server restarted). Start a new export.
    #[error("export at {url} no longer exists (HTTP {status})")]
    ExportExpired {
        /// Redacted status URL.
        url: String,
        /// HTTP status code (404 or 410).
        status: u16,
    },
    /// An output file answered 404 or 410 (it expired); start a new export.
    #[error("export file {url} is gone (HTTP {status})")]
    FileGone {
        /// Redacted file URL.
        url: String,
        /// HTTP status code.
        status: u16,
    },
    /// The server's answer does not follow the Bulk Data specification.
    #[error("unexpected answer from {url}: {message}")]
    Protocol {
        /// Redacted URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// Too many redirects.
    #[error("too many redirects starting at {url}")]
    TooManyRedirects {
        /// Redacted URL of the first request.
        url: String,
    },
    /// An I/O error while reading a downloaded file.
    #[error("reading {url} failed: {message}")]
    Body {
        /// Redacted URL.
        url: String,
        /// What went wrong.
        message: String,
    },
}

impl BulkError {
    /// The HTTP status of the answer this error is about, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            BulkError::Server { status, .. }
            | BulkError::ExportExpired { status, .. }
            | BulkError::FileGone { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error without its context and URL, for a progress line that already says
    /// which request it is about: `HTTP 503: <the server's words>`, or the transport
    /// error's causes.
    pub fn short(&self) -> String {
        match self {
            BulkError::Server {
                status, message, ..
            } => format!("HTTP {status}: {message}"),
            BulkError::Transport { source, .. } => crate::message::chain(source),
            other => crate::message::chain(other),
        }
    }

    /// True for [`BulkError::ExportExpired`] and [`BulkError::FileGone`]: the caller should
    /// start a new export.
    pub fn needs_new_export(&self) -> bool {
        matches!(
            self,
            BulkError::ExportExpired { .. } | BulkError::FileGone { .. }
        )
    }
}
