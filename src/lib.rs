//! `fhir-ingest`: FHIR R4 NDJSON (Bulk Data `$export` output) to stable, lossless, typed
//! Parquet, one table per resource type.
//!
//! The crate is organised by the concepts of the domain, and data flows one way:
//!
//! ```text
//! leaves     schema  decode  view  temporal  auth  bulk  schedule  failpoint  message
//! bytes      input                       files and downloads as chunks of lines
//! storage    warehouse ◄── sink          layout, manifests, commits; Parquet files
//! one run    ingest                      read -> decode -> write -> commit (a RunSpec)
//! sources    source                      files / bulk: build the RunSpec, own checkpoints
//! upkeep     maintain                    status, cleanup, compact, rebuild
//! wiring     config  app                 pipeline.toml; run, daemon, metrics, signals
//! ```
//!
//! - [`schema`]: the committed table schema of every resource type and its generator;
//! - [`decode`]: NDJSON lines to Arrow record batches through simd-json's tape;
//! - [`temporal`]: FHIR instants and dates, and the present time;
//! - [`auth`]: credentials for FHIR servers (none, bearer, 1upHealth headers, SMART
//!   Backend Services), secrets from the environment or files;
//! - [`bulk`]: the FHIR Bulk Data `$export` client (kick-off, polling, manifests, downloads);
//! - [`schedule`]: cron schedules and the loop that fires sources on them;
//! - [`failpoint`]: test-only crash points (`FHIR_INGEST_FAIL_AT`);
//! - [`message`]: error chains and the scrubbing of secrets from every text that leaves
//!   the process;
//! - [`view`]: SQL on FHIR v2 ViewDefinitions, evaluated on the decoder's tape;
//! - [`input`]: files on disk and downloads (plain or gzip) as bounded chunks of lines;
//! - [`warehouse`]: local or object-store warehouses: layout, run manifests, commits;
//! - [`sink`]: Parquet files and the quarantine written through `object_store`;
//! - [`delta`]: Delta Lake logs (reader 1/writer 2) by hand: commits, checkpoints, vacuum;
//! - [`commit`]: a run's files into the Delta tables: history appended, current and
//!   views merged;
//! - [`ingest`]: one run, wiring readers, decoders and writers with bounded channels;
//! - [`source`]: the `files` and `bulk` sources and the state of incremental ones;
//! - [`maintain`]: status, cleanup, compaction, and Parquet back to NDJSON;
//! - [`config`]: `pipeline.toml`, parsed once and validated into typed values;
//! - [`app`]: one run of a configured source, the daemon, metrics and signals.

pub mod app;
pub mod auth;
pub mod bulk;
pub mod commit;
pub mod config;
pub mod decode;
pub mod delta;
pub mod failpoint;
pub mod ingest;
pub mod input;
pub mod maintain;
pub mod message;
pub mod schedule;
pub mod schema;
pub mod sink;
pub mod source;
pub mod temporal;
pub mod view;
pub mod warehouse;
