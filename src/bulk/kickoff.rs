//! The kick-off request: its URL, the query parameters (`GET`) or `Parameters` body (`POST`),
//! and [`BulkClient::kick_off`] with its retries.

use reqwest::header::{CONTENT_LOCATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::auth::redact_url;
use crate::bulk::poll::read_manifest;
use crate::bulk::request::{FHIR_JSON, Req, is_retryable_status, server_error};
use crate::bulk::retry::retry_after;
use crate::bulk::{BulkClient, BulkError, ExportLevel, KickOffMethod, Manifest};

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

impl BulkClient {
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
        // One parameter per filter: a filter's own commas (`gender=female,other`) would
        // change its meaning if the filters were joined with commas.
        for filter in &cfg.type_filter {
            p.push(("_typeFilter", filter.clone()));
        }
        if let Some(allow) = cfg.allow_partial_manifests {
            p.push(("allowPartialManifests", allow.to_string()));
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
        if let Some(allow) = cfg.allow_partial_manifests {
            params.push(json!({"name": "allowPartialManifests", "valueBoolean": allow}));
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
                Err(e @ BulkError::Transport { .. }) if attempt < inner.cfg.retries => {
                    let wait = inner.backoff(attempt);
                    attempt += 1;
                    retry_line(
                        &format!("failed: {}", e.short()),
                        wait,
                        attempt,
                        inner.cfg.retries,
                    );
                    tokio::time::sleep(wait).await;
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
                attempt += 1;
                retry_line(
                    &format!("answered HTTP {status}"),
                    wait,
                    attempt,
                    inner.cfg.retries,
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(server_error("kick-off", url.as_str(), resp).await);
        }
    }
}

/// The log line of a kick-off retried after `what` happened (`answered HTTP 429 Too Many
/// Requests`, `failed: <transport error>`): a wait of minutes is never silent.
fn retry_line(what: &str, wait: std::time::Duration, attempt: u32, retries: u32) {
    tracing::warn!(
        "kick-off {what}: retrying in {:.1} s (retry {attempt} of {retries})",
        wait.as_secs_f64()
    );
}
