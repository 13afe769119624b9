//! Authentication for FHIR Bulk Data servers.
//!
//! [`AuthConfig`] is the serde configuration (no secret is ever written inline: secrets come
//! from an environment variable or a file). [`Auth`] is the runtime object that produces the
//! credential headers for a request, caches SMART Backend Services access tokens, renews them
//! 30 s before they expire and re-authenticates once after a `401`.
//!
//! Secrets are held in [`Secret`], whose `Debug` prints `***`; no error of this module carries
//! a secret, a client assertion or an access token.
//!
//! The parts: `secret` ([`Secret`], [`SecretSource`]), `smart` (SMART Backend Services:
//! discovery, the signed client assertion, token requests and renewal), `redact`
//! ([`redact_url`] for URLs in errors and logs) and `error` ([`AuthError`]).

mod config;
mod error;
mod redact;
mod secret;
mod smart;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::Mutex;

pub use config::AuthConfig;
pub use error::AuthError;
pub use redact::redact_url;
pub use secret::{Secret, SecretSource};
pub use smart::JwtAlgorithm;
use smart::SmartState;
pub(crate) use smart::random_u64;

/// Credential headers for one request, with the token generation they were made from
/// (pass it back to [`Auth::reauthenticate`] after a `401`).
#[derive(Clone, Default)]
pub struct Credentials {
    /// Headers to add to the request.
    pub headers: HeaderMap,
    /// Token generation (only meaningful for SMART and bearer).
    pub generation: u64,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("Credentials")
            .field("headers", &names)
            .field("generation", &self.generation)
            .finish()
    }
}

enum Kind {
    None,
    Bearer {
        source: SecretSource,
        token: Mutex<(Secret, u64)>,
    },
    Oneup {
        headers: HeaderMap,
    },
    Smart(Box<SmartState>),
}

/// Runtime authenticator built from an [`AuthConfig`].
pub struct Auth {
    kind: Kind,
    http: reqwest::Client,
    fhir_base: String,
    token_requests: AtomicU64,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::None => "none",
            Kind::Bearer { .. } => "bearer",
            Kind::Oneup { .. } => "oneup",
            Kind::Smart(_) => "smart",
        };
        f.debug_struct("Auth")
            .field("kind", &kind)
            .field("fhir_base", &redact_url(&self.fhir_base))
            .finish_non_exhaustive()
    }
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, AuthError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| AuthError::InvalidHeaderValue {
        header: name.to_owned(),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

impl Auth {
    /// Builds the authenticator: reads secrets and the private key now (fails fast).
    ///
    /// `fhir_base` is the FHIR base URL (used for SMART discovery); `http` should be a client
    /// that does not follow redirects.
    pub fn new(
        config: &AuthConfig,
        fhir_base: &str,
        http: reqwest::Client,
    ) -> Result<Self, AuthError> {
        let kind = match config {
            AuthConfig::None => Kind::None,
            AuthConfig::Bearer { token } => Kind::Bearer {
                source: token.clone(),
                token: Mutex::new((token.load()?, 1)),
            },
            AuthConfig::Oneup {
                client_id,
                client_secret,
                user_id,
            } => {
                let mut headers = HeaderMap::new();
                headers.insert(
                    HeaderName::from_static("client_id"),
                    header_value("client_id", client_id.load()?.expose())?,
                );
                headers.insert(
                    HeaderName::from_static("client_secret"),
                    header_value("client_secret", client_secret.load()?.expose())?,
                );
                headers.insert(
                    HeaderName::from_static("x-oneup-user-id"),
                    header_value("x-oneup-user-id", user_id)?,
                );
                Kind::Oneup { headers }
            }
            AuthConfig::Smart {
                client_id,
                private_key,
                alg,
                kid,
                scope,
                token_url,
            } => Kind::Smart(Box::new(SmartState::new(
                client_id,
                private_key,
                *alg,
                kid,
                scope,
                token_url.as_deref(),
            )?)),
        };
        Ok(Auth {
            kind,
            http,
            fhir_base: fhir_base.trim_end_matches('/').to_owned(),
            token_requests: AtomicU64::new(0),
        })
    }

    /// True when [`Auth::reauthenticate`] can produce new credentials after a `401`.
    pub fn can_reauthenticate(&self) -> bool {
        matches!(self.kind, Kind::Smart(_) | Kind::Bearer { .. })
    }

    /// Number of requests sent to the token endpoint so far (for logs and tests).
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    /// Credential headers for a request to the FHIR server (or a file server that requires
    /// them). Fetches or renews the SMART access token when needed.
    pub async fn credentials(&self) -> Result<Credentials, AuthError> {
        match &self.kind {
            Kind::None => Ok(Credentials::default()),
            Kind::Bearer { token, .. } => {
                let guard = token.lock().await;
                Ok(bearer(&guard.0, guard.1)?)
            }
            Kind::Oneup { headers } => Ok(Credentials {
                headers: headers.clone(),
                generation: 0,
            }),
            Kind::Smart(state) => self.smart_credentials(state).await,
        }
    }

    /// Called after a `401` for credentials of `generation`: drops the cached SMART token (or
    /// re-reads the bearer token source) unless another task already did so. The next
    /// [`Auth::credentials`] call then authenticates again.
    pub async fn reauthenticate(&self, generation: u64) -> Result<(), AuthError> {
        match &self.kind {
            Kind::Smart(state) => {
                state.invalidate(generation).await;
                Ok(())
            }
            Kind::Bearer { source, token } => {
                let mut guard = token.lock().await;
                if guard.1 == generation {
                    let fresh = source.load()?;
                    *guard = (fresh, generation + 1);
                }
                Ok(())
            }
            Kind::None | Kind::Oneup { .. } => Ok(()),
        }
    }
}

fn bearer(token: &Secret, generation: u64) -> Result<Credentials, AuthError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        header_value("authorization", &format!("Bearer {}", token.expose()))?,
    );
    Ok(Credentials {
        headers,
        generation,
    })
}
