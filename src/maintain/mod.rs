//! Keeping a warehouse: what it holds, tidying it, and reading it back.
//!
//! - [`status`]: the inventory by the reader's rule (committed runs, live tables,
//!   staged and replaced files, quarantine, bulk sources' checkpoints);
//! - [`cleanup`]: deleting staged and replaced files past a grace period;
//! - [`compact`]: small files of a Delta table rewritten into larger ones;
//! - [`vacuum`]: files of removed table versions and orphans deleted past a retention;
//! - [`upgrade`]: a warehouse of the manifest-only layout turned into Delta tables;
//! - [`view_run`]: a view computed over the tables already there (files, or a backfill);
//! - [`rebuild`]: Parquet back to NDJSON (`to-ndjson`, and the proof that nothing is
//!   lost).

pub mod cleanup;
pub mod compact;
pub mod rebuild;
pub mod status;
pub mod upgrade;
pub mod vacuum;
pub mod view_run;
