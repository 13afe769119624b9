//! The shared HTTP request helper: [`Req`] and [`Inner::execute`] add the credentials (to the
//! original scheme+host+port only), re-authenticate once after a `401` and follow redirects by
//! hand. Also the helpers that turn transport failures and error answers into [`BulkError`],
//! and which of them are worth retrying.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Method, StatusCode, Url};

use crate::auth::redact_url;
use crate::bulk::BulkError;
use crate::bulk::client::Inner;
use crate::bulk::manifest::body_message;
use crate::bulk::retry::backoff;

pub(super) const FHIR_JSON: &str = "application/fhir+json";
const MAX_REDIRECTS: usize = 10;

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
    pub(super) fn fhir_json(method: Method, url: &'a str, context: &'static str) -> Self {
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

pub(super) fn is_retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

/// Transport errors and 5xx answers are worth retrying.
pub(crate) fn is_transient(e: &BulkError) -> bool {
    match e {
        BulkError::Transport { .. } => true,
        BulkError::Server { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
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
