//! [`AuthConfig`]: the `[sources.bulk.auth]` table, tagged by `type`.
//!
//! It is read through a flat table of every key ([`RawAuth`]) rather than serde's
//! internally tagged enum: serde buffers the content of such an enum, so an error inside
//! it would name the table (`sources[0].bulk.auth`), not the key, and serde's message
//! for a misplaced string quotes it. Read flat, an inline secret is refused at its key
//! (`sources[0].bulk.auth.token`) by [`SecretSource`]'s own reader, without its value.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, de};

use super::{JwtAlgorithm, SecretSource};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
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
        user_id: String,
    },
    /// SMART Backend Services (client credentials grant with a signed JWT assertion).
    Smart {
        /// The registered client id (`iss` and `sub` of the assertion). Required, no default.
        client_id: String,
        /// Path of the private key PEM file. Required, no default.
        private_key: PathBuf,
        /// Signing algorithm. Default: `RS384`.
        alg: JwtAlgorithm,
        /// `kid` header of the assertion (the key id in the registered JWKS). Required, no default.
        kid: String,
        /// Requested scope. Default: `"system/*.read"`.
        scope: String,
        /// Token endpoint. Default: none, discovered from
        /// `[base]/.well-known/smart-configuration`.
        token_url: Option<String>,
    },
}

/// The kinds of authentication, as written in `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AuthKind {
    None,
    Bearer,
    Oneup,
    Smart,
}

impl AuthKind {
    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bearer => "bearer",
            Self::Oneup => "oneup",
            Self::Smart => "smart",
        }
    }
}

/// The auth table as written: every key of every kind, checked against `type` after.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(rename = "type")]
    kind: AuthKind,
    token: Option<SecretSource>,
    client_id: Option<ClientId>,
    client_secret: Option<SecretSource>,
    user_id: Option<String>,
    private_key: Option<PathBuf>,
    alg: Option<JwtAlgorithm>,
    kid: Option<String>,
    scope: Option<String>,
    token_url: Option<String>,
}

/// `client_id`: written inline for SMART (it is public), read like a secret for
/// 1upHealth (it goes in a header next to the secret).
enum ClientId {
    Inline(String),
    Secret(SecretSource),
}

impl<'de> Deserialize<'de> for ClientId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = ClientId;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a client id, or { env = \"NAME\" } or { file = \"path\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ClientId, E> {
                Ok(ClientId::Inline(v.to_owned()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<ClientId, A::Error> {
                SecretSource::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ClientId::Secret)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl<'de> Deserialize<'de> for AuthConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawAuth::deserialize(deserializer)?
            .into_config()
            .map_err(de::Error::custom)
    }
}

impl RawAuth {
    /// The configuration of the kind `type` names: its required keys present, no key of
    /// another kind.
    fn into_config(self) -> Result<AuthConfig, String> {
        let kind = self.kind;
        let allowed: &[&str] = match kind {
            AuthKind::None => &[],
            AuthKind::Bearer => &["token"],
            AuthKind::Oneup => &["client_id", "client_secret", "user_id"],
            AuthKind::Smart => &[
                "client_id",
                "private_key",
                "alg",
                "kid",
                "scope",
                "token_url",
            ],
        };
        if let Some(key) = self.present().into_iter().find(|k| !allowed.contains(k)) {
            return Err(format!(
                "`{key}` is not a key of type = \"{}\"",
                kind.name()
            ));
        }
        let required = |key: &str| format!("type = \"{}\" needs `{key}`", kind.name());
        Ok(match kind {
            AuthKind::None => AuthConfig::None,
            AuthKind::Bearer => AuthConfig::Bearer {
                token: self.token.ok_or_else(|| required("token"))?,
            },
            AuthKind::Oneup => AuthConfig::Oneup {
                client_id: match self.client_id.ok_or_else(|| required("client_id"))? {
                    ClientId::Secret(source) => source,
                    ClientId::Inline(_) => return Err(inline_oneup_client_id()),
                },
                client_secret: self
                    .client_secret
                    .ok_or_else(|| required("client_secret"))?,
                user_id: self.user_id.unwrap_or_else(default_oneup_user_id),
            },
            AuthKind::Smart => AuthConfig::Smart {
                client_id: match self.client_id.ok_or_else(|| required("client_id"))? {
                    ClientId::Inline(id) => id,
                    ClientId::Secret(_) => {
                        return Err(
                            "`client_id` of type = \"smart\" is the registered client id, \
                             written as is: client_id = \"my-client\""
                                .to_owned(),
                        );
                    }
                },
                private_key: self.private_key.ok_or_else(|| required("private_key"))?,
                alg: self.alg.unwrap_or_default(),
                kid: self.kid.ok_or_else(|| required("kid"))?,
                scope: self.scope.unwrap_or_else(default_scope),
                token_url: self.token_url,
            },
        })
    }

    /// The keys written besides `type`.
    fn present(&self) -> Vec<&'static str> {
        [
            ("token", self.token.is_some()),
            ("client_id", self.client_id.is_some()),
            ("client_secret", self.client_secret.is_some()),
            ("user_id", self.user_id.is_some()),
            ("private_key", self.private_key.is_some()),
            ("alg", self.alg.is_some()),
            ("kid", self.kid.is_some()),
            ("scope", self.scope.is_some()),
            ("token_url", self.token_url.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, present)| present.then_some(key))
        .collect()
    }
}

/// The refusal of a 1upHealth client id written inline (without its value).
fn inline_oneup_client_id() -> String {
    "`client_id` of type = \"oneup\" is sent next to the client secret and is read like a \
     secret: write client_id = { env = \"NAME\" } or { file = \"path\" }, not the value"
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let inline = serde_json::from_str::<AuthConfig>(r#"{"type":"bearer","token":"abcdef"}"#)
            .expect_err("inline token");
        let text = inline.to_string();
        assert!(
            text.contains("{ env = \"NAME\" }") && !text.contains("abcdef"),
            "{text}"
        );
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

    #[test]
    fn keys_are_checked_against_the_type() {
        let err = |json: &str| {
            serde_json::from_str::<AuthConfig>(json)
                .expect_err(json)
                .to_string()
        };
        assert!(err(r#"{"type":"bearer"}"#).contains("needs `token`"));
        assert!(err(r#"{"type":"none","kid":"k"}"#).contains("`kid` is not a key"));
        let oneup =
            err(r#"{"type":"oneup","client_id":"the-id-1234","client_secret":{"env":"S"}}"#);
        assert!(
            oneup.contains("{ env = \"NAME\" }") && !oneup.contains("the-id-1234"),
            "{oneup}"
        );
        let ok: AuthConfig = serde_json::from_str(
            r#"{"type":"oneup","client_id":{"env":"I"},"client_secret":{"file":"s"}}"#,
        )
        .expect("oneup");
        assert!(matches!(ok, AuthConfig::Oneup { ref user_id, .. } if user_id == "client"));
    }
}
