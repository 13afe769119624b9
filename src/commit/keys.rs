//! The identity and version of every row of a data file, read from a few columns only:
//! what a merge decides by, without reading the rows themselves.
//!
//! A resource is identified by its namespace and `id` ([`Key`]); of two rows of one
//! resource the newer is the one with the greater `meta.versionId` (when both are
//! numbers), else the later `meta.lastUpdated`, else the later export transactionTime
//! ([`Version::cmp_newer`]). A row's lineage (run, file, line) ties a view's rows to the
//! resource row they were computed from.

use std::{cmp::Ordering, sync::Arc};

use arrow_array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray, cast::AsArray,
};

use super::CommitContext;
use super::CommitError;
use crate::temporal;

/// The hasher of the merge's maps of keys: foldhash, several times faster than the
/// default SipHash on short ids, and seeded per process (ids come from servers).
pub type KeyHasher = foldhash::fast::RandomState;

/// A resource's identity: its namespace and its `id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The namespace (by default the source's name).
    pub namespace: Arc<str>,
    /// The resource's `id`.
    pub id: Arc<str>,
}

/// Where a row came from: the run, the input file and the line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lineage {
    /// The run id.
    pub run_id: Arc<str>,
    /// The input file.
    pub file: Arc<str>,
    /// The line.
    pub line: i64,
}

/// What orders two versions of a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    /// `meta.versionId`.
    pub version_id: Option<Arc<str>>,
    /// `meta.lastUpdated`, microseconds since the Unix epoch.
    pub last_updated: Option<i64>,
    /// The export's transactionTime, microseconds since the Unix epoch.
    pub transaction_time: Option<i64>,
}

impl Version {
    /// How `self` compares with `other`: `Greater` when `self` is the newer version,
    /// `Equal` when they are the same version (a rerun: idempotent).
    pub fn cmp_newer(&self, other: &Version) -> Ordering {
        if let (Some(a), Some(b)) = (&self.version_id, &other.version_id) {
            if a == b {
                return Ordering::Equal;
            }
            if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
                return a.cmp(&b);
            }
        }
        if let (Some(a), Some(b)) = (self.last_updated, other.last_updated)
            && a != b
        {
            return a.cmp(&b);
        }
        self.transaction_time.cmp(&other.transaction_time)
    }
}

/// One row's identity, version and lineage.
#[derive(Debug, Clone)]
pub struct KeyRow {
    /// The resource.
    pub key: Key,
    /// Its version.
    pub version: Version,
    /// Where the row came from.
    pub lineage: Lineage,
    /// A tombstone (a resource deleted on the server).
    pub deleted: bool,
    /// The row's index in its file.
    pub row: usize,
}

/// The columns a resource table's keys are read from.
const RESOURCE_KEY_COLUMNS: &[&str] = &["id", "meta.versionId", "meta.lastUpdated_ts", "_lineage"];
/// The columns a view table's keys are read from.
const VIEW_KEY_COLUMNS: &[&str] = &["_resource_key", "_lineage"];

/// Whose keys: a resource table's rows, or a view's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyColumns {
    /// `id`, `meta` and `_lineage` of a resource table.
    Resource,
    /// `_resource_key` and `_lineage` of a view table.
    View,
}

/// Calls `f` with each key row of the data file at `path`, in row order; only one
/// batch's rows are held at a time (a file's rows can be many).
pub fn for_each_key(
    cx: &CommitContext,
    path: &str,
    columns: KeyColumns,
    mut f: impl FnMut(KeyRow),
) -> Result<(), CommitError> {
    let projection = match columns {
        KeyColumns::Resource => RESOURCE_KEY_COLUMNS,
        KeyColumns::View => VIEW_KEY_COLUMNS,
    };
    let reader = cx
        .runtime
        .block_on(cx.warehouse.read_parquet_columns(path, Some(projection)))?;
    let mut rows = Vec::new();
    let mut offset = 0;
    for batch in reader {
        let batch = batch.map_err(|source| CommitError::Read {
            path: path.to_owned(),
            source,
        })?;
        keys_of_batch(&batch, columns, offset, &mut rows).map_err(|reason| {
            CommitError::Columns {
                path: path.to_owned(),
                reason,
            }
        })?;
        offset += batch.num_rows();
        rows.drain(..).for_each(&mut f);
    }
    Ok(())
}

/// Appends the key rows of `batch`, whose first row is row `offset` of its file. Rows
/// without an id are left out: they cannot be current (they stay in history).
pub fn keys_of_batch(
    batch: &RecordBatch,
    columns: KeyColumns,
    offset: usize,
    out: &mut Vec<KeyRow>,
) -> Result<(), String> {
    let id_column = match columns {
        KeyColumns::Resource => "id",
        KeyColumns::View => "_resource_key",
    };
    // Files hold only the leaves with a value: a column missing is all null.
    let nulls = StringArray::new_null(batch.num_rows());
    let strings = |column, name| strings(column, &nulls, name);
    let ids = strings(batch.column_by_name(id_column), id_column)?;
    let lineage = batch
        .column_by_name("_lineage")
        .map(|c| c.as_struct())
        .ok_or("no _lineage column")?;
    let source = strings(lineage.column_by_name("source"), "_lineage.source")?;
    // Tables written before namespaces existed: the source is the namespace.
    let namespace = lineage
        .column_by_name("namespace")
        .map(|c| c.as_string::<i32>())
        .unwrap_or(source);
    let run_id = strings(lineage.column_by_name("run_id"), "_lineage.run_id")?;
    let file = strings(lineage.column_by_name("file"), "_lineage.file")?;
    let line = lineage
        .column_by_name("line")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or("_lineage.line is not int64")?;
    let transaction_time = strings(
        lineage.column_by_name("transaction_time"),
        "_lineage.transaction_time",
    )?;
    let deleted: Option<&BooleanArray> = lineage
        .column_by_name("deleted")
        .and_then(|c| c.as_any().downcast_ref());
    let meta: Option<&StructArray> = batch.column_by_name("meta").map(|c| c.as_struct());
    let version_id = meta
        .and_then(|m| m.column_by_name("versionId"))
        .map(|c| c.as_string::<i32>());
    let last_updated: Option<&TimestampMicrosecondArray> = meta
        .and_then(|m| m.column_by_name("lastUpdated_ts"))
        .and_then(|c| c.as_any().downcast_ref());
    let text = |a: &StringArray, i: usize| a.is_valid(i).then(|| Arc::<str>::from(a.value(i)));
    // Namespace, run, file and export are the same for most rows of a file: their
    // repeats share one `Arc` and one parse instead of one each per row.
    let (mut namespaces, mut runs, mut files) =
        (Repeats::default(), Repeats::default(), Repeats::default());
    let mut exported: Option<(Arc<str>, Option<i64>)> = None;
    let mut exports = Repeats::default();
    for i in 0..batch.num_rows() {
        let Some(id) = text(ids, i) else {
            continue;
        };
        let transaction_time = exports
            .get(transaction_time, i)
            .and_then(|text| match &exported {
                Some((last, micros)) if Arc::ptr_eq(last, &text) => *micros,
                _ => {
                    let micros = temporal::parse_micros(&text);
                    exported = Some((text, micros));
                    micros
                }
            });
        out.push(KeyRow {
            key: Key {
                namespace: namespaces
                    .get(namespace, i)
                    .unwrap_or_else(|| Arc::from("")),
                id,
            },
            version: Version {
                version_id: version_id.and_then(|v| text(v, i)),
                last_updated: last_updated.and_then(|t| t.is_valid(i).then(|| t.value(i))),
                transaction_time,
            },
            lineage: Lineage {
                run_id: runs.get(run_id, i).unwrap_or_else(|| Arc::from("")),
                file: files.get(file, i).unwrap_or_else(|| Arc::from("")),
                line: line.value(i),
            },
            deleted: deleted.is_some_and(|d| d.value(i)),
            row: offset + i,
        });
    }
    Ok(())
}

/// The last value read from a string column, shared by the rows that repeat it.
#[derive(Default)]
struct Repeats {
    last: Option<Arc<str>>,
}

impl Repeats {
    /// Row `i` of `column` (none when null), the previous row's `Arc` when equal.
    fn get(&mut self, column: &StringArray, i: usize) -> Option<Arc<str>> {
        if !column.is_valid(i) {
            return None;
        }
        let value = column.value(i);
        match &self.last {
            Some(last) if **last == *value => Some(last.clone()),
            _ => {
                let value: Arc<str> = Arc::from(value);
                self.last = Some(value.clone());
                Some(value)
            }
        }
    }
}

/// The string column `column`, or `nulls` when the file has none.
fn strings<'a>(
    column: Option<&'a ArrayRef>,
    nulls: &'a StringArray,
    name: &str,
) -> Result<&'a StringArray, String> {
    match column {
        None => Ok(nulls),
        Some(c) => c
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| format!("{name} is not utf8")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_share_one_arc_and_keep_nulls_and_changes() {
        let column = StringArray::from(vec![Some("a"), Some("a"), None, Some("b"), Some("a")]);
        let mut repeats = Repeats::default();
        let got: Vec<_> = (0..column.len()).map(|i| repeats.get(&column, i)).collect();
        assert!(Arc::ptr_eq(
            got[0].as_ref().unwrap(),
            got[1].as_ref().unwrap()
        ));
        assert_eq!(got[2], None);
        assert_eq!(got[3].as_deref(), Some("b"));
        assert_eq!(got[4].as_deref(), Some("a"));
    }

    fn version(id: Option<&str>, updated: Option<i64>, tt: Option<i64>) -> Version {
        Version {
            version_id: id.map(Arc::from),
            last_updated: updated,
            transaction_time: tt,
        }
    }

    #[test]
    fn versions_order_by_version_id_then_last_updated_then_export() {
        use Ordering::*;
        let cases = [
            (
                version(Some("10"), None, None),
                version(Some("9"), None, None),
                Greater,
            ),
            (
                version(Some("2"), Some(1), None),
                version(Some("2"), Some(5), None),
                Equal,
            ),
            (
                version(Some("a"), Some(5), None),
                version(Some("b"), Some(1), None),
                Greater,
            ),
            (
                version(None, Some(1), Some(9)),
                version(None, Some(2), Some(1)),
                Less,
            ),
            (
                version(None, None, Some(9)),
                version(None, None, Some(1)),
                Greater,
            ),
            (
                version(None, None, None),
                version(None, None, Some(1)),
                Less,
            ),
            (
                version(None, Some(3), Some(1)),
                version(None, Some(3), Some(1)),
                Equal,
            ),
        ];
        for (a, b, expected) in cases {
            assert_eq!(a.cmp_newer(&b), expected, "{a:?} vs {b:?}");
            assert_eq!(b.cmp_newer(&a), expected.reverse(), "{b:?} vs {a:?}");
        }
    }
}
