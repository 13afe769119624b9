//! Where everything lives in a warehouse: the one place that builds object paths and
//! parses them back, and the run ids those paths carry.
//!
//! ```text
//! <table dir>/[<partition>/]part-<run id>-<attempt>-<n>.parquet   data files
//! _runs/<run id>.json                                   run manifests (the commits)
//! _quarantine/<run id>/rejected-<attempt>.ndjson        rejected lines
//! _state/<source>/checkpoint-<n>.json, in-flight.json   bulk sources' state
//! _probe/<token>.txt                                    healthcheck probes (deleted)
//! ```
//!
//! A table's directory is its [`TableId`]: `Patient` for a resource table,
//! `views/<name>` for a view.

use std::fmt;

use object_store::path::Path;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::config::PartitionBy;
use crate::temporal;

/// Directory of run manifests.
pub const RUNS_DIR: &str = "_runs";
/// Directory of quarantined lines.
pub const QUARANTINE_DIR: &str = "_quarantine";
/// Directory of the healthcheck's probe objects.
pub const PROBE_DIR: &str = "_probe";
/// Directory of source states.
pub const STATE_DIR: &str = "_state";
/// Directory under which view tables live.
pub const VIEWS_DIR: &str = "views";

/// A table of the warehouse: what a run manifest keys its files by, and the directory
/// of its files (and, for Delta tables, of its `_delta_log/`). It reads as its
/// directory (`tables["history/Patient"]`).
///
/// - `history/<Type>`: every version of every resource ingested, and tombstones of
///   deleted ones (a Delta table partitioned by `export_date`);
/// - `current/<Type>`: the latest version of each resource, deletes applied (Delta);
/// - `views/<name>`: the rows of a SQL on FHIR view over the current resources (Delta);
/// - `<Type>`: a table of the manifest-only layout of earlier versions (read for
///   `upgrade`, never written).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(String);

/// The kinds of table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind<'a> {
    /// `history/<Type>`.
    History(&'a str),
    /// `current/<Type>`.
    Current(&'a str),
    /// `views/<name>`.
    View(&'a str),
    /// `<Type>` of the earlier, manifest-only layout.
    Legacy(&'a str),
}

/// Directory of the history tables.
pub const HISTORY_DIR: &str = "history";
/// Directory of the current-state tables.
pub const CURRENT_DIR: &str = "current";

impl TableId {
    /// The history table of a resource type.
    pub fn history(resource_type: &str) -> Self {
        Self(format!("{HISTORY_DIR}/{resource_type}"))
    }

    /// The current-state table of a resource type.
    pub fn current(resource_type: &str) -> Self {
        Self(format!("{CURRENT_DIR}/{resource_type}"))
    }

    /// The table of a view.
    pub fn view(name: &str) -> Self {
        Self(format!("{VIEWS_DIR}/{name}"))
    }

    /// A table of the earlier, manifest-only layout.
    pub fn legacy(resource_type: &str) -> Self {
        Self(resource_type.to_owned())
    }

    /// The table's directory under the root, which is also its key in run manifests.
    pub fn dir(&self) -> &str {
        &self.0
    }

    /// What kind of table this is.
    pub fn kind(&self) -> TableKind<'_> {
        match self.0.split_once('/') {
            Some((HISTORY_DIR, t)) => TableKind::History(t),
            Some((CURRENT_DIR, t)) => TableKind::Current(t),
            Some((_, name)) => TableKind::View(name),
            None => TableKind::Legacy(&self.0),
        }
    }

    /// The table whose directory is `dir`, if `dir` is laid out as one.
    pub fn parse(dir: &str) -> Option<Self> {
        let is_type = |t: &str| {
            t.starts_with(|c: char| c.is_ascii_uppercase())
                && t.chars().all(|c| c.is_ascii_alphanumeric())
        };
        match dir.split_once('/') {
            Some((HISTORY_DIR, t)) if is_type(t) => Some(Self::history(t)),
            Some((CURRENT_DIR, t)) if is_type(t) => Some(Self::current(t)),
            Some((VIEWS_DIR, name)) if is_view_name(name) => Some(Self::view(name)),
            None if is_type(dir) => Some(Self::legacy(dir)),
            _ => None,
        }
    }

    /// The resource type of a history, current or legacy table.
    pub fn resource_type(&self) -> Option<&str> {
        match self.kind() {
            TableKind::History(t) | TableKind::Current(t) | TableKind::Legacy(t) => Some(t),
            TableKind::View(_) => None,
        }
    }

    /// The view's name, for a view table.
    pub fn view_name(&self) -> Option<&str> {
        match self.kind() {
            TableKind::View(name) => Some(name),
            _ => None,
        }
    }

    /// Whether the table is a Delta table (every kind but the legacy one).
    pub fn is_delta(&self) -> bool {
        !matches!(self.kind(), TableKind::Legacy(_))
    }
}

impl std::borrow::Borrow<str> for TableId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Whether `name` can name a view table (letters, digits, `_` and `-`).
pub fn is_view_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for TableId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TableId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let dir = String::deserialize(deserializer)?;
        Self::parse(&dir).ok_or_else(|| serde::de::Error::custom(format!("{dir:?} is not a table")))
    }
}

/// Path of data file `n` of an attempt of a run, in a table and partition.
pub fn data_file(
    table: &TableId,
    partition: Option<&str>,
    run_id: &str,
    attempt: &str,
    n: usize,
) -> Path {
    let name = format!("part-{run_id}-{attempt}-{n:04}.parquet");
    match partition {
        Some(p) => Path::from(format!("{table}/{p}/{name}")),
        None => Path::from(format!("{table}/{name}")),
    }
}

/// Path of the quarantine file of an attempt of a run.
pub fn quarantine_file(run_id: &str, attempt: &str) -> Path {
    Path::from(format!(
        "{QUARANTINE_DIR}/{run_id}/rejected-{attempt}.ndjson"
    ))
}

/// Path of a run's manifest.
pub fn manifest_path(run_id: &str) -> Path {
    Path::from(format!("{RUNS_DIR}/{run_id}.json"))
}

/// Directory of a source's state.
pub fn state_dir(source: &str) -> Path {
    Path::from(format!("{STATE_DIR}/{source}"))
}

/// Path of checkpoint `seq` of a source.
pub fn checkpoint_path(source: &str, seq: u64) -> Path {
    Path::from(format!("{STATE_DIR}/{source}/checkpoint-{seq:010}.json"))
}

/// The number of a checkpoint file name (`checkpoint-0000000003.json` → 3).
pub fn checkpoint_seq(file_name: &str) -> Option<u64> {
    file_name
        .strip_prefix("checkpoint-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// Path of a source's in-flight export record.
pub fn in_flight_path(source: &str) -> Path {
    Path::from(format!("{STATE_DIR}/{source}/in-flight.json"))
}

/// Path of a new healthcheck probe.
pub fn probe_path() -> Path {
    Path::from(format!("{PROBE_DIR}/{}.txt", new_run_id()))
}

/// The partition directory of a run, from the export date (`YYYY-MM-DD...`).
pub fn partition_dir(partition_by: PartitionBy, export_date: &str) -> Option<String> {
    match partition_by {
        PartitionBy::None => None,
        PartitionBy::ExportDate => Some(format!(
            "export_date={}",
            export_date.get(..10).unwrap_or(export_date)
        )),
    }
}

/// What an object of the warehouse is, by its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKind {
    /// A data file of a table.
    DataFile {
        /// Its table.
        table: TableId,
        /// Its partition directory, if any (`export_date=2026-01-02`).
        partition: Option<String>,
        /// The run that wrote it.
        run_id: String,
    },
    /// A run manifest.
    Manifest,
    /// A quarantine file of a run.
    Quarantine {
        /// The run.
        run_id: String,
    },
    /// State of a source.
    State {
        /// The source.
        source: String,
    },
    /// Anything else (healthcheck probes, other tools' files): never touched.
    Other,
}

/// Classifies an object by its path under the root.
pub fn classify(path: &str) -> ObjectKind {
    let mut parts = path.split('/');
    match parts.next().unwrap_or_default() {
        RUNS_DIR => ObjectKind::Manifest,
        QUARANTINE_DIR => match parts.next() {
            Some(run_id) => ObjectKind::Quarantine {
                run_id: run_id.to_owned(),
            },
            None => ObjectKind::Other,
        },
        STATE_DIR => match parts.next() {
            Some(source) => ObjectKind::State {
                source: source.to_owned(),
            },
            None => ObjectKind::Other,
        },
        _ => data_file_kind(path).unwrap_or(ObjectKind::Other),
    }
}

/// A data file: `<table dir>/[<partition>/]part-<run id>-<attempt>-<n>.parquet`. A
/// nested warehouse under the same prefix, or another tool's files, is not one.
fn data_file_kind(path: &str) -> Option<ObjectKind> {
    let (dir, name) = path.rsplit_once('/')?;
    let run_id = run_id_of(name)?;
    let (table, partition) = match TableId::parse(dir) {
        Some(table) => (table, None),
        None => {
            let (table_dir, partition) = dir.rsplit_once('/')?;
            if !partition.contains('=') {
                return None;
            }
            (TableId::parse(table_dir)?, Some(partition.to_owned()))
        }
    };
    Some(ObjectKind::DataFile {
        table,
        partition,
        run_id,
    })
}

/// The partition directory of a data file path, if it has one.
pub fn partition_of(path: &str) -> Option<String> {
    match classify(path) {
        ObjectKind::DataFile { partition, .. } => partition,
        _ => None,
    }
}

/// The run id in a data file name `part-<run id>-<attempt>-<nnnn>.parquet`.
pub fn run_id_of(file_name: &str) -> Option<String> {
    let name = file_name.rsplit('/').next()?;
    let stem = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let mut pieces = stem.rsplitn(3, '-');
    let (_n, _attempt, run_id) = (pieces.next()?, pieces.next()?, pieces.next()?);
    Some(run_id.to_owned())
}

/// A run id that sorts by start time and is unique across processes:
/// `20261128T225417Z-1a2b3c4d`.
pub fn new_run_id() -> String {
    format!(
        "{}-{}",
        temporal::compact_utc(temporal::unix_now()),
        new_attempt()
    )
}

/// A token unique to one attempt at a run (in its file names), so that two attempts at
/// the same run id never overwrite each other's files.
pub fn new_attempt() -> String {
    use std::hash::{BuildHasher as _, Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    std::time::SystemTime::now().hash(&mut hasher);
    std::process::id().hash(&mut hasher);
    std::thread::current().id().hash(&mut hasher);
    format!("{:08x}", hasher.finish() as u32)
}

/// The run id of an export, the same on every rerun: the transactionTime in UTC (so run
/// ids sort by export) and a hash of the source and the exact transactionTime, e.g.
/// `20260102T030405Z-0123456789abcdef`.
pub fn export_run_id(source: &str, transaction_time: &str) -> String {
    let micros = temporal::parse_micros(transaction_time);
    let hash = fnv1a(&[
        source.as_bytes(),
        b"\n",
        &micros.unwrap_or(i64::MIN).to_le_bytes(),
        b"\n",
        transaction_time.as_bytes(),
    ]);
    match micros {
        Some(micros) => format!(
            "{}-{hash:016x}",
            temporal::compact_utc(micros.div_euclid(1_000_000))
        ),
        None => format!("export-{hash:016x}"),
    }
}

/// The run id of a compaction of these files (sorted paths): two compactions of the
/// same files race on one manifest, and exactly one wins.
pub fn compaction_run_id<'a>(replaced: impl IntoIterator<Item = &'a str>) -> String {
    let joined = replaced.into_iter().collect::<Vec<_>>().join("\n");
    format!("compact-{:016x}", fnv1a(&[joined.as_bytes()]))
}

/// FNV-1a, 64 bits: a hash that is the same in every build (unlike `DefaultHasher`).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_run_ids_are_stable_and_distinct() {
        let a = export_run_id("src", "2026-01-02T04:04:05+01:00");
        assert!(a.starts_with("20260102T030405Z-"), "{a}");
        assert_eq!(a, export_run_id("src", "2026-01-02T04:04:05+01:00"));
        assert_ne!(a, export_run_id("other", "2026-01-02T04:04:05+01:00"));
        assert_ne!(a, export_run_id("src", "2026-01-02T04:04:05.001+01:00"));
        assert!(export_run_id("src", "garbage").starts_with("export-"));
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn run_ids_come_out_of_file_names() {
        assert_eq!(
            run_id_of("Patient/export_date=2026-01-02/part-20260102T030405Z-0123abcd-9f8e7d6c-0003.parquet")
                .as_deref(),
            Some("20260102T030405Z-0123abcd")
        );
        assert_eq!(
            run_id_of("T/part-compact-00ff-aa-0000.parquet").as_deref(),
            Some("compact-00ff")
        );
        assert_eq!(run_id_of("T/other.parquet"), None);
    }

    #[test]
    fn paths_are_classified_as_they_are_built() {
        let patient = TableId::history("Patient");
        let view = TableId::view("bp");
        for (table, partition) in [
            (&patient, Some("export_date=2026-01-02")),
            (&patient, None),
            (&view, Some("export_date=x")),
        ] {
            let path = data_file(table, partition, "r-1", "a", 3);
            assert_eq!(
                classify(path.as_ref()),
                ObjectKind::DataFile {
                    table: table.clone(),
                    partition: partition.map(str::to_owned),
                    run_id: "r-1".into()
                },
                "{path}"
            );
        }
        for other in [
            "prod/Patient/export_date=x/part-r-1-a-0000.parquet",
            "Patient/x/y/part-r-1-a-0000.parquet",
            "Patient/notapartition/part-r-1-a-0000.parquet",
            "patient/part-r-1-a-0000.parquet",
            "history/patient/part-r-1-a-0000.parquet",
            "_probe/x.txt",
        ] {
            assert_eq!(classify(other), ObjectKind::Other, "{other}");
        }
        assert_eq!(
            classify("_runs/part-r-1-a-0000.parquet"),
            ObjectKind::Manifest
        );
        assert_eq!(
            classify(quarantine_file("r1", "a").as_ref()),
            ObjectKind::Quarantine {
                run_id: "r1".into()
            }
        );
        assert_eq!(
            classify(checkpoint_path("ehr", 3).as_ref()),
            ObjectKind::State {
                source: "ehr".into()
            }
        );
        assert_eq!(checkpoint_seq("checkpoint-0000000003.json"), Some(3));
        assert_eq!(
            partition_of("P/d=1/e=2/part-r-1-a-0000.parquet"),
            None,
            "one partition level"
        );
    }

    #[test]
    fn table_ids_round_trip_through_manifests() {
        for table in [
            TableId::history("Observation"),
            TableId::current("Observation"),
            TableId::view("bp"),
            TableId::legacy("Observation"),
        ] {
            let json = serde_json::to_string(&table).unwrap();
            assert_eq!(serde_json::from_str::<TableId>(&json).unwrap(), table);
        }
        assert!(serde_json::from_str::<TableId>("\"../etc\"").is_err());
    }
}
