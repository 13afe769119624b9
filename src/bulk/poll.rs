//! Status polling ([`BulkClient::poll_once`], [`BulkClient::wait_for_manifest`]) with its
//! progress channel, and fetching and merging paged manifests.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::auth::redact_url;
use crate::bulk::request::{Req, is_transient, server_error, transport};
use crate::bulk::retry::{backoff, retry_after};
use crate::bulk::{BulkClient, BulkError, KickOff, Manifest};

const MAX_MANIFEST_PAGES: usize = 100_000;

/// One status poll's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollStatus {
    /// Still running (`202`, or `429`).
    InProgress {
        /// `X-Progress` header, if any.
        progress: Option<String>,
        /// How long to wait before the next poll (clamped `Retry-After`, or our backoff).
        wait: Duration,
        /// The answer's HTTP status: `202`, or `429` (asked to slow down).
        status: u16,
    },
    /// Done: the manifest (first page only).
    Complete(Manifest),
}

/// Progress of the export being polled, published through a [`watch`](tokio::sync::watch)
/// channel ([`BulkClient::progress`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PollProgress {
    /// Redacted status URL being polled.
    pub status_url: Option<String>,
    /// Last `X-Progress` header seen.
    pub progress: Option<String>,
    /// Number of status requests answered (or failed); each update of the channel that
    /// raises it carries that poll's own status and wait.
    pub polls: u32,
    /// HTTP status of the last answer (`202`, `429`, a `5xx`), if it had one.
    pub status: Option<u16>,
    /// Why the last poll failed, when it is retried (a `5xx` answer or no answer).
    pub problem: Option<String>,
    /// Wait before the next poll.
    pub next_wait: Option<Duration>,
    /// True once the manifest was received.
    pub complete: bool,
}

impl BulkClient {
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
                Ok(PollStatus::InProgress {
                    progress,
                    wait,
                    status: 202,
                })
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let own = backoff(attempt, min, min, max);
                let wait = retry_after(resp.headers(), min, max).map_or(own, |r| r.max(own));
                Ok(PollStatus::InProgress {
                    progress: None,
                    wait,
                    status: 429,
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
            // One update per answered poll, after the answer: the poll count, status and
            // wait a watcher sees always belong to the same poll.
            match self.poll_once(status_url, in_progress_polls).await {
                Ok(PollStatus::Complete(m)) => {
                    inner.progress.send_modify(|p| {
                        p.polls += 1;
                        p.status = Some(200);
                        p.problem = None;
                        p.complete = true;
                        p.next_wait = None;
                    });
                    return self.follow_pages(m).await;
                }
                Ok(PollStatus::InProgress {
                    progress,
                    wait,
                    status,
                }) => {
                    failures = 0;
                    in_progress_polls += 1;
                    inner.progress.send_modify(|p| {
                        p.polls += 1;
                        p.status = Some(status);
                        p.problem = None;
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
                    inner.progress.send_modify(|p| {
                        p.polls += 1;
                        p.status = e.status();
                        p.problem = Some(e.short());
                        p.next_wait = Some(wait);
                    });
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
}

pub(super) async fn read_manifest(
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
