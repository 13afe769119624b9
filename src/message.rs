//! Text that leaves the process: an error with its causes as one line ([`chain`]), and
//! the scrubbing of every secret value we know of out of any text ([`scrub`]).
//!
//! Secrets are registered where they enter the process ([`register_secret`]: the bearer
//! token and the 1upHealth client headers read from their sources, the SMART private
//! key, the access tokens obtained, the signed client assertions). Text built from a
//! server's answer (error bodies, OperationOutcomes, token endpoint errors) is scrubbed
//! where it is built; the log layer and the reports scrub once more before writing, so a
//! secret that a server echoes (a 401 body quoting the `Authorization` header) is never
//! printed, logged or recorded.
//!
//! A leaf: it imports nothing of ours, so every module may use it.

use std::{
    borrow::Cow,
    sync::{PoisonError, RwLock},
};

/// What a secret is replaced with.
pub const SCRUBBED: &str = "***";

/// Secrets shorter than this are not scrubbed: replacing every occurrence of two or
/// three characters would garble every message, and so short a secret is no secret.
pub const MIN_SECRET_LEN: usize = 6;

/// The secret values registered so far, longest first (so that a secret containing
/// another is replaced whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret value: from now on [`scrub`] replaces it in any text. Surrounding
/// whitespace is ignored; values shorter than [`MIN_SECRET_LEN`] are not registered.
pub fn register_secret(value: &str) {
    let value = value.trim();
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(PoisonError::into_inner);
    if secrets.iter().any(|s| s == value) {
        return;
    }
    secrets.push(value.to_owned());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by [`SCRUBBED`]; borrowed when there
/// is nothing to replace.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(PoisonError::into_inner);
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), SCRUBBED));
        }
    }
    out
}

/// An error and its causes as one line, `a: b: c`, scrubbed of secrets.
///
/// Our errors keep their cause as `source()` and do not repeat it in their text; some
/// errors of other crates do both (object_store's `Generic S3 error: {source}`), so a
/// cause whose text the line already holds is not repeated.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    scrub(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_text_is_not_repeated() {
        let error = Outer(Middle(std::io::Error::other("disk on fire")));
        assert_eq!(chain(&error), "outer: middle: disk on fire");
    }

    #[test]
    fn registered_secrets_are_scrubbed_and_short_ones_ignored() {
        register_secret("  tok-123456-abcdef \n");
        register_secret("tok-123456");
        register_secret("ab");
        assert_eq!(
            scrub("Bearer tok-123456-abcdef and tok-123456 and ab"),
            "Bearer *** and *** and ab"
        );
        assert!(matches!(scrub("nothing here"), Cow::Borrowed(_)));
    }
}
