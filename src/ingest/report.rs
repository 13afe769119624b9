//! What the readers and decoders report besides data: rejected lines (to the
//! quarantine and the manifest's totals) and files read (to the log and the totals).

use std::sync::{Arc, mpsc::Receiver};

use super::{IngestError, Progress};
use crate::{
    decode::{Rejection, ViewFailure},
    input::ReadTotals,
    sink::Quarantine,
    warehouse::{InputTotals, RejectedTotals, ViewErrors},
};

/// Rejections kept in the run manifest (all are in the quarantine).
const FIRST_REJECTIONS: usize = 5;

/// A report of a reader or decoder thread.
pub(super) enum Report {
    /// A line that was not ingested.
    Rejected {
        file: Arc<str>,
        line: u64,
        rejection: Rejection,
        sample: Vec<u8>,
    },
    /// A file read to its end.
    FileRead { file: Arc<str>, totals: ReadTotals },
    /// Lines a decoder skipped (`Parameters` headers of export files).
    Skipped(u64),
    /// A resource whose view rows could not be computed.
    ViewFailed(ViewFailure),
}

/// What the reports add up to.
#[derive(Debug, Default)]
pub(super) struct Collected {
    pub rejected: RejectedTotals,
    pub input: InputTotals,
    pub view_errors: ViewErrors,
}

/// Writes rejected lines to the quarantine and counts until every sender is gone.
pub(super) fn collect_reports(
    reports: Receiver<Report>,
    mut quarantine: Quarantine,
    progress: &Progress,
) -> Result<Collected, IngestError> {
    let mut rejected = RejectedTotals::default();
    let mut input = InputTotals::default();
    let mut view_errors = ViewErrors::default();
    for report in reports {
        match report {
            Report::ViewFailed(failure) => {
                view_errors.count += 1;
                if view_errors.first.len() < FIRST_REJECTIONS {
                    let first = format!(
                        "{}:{}: view {}: {}",
                        failure.file, failure.line, failure.view, failure.message
                    );
                    tracing::warn!("{first}");
                    view_errors.first.push(first);
                }
            }
            Report::FileRead { file, totals } => {
                Progress::add(&progress.files_done, 1);
                input.lines += totals.lines;
                input.bytes += totals.bytes;
                input.byte_order_marks += totals.byte_order_marks;
                tracing::info!(
                    file = %file,
                    lines = totals.lines,
                    bytes = totals.bytes,
                    "read {file}: {} lines, {:.1} MB",
                    totals.lines,
                    totals.bytes as f64 / 1e6
                );
            }
            Report::Skipped(n) => input.skipped += n,
            Report::Rejected {
                file,
                line,
                rejection,
                sample,
            } => {
                rejected.lines += 1;
                *rejected
                    .by_reason
                    .entry(rejection.kind().to_owned())
                    .or_default() += 1;
                if rejected.first.len() < FIRST_REJECTIONS {
                    let first = format!("{file}:{line}: {rejection}");
                    tracing::warn!(file = %file, line, "rejected {first}");
                    rejected.first.push(first);
                }
                let prefix_only = matches!(rejection, Rejection::LineTooLong { .. });
                quarantine.write(&file, line, &rejection, &sample, prefix_only)?;
            }
        }
    }
    rejected.quarantine = quarantine.finish()?;
    Ok(Collected {
        rejected,
        input,
        view_errors,
    })
}
