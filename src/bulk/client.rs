//! Kick-off, status polling, manifest paging and cancellation; the shared HTTP request
//! helper with authentication, one re-authentication after `401` and manual redirects.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_LOCATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::auth::{Auth, redact_url};
use crate::bulk::manifest::body_message;
use crate::bulk::retry::{backoff, retry_after};
use crate::bulk::{BulkConfig, BulkError, ExportLevel, KickOffMethod, Manifest};

const FHIR_JSON: &str = "application/fhir+json";
const MAX_REDIRECTS: usize = 10;
const MAX_MANIFEST_PAGES: usize = 100_000;

/// Result of a kick-off request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KickOff {
    /// `202 Accepted`: poll `status_url` (see [`BulkClient::wait_for_manifest`]).
    Accepted {
        /// Absolute status URL from `Content-Location`.
        status_url: String,
    },
    /// `200 OK` with the manifest at once (1upHealth style). Paged manifests are not merged
    /// yet; [`BulkClient::manifest`] does that.
    Complete(Manifest),
}

/// One status poll's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollStatus {
    /// Still running (`202`, or `429`).
    InProgress {
        /// `X-Progress` header, if any.
        progress: Option<String>,
        /// How long to wait before the next poll (clamped `Retry-After`, or our backoff).
        wait: Duration,
    },
    /// Done: the manifest (first page only).
    Complete(Manifest),
}

/// Progress of the export being polled, published through a [`watch`] channel
/// ([`BulkClient::progress`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PollProgress {
    /// Redacted status URL being polled.
    pub status_url: Option<String>,
    /// Last `X-Progress` header seen.
    pub progress: Option<String>,
    /// Number of status requests sent.
    pub polls: u32,
    /// Wait before the next poll.
    pub next_wait: Option<Duration>,
    /// True once the manifest was received.
    pub complete: bool,
}

/// A request for [`Inner::execute`].
pub(crate) struct Req<'a> {
    pub method: Method,
    pub url: &'a str,
    pub accept: &'static str,
    pub body: Option<Vec<u8>>,
    pub headers: HeaderMap,
    /// Send credentials (to the original authority only).
    pub credentials: bool,
    /// Use the client without transparent gzip decoding.
    pub identity: bool,
    /// Apply the whole-request timeout (not for streaming downloads).
    pub total_timeout: bool,
    pub context: &'static str,
}

impl<'a> Req<'a> {
    /// A FHIR JSON request (`Accept: application/fhir+json`) with credentials, no body and
    /// no extra headers, under the whole-request timeout.
    fn fhir_json(method: Method, url: &'a str, context: &'static str) -> Self {
        Req {
            method,
            url,
            accept: FHIR_JSON,
            body: None,
            headers: HeaderMap::new(),
            credentials: true,
            identity: false,
            total_timeout: true,
            context,
        }
    }
}

pub(crate) struct Inner {
    pub cfg: BulkConfig,
    http: reqwest::Client,
    http_identity: reqwest::Client,
    pub auth: Auth,
    progress: watch::Sender<PollProgress>,
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

fn same_authority(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

pub(crate) fn transport(context: &'static str, url: &str, e: reqwest::Error) -> BulkError {
    BulkError::Transport {
        context,
        url: redact_url(url),
        source: e.without_url(),
    }
}

/// Reads an error response body (bounded) and turns it into [`BulkError::Server`].
pub(crate) async fn server_error(
    context: &'static str,
    url: &str,
    resp: reqwest::Response,
) -> BulkError {
    let status = resp.status().as_u16();
    let body = read_limited(resp, 64 * 1024).await;
    BulkError::Server {
        context,
        url: redact_url(url),
        status,
        message: body_message(&body),
    }
}

async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        out.extend_from_slice(&chunk);
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
    }
    out
}

fn is_retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

impl Inner {
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        backoff(
            attempt,
            self.cfg.retry_base(),
            self.cfg.poll_min().min(self.cfg.retry_base()),
            self.cfg.poll_max(),
        )
    }

    /// Sends a request: adds the credentials (only to the original scheme+host+port),
    /// re-authenticates once after a `401`, follows redirects by hand and drops the
    /// credentials as soon as a redirect leaves the original authority.
    pub(crate) async fn execute(&self, req: Req<'_>) -> Result<reqwest::Response, BulkError> {
        let origin = Url::parse(req.url).map_err(|_| BulkError::Protocol {
            url: redact_url(req.url),
            message: "not a valid absolute URL".to_owned(),
        })?;
        let mut url = origin.clone();
        let mut method = req.method.clone();
        let mut body = req.body;
        let mut credentials = req.credentials;
        let mut reauthenticated = false;
        let mut hops = 0;
        loop {
            let client = if req.identity {
                &self.http_identity
            } else {
                &self.http
            };
            let mut rb = client
                .request(method.clone(), url.clone())
                .header(ACCEPT, req.accept)
                .headers(req.headers.clone());
            if req.total_timeout {
                rb = rb.timeout(self.cfg.request_timeout());
            }
            if let Some(b) = &body {
                rb = rb.header(CONTENT_TYPE, FHIR_JSON).body(b.clone());
            }
            let mut generation = None;
            if credentials && same_authority(&url, &origin) {
                let creds = self.auth.credentials().await?;
                generation = Some(creds.generation);
                rb = rb.headers(creds.headers);
            }
            let resp = rb
                .send()
                .await
                .map_err(|e| transport(req.context, url.as_str(), e))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED
                && !reauthenticated
                && self.auth.can_reauthenticate()
                && let Some(g) = generation
            {
                reauthenticated = true;
                self.auth.reauthenticate(g).await?;
                continue;
            }
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
                    return Ok(resp);
                };
                let next = url.join(loc).map_err(|_| BulkError::Protocol {
                    url: redact_url(url.as_str()),
                    message: "redirect with an invalid Location".to_owned(),
                })?;
                hops += 1;
                if hops > MAX_REDIRECTS {
                    return Err(BulkError::TooManyRedirects {
                        url: redact_url(req.url),
                    });
                }
                if !same_authority(&next, &origin) {
                    credentials = false;
                }
                if status == StatusCode::SEE_OTHER
                    || ((status == StatusCode::MOVED_PERMANENTLY || status == StatusCode::FOUND)
                        && method == Method::POST)
                {
                    method = Method::GET;
                    body = None;
                }
                url = next;
                continue;
            }
            return Ok(resp);
        }
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

    /// The kick-off URL without query: `export_url` if configured, else `[base]/$export`,
    /// `[base]/Patient/$export` or `[base]/Group/<id>/$export`.
    pub fn kickoff_url(&self) -> String {
        let cfg = &self.inner.cfg;
        if let Some(u) = &cfg.export_url {
            return u.clone();
        }
        let base = cfg.base_url.trim_end_matches('/');
        match cfg.level {
            ExportLevel::System => format!("{base}/$export"),
            ExportLevel::Patient => format!("{base}/Patient/$export"),
            ExportLevel::Group => format!(
                "{base}/Group/{}/$export",
                cfg.group_id.as_deref().unwrap_or_default()
            ),
        }
    }

    fn params(&self, since: Option<&str>) -> Vec<(&'static str, String)> {
        let cfg = &self.inner.cfg;
        let mut p = Vec::new();
        let join = |v: &[String]| v.join(",");
        if !cfg.types.is_empty() {
            p.push(("_type", join(&cfg.types)));
        }
        if let Some(s) = since.or(cfg.since.as_deref()) {
            p.push(("_since", s.to_owned()));
        }
        if let Some(u) = &cfg.until {
            p.push(("_until", u.clone()));
        }
        if !cfg.type_filter.is_empty() {
            p.push(("_typeFilter", join(&cfg.type_filter)));
        }
        if !cfg.elements.is_empty() {
            p.push(("_elements", join(&cfg.elements)));
        }
        if !cfg.patient.is_empty() {
            p.push(("patient", join(&cfg.patient)));
        }
        p
    }

    fn parameters_body(&self, since: Option<&str>) -> Value {
        let cfg = &self.inner.cfg;
        let mut params: Vec<Value> = Vec::new();
        if !cfg.types.is_empty() {
            params.push(json!({"name": "_type", "valueString": cfg.types.join(",")}));
        }
        if let Some(s) = since.or(cfg.since.as_deref()) {
            params.push(json!({"name": "_since", "valueInstant": s}));
        }
        if let Some(u) = &cfg.until {
            params.push(json!({"name": "_until", "valueInstant": u}));
        }
        for f in &cfg.type_filter {
            params.push(json!({"name": "_typeFilter", "valueString": f}));
        }
        if !cfg.elements.is_empty() {
            params.push(json!({"name": "_elements", "valueString": cfg.elements.join(",")}));
        }
        for r in &cfg.patient {
            params.push(json!({"name": "patient", "valueReference": {"reference": r}}));
        }
        json!({"resourceType": "Parameters", "parameter": params})
    }

    /// Sends the kick-off request. `since` (the caller's watermark) overrides the configured
    /// `_since` when `Some`. Retries 429, 5xx and broken connections with backoff; any other
    /// error status becomes [`BulkError::Server`] with the OperationOutcome text.
    pub async fn kick_off(&self, since: Option<&str>) -> Result<KickOff, BulkError> {
        let inner = &self.inner;
        let mut url = Url::parse(&self.kickoff_url()).map_err(|_| {
            BulkError::Config("kick-off URL is not a valid absolute URL".to_owned())
        })?;
        let body = match inner.cfg.method {
            KickOffMethod::Get => {
                let params = self.params(since);
                if !params.is_empty() {
                    url.query_pairs_mut().extend_pairs(params);
                }
                None
            }
            KickOffMethod::Post => Some(
                serde_json::to_vec(&self.parameters_body(since))
                    .map_err(|e| BulkError::Config(format!("cannot encode Parameters: {e}")))?,
            ),
        };
        let method = match inner.cfg.method {
            KickOffMethod::Get => Method::GET,
            KickOffMethod::Post => Method::POST,
        };
        let mut headers = HeaderMap::new();
        headers.insert("prefer", HeaderValue::from_static("respond-async"));
        let mut attempt = 0;
        loop {
            let result = inner
                .execute(Req {
                    method: method.clone(),
                    url: url.as_str(),
                    accept: FHIR_JSON,
                    body: body.clone(),
                    headers: headers.clone(),
                    credentials: true,
                    identity: false,
                    total_timeout: true,
                    context: "kick-off",
                })
                .await;
            let resp = match result {
                Ok(r) => r,
                Err(BulkError::Transport { .. }) if attempt < inner.cfg.retries => {
                    tokio::time::sleep(inner.backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = resp.status();
            if status == StatusCode::ACCEPTED {
                let loc = resp
                    .headers()
                    .get(CONTENT_LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| BulkError::Protocol {
                        url: redact_url(url.as_str()),
                        message: "202 Accepted without Content-Location".to_owned(),
                    })?;
                let status_url = url.join(loc).map_err(|_| BulkError::Protocol {
                    url: redact_url(url.as_str()),
                    message: "invalid Content-Location".to_owned(),
                })?;
                return Ok(KickOff::Accepted {
                    status_url: status_url.to_string(),
                });
            }
            if status == StatusCode::OK {
                return Ok(KickOff::Complete(
                    read_manifest("kick-off", url.as_str(), resp).await?,
                ));
            }
            if is_retryable_status(status) && attempt < inner.cfg.retries {
                let wait = retry_after(resp.headers(), inner.cfg.poll_min(), inner.cfg.poll_max())
                    .unwrap_or_else(|| inner.backoff(attempt));
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return Err(server_error("kick-off", url.as_str(), resp).await);
        }
    }

    /// One status request. `404`/`410` → [`BulkError::ExportExpired`]; `429` counts as in
    /// progress (with backoff); other errors → [`BulkError::Server`] / transport errors (the
    /// caller decides about retrying; [`BulkClient::wait_for_manifest`] does).
    pub async fn poll_once(&self, status_url: &str, attempt: u32) -> Result<PollStatus, BulkError> {
        let inner = &self.inner;
        let resp = inner
            .execute(Req::fhir_json(Method::GET, status_url, "status poll"))
            .await?;
        let status = resp.status();
        let (min, max) = (inner.cfg.poll_min(), inner.cfg.poll_max());
        match status {
            StatusCode::OK => Ok(PollStatus::Complete(
                read_manifest("status poll", status_url, resp).await?,
            )),
            StatusCode::ACCEPTED => {
                let progress = resp
                    .headers()
                    .get("x-progress")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let wait = retry_after(resp.headers(), min, max)
                    .unwrap_or_else(|| backoff(attempt, min, min, max));
                Ok(PollStatus::InProgress { progress, wait })
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let own = backoff(attempt, min, min, max);
                let wait = retry_after(resp.headers(), min, max).map_or(own, |r| r.max(own));
                Ok(PollStatus::InProgress {
                    progress: None,
                    wait,
                })
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => Err(BulkError::ExportExpired {
                url: redact_url(status_url),
                status: status.as_u16(),
            }),
            _ => Err(server_error("status poll", status_url, resp).await),
        }
    }

    /// Polls the status URL until the export completes, then fetches and merges all manifest
    /// pages. Waits per `Retry-After` (seconds, HTTP date or epoch timestamp, clamped to
    /// `[poll_min_secs, poll_max_secs]`) or our own exponential backoff with jitter; retries
    /// 5xx and broken connections up to `retries` times in a row.
    pub async fn wait_for_manifest(&self, status_url: &str) -> Result<Manifest, BulkError> {
        let inner = &self.inner;
        let redacted = redact_url(status_url);
        inner.progress.send_modify(|p| {
            *p = PollProgress {
                status_url: Some(redacted.clone()),
                ..PollProgress::default()
            }
        });
        let mut in_progress_polls = 0u32;
        let mut failures = 0u32;
        loop {
            inner.progress.send_modify(|p| p.polls += 1);
            match self.poll_once(status_url, in_progress_polls).await {
                Ok(PollStatus::Complete(m)) => {
                    let m = self.follow_pages(m).await?;
                    inner.progress.send_modify(|p| {
                        p.complete = true;
                        p.next_wait = None;
                    });
                    return Ok(m);
                }
                Ok(PollStatus::InProgress { progress, wait }) => {
                    failures = 0;
                    in_progress_polls += 1;
                    inner.progress.send_modify(|p| {
                        if progress.is_some() {
                            p.progress = progress;
                        }
                        p.next_wait = Some(wait);
                    });
                    tokio::time::sleep(wait).await;
                }
                Err(e) if is_transient(&e) && failures < inner.cfg.retries => {
                    let wait = inner.backoff(failures);
                    failures += 1;
                    inner.progress.send_modify(|p| p.next_wait = Some(wait));
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The complete manifest for a kick-off result: polls when needed, merges paged manifests.
    pub async fn manifest(&self, kickoff: &KickOff) -> Result<Manifest, BulkError> {
        match kickoff {
            KickOff::Accepted { status_url } => self.wait_for_manifest(status_url).await,
            KickOff::Complete(m) => self.follow_pages(m.clone()).await,
        }
    }

    /// Follows `link[relation=next]` and merges the pages into one manifest.
    async fn follow_pages(&self, mut manifest: Manifest) -> Result<Manifest, BulkError> {
        let mut seen = std::collections::HashSet::new();
        while let Some(next) = manifest.next_link().map(str::to_owned) {
            if !seen.insert(next.clone()) || seen.len() > MAX_MANIFEST_PAGES {
                return Err(BulkError::Protocol {
                    url: redact_url(&next),
                    message: "manifest next links loop".to_owned(),
                });
            }
            let page = self.fetch_page(&next).await?;
            manifest.merge_page(page);
        }
        Ok(manifest)
    }

    async fn fetch_page(&self, url: &str) -> Result<Manifest, BulkError> {
        let inner = &self.inner;
        let mut attempt = 0;
        loop {
            let result = inner
                .execute(Req::fhir_json(Method::GET, url, "manifest page"))
                .await;
            let err = match result {
                Ok(resp) if resp.status() == StatusCode::OK => {
                    return read_manifest("manifest page", url, resp).await;
                }
                Ok(resp)
                    if resp.status() == StatusCode::NOT_FOUND
                        || resp.status() == StatusCode::GONE =>
                {
                    return Err(BulkError::ExportExpired {
                        url: redact_url(url),
                        status: resp.status().as_u16(),
                    });
                }
                Ok(resp) => server_error("manifest page", url, resp).await,
                Err(e) => e,
            };
            if is_transient(&err) && attempt < inner.cfg.retries {
                tokio::time::sleep(inner.backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            return Err(err);
        }
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

/// Transport errors and 5xx answers are worth retrying.
pub(crate) fn is_transient(e: &BulkError) -> bool {
    match e {
        BulkError::Transport { .. } => true,
        BulkError::Server { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

async fn read_manifest(
    context: &'static str,
    url: &str,
    resp: reqwest::Response,
) -> Result<Manifest, BulkError> {
    let bytes = resp.bytes().await.map_err(|e| transport(context, url, e))?;
    serde_json::from_slice(&bytes).map_err(|e| BulkError::Protocol {
        url: redact_url(url),
        message: format!("invalid manifest JSON: {e}"),
    })
}
