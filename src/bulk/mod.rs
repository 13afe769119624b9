//! FHIR Bulk Data Access (IG 2.0) client: kick-off, status polling, manifests, streaming
//! downloads with resume, cancellation.
//!
//! This module only re-exports; see [`BulkClient`] for the entry point.

mod client;
mod config;
mod download;
mod duration;
mod error;
mod kickoff;
mod manifest;
mod poll;
mod request;
mod retry;

pub use client::BulkClient;
pub use config::{BulkConfig, BulkConfigError, ExportLevel, KickOffMethod, OnServerErrors};
pub use duration::HumaneDuration;
pub use error::BulkError;
pub use kickoff::KickOff;
pub use manifest::{
    DeletedResource, Manifest, ManifestFile, ManifestLink, is_failure, outcome_messages,
};
pub use poll::{PollProgress, PollStatus};
pub use retry::parse_retry_after;
