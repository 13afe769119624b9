//! What the commands tell a person: the summary of a run, of an export, of a
//! compaction, and the status of a warehouse. In text mode these go to stdout; in JSON
//! mode each line is a log event instead, so that stderr and stdout hold only JSON.

use std::collections::BTreeMap;

use fhir_ingest::{
    app::Finished,
    auth::redact_url,
    ingest::{Outcome, RunSummary},
    maintain::{
        compact::Compacted,
        status::{Leftover, Status},
    },
    message::scrub,
    source::ExportInfo,
    warehouse::TableId,
};

use super::logging::LogFormat;

/// Lines for a person: printed on stdout, or logged as events in JSON mode.
pub struct Report {
    format: LogFormat,
}

impl Report {
    /// A report in the chosen log format.
    pub fn new(format: LogFormat) -> Self {
        Self { format }
    }

    /// One line (scrubbed of secrets, as every line that leaves the process).
    pub fn line(&self, line: impl AsRef<str>) {
        let line = scrub(line.as_ref());
        match self.format {
            LogFormat::Text => println!("{line}"),
            LogFormat::Json => tracing::info!("{}", line.trim_start()),
        }
    }

    /// One line about something wrong (scrubbed of secrets).
    pub fn problem(&self, line: impl AsRef<str>) {
        let line = scrub(line.as_ref());
        match self.format {
            LogFormat::Text => println!("{line}"),
            LogFormat::Json => tracing::error!("{}", line.trim_start()),
        }
    }

    /// The summary of a source's run and its compactions.
    pub fn finished(&self, source: &str, finished: &Finished) {
        let run = &finished.run;
        if let Some(export) = &run.export {
            self.export(run.summary.as_ref(), export);
        }
        match &run.summary {
            Some(summary) => self.summary(summary),
            None => self.line(format!(
                "source {source}: cancelled before its files were read; nothing committed"
            )),
        }
        for (table, result) in &finished.compacted {
            self.compacted(table, result);
        }
    }

    fn export(&self, summary: Option<&RunSummary>, export: &ExportInfo) {
        let since = export
            .since
            .as_deref()
            .map_or("full export".to_owned(), |s| format!("changes since {s}"));
        let resumed = if export.resumed { " (resumed)" } else { "" };
        let Some(summary) = summary else {
            return self.line(format!("export: {since}{resumed}"));
        };
        let m = &summary.manifest;
        self.line(format!(
            "export of source {}: {since}{resumed}, transactionTime {}",
            m.source,
            m.transaction_time.as_deref().unwrap_or("-")
        ));
        if !m.deleted.is_empty() {
            self.line(format!(
                "  {} resources deleted on the server (listed in the run manifest)",
                m.deleted.len()
            ));
        }
        if !m.server_errors.is_empty() {
            self.line(format!(
                "  {} server issues (OperationOutcome, in the run manifest)",
                m.server_errors.len()
            ));
        }
        if m.input.skipped > 0 {
            self.line(format!(
                "  {} Parameters header lines skipped",
                m.input.skipped
            ));
        }
        if !export.server_failures.is_empty() {
            self.server_failures(&export.server_failures, &since);
            return;
        }
        match &export.checkpoint {
            Some(c) => self.line(format!(
                "  checkpoint: next run asks for changes since {}",
                c.transaction_time
            )),
            None => self.line("  checkpoint unchanged (nothing committed)"),
        }
    }

    /// The parts of an export the server could not produce, which held the checkpoint.
    fn server_failures(&self, failures: &[String], since: &str) {
        self.line(format!(
            "  INCOMPLETE: the server could not export {} parts:",
            failures.len()
        ));
        for failure in failures.iter().take(20) {
            self.line(format!("    {failure}"));
        }
        if failures.len() > 20 {
            self.line(format!(
                "    ... {} more (in the run manifest's server_errors)",
                failures.len() - 20
            ));
        }
        self.line(format!(
            "  checkpoint held (on_server_errors = \"hold-checkpoint\"): the next run asks again for the {since}"
        ));
    }

    /// The summary of an ingest run.
    pub fn summary(&self, summary: &RunSummary) {
        let m = &summary.manifest;
        let secs = summary.elapsed.as_secs_f64();
        self.line(format!("run {} (source {}):", m.run_id, m.source));
        self.line(format!(
            "  {:<28} {:>10} {:>6} {:>12}",
            "table", "rows", "files", "bytes"
        ));
        for (table, t) in &m.tables {
            let bytes: u64 = t.files.iter().map(|f| f.bytes).sum();
            self.line(format!(
                "  {:<28} {:>10} {:>6} {:>12}",
                table.to_string(),
                t.rows,
                t.files.len(),
                bytes
            ));
        }
        self.line(format!(
            "  read {} files, {} lines, {:.1} MB in {:.2} s ({:.1} MB/s); {} rows written",
            m.input.files,
            m.input.lines,
            m.input.bytes as f64 / 1e6,
            secs,
            m.input.bytes as f64 / 1e6 / secs.max(1e-9),
            m.rows()
        ));
        if m.input.byte_order_marks > 0 {
            self.line(format!(
                "  {} byte-order marks stripped from the start of files",
                m.input.byte_order_marks
            ));
        }
        if m.rejected.lines > 0 {
            let kinds: Vec<String> = m
                .rejected
                .by_reason
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            self.line(format!(
                "  rejected {} lines ({}) -> {}",
                m.rejected.lines,
                kinds.join(", "),
                m.rejected.quarantine.as_deref().unwrap_or("-")
            ));
            for first in &m.rejected.first {
                self.line(format!("    {first}"));
            }
        }
        self.line(match summary.outcome {
            Outcome::Complete | Outcome::Partial => format!("  committed _runs/{}.json", m.run_id),
            Outcome::AlreadyCommitted => format!(
                "  already committed: _runs/{}.json exists (same source and transactionTime); nothing written",
                m.run_id
            ),
            Outcome::CommittedByAnother => format!(
                "  another ingester committed _runs/{}.json first; its commit stands, this attempt's files are staged (see `cleanup`)",
                m.run_id
            ),
            Outcome::TooManyRejected => {
                "  NOT committed: too many rejected lines (quarantine.max_rejected_fraction)".into()
            }
            Outcome::Cancelled => "  NOT committed: cancelled".into(),
        });
    }

    /// What a compaction of `table` did.
    pub fn compacted(&self, table: &TableId, result: &Compacted) {
        self.line(match result {
            Compacted::Nothing => format!("compact {table}: nothing to compact"),
            Compacted::Committed {
                version,
                replaced,
                written,
                rows,
            } => format!(
                "compact {table}: {replaced} files -> {written} files, {rows} rows; committed as version {version}"
            ),
        });
    }

    /// The status of a warehouse, as text.
    pub fn status(&self, status: &Status) {
        self.line(format!("warehouse {}", status.warehouse));
        self.line("committed runs by source:");
        for (source, s) in &status.sources {
            self.line(format!(
                "  {source:<20} {:>5} runs {:>12} rows {:>8} rejected  last {} (finished {}, transactionTime {})",
                s.runs,
                s.rows,
                s.rejected_lines,
                s.last_run_id,
                s.last_finished_at,
                s.last_transaction_time.as_deref().unwrap_or("-")
            ));
        }
        if !status.exports.is_empty() {
            self.line("bulk sources:");
        }
        for (source, e) in &status.exports {
            let since = e.checkpoint.as_ref().map_or(
                "none: the next run is a full export".to_owned(),
                |c| {
                    format!(
                        "#{} at transactionTime {} (run {})",
                        e.checkpoint_seq, c.transaction_time, c.run_id
                    )
                },
            );
            self.line(format!("  {source:<20} checkpoint {since}"));
            if let Some(f) = &e.in_flight {
                self.line(format!(
                    "  {:<20} export in flight since {} ({}), resumed by the next run",
                    "",
                    f.kicked_off_at,
                    redact_url(&f.status_url)
                ));
            }
        }
        self.line(format!("compaction runs: {}", status.compactions));
        self.line("tables (live files):");
        for (table, t) in &status.tables {
            self.line(format!(
                "  {:<28} {:>6} files {:>12} rows {:>14} bytes",
                table.to_string(),
                t.files,
                t.rows,
                t.bytes
            ));
        }
        let bytes = |l: &[Leftover]| l.iter().map(|x| x.bytes).sum::<u64>();
        self.line(format!(
            "staged files (in no table: uncommitted attempts, or removed files whose \
             tombstones expired): {} ({} bytes)",
            status.staged.len(),
            bytes(&status.staged)
        ));
        let mut by_run: BTreeMap<&str, usize> = BTreeMap::new();
        for leftover in &status.staged {
            *by_run
                .entry(leftover.run_id.as_deref().unwrap_or("?"))
                .or_default() += 1;
        }
        for (run_id, n) in by_run {
            self.line(format!("  run {run_id}: {n} files"));
        }
        self.line(format!(
            "replaced by compaction: {} files ({} bytes)",
            status.replaced.len(),
            bytes(&status.replaced)
        ));
        let q = &status.quarantine;
        self.line(format!(
            "quarantine: {} rejected lines in {} files of committed runs; {} files of uncommitted runs",
            q.committed_lines, q.committed_files, q.uncommitted_files
        ));
    }
}
