//! The error type of the authentication module.

use std::path::PathBuf;

use super::JwtAlgorithm;

/// Errors of the authentication module. None of them contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The environment variable that should hold a secret is unset or not UTF-8.
    #[error("secret environment variable {var} is not set (or not valid UTF-8)")]
    SecretEnv {
        /// Name of the variable.
        var: String,
    },
    /// The file that should hold a secret could not be read.
    #[error("cannot read secret file {path}")]
    SecretFile {
        /// Path of the file.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// A secret is empty after trimming whitespace.
    #[error("secret from {origin} is empty")]
    EmptySecret {
        /// Where the secret came from (variable name or file path).
        origin: String,
    },
    /// The private key PEM could not be read or parsed.
    #[error("cannot load {alg:?} private key from {path}: {message}")]
    PrivateKey {
        /// Path of the PEM file.
        path: PathBuf,
        /// The configured algorithm.
        alg: JwtAlgorithm,
        /// What went wrong.
        message: String,
    },
    /// Signing the client assertion failed.
    #[error("cannot sign the client assertion: {0}")]
    Sign(String),
    /// A credential cannot be sent as an HTTP header value (e.g. it contains a newline).
    #[error("credential for header {header} contains characters not allowed in HTTP headers")]
    InvalidHeaderValue {
        /// Header name.
        header: String,
    },
    /// `.well-known/smart-configuration` could not be fetched or has no `token_endpoint`.
    #[error("SMART discovery at {url} failed: {message}")]
    Discovery {
        /// Redacted discovery URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A transport error while talking to the token or discovery endpoint.
    #[error("request to {url} failed")]
    Http {
        /// Redacted URL.
        url: String,
        /// Transport error (without URL).
        source: reqwest::Error,
    },
    /// The token endpoint refused the request.
    #[error("token endpoint {url} answered HTTP {status}: {message}")]
    TokenRejected {
        /// Redacted token URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// `error` / `error_description` of the answer, or a short excerpt of the body.
        message: String,
    },
}
