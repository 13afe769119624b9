//! The actions of the Delta log (the subset of reader 1 / writer 2 this module writes),
//! as serde types: one JSON object per line of a commit file, `{"add":{...}}`.
//!
//! Paths in `add` and `remove` are URIs relative to the table root (RFC 2396): the
//! object key below the root, percent-encoded ([`encode_path`]). Build adds with
//! [`Add::new`], which encodes; [`Add::relative_path`] decodes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{DeltaError, now_ms};

/// A partition value: always a string, or null (the partition column is null).
pub type PartitionValues = BTreeMap<String, Option<String>>;

/// One action of a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// The table's protocol: always reader 1 / writer 2 here.
    Protocol(Protocol),
    /// The table's metadata (schema, partition columns, configuration).
    MetaData(Metadata),
    /// A data file joins the table.
    Add(Add),
    /// A data file leaves the table (it stays on storage until vacuumed).
    Remove(Remove),
    /// The latest version of an application's transaction (idempotent writers).
    Txn(Txn),
}

/// The `protocol` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Protocol {
    /// Minimum reader version.
    pub min_reader_version: i32,
    /// Minimum writer version.
    pub min_writer_version: i32,
    /// Reader table features (reader 3 only; never written here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader_features: Option<Vec<String>>,
    /// Writer table features (writer 7 only; never written here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_features: Option<Vec<String>>,
}

impl Protocol {
    /// The only protocol this module writes and reads: reader 1 / writer 2, no features.
    pub fn supported() -> Self {
        Self {
            min_reader_version: 1,
            min_writer_version: 2,
            reader_features: None,
            writer_features: None,
        }
    }

    /// Whether this is [`Protocol::supported`] (empty feature lists count as none).
    pub fn is_supported(&self) -> bool {
        let none = |f: &Option<Vec<String>>| f.as_ref().is_none_or(Vec::is_empty);
        self.min_reader_version == 1
            && self.min_writer_version == 2
            && none(&self.reader_features)
            && none(&self.writer_features)
    }

    /// `1/2`, or `3/7 reader features [deletionVectors] writer features [...]`, for
    /// messages.
    pub fn describe(&self) -> String {
        let mut text = format!("{}/{}", self.min_reader_version, self.min_writer_version);
        for (kind, features) in [
            ("reader", &self.reader_features),
            ("writer", &self.writer_features),
        ] {
            if let Some(features) = features.as_ref().filter(|f| !f.is_empty()) {
                text.push_str(&format!(" {kind} features [{}]", features.join(", ")));
            }
        }
        text
    }
}

/// The `format` of `metaData`: always Parquet without options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Format {
    /// `parquet`.
    pub provider: String,
    /// Options of the format (none).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Default for Format {
    fn default() -> Self {
        Self {
            provider: "parquet".to_owned(),
            options: BTreeMap::new(),
        }
    }
}

/// The `metaData` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The table's unique id (UUID-like).
    pub id: String,
    /// A name for the table (unused here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A description of the table (unused here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The data files' format.
    #[serde(default)]
    pub format: Format,
    /// The table schema as Delta's JSON schema, itself a JSON *string*
    /// ([`schema_string`](super::schema::schema_string)).
    pub schema_string: String,
    /// Partition columns, in directory order.
    #[serde(default)]
    pub partition_columns: Vec<String>,
    /// Table properties (`delta.checkpointInterval`, ...).
    #[serde(default)]
    pub configuration: BTreeMap<String, String>,
    /// Creation time, milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<i64>,
}

impl Metadata {
    /// New metadata with a fresh id, created now.
    pub fn new(
        schema_string: String,
        partition_columns: Vec<String>,
        configuration: BTreeMap<String, String>,
    ) -> Self {
        Self {
            id: new_table_id(),
            name: None,
            description: None,
            format: Format::default(),
            schema_string,
            partition_columns,
            configuration,
            created_time: Some(now_ms()),
        }
    }
}

/// The `add` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Add {
    /// The file, relative to the table root, percent-encoded.
    pub path: String,
    /// The file's value of every partition column.
    #[serde(default)]
    pub partition_values: PartitionValues,
    /// Size in bytes.
    pub size: i64,
    /// Last modification (or creation) time, milliseconds since the Unix epoch.
    pub modification_time: i64,
    /// Whether the commit changes data (false for rewrites that keep the rows, and
    /// always false in checkpoints).
    pub data_change: bool,
    /// Statistics as a JSON string ([`Stats`](super::stats::Stats)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
}

impl Add {
    /// An add of the object `relative_path` (the key below the table root, not encoded),
    /// with `dataChange` true.
    pub fn new(
        relative_path: &str,
        partition_values: PartitionValues,
        size: u64,
        modification_time: i64,
        stats: Option<String>,
    ) -> Self {
        Self {
            path: encode_path(relative_path),
            partition_values,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            modification_time,
            data_change: true,
            stats,
        }
    }

    /// The object key below the table root (the decoded path).
    pub fn relative_path(&self) -> Result<String, DeltaError> {
        decode_path(&self.path)
    }

    /// `numRecords` of the stats, when present.
    pub fn num_records(&self) -> Option<i64> {
        let stats: serde_json::Value = serde_json::from_str(self.stats.as_deref()?).ok()?;
        stats.get("numRecords")?.as_i64()
    }

    /// The remove of this file for a copy-on-write commit, deleted at `deletion_timestamp`
    /// (milliseconds since the Unix epoch).
    pub fn remove_at(&self, deletion_timestamp: i64) -> Remove {
        Remove {
            path: self.path.clone(),
            deletion_timestamp: Some(deletion_timestamp),
            data_change: true,
            extended_file_metadata: Some(true),
            partition_values: Some(self.partition_values.clone()),
            size: Some(self.size),
        }
    }

    /// [`remove_at`](Self::remove_at) now.
    pub fn remove_now(&self) -> Remove {
        self.remove_at(now_ms())
    }
}

/// The `remove` action (a tombstone once committed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remove {
    /// The file, relative to the table root, percent-encoded.
    pub path: String,
    /// When the file was removed, milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<i64>,
    /// Whether the commit changes data.
    pub data_change: bool,
    /// Whether `partitionValues` and `size` are present (always true here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_file_metadata: Option<bool>,
    /// The file's partition values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_values: Option<PartitionValues>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

impl Remove {
    /// The object key below the table root (the decoded path).
    pub fn relative_path(&self) -> Result<String, DeltaError> {
        decode_path(&self.path)
    }
}

/// The `txn` action: the latest version an application committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Txn {
    /// The application (a source, a job).
    pub app_id: String,
    /// Its version (a run sequence number, a transaction time).
    pub version: i64,
    /// When, milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<i64>,
}

impl Txn {
    /// A txn of `app_id` at `version`, updated now.
    pub fn new(app_id: impl Into<String>, version: i64) -> Self {
        Self {
            app_id: app_id.into(),
            version,
            last_updated: Some(now_ms()),
        }
    }
}

/// The `commitInfo` written first in every commit (provenance; readers ignore it).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CommitInfo {
    pub timestamp: i64,
    pub operation: String,
    pub operation_parameters: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_version: Option<i64>,
    pub engine_info: String,
}

/// One line of a commit file as read: every action type this module knows, the others
/// (`commitInfo`, `cdc`, ...) ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogLine {
    pub protocol: Option<Protocol>,
    pub meta_data: Option<Metadata>,
    pub add: Option<Add>,
    pub remove: Option<Remove>,
    pub txn: Option<Txn>,
}

impl LogLine {
    /// The actions of the line (a valid line has at most one).
    pub fn into_actions(self) -> impl Iterator<Item = Action> {
        let LogLine {
            protocol,
            meta_data,
            add,
            remove,
            txn,
        } = self;
        protocol
            .map(Action::Protocol)
            .into_iter()
            .chain(meta_data.map(Action::MetaData))
            .chain(add.map(Action::Add))
            .chain(remove.map(Action::Remove))
            .chain(txn.map(Action::Txn))
    }
}

/// Percent-encodes an object key for an `add`/`remove` path: every byte but ASCII
/// letters, digits, `-._~`, `/` and `=` (so `export_date=2026-01-02/part-0.parquet`
/// stays as it is, and a space becomes `%20`, `%` becomes `%25`).
pub fn encode_path(relative_path: &str) -> String {
    let mut out = String::with_capacity(relative_path.len());
    for &b in relative_path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/=".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a percent-encoded `add`/`remove` path to the object key below the root.
pub fn decode_path(path: &str) -> Result<String, DeltaError> {
    let invalid = |reason: &str| DeltaError::InvalidPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid("a % not followed by two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid("not UTF-8 once decoded"))
}

/// A random UUID (version 4 layout) from the standard library's randomly seeded hasher:
/// unique enough for a table id, not for cryptography.
pub fn new_table_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_i64(now_ms());
        h.write_u32(std::process::id());
        h.finish()
    };
    let (hi, lo) = (word(), word());
    let hi = (hi & !0xF000) | 0x4000; // version 4
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_through_percent_encoding() {
        let key = "export_date=2026-01-02/part 0%1ü.parquet";
        let encoded = encode_path(key);
        assert_eq!(encoded, "export_date=2026-01-02/part%200%251%C3%BC.parquet");
        assert_eq!(decode_path(&encoded).unwrap(), key);
        assert!(decode_path("a%2").is_err());
        assert!(decode_path("a%zz").is_err());
    }

    #[test]
    fn actions_serialize_as_one_object_per_line() {
        let add = Add::new("a b.parquet", PartitionValues::new(), 10, 5, None);
        let line = serde_json::to_string(&Action::Add(add.clone())).unwrap();
        assert_eq!(
            line,
            r#"{"add":{"path":"a%20b.parquet","partitionValues":{},"size":10,"modificationTime":5,"dataChange":true}}"#
        );
        let remove = serde_json::to_string(&Action::Remove(add.remove_at(7))).unwrap();
        assert_eq!(
            remove,
            r#"{"remove":{"path":"a%20b.parquet","deletionTimestamp":7,"dataChange":true,"extendedFileMetadata":true,"partitionValues":{},"size":10}}"#
        );
        let protocol = serde_json::to_string(&Action::Protocol(Protocol::supported())).unwrap();
        assert_eq!(
            protocol,
            r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}"#
        );
        let line: LogLine = serde_json::from_str(&remove).unwrap();
        assert_eq!(
            line.into_actions().collect::<Vec<_>>(),
            vec![Action::Remove(add.remove_at(7))]
        );
    }

    #[test]
    fn protocols_other_than_1_2_are_not_supported() {
        assert!(Protocol::supported().is_supported());
        let mut p = Protocol::supported();
        p.min_writer_version = 7;
        p.writer_features = Some(vec!["deletionVectors".into()]);
        assert!(!p.is_supported());
        assert_eq!(p.describe(), "1/7 writer features [deletionVectors]");
    }

    #[test]
    fn table_ids_look_like_uuids() {
        let (a, b) = (new_table_id(), new_table_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
