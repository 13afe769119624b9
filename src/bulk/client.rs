//! [`BulkClient`]: construction (configuration check, credentials, HTTP clients), the state
//! shared by its clones, and the small requests: server metadata, cancellation and the
//! clean-up after download. Kick-off, polling, downloads and the request helper live in the
//! sibling modules.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use tokio::sync::watch;

use crate::auth::{Auth, redact_url};
use crate::bulk::request::{Req, server_error, transport};
use crate::bulk::{BulkConfig, BulkError, KickOff, PollProgress};

pub(crate) struct Inner {
    pub cfg: BulkConfig,
    pub(super) http: reqwest::Client,
    pub(super) http_identity: reqwest::Client,
    pub auth: Auth,
    pub(super) progress: watch::Sender<PollProgress>,
}

/// The Bulk Data client. Cheap to clone (shared state behind an `Arc`); safe to use from
/// several tasks at once (e.g. parallel downloads).
#[derive(Clone)]
pub struct BulkClient {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for BulkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkClient")
            .field("base_url", &redact_url(&self.inner.cfg.base_url))
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

impl BulkClient {
    /// Validates the configuration, loads the credentials and builds the HTTP clients.
    pub fn new(cfg: BulkConfig) -> Result<Self, BulkError> {
        cfg.validate()
            .map_err(|e| BulkError::Config(e.to_string()))?;
        let build = |gzip: bool| {
            let b = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(cfg.request_timeout())
                .read_timeout(cfg.request_timeout())
                .user_agent(concat!("fhir-ingest/", env!("CARGO_PKG_VERSION")));
            let b = if gzip { b } else { b.no_gzip() };
            b.build()
                .map_err(|e| BulkError::Config(format!("cannot build HTTP client: {e}")))
        };
        let http = build(true)?;
        let http_identity = build(false)?;
        let auth = Auth::new(&cfg.auth, &cfg.base_url, http.clone())?;
        let (progress, _) = watch::channel(PollProgress::default());
        Ok(BulkClient {
            inner: Arc::new(Inner {
                cfg,
                http,
                http_identity,
                auth,
                progress,
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &BulkConfig {
        &self.inner.cfg
    }

    /// The authenticator in use (e.g. for [`Auth::token_requests`]).
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    /// Subscribes to poll progress (`X-Progress`, poll count, next wait).
    pub fn progress(&self) -> watch::Receiver<PollProgress> {
        self.inner.progress.subscribe()
    }

    /// Fetches the server's CapabilityStatement (`[base]/metadata`) with the configured
    /// credentials: proof that the server answers and accepts them. Returns its
    /// `fhirVersion` and `software.name` (`?` when absent).
    pub async fn metadata(&self) -> Result<(String, String), BulkError> {
        let url = format!("{}/metadata", self.inner.cfg.base_url.trim_end_matches('/'));
        let resp = self
            .inner
            .execute(Req::fhir_json(Method::GET, &url, "metadata"))
            .await?;
        if !resp.status().is_success() {
            return Err(server_error("metadata", &url, resp).await);
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport("metadata", &url, e))?;
        let capability: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| BulkError::Protocol {
                url: redact_url(&url),
                message: format!("invalid CapabilityStatement JSON: {e}"),
            })?;
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_owned();
        Ok((
            text(&capability["fhirVersion"]),
            text(&capability["software"]["name"]),
        ))
    }

    /// Sends `DELETE` to the status URL (cancels a running export or tells the server the
    /// files may be removed). `404`/`410` count as success (already gone).
    pub async fn cancel(&self, status_url: &str) -> Result<(), BulkError> {
        let resp = self
            .inner
            .execute(Req::fhir_json(Method::DELETE, status_url, "delete export"))
            .await?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            Ok(())
        } else {
            Err(server_error("delete export", status_url, resp).await)
        }
    }

    /// After all files were downloaded: sends `DELETE` to the status URL when
    /// `delete_after_download` is set and the export was asynchronous. Returns whether a
    /// `DELETE` was sent.
    pub async fn finish(&self, kickoff: &KickOff) -> Result<bool, BulkError> {
        match kickoff {
            KickOff::Accepted { status_url } if self.inner.cfg.delete_after_download => {
                self.cancel(status_url).await.map(|()| true)
            }
            _ => Ok(false),
        }
    }
}
