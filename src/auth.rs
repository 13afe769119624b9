//! Authentication for FHIR Bulk Data servers.
//!
//! [`AuthConfig`] is the serde configuration (no secret is ever written inline: secrets come
//! from an environment variable or a file). [`Auth`] is the runtime object that produces the
//! credential headers for a request, caches SMART Backend Services access tokens, renews them
//! 30 s before they expire and re-authenticates once after a `401`.
//!
//! Secrets are held in [`Secret`], whose `Debug` prints `***`; no error of this module carries
//! a secret, a client assertion or an access token.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, OnceCell};

/// Renew a cached token when less than this much of its lifetime is left.
const RENEW_MARGIN: Duration = Duration::from_secs(30);
/// Lifetime assumed when the token response has no `expires_in`.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// `exp` of the signed client assertion, relative to now.
const ASSERTION_LIFETIME: u64 = 300;

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
    #[error("cannot read secret file {path}: {source}")]
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
    #[error("request to {url} failed: {source}")]
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

/// JWT signing algorithm for SMART Backend Services client assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-384; the key is an RSA private key PEM (PKCS#1 or PKCS#8).
    #[default]
    RS384,
    /// ECDSA P-384 with SHA-384; the key is an EC private key PEM (PKCS#8).
    ES384,
}

fn default_scope() -> String {
    "system/*.read".to_owned()
}

fn default_oneup_user_id() -> String {
    "client".to_owned()
}

/// Authentication configuration, tagged by `type`.
///
/// ```toml
/// [auth]
/// type = "smart"
/// client_id = "my-client"
/// private_key = "/etc/fhir-ingest/key.pem"
/// kid = "key-1"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// No credentials (the default).
    #[default]
    None,
    /// A static bearer token sent as `Authorization: Bearer <token>`.
    Bearer {
        /// Where the token is read from. Required, no default. On a `401` the source is read
        /// again and the request retried once (so a rotated token file is picked up).
        token: SecretSource,
    },
    /// 1upHealth client headers: `client_id`, `client_secret` and `x-oneup-user-id`, sent on
    /// kick-off, status polls and every file download.
    Oneup {
        /// Source of the `client_id` header value. Required, no default.
        client_id: SecretSource,
        /// Source of the `client_secret` header value. Required, no default.
        client_secret: SecretSource,
        /// Value of the `x-oneup-user-id` header. Default: `"client"`.
        #[serde(default = "default_oneup_user_id")]
        user_id: String,
    },
    /// SMART Backend Services (client credentials grant with a signed JWT assertion).
    Smart {
        /// The registered client id (`iss` and `sub` of the assertion). Required, no default.
        client_id: String,
        /// Path of the private key PEM file. Required, no default.
        private_key: PathBuf,
        /// Signing algorithm. Default: `RS384`.
        #[serde(default)]
        alg: JwtAlgorithm,
        /// `kid` header of the assertion (the key id in the registered JWKS). Required, no default.
        kid: String,
        /// Requested scope. Default: `"system/*.read"`.
        #[serde(default = "default_scope")]
        scope: String,
        /// Token endpoint. Default: none, discovered from
        /// `[base]/.well-known/smart-configuration`.
        #[serde(default)]
        token_url: Option<String>,
    },
}

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

struct CachedToken {
    token: Secret,
    renew_at: Instant,
    generation: u64,
}

struct SmartState {
    client_id: String,
    key: jsonwebtoken::EncodingKey,
    alg: JwtAlgorithm,
    kid: String,
    scope: String,
    configured_token_url: Option<String>,
    discovered_token_url: OnceCell<String>,
    cache: Mutex<Option<CachedToken>>,
    jti_counter: AtomicU64,
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

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
            } => Kind::Smart(Box::new(SmartState {
                client_id: client_id.clone(),
                key: load_key(private_key, *alg)?,
                alg: *alg,
                kid: kid.clone(),
                scope: scope.clone(),
                configured_token_url: token_url.clone(),
                discovered_token_url: OnceCell::new(),
                cache: Mutex::new(None),
                jti_counter: AtomicU64::new(0),
            })),
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
            Kind::Smart(state) => {
                let mut cache = state.cache.lock().await;
                if let Some(c) = cache.as_ref()
                    && Instant::now() < c.renew_at
                {
                    return bearer(&c.token, c.generation);
                }
                let generation = cache.as_ref().map_or(1, |c| c.generation + 1);
                let fresh = self.fetch_token(state, generation).await?;
                let creds = bearer(&fresh.token, fresh.generation)?;
                *cache = Some(fresh);
                Ok(creds)
            }
        }
    }

    /// Called after a `401` for credentials of `generation`: drops the cached SMART token (or
    /// re-reads the bearer token source) unless another task already did so. The next
    /// [`Auth::credentials`] call then authenticates again.
    pub async fn reauthenticate(&self, generation: u64) -> Result<(), AuthError> {
        match &self.kind {
            Kind::Smart(state) => {
                let mut cache = state.cache.lock().await;
                if cache.as_ref().is_some_and(|c| c.generation == generation) {
                    // Keep the generation number, force renewal.
                    if let Some(c) = cache.as_mut() {
                        c.renew_at = Instant::now();
                    }
                }
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

    async fn token_url(&self, state: &SmartState) -> Result<String, AuthError> {
        if let Some(url) = &state.configured_token_url {
            return Ok(url.clone());
        }
        let url = state
            .discovered_token_url
            .get_or_try_init(|| self.discover())
            .await?;
        Ok(url.clone())
    }

    async fn discover(&self) -> Result<String, AuthError> {
        let url = format!("{}/.well-known/smart-configuration", self.fhir_base);
        let safe = redact_url(&url);
        let resp = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| AuthError::Http {
                url: safe.clone(),
                source: e.without_url(),
            })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(AuthError::Discovery {
                url: safe,
                message: format!("HTTP {}", status.as_u16()),
            });
        }
        let body: serde_json::Value = resp.json().await.map_err(|e| AuthError::Discovery {
            url: safe.clone(),
            message: format!("invalid JSON: {}", e.without_url()),
        })?;
        body.get("token_endpoint")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or(AuthError::Discovery {
                url: safe,
                message: "no token_endpoint in the answer".to_owned(),
            })
    }

    fn sign_assertion(&self, state: &SmartState, aud: &str) -> Result<String, AuthError> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            exp: u64,
            iat: u64,
            jti: String,
        }
        let now = now_unix();
        let counter = state.jti_counter.fetch_add(1, Ordering::Relaxed);
        let jti = format!("{:016x}{:016x}{counter:x}", random_u64(), now);
        let alg = match state.alg {
            JwtAlgorithm::RS384 => jsonwebtoken::Algorithm::RS384,
            JwtAlgorithm::ES384 => jsonwebtoken::Algorithm::ES384,
        };
        let mut header = jsonwebtoken::Header::new(alg);
        header.kid = Some(state.kid.clone());
        header.typ = Some("JWT".to_owned());
        let claims = Claims {
            iss: &state.client_id,
            sub: &state.client_id,
            aud,
            exp: now + ASSERTION_LIFETIME,
            iat: now,
            jti,
        };
        jsonwebtoken::encode(&header, &claims, &state.key)
            .map_err(|e| AuthError::Sign(e.to_string()))
    }

    async fn fetch_token(
        &self,
        state: &SmartState,
        generation: u64,
    ) -> Result<CachedToken, AuthError> {
        let token_url = self.token_url(state).await?;
        let safe = redact_url(&token_url);
        let assertion = self.sign_assertion(state, &token_url)?;
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", state.scope.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ];
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .http
            .post(&token_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| AuthError::Http {
                url: safe.clone(),
                source: e.without_url(),
            })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| AuthError::Http {
            url: safe.clone(),
            source: e.without_url(),
        })?;
        let body: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            let message = body
                .as_ref()
                .and_then(|b| {
                    let err = b.get("error").and_then(|v| v.as_str())?;
                    Some(match b.get("error_description").and_then(|v| v.as_str()) {
                        Some(d) => format!("{err}: {d}"),
                        None => err.to_owned(),
                    })
                })
                .unwrap_or_else(|| excerpt(&text));
            return Err(AuthError::TokenRejected {
                url: safe,
                status: status.as_u16(),
                message,
            });
        }
        let body = body.ok_or_else(|| AuthError::TokenRejected {
            url: safe.clone(),
            status: status.as_u16(),
            message: "answer is not JSON".to_owned(),
        })?;
        let token = body
            .get("access_token")
            .and_then(|v| v.as_str())
            .ok_or_else(|| AuthError::TokenRejected {
                url: safe.clone(),
                status: status.as_u16(),
                message: "answer has no access_token".to_owned(),
            })?;
        let lifetime = body
            .get("expires_in")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        let renew_at = Instant::now() + lifetime.saturating_sub(RENEW_MARGIN);
        Ok(CachedToken {
            token: Secret::new(token),
            renew_at,
            generation,
        })
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

fn load_key(path: &Path, alg: JwtAlgorithm) -> Result<jsonwebtoken::EncodingKey, AuthError> {
    let err = |message: String| AuthError::PrivateKey {
        path: path.to_owned(),
        alg,
        message,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let key = match alg {
        JwtAlgorithm::RS384 => jsonwebtoken::EncodingKey::from_rsa_pem(&pem),
        JwtAlgorithm::ES384 => jsonwebtoken::EncodingKey::from_ec_pem(&pem),
    };
    key.map_err(|e| err(e.to_string()))
}

fn excerpt(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_owned(),
    }
}

/// A random 64-bit number from the standard library's randomly seeded hasher (enough for
/// `jti` uniqueness and retry jitter; not for cryptography).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Query parameter names (lower case) whose values are replaced by `REDACTED` in URLs shown in
/// errors and logs: pre-signed URL signatures, credentials and tokens.
fn is_sensitive_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "sig",
        "signature",
        "token",
        "credential",
        "secret",
        "key",
        "policy",
        "password",
        "auth",
        "code",
    ]
    .iter()
    .any(|s| n.contains(s))
        || n == "se"
        || n == "st"
}

/// The URL with user info removed and the values of signature-like query parameters
/// (`X-Amz-Signature`, `sig`, `Signature`, `token`, …) replaced by `REDACTED`, for error
/// messages and logs. Unparseable input is reduced to everything before `?`.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.split(['?', '#']).next().unwrap_or_default().to_owned();
    };
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    parsed.set_fragment(None);
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_sensitive_param(&k) {
                    "REDACTED".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        if pairs.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_signatures() {
        let u = redact_url(
            "https://user:pw@bucket.s3.amazonaws.com/f.ndjson?X-Amz-Signature=abc&X-Amz-Credential=x&part=1",
        );
        assert!(!u.contains("abc") && !u.contains("pw"), "{u}");
        assert!(u.contains("part=1"), "{u}");
        assert!(redact_url("https://x/y?sig=zzz&sv=2020").contains("sig=REDACTED"));
    }

    #[test]
    fn secret_debug_is_hidden() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }

    #[test]
    fn config_parses_and_rejects_inline_tokens() {
        let c: AuthConfig =
            serde_json::from_str(r#"{"type":"bearer","token":{"env":"TOK"}}"#).expect("parse");
        assert_eq!(
            c,
            AuthConfig::Bearer {
                token: SecretSource::Env("TOK".into())
            }
        );
        assert!(serde_json::from_str::<AuthConfig>(r#"{"type":"bearer","token":"abc"}"#).is_err());
        assert!(
            serde_json::from_str::<AuthConfig>(r#"{"type":"bearer","token":{"env":"T"},"x":1}"#)
                .is_err()
        );
        let s: AuthConfig = serde_json::from_str(
            r#"{"type":"smart","client_id":"c","private_key":"k.pem","kid":"1","alg":"ES384"}"#,
        )
        .expect("parse smart");
        assert!(
            matches!(s, AuthConfig::Smart { alg: JwtAlgorithm::ES384, ref scope, .. } if scope == "system/*.read")
        );
    }
}
