//! Streaming file downloads with resume, and the `error[]` / `deleted[]` file helpers.

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use reqwest::header::{CONTENT_ENCODING, CONTENT_RANGE, HeaderMap, HeaderValue, RANGE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::auth::redact_url;
use crate::bulk::client::Inner;
use crate::bulk::manifest::deleted_from_bundle;
use crate::bulk::request::{Req, is_transient, server_error, transport};
use crate::bulk::retry::retry_after;
use crate::bulk::{BulkClient, BulkError, DeletedResource, outcome_messages};

const NDJSON: &str = "application/fhir+ndjson";

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

struct State {
    inner: std::sync::Arc<Inner>,
    url: String,
    credentials: bool,
    /// Bytes handed to the consumer so far.
    delivered: u64,
    /// Bytes of the current response still to drop (a restart that answered 200).
    skip: u64,
    body: Option<ByteStream>,
    /// Consecutive failures without progress.
    failures: u32,
    done: bool,
}

/// Start of a `Content-Range: bytes a-b/c` header.
fn content_range_start(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// Total of a `Content-Range: bytes */c` (or `a-b/c`) header.
fn content_range_total(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    v.rsplit('/').next()?.trim().parse().ok()
}

fn is_encoded(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("identity"))
}

impl State {
    /// Opens (or re-opens at the delivered offset) the response body. Returns an error that is
    /// retryable per [`is_transient`] or final.
    async fn open(&mut self) -> Result<(), BulkError> {
        let resume = self.delivered > 0;
        let mut headers = HeaderMap::new();
        if resume {
            // Byte offsets refer to the decoded file, so ask for the identity encoding.
            let range =
                HeaderValue::from_str(&format!("bytes={}-", self.delivered)).map_err(|e| {
                    BulkError::Protocol {
                        url: redact_url(&self.url),
                        message: e.to_string(),
                    }
                })?;
            headers.insert(RANGE, range);
            headers.insert(
                reqwest::header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        let resp = self
            .inner
            .execute(Req {
                method: Method::GET,
                url: &self.url,
                accept: NDJSON,
                body: None,
                headers,
                credentials: self.credentials,
                identity: resume,
                total_timeout: false,
                context: "download",
            })
            .await?;
        let status = resp.status();
        match status {
            StatusCode::PARTIAL_CONTENT if resume && !is_encoded(resp.headers()) => {
                let start = content_range_start(resp.headers()).unwrap_or(self.delivered);
                if start > self.delivered {
                    return Err(BulkError::Protocol {
                        url: redact_url(&self.url),
                        message: format!(
                            "asked for bytes from {} but got a range from {start}",
                            self.delivered
                        ),
                    });
                }
                self.skip = self.delivered - start;
                self.body = Some(Box::pin(resp.bytes_stream()));
                Ok(())
            }
            StatusCode::OK | StatusCode::PARTIAL_CONTENT if resume => {
                // Range ignored (or answered with a content encoding we did not ask for):
                // download the whole file again, decoded, and drop what was delivered already.
                drop(resp);
                let resp = self
                    .inner
                    .execute(Req {
                        method: Method::GET,
                        url: &self.url,
                        accept: NDJSON,
                        body: None,
                        headers: HeaderMap::new(),
                        credentials: self.credentials,
                        identity: false,
                        total_timeout: false,
                        context: "download",
                    })
                    .await?;
                if resp.status() != StatusCode::OK {
                    return Err(self.status_error(resp).await);
                }
                self.skip = self.delivered;
                self.body = Some(Box::pin(resp.bytes_stream()));
                Ok(())
            }
            StatusCode::RANGE_NOT_SATISFIABLE
                if resume && content_range_total(resp.headers()) == Some(self.delivered) =>
            {
                // The connection broke after the last byte: nothing is missing.
                self.skip = 0;
                self.body = Some(Box::pin(futures::stream::empty()));
                Ok(())
            }
            StatusCode::OK if !resume => {
                self.skip = 0;
                self.body = Some(Box::pin(resp.bytes_stream()));
                Ok(())
            }
            _ => Err(self.status_error(resp).await),
        }
    }

    fn status_error(
        &self,
        resp: reqwest::Response,
    ) -> impl Future<Output = BulkError> + Send + 'static {
        let inner = self.inner.clone();
        let url = self.url.clone();
        async move {
            let status = resp.status();
            if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
                return BulkError::FileGone {
                    url: redact_url(&url),
                    status: status.as_u16(),
                };
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                // Honour Retry-After before the retry.
                if let Some(wait) =
                    retry_after(resp.headers(), inner.cfg.poll_min(), inner.cfg.poll_max())
                {
                    tokio::time::sleep(wait).await;
                }
            }
            server_error("download", &url, resp).await
        }
    }

    /// Next chunk for the consumer, `Ok(None)` at the end of the file.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, BulkError> {
        loop {
            if self.body.is_none()
                && let Err(e) = self.open().await
            {
                self.retry_or_fail(e).await?;
                continue;
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            match body.next().await {
                None => return Ok(None),
                Some(Ok(mut chunk)) => {
                    if self.skip > 0 {
                        let n = (self.skip.min(chunk.len() as u64)) as usize;
                        self.skip -= n as u64;
                        let _ = chunk.split_to(n);
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    self.failures = 0;
                    self.delivered += chunk.len() as u64;
                    return Ok(Some(chunk));
                }
                Some(Err(e)) => {
                    self.body = None;
                    self.retry_or_fail(transport("download", &self.url, e))
                        .await?;
                }
            }
        }
    }

    async fn retry_or_fail(&mut self, e: BulkError) -> Result<(), BulkError> {
        self.body = None;
        if is_transient(&e) && self.failures < self.inner.cfg.retries {
            let wait = self.inner.backoff(self.failures);
            self.failures += 1;
            tokio::time::sleep(wait).await;
            Ok(())
        } else {
            Err(e)
        }
    }
}

impl BulkClient {
    /// Streams one file's bytes (never the whole file in memory). Sends
    /// `Accept: application/fhir+ndjson`, accepts gzip, follows redirects without forwarding
    /// credentials to another scheme+host+port, sends credentials only when
    /// `requires_access_token` (see [`crate::bulk::Manifest::requires_access_token`]), retries
    /// 5xx, 429 and broken connections with backoff and resumes with `Range: bytes=N-` (or
    /// re-downloads and skips N bytes when the server ignores ranges): every byte is yielded
    /// exactly once. After an error item the stream ends.
    pub fn download(
        &self,
        url: &str,
        requires_access_token: bool,
    ) -> impl Stream<Item = Result<Bytes, BulkError>> + Send + 'static {
        let state = State {
            inner: self.inner.clone(),
            url: url.to_owned(),
            credentials: requires_access_token,
            delivered: 0,
            skip: 0,
            body: None,
            failures: 0,
            done: false,
        };
        futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            match st.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), st)),
                Ok(None) => None,
                Err(e) => {
                    st.done = true;
                    Some((Err(e), st))
                }
            }
        })
    }

    /// Streams an NDJSON file and calls `f` with each non-empty line parsed as JSON.
    async fn for_each_json_line(
        &self,
        url: &str,
        requires_access_token: bool,
        mut f: impl FnMut(Value),
    ) -> Result<(), BulkError> {
        let stream = self.download(url, requires_access_token);
        futures::pin_mut!(stream);
        let mut buf = BytesMut::new();
        let mut line_no = 0usize;
        let mut handle = |line: &[u8], line_no: usize| -> Result<(), BulkError> {
            let line = line.trim_ascii();
            if line.is_empty() {
                return Ok(());
            }
            let v = serde_json::from_slice(line).map_err(|e| BulkError::Body {
                url: redact_url(url),
                message: format!("line {line_no}: invalid JSON: {e}"),
            })?;
            f(v);
            Ok(())
        };
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line = buf.split_to(pos + 1);
                line_no += 1;
                handle(&line, line_no)?;
            }
        }
        handle(&buf, line_no + 1)
    }

    /// Downloads an `error[]` file (NDJSON of OperationOutcomes) and returns its issues as
    /// plain-text messages (see [`outcome_messages`]).
    pub async fn download_errors(
        &self,
        url: &str,
        requires_access_token: bool,
    ) -> Result<Vec<String>, BulkError> {
        let mut out = Vec::new();
        self.for_each_json_line(url, requires_access_token, |v| {
            out.extend(outcome_messages(&v))
        })
        .await?;
        Ok(out)
    }

    /// Downloads a `deleted[]` file (NDJSON of Bundles with `DELETE` entries) and returns the
    /// deleted resources.
    pub async fn download_deleted(
        &self,
        url: &str,
        requires_access_token: bool,
    ) -> Result<Vec<DeletedResource>, BulkError> {
        let mut out = Vec::new();
        self.for_each_json_line(url, requires_access_token, |v| {
            out.extend(deleted_from_bundle(&v))
        })
        .await?;
        Ok(out)
    }
}
