//! Secrets: [`SecretSource`] (where a secret is read from, never inline in the
//! configuration) and [`Secret`] (a value whose `Debug` and `Display` print `***`).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, de};

use super::AuthError;

/// Where a secret is read from. Never inline in the configuration.
///
/// In TOML: `token = { env = "EHR_TOKEN" }` or `token = { file = "/run/secrets/ehr-token" }`.
/// A value written inline (`token = "abc"`) is refused with an error that says so and
/// does not repeat the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// Name of an environment variable holding the secret.
    Env(String),
    /// Path of a file holding the secret (surrounding whitespace is trimmed).
    File(PathBuf),
}

/// The refusal of anything but `{ env = "NAME" }` or `{ file = "path" }`.
const NOT_INLINE: &str = "a secret is never written in the configuration: \
    write { env = \"NAME\" } (an environment variable holding it) or \
    { file = \"path\" } (a file holding it)";

/// The table form, `{ env = "NAME" }` or `{ file = "path" }`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum SecretTable {
    Env(String),
    File(PathBuf),
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretVisitor)
    }
}

/// Takes a table only; any other value is refused without being quoted (serde's own
/// message would quote it).
struct SecretVisitor;

impl<'de> de::Visitor<'de> for SecretVisitor {
    type Value = SecretSource;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("{ env = \"NAME\" } or { file = \"path\" }")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<SecretSource, A::Error> {
        Ok(
            match SecretTable::deserialize(de::value::MapAccessDeserializer::new(map))? {
                SecretTable::Env(var) => SecretSource::Env(var),
                SecretTable::File(path) => SecretSource::File(path),
            },
        )
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretSource, E> {
        Err(E::custom(NOT_INLINE))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretSource, E> {
        Err(E::custom(NOT_INLINE))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretSource, E> {
        Err(E::custom(NOT_INLINE))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretSource, E> {
        Err(E::custom(NOT_INLINE))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretSource, E> {
        Err(E::custom(NOT_INLINE))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<SecretSource, A::Error> {
        Err(de::Error::custom(NOT_INLINE))
    }
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
        Ok(Secret::new(value))
    }
}

/// A secret string: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value and registers it for scrubbing
    /// ([`crate::message::register_secret`]): no text that leaves the process shows it.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        crate::message::register_secret(&value);
        Secret(value)
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
