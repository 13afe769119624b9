//! Configuration of the Bulk Data client.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::HumaneDuration;
use crate::auth::AuthConfig;

/// A key of `[sources.bulk]` with a value that makes no sense, and why.
#[derive(Debug, thiserror::Error)]
#[error("`{key}`: {reason}")]
pub struct BulkConfigError {
    /// The key, under `[sources.bulk]`.
    pub key: &'static str,
    /// What is wrong and what is allowed.
    pub reason: String,
}

/// Which `$export` operation is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExportLevel {
    /// `[base]/$export` (default).
    #[default]
    System,
    /// `[base]/Patient/$export`.
    Patient,
    /// `[base]/Group/<group_id>/$export`.
    Group,
}

/// HTTP method of the kick-off request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum KickOffMethod {
    /// `GET` with the parameters in the query string (default).
    #[default]
    Get,
    /// `POST` with a FHIR `Parameters` resource as body.
    Post,
}

/// What a run does when the export's `error[]` files report issues of severity `error`
/// or `fatal` (parts the server could not export, such as "Failed to export
/// Claim.ndjson"). Issues of severity `warning` or `information` never change the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnServerErrors {
    /// Commit what arrived (it is valid) but keep the checkpoint where it was and forget
    /// the export, so the next run asks again from the same `_since`; the run is partial
    /// (exit status 3) and its report names the failed parts (default).
    #[default]
    HoldCheckpoint,
    /// Commit nothing and fail the run (the export is cancelled on the server); the next
    /// run asks again from the same `_since`.
    Fail,
    /// Record the issues in the run manifest and move the checkpoint on as if the export
    /// were complete: what failed is not asked for again.
    Ignore,
}

impl OnServerErrors {
    /// The value as written in `pipeline.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Self::HoldCheckpoint => "hold-checkpoint",
            Self::Fail => "fail",
            Self::Ignore => "ignore",
        }
    }
}

fn default_max_export_wait() -> HumaneDuration {
    HumaneDuration(Duration::from_secs(6 * 3600))
}
fn default_parallel_downloads() -> usize {
    4
}
fn default_poll_min_secs() -> f64 {
    1.0
}
fn default_poll_max_secs() -> f64 {
    300.0
}
fn default_retries() -> u32 {
    5
}
fn default_retry_base_secs() -> f64 {
    1.0
}
fn default_request_timeout_secs() -> f64 {
    60.0
}

/// Bulk Data client configuration. Repeated values of `_type`, `_elements` and `patient`
/// are sent joined with commas (GET) or as repeated parameters (POST); `_typeFilter` is
/// always one parameter per entry (a filter may itself hold commas).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkConfig {
    /// FHIR base URL, e.g. `https://ehr.example.org/fhir`. Required, no default.
    pub base_url: String,
    /// Export level: `system`, `patient` or `group`. Default: `system`.
    #[serde(default)]
    pub level: ExportLevel,
    /// Group id, required when `level = "group"`. Default: none.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Kick-off method, `GET` or `POST`. Default: `GET`.
    #[serde(default)]
    pub method: KickOffMethod,
    /// Full kick-off URL overriding the one derived from `base_url` and `level` (for servers
    /// such as 1upHealth whose export endpoint is `.../bulk-data/r4/$export`). Default: none.
    #[serde(default)]
    pub export_url: Option<String>,
    /// `_type`: resource types to export. Default: empty (all types the server exports).
    #[serde(default)]
    pub types: Vec<String>,
    /// `_since` of the first export of a source, before it has a checkpoint (a configured
    /// start; later runs send the checkpoint instead). Default: none (a full export).
    #[serde(default)]
    pub since: Option<String>,
    /// `_until`: only resources changed before this instant. Default: none.
    #[serde(default)]
    pub until: Option<String>,
    /// `_typeFilter` queries such as `Observation?status=final`, each sent as its own
    /// `_typeFilter` parameter (Bulk Data 2.0), so a filter keeps its commas
    /// (`Patient?gender=female,other`). Default: empty.
    #[serde(default)]
    pub type_filter: Vec<String>,
    /// `allowPartialManifests`: `true` lets the server split the manifest into pages
    /// (followed and merged here) and list files before all are ready (the run still
    /// waits for the complete export); `false` asks it not to. Default: not sent (the
    /// server's default, no partial manifests).
    #[serde(default)]
    pub allow_partial_manifests: Option<bool>,
    /// `_elements`: elements to include. Default: empty (all elements).
    #[serde(default)]
    pub elements: Vec<String>,
    /// `patient`: references such as `Patient/123` limiting a patient or group export.
    /// Default: empty.
    #[serde(default)]
    pub patient: Vec<String>,
    /// How many files the caller downloads at once. Default: 4.
    #[serde(default = "default_parallel_downloads")]
    pub parallel_downloads: usize,
    /// Shortest wait between two status polls, in seconds; also the lower clamp of
    /// `Retry-After` and the first step of our own backoff. Default: 1.0. Tests lower it.
    #[serde(default = "default_poll_min_secs")]
    pub poll_min_secs: f64,
    /// Longest wait for one status poll, in seconds; upper clamp of `Retry-After` and of the
    /// backoff. Default: 300 (5 min).
    #[serde(default = "default_poll_max_secs")]
    pub poll_max_secs: f64,
    /// How often a failed request (5xx, 429 on download, broken connection) is retried before
    /// giving up. Default: 5.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First retry delay in seconds, doubled per attempt (with jitter) up to `poll_max_secs`.
    /// Default: 1.0.
    #[serde(default = "default_retry_base_secs")]
    pub retry_base_secs: f64,
    /// The longest wait from the kick-off to the complete manifest (for a resumed
    /// export, from its original kick-off): past it the export is cancelled on the
    /// server (`DELETE`), forgotten, and the run fails (the daemon tries again at the
    /// next firing). Seconds (`21600`) or a duration (`"6h"`, `"90m"`, `"1h30m"`).
    /// Default: `"6h"`.
    #[serde(default = "default_max_export_wait")]
    pub max_export_wait: HumaneDuration,
    /// Send `DELETE` to the status URL after all files were downloaded. Default: false.
    #[serde(default)]
    pub delete_after_download: bool,
    /// What a run does when the server reports parts of the export as failed (`error[]`
    /// issues of severity `error` or `fatal`): `"hold-checkpoint"` (commit what arrived,
    /// keep the checkpoint, exit 3), `"fail"` (commit nothing) or `"ignore"` (move on).
    /// See [`OnServerErrors`]. Default: `"hold-checkpoint"`.
    #[serde(default)]
    pub on_server_errors: OnServerErrors,
    /// Timeout of one request in seconds (kick-off, poll, token; for file downloads it is the
    /// longest silence between two chunks). Default: 60.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: f64,
    /// Authentication. Default: `{ type = "none" }`.
    #[serde(default)]
    pub auth: AuthConfig,
}

impl BulkConfig {
    /// A configuration with every field at its default and the given base URL.
    pub fn new(base_url: impl Into<String>) -> Self {
        BulkConfig {
            base_url: base_url.into(),
            level: ExportLevel::default(),
            group_id: None,
            method: KickOffMethod::default(),
            export_url: None,
            types: Vec::new(),
            since: None,
            until: None,
            type_filter: Vec::new(),
            allow_partial_manifests: None,
            elements: Vec::new(),
            patient: Vec::new(),
            parallel_downloads: default_parallel_downloads(),
            poll_min_secs: default_poll_min_secs(),
            poll_max_secs: default_poll_max_secs(),
            retries: default_retries(),
            retry_base_secs: default_retry_base_secs(),
            max_export_wait: default_max_export_wait(),
            delete_after_download: false,
            on_server_errors: OnServerErrors::default(),
            request_timeout_secs: default_request_timeout_secs(),
            auth: AuthConfig::None,
        }
    }

    /// Checks values that serde cannot (group id present, positive durations, parseable
    /// URLs); an error names the key.
    pub fn validate(&self) -> Result<(), BulkConfigError> {
        let bad = |key, reason: &str| {
            Err(BulkConfigError {
                key,
                reason: reason.to_owned(),
            })
        };
        if reqwest::Url::parse(&self.base_url).is_err() {
            return bad("base_url", "not a valid absolute URL");
        }
        if let Some(u) = &self.export_url
            && reqwest::Url::parse(u).is_err()
        {
            return bad("export_url", "not a valid absolute URL");
        }
        if self.level == ExportLevel::Group
            && self.group_id.as_deref().is_none_or(|g| g.trim().is_empty())
        {
            return bad("group_id", "level = \"group\" needs group_id");
        }
        if self.level != ExportLevel::Group && self.group_id.is_some() {
            return bad("group_id", "only allowed with level = \"group\"");
        }
        for (key, v) in [
            ("poll_min_secs", self.poll_min_secs),
            ("poll_max_secs", self.poll_max_secs),
            ("retry_base_secs", self.retry_base_secs),
            ("request_timeout_secs", self.request_timeout_secs),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(key, "must be a positive number");
            }
        }
        if self.poll_max_secs < self.poll_min_secs {
            return bad("poll_max_secs", "must not be below poll_min_secs");
        }
        if self.parallel_downloads == 0 {
            return bad("parallel_downloads", "must be at least 1");
        }
        Ok(())
    }

    pub(crate) fn poll_min(&self) -> Duration {
        Duration::from_secs_f64(self.poll_min_secs)
    }
    pub(crate) fn poll_max(&self) -> Duration {
        Duration::from_secs_f64(self.poll_max_secs)
    }
    pub(crate) fn retry_base(&self) -> Duration {
        Duration::from_secs_f64(self.retry_base_secs)
    }
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: BulkConfig = serde_json::from_str(r#"{"base_url":"http://x/fhir"}"#).expect("parse");
        assert_eq!(c, BulkConfig::new("http://x/fhir"));
        assert!(serde_json::from_str::<BulkConfig>(r#"{"base_url":"http://x","nope":1}"#).is_err());
        let g: BulkConfig =
            serde_json::from_str(r#"{"base_url":"http://x","level":"group","method":"POST"}"#)
                .expect("parse");
        assert!(g.validate().is_err());
    }
}
