//! Counters of the work in progress, for a live display: the runs add to them, the
//! command line's progress bars read them. One per invocation, passed in the run context.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the runs of this invocation have done so far.
#[derive(Debug, Default)]
pub struct Progress {
    /// NDJSON bytes read (after decompression).
    pub bytes: AtomicU64,
    /// Lines decoded (or rejected).
    pub lines: AtomicU64,
    /// Input files read to their end.
    pub files_done: AtomicU64,
    /// Input files of the runs started.
    pub files_total: AtomicU64,
}

/// A snapshot of [`Progress`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// NDJSON bytes read.
    pub bytes: u64,
    /// Lines decoded.
    pub lines: u64,
    /// Files done.
    pub files_done: u64,
    /// Files known.
    pub files_total: u64,
}

impl Progress {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProgressSnapshot {
            bytes: get(&self.bytes),
            lines: get(&self.lines),
            files_done: get(&self.files_done),
            files_total: get(&self.files_total),
        }
    }
}
