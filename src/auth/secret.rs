//! Secrets: [`SecretSource`] (where a secret is read from, never inline in the
//! configuration) and [`Secret`] (a value whose `Debug` and `Display` print `***`).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::AuthError;

/// Where a secret is read from. Never inline in the configuration.
///
/// In TOML: `token = { env = "EHR_TOKEN" }` or `token = { file = "/run/secrets/ehr-token" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretSource {
    /// Name of an environment variable holding the secret.
    Env(String),
    /// Path of a file holding the secret (surrounding whitespace is trimmed).
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret now.
    pub fn load(&self) -> Result<Secret, AuthError> {
        let (raw, origin) = match self {
            SecretSource::Env(var) => (
                std::env::var(var).map_err(|_| AuthError::SecretEnv { var: var.clone() })?,
                format!("environment variable {var}"),
            ),
            SecretSource::File(path) => (
                std::fs::read_to_string(path).map_err(|source| AuthError::SecretFile {
                    path: path.clone(),
                    source,
                })?,
                format!("file {}", path.display()),
            ),
        };
        let value = raw.trim();
        if value.is_empty() {
            return Err(AuthError::EmptySecret { origin });
        }
        Ok(Secret(value.to_owned()))
    }
}

/// A secret string: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret value itself; only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_hidden() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }

    #[test]
    fn unreadable_secret_file_shows_its_cause_once() {
        use std::error::Error as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing-token");
        let err = SecretSource::File(path.clone())
            .load()
            .expect_err("missing file");
        assert_eq!(
            err.to_string(),
            format!("cannot read secret file {}", path.display())
        );
        let cause = err.source().expect("the I/O error is the source");
        assert_eq!(
            cause.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::NotFound)
        );
    }
}
