//! Keeping a warehouse: what it holds, tidying it, and reading it back.
//!
//! - [`status`]: the inventory by the reader's rule (committed runs, live tables,
//!   staged and replaced files, quarantine, bulk sources' checkpoints);
//! - [`cleanup`]: deleting staged and replaced files past a grace period;
//! - [`compact`]: small files of a table rewritten into larger ones, as a committed run;
//! - [`rebuild`]: Parquet back to NDJSON (`to-ndjson`, and the proof that nothing is
//!   lost).

pub mod cleanup;
pub mod compact;
pub mod rebuild;
pub mod status;
