//! SMART Backend Services: token endpoint discovery (`.well-known/smart-configuration`),
//! the signed JWT client assertion, the client credentials token request, and the token
//! cache with renewal before expiry and invalidation after a `401`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, OnceCell};

use super::{Auth, AuthError, Credentials, Secret, bearer, redact_url};

/// Renew a cached token when less than this much of its lifetime is left.
const RENEW_MARGIN: Duration = Duration::from_secs(30);
/// Lifetime assumed when the token response has no `expires_in`.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// `exp` of the signed client assertion, relative to now.
const ASSERTION_LIFETIME: u64 = 300;

/// JWT signing algorithm for SMART Backend Services client assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-384; the key is an RSA private key PEM (PKCS#1 or PKCS#8).
    #[default]
    RS384,
    /// ECDSA P-384 with SHA-384; the key is an EC private key PEM (PKCS#8).
    ES384,
}

struct CachedToken {
    token: Secret,
    renew_at: Instant,
    generation: u64,
}

pub(super) struct SmartState {
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

impl SmartState {
    /// The SMART state for a configured client: loads the private key now (fails fast).
    pub(super) fn new(
        client_id: &str,
        private_key: &Path,
        alg: JwtAlgorithm,
        kid: &str,
        scope: &str,
        token_url: Option<&str>,
    ) -> Result<Self, AuthError> {
        Ok(SmartState {
            client_id: client_id.to_owned(),
            key: load_key(private_key, alg)?,
            alg,
            kid: kid.to_owned(),
            scope: scope.to_owned(),
            configured_token_url: token_url.map(str::to_owned),
            discovered_token_url: OnceCell::new(),
            cache: Mutex::new(None),
            jti_counter: AtomicU64::new(0),
        })
    }

    /// After a `401` for credentials of `generation`: forces renewal of the cached token
    /// unless another task already did so.
    pub(super) async fn invalidate(&self, generation: u64) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| c.generation == generation) {
            // Keep the generation number, force renewal.
            if let Some(c) = cache.as_mut() {
                c.renew_at = Instant::now();
            }
        }
    }
}

impl Auth {
    /// The cached access token as credentials, or a new one when it is due for renewal.
    pub(super) async fn smart_credentials(
        &self,
        state: &SmartState,
    ) -> Result<Credentials, AuthError> {
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
        let assertion = jsonwebtoken::encode(&header, &claims, &state.key)
            .map_err(|e| AuthError::Sign(e.to_string()))?;
        // A token endpoint may quote the assertion in its error: never show it.
        crate::message::register_secret(&assertion);
        Ok(assertion)
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
                message: crate::message::scrub(&message).into_owned(),
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

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn load_key(path: &Path, alg: JwtAlgorithm) -> Result<jsonwebtoken::EncodingKey, AuthError> {
    let err = |message: String| AuthError::PrivateKey {
        path: path.to_owned(),
        alg,
        message,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    register_pem(&pem);
    let key = match alg {
        JwtAlgorithm::RS384 => jsonwebtoken::EncodingKey::from_rsa_pem(&pem),
        JwtAlgorithm::ES384 => jsonwebtoken::EncodingKey::from_ec_pem(&pem),
    };
    key.map_err(|e| err(e.to_string()))
}

/// Registers a private key for scrubbing: the whole PEM and each line of its body, so
/// that not even a part of it is ever shown.
fn register_pem(pem: &[u8]) {
    let text = String::from_utf8_lossy(pem);
    crate::message::register_secret(&text);
    for line in text.lines().filter(|l| !l.starts_with("-----")) {
        crate::message::register_secret(line);
    }
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
