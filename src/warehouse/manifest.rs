//! The run manifest: what a committed run wrote, and the record that makes its files
//! part of the warehouse (`_runs/<run id>.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::layout::{TableId, TableKind};

/// Version of the run manifest format written by this program (2 adds `kind`,
/// `attempt` and `replaces`; 3 adds per-file `stats`; older manifests read as ingest
/// runs without stats).
pub const MANIFEST_VERSION: u32 = 3;

/// What kind of run a manifest commits.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Rows ingested from a source.
    #[default]
    Ingest,
    /// Files of a table rewritten into fewer, larger ones; see `replaces`.
    Compaction,
    /// The tables of the manifest-only layout moved into Delta tables; `replaces` lists
    /// the old files.
    Upgrade,
}

/// What a committed run wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunManifest {
    /// Version of this format ([`MANIFEST_VERSION`]).
    pub format_version: u32,
    /// The run id.
    pub run_id: String,
    /// Ingest or compaction.
    #[serde(default)]
    pub kind: RunKind,
    /// The attempt of the run that committed (its files carry this token).
    #[serde(default)]
    pub attempt: String,
    /// The source name.
    pub source: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// When the run finished.
    pub finished_at: String,
    /// The export's transactionTime, if any.
    pub transaction_time: Option<String>,
    /// Per table: the files and their row counts.
    pub tables: BTreeMap<TableId, TableManifest>,
    /// Files of earlier committed runs that this run's files replace (compaction): by the
    /// reader's rule they are no longer part of the warehouse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
    /// Input totals.
    pub input: InputTotals,
    /// Lines rejected, and where they are kept.
    pub rejected: RejectedTotals,
    /// Resources the export's `deleted[]` files say were deleted since `_since`: readers
    /// drop earlier versions of these (type, id). Empty for files sources.
    #[serde(default)]
    pub deleted: Vec<DeletedRef>,
    /// The export's `error[]` OperationOutcomes, as plain text (one line per issue).
    #[serde(default)]
    pub server_errors: Vec<String>,
    /// Resources whose view rows could not be computed (their table rows were kept).
    #[serde(default, skip_serializing_if = "ViewErrors::is_empty")]
    pub view_errors: ViewErrors,
}

/// Resources whose view rows failed in a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ViewErrors {
    /// How many.
    pub count: u64,
    /// The first few, `file:line: view <name>: problem`.
    pub first: Vec<String>,
}

impl ViewErrors {
    /// Whether there were none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl RunManifest {
    /// Rows the run ingested: over its history tables (and the tables of manifests
    /// before Delta tables), not the current-state and view tables derived from them.
    pub fn rows(&self) -> u64 {
        self.tables
            .iter()
            .filter(|(t, _)| matches!(t.kind(), TableKind::History(_) | TableKind::Legacy(_)))
            .map(|(_, t)| t.rows)
            .sum()
    }

    /// Bytes of every file written.
    pub fn bytes_written(&self) -> u64 {
        self.tables
            .values()
            .flat_map(|t| &t.files)
            .map(|f| f.bytes)
            .sum()
    }
}

/// What an export adds to the manifest of its run, besides the files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportRecord {
    /// The export's `deleted[]` resources.
    pub deleted: Vec<DeletedRef>,
    /// The export's `error[]` issues, as text.
    pub server_errors: Vec<String>,
}

/// A resource deleted on the server, as listed in a run manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeletedRef {
    /// The resource type.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// The logical id.
    pub id: String,
}

/// What a run did to one table.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TableManifest {
    /// Rows over all files added.
    pub rows: u64,
    /// The files added.
    pub files: Vec<WrittenFile>,
    /// The Delta version the run's commit made (absent: nothing committed by this run,
    /// e.g. a rerun of a table committed before, or a manifest-only table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_version: Option<i64>,
    /// Rows removed (current-state tables: replaced or deleted versions).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub removed_rows: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl TableManifest {
    /// Adds a finished file.
    pub fn push(&mut self, file: WrittenFile) {
        self.rows += file.rows;
        self.files.push(file);
    }
}

/// A finished data file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WrittenFile {
    /// The object path, relative to the warehouse root.
    pub path: String,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// Value ranges of the leading columns, from the Parquet footer (absent in manifests
    /// of versions before 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<FileStats>,
    /// The Delta `add` statistics of the file (JSON), for its table's log; not kept in
    /// the run manifest.
    #[serde(skip)]
    pub delta_stats: Option<String>,
}

/// What a reader can skip a file by: its partition and the ranges of its key columns.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileStats {
    /// The partition directory (`export_date=2026-01-02`), if the table is partitioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Smallest and largest `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Range>,
    /// Earliest and latest `meta.lastUpdated`, as RFC 3339 UTC instants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<Range>,
}

/// The smallest and the largest value of a column in a file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Range {
    /// Smallest.
    pub min: String,
    /// Largest.
    pub max: String,
}

impl Range {
    /// Widens `range` to take in `min..=max`.
    pub fn merge(range: &mut Option<Range>, min: String, max: String) {
        match range {
            None => *range = Some(Range { min, max }),
            Some(r) => {
                if min < r.min {
                    r.min = min;
                }
                if max > r.max {
                    r.max = max;
                }
            }
        }
    }
}

/// What a run read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InputTotals {
    /// Files.
    pub files: u64,
    /// Lines, blank ones included.
    pub lines: u64,
    /// Bytes of NDJSON (decompressed).
    pub bytes: u64,
    /// Lines neither ingested nor rejected: `Parameters` header lines of export files.
    #[serde(default)]
    pub skipped: u64,
    /// UTF-8 byte-order marks stripped from the start of files.
    #[serde(default)]
    pub byte_order_marks: u64,
}

/// The rejected lines of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RejectedTotals {
    /// How many.
    pub lines: u64,
    /// The quarantine file, when there are any.
    pub quarantine: Option<String>,
    /// Count per reason kind.
    pub by_reason: BTreeMap<String, u64>,
    /// The first few rejections, `file:line: reason`, for the morning's first look.
    #[serde(default)]
    pub first: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_manifests_read_as_ingest_runs() {
        let v1 = r#"{"format_version":1,"run_id":"r","source":"s","started_at":"","finished_at":"",
            "transaction_time":null,"tables":{"Patient":{"rows":1,"files":[{"path":"Patient/part-r-a-0000.parquet","rows":1,"bytes":9}]}},
            "input":{"files":0,"lines":0,"bytes":0},
            "rejected":{"lines":0,"quarantine":null,"by_reason":{}}}"#;
        let manifest: RunManifest = serde_json::from_str(v1).unwrap();
        assert_eq!(manifest.kind, RunKind::Ingest);
        assert!(manifest.replaces.is_empty());
        let files = &manifest.tables[&TableId::legacy("Patient")].files;
        assert_eq!(files[0].stats, None);
    }

    #[test]
    fn ranges_widen() {
        let mut range = None;
        Range::merge(&mut range, "b".into(), "c".into());
        Range::merge(&mut range, "a".into(), "b".into());
        assert_eq!(
            range,
            Some(Range {
                min: "a".into(),
                max: "c".into()
            })
        );
    }
}
