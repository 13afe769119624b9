//! Compaction: the small live files of a Delta table (per partition, for history
//! tables) rewritten into files of a target size, in one commit that removes them and
//! adds their replacements (`dataChange` false: the rows do not change). Readers see the
//! old files or the new ones, never both; the old files stay for readers of older
//! versions until `vacuum`/`cleanup` deletes them after the retention.
//!
//! A compaction that loses its commit to a writer of the table (an ingest run) reads the
//! table again and plans again. Memory: one input file at a time (smaller than the
//! target, by selection) plus the row group and upload part of the output file.

use std::collections::BTreeMap;

use crate::{
    commit::CommitContext,
    commit::{
        CommitError,
        rewrite::Output,
        tables::{self, Committed, NewTable, commit_guarded, file_path},
    },
    delta::{self, Action, Add, Snapshot},
    ingest::RunContext,
    sink::{ParquetConfig, RunFiles, TableWriter, writer_properties},
    temporal,
    warehouse::{
        InputTotals, MANIFEST_VERSION, RejectedTotals, RunKind, RunManifest, TableId,
        TableManifest, layout,
    },
};

/// The txn app id of compactions (its version is the compaction's start).
const COMPACTION_APP: &str = "fhir-ingest-compaction";

/// Errors of compaction.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// Reading or committing the table failed.
    #[error(transparent)]
    Commit(#[from] Box<CommitError>),
    /// Rows read differ from the rows the log recorded (nothing is committed).
    #[error("{table}: {found} rows read, but the files' stats say {expected}; nothing committed")]
    RowCount {
        /// The table.
        table: String,
        /// Rows in the stats.
        expected: u64,
        /// Rows read.
        found: u64,
    },
}

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compacted {
    /// No partition had two or more files smaller than the target.
    Nothing,
    /// Committed as the table's version `version`: files replaced, files written, rows.
    Committed {
        /// The table's new version.
        version: i64,
        /// Files replaced.
        replaced: usize,
        /// Files written.
        written: usize,
        /// Rows moved.
        rows: u64,
    },
}

/// Compacts the live files of `table` smaller than `target_bytes`, partition by
/// partition. Blocking: call it outside the runtime.
pub fn compact_table(
    cx: &RunContext,
    table: &TableId,
    target_bytes: usize,
    parquet: &ParquetConfig,
) -> Result<Compacted, CompactError> {
    let cx = &cx.commit_context();
    let run_id = format!("compact-{}", temporal::compact_utc(temporal::unix_now()));
    let attempt = layout::new_attempt();
    let seq = temporal::now_micros();
    let files = RunFiles {
        store: cx.warehouse.store(),
        runtime: cx.runtime.clone(),
        run_id,
        attempt,
    };
    let parquet = ParquetConfig {
        max_file_bytes: target_bytes,
        ..parquet.clone()
    };
    let started_at = temporal::now_rfc3339();
    let mut outcome = (Vec::new(), TableManifest::default(), None);
    let schema = arrow_schema::Schema::empty();
    let committed = commit_guarded(
        cx,
        table,
        NewTable {
            schema: &schema,
            partition_columns: &[],
        },
        (COMPACTION_APP, seq),
        "OPTIMIZE",
        |snapshot| {
            let Some(snapshot) = snapshot else {
                return Ok(None);
            };
            let groups = small_files_by_partition(snapshot, target_bytes as u64);
            if groups.is_empty() {
                return Ok(None);
            }
            let (actions, replaced, written, rows) =
                rewrite(cx, table, snapshot, &files, &parquet, &groups)?;
            outcome = (replaced, written, rows);
            Ok(Some(actions))
        },
    )
    .map_err(Box::new)?;
    let (replaced_paths, written, recorded) = outcome;
    if let Some(expected) = recorded
        && expected != written.rows
    {
        return Err(CompactError::RowCount {
            table: table.to_string(),
            expected,
            found: written.rows,
        });
    }
    let Committed::Version(version) = committed else {
        return Ok(Compacted::Nothing);
    };
    record(
        cx,
        table,
        &files,
        started_at,
        version,
        &written,
        &replaced_paths,
    )?;
    Ok(Compacted::Committed {
        version,
        replaced: replaced_paths.len(),
        written: written.files.len(),
        rows: written.rows,
    })
}

/// Records the compaction in `_runs/` (the run manifest of a compaction): what it
/// replaced, what it wrote, the version it made.
fn record(
    cx: &CommitContext,
    table: &TableId,
    files: &RunFiles,
    started_at: String,
    version: i64,
    written: &TableManifest,
    replaced: &[String],
) -> Result<(), CompactError> {
    let manifest = RunManifest {
        format_version: MANIFEST_VERSION,
        run_id: files.run_id.clone(),
        kind: RunKind::Compaction,
        attempt: files.attempt.clone(),
        source: "compaction".into(),
        started_at,
        finished_at: temporal::now_rfc3339(),
        transaction_time: None,
        tables: BTreeMap::from([(
            table.clone(),
            TableManifest {
                delta_version: Some(version),
                ..written.clone()
            },
        )]),
        replaces: replaced.to_vec(),
        input: InputTotals {
            files: replaced.len() as u64,
            lines: written.rows,
            ..InputTotals::default()
        },
        rejected: RejectedTotals::default(),
        deleted: Vec::new(),
        server_errors: Vec::new(),
        view_errors: Default::default(),
    };
    cx.runtime
        .block_on(cx.warehouse.commit(&manifest))
        .map_err(|e| Box::new(CommitError::from(e)))?;
    Ok(())
}

/// Writes the groups' rows into new files; returns the commit's actions, the files
/// replaced, the files written and the rows the replaced files' stats recorded.
#[allow(clippy::type_complexity)]
fn rewrite(
    cx: &CommitContext,
    table: &TableId,
    snapshot: &Snapshot,
    files: &RunFiles,
    parquet: &ParquetConfig,
    groups: &BTreeMap<Option<String>, Vec<(String, Add)>>,
) -> Result<(Vec<Action>, Vec<String>, TableManifest, Option<u64>), CommitError> {
    // Files hold only the leaves with values: they are written again in the table's
    // schema, from the Delta log.
    let metadata = snapshot.metadata();
    let schema = delta::data_schema(&metadata.schema_string, &metadata.partition_columns)?;
    let schema = Some(std::sync::Arc::new(schema));
    let output = Output {
        cx,
        table: table.clone(),
        files: files.clone(),
        schema: schema.clone(),
        parquet,
    };
    let mut actions = Vec::new();
    let (mut replaced, mut rows) = (Vec::new(), Some(0u64));
    let mut written = TableManifest::default();
    for (partition, members) in groups {
        let mut writer = TableWriter::new(
            files.clone(),
            table.clone(),
            partition.clone(),
            schema.clone(),
            writer_properties(parquet),
            parquet.max_file_bytes,
        );
        for (key, add) in members {
            output.keep_rows(&file_path(table, key), |_| true, &mut writer)?;
            let recorded = add.num_records().and_then(|n| u64::try_from(n).ok());
            rows = rows.zip(recorded).map(|(a, b)| a + b);
            replaced.push(file_path(table, key));
            let mut remove = add.remove_now();
            remove.data_change = false;
            actions.push(Action::Remove(remove));
        }
        for file in writer.finish()?.files {
            let mut add = tables::add_of(table, &file)?;
            add.data_change = false;
            actions.push(Action::Add(add));
            written.push(file);
        }
    }
    Ok((actions, replaced, written, rows))
}

/// Live files smaller than the target, by partition value (history tables) or all
/// together; only groups of two or more (one small file alone gains nothing).
fn small_files_by_partition(
    snapshot: &Snapshot,
    target_bytes: u64,
) -> BTreeMap<Option<String>, Vec<(String, Add)>> {
    let mut groups: BTreeMap<Option<String>, Vec<(String, Add)>> = BTreeMap::new();
    for (key, add) in snapshot.files() {
        if u64::try_from(add.size).unwrap_or(u64::MAX) >= target_bytes {
            continue;
        }
        let partition = add
            .partition_values
            .iter()
            .find_map(|(k, v)| Some(format!("{k}={}", v.as_deref()?)));
        groups
            .entry(partition)
            .or_default()
            .push((key.clone(), add.clone()));
    }
    groups.retain(|_, files| files.len() >= 2);
    groups
}
