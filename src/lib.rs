//! `fhir-ingest`: FHIR R4 NDJSON (Bulk Data `$export` output) to stable, lossless, typed
//! Parquet, one table per resource type.
//!
//! The crate is organised by the concepts of the domain:
//! - [`auth`]: credentials for FHIR servers (none, bearer, 1upHealth headers, SMART
//!   Backend Services), secrets from the environment or files;
//! - [`bulk`]: the FHIR Bulk Data `$export` client (kick-off, polling, manifests, downloads);
//! - [`config`]: `pipeline.toml`, parsed once and validated into typed values;
//! - [`schema`]: the committed table schema of every resource type and its generator;
//! - [`decode`]: NDJSON lines to Arrow record batches through simd-json's tape;
//! - [`input`]: files on disk (plain or gzip) as bounded chunks of whole lines;
//! - [`sink`]: Parquet files written through `object_store`, and the quarantine;
//! - [`warehouse`]: local or object-store warehouses, their layout and the commit protocol;
//! - [`export`]: one incremental run of a `bulk` source, checkpoint to checkpoint;
//! - [`state`]: the checkpoint and in-flight export of each source, in the warehouse;
//! - [`failpoint`]: test-only crash points (`FHIR_INGEST_FAIL_AT`);
//! - [`pipeline`]: one run, wiring input, decoders and writers with bounded channels;
//! - [`rebuild`]: Parquet back to NDJSON (the proof that nothing is lost);
//! - [`status`]: what a warehouse holds by the reader's rule, and cleanup of leftovers;
//! - [`compact`]: small files of a table rewritten into larger ones, as a committed run;
//! - [`source`]: one run of a configured source, whatever its kind;
//! - [`schedule`], [`daemon`]: cron schedules, the daemon loop and its wiring;
//! - [`metrics`]: per-source counters, `/healthz` and `/metrics`.

pub mod auth;
pub mod bulk;
pub mod compact;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod export;
pub mod failpoint;
pub mod input;
pub mod metrics;
pub mod pipeline;
pub mod rebuild;
pub mod schedule;
pub mod schema;
pub mod sink;
pub mod source;
pub mod state;
pub mod status;
pub mod view;
pub mod warehouse;
