//! The merge of a run into a view's table: the rows of a resource are those computed
//! from its current row. For each resource the run touched, the table keeps the rows
//! whose lineage (run, file, line) is that of the resource's current row, takes the
//! run's rows that match it, and drops the others; files are rewritten only where rows
//! go, and a file of the run's rows that all stay is taken into the table as it is (it
//! was written under the table's directory).

use std::collections::HashSet;

use super::{
    CommitError, RunInfo,
    current::Winners,
    keys::{KeyColumns, KeyRow, for_each_key},
    rewrite::{Output, finish_into},
    tables::{self, Committed, NewTable, commit_guarded, file_path},
};
use crate::{
    decode::view_table_schema,
    delta::{Action, Snapshot},
    view::ViewDefinition,
    warehouse::{TableId, TableManifest, WrittenFile},
};

/// What a merge into a view's table did.
pub struct MergedView {
    /// The commit.
    pub committed: Committed,
    /// Files added.
    pub added: TableManifest,
    /// Rows removed.
    pub removed: u64,
}

/// Merges the run's rows of `view` (its files `staged`, under the view's table) for the
/// resources of `winners` into the view's table.
pub fn merge(
    run: &RunInfo<'_>,
    view: &ViewDefinition,
    staged: &[WrittenFile],
    winners: &Winners,
) -> Result<MergedView, CommitError> {
    let cx = run.cx;
    let table = TableId::view(view.name());
    let schema = view_table_schema(view);
    let current = |row: &KeyRow| {
        winners
            .get(&row.key)
            .is_some_and(|w| w.as_ref() == Some(&row.lineage))
    };
    // Which of the run's rows stay: one flag a row, read one batch of keys at a time.
    let mut incoming: Vec<StagedRows> = Vec::with_capacity(staged.len());
    for file in staged {
        let mut rows = StagedRows {
            stay: vec![false; file.rows as usize],
            staying: 0,
        };
        for_each_key(cx, &file.path, KeyColumns::View, |row| {
            if current(&row) && row.row < rows.stay.len() {
                rows.stay[row.row] = true;
                rows.staying += 1;
            }
        })?;
        incoming.push(rows);
    }
    let output = Output {
        cx,
        table: table.clone(),
        files: run.files("v"),
        schema: Some(schema.clone()),
        parquet: run.parquet,
    };
    let mut result = (TableManifest::default(), 0);
    let committed = commit_guarded(
        cx,
        &table,
        NewTable {
            schema: &schema,
            partition_columns: &[],
        },
        (run.source, run.seq),
        "MERGE",
        |snapshot| {
            let (actions, added, removed) =
                plan(&output, snapshot, staged, &incoming, winners, &current)?;
            result = (added, removed);
            Ok((!actions.is_empty()).then_some(actions))
        },
    )?;
    let (added, removed) = match committed {
        Committed::Already => (TableManifest::default(), 0),
        _ => result,
    };
    Ok(MergedView {
        committed,
        added,
        removed,
    })
}

/// Which rows of one of the run's files stay (those computed from a current row).
struct StagedRows {
    /// By row.
    stay: Vec<bool>,
    /// How many stay.
    staying: u64,
}

/// The actions of the merge on `snapshot`, the files added and the rows removed.
fn plan(
    output: &Output<'_>,
    snapshot: Option<&Snapshot>,
    staged: &[WrittenFile],
    incoming: &[StagedRows],
    winners: &Winners,
    current: &dyn Fn(&KeyRow) -> bool,
) -> Result<(Vec<Action>, TableManifest, u64), CommitError> {
    let mut actions = Vec::new();
    let mut added = TableManifest::default();
    let mut removed = 0;
    let mut writer = output.writer();
    for (key, add) in snapshot.into_iter().flat_map(|s| s.files()) {
        let path = file_path(&output.table, key);
        let mut gone = HashSet::new();
        for_each_key(output.cx, &path, KeyColumns::View, |r| {
            if winners.contains_key(&r.key) && !current(&r) {
                gone.insert(r.row);
            }
        })?;
        if gone.is_empty() {
            continue;
        }
        removed += gone.len() as u64;
        output.keep_rows(&path, |r| !gone.contains(&r), &mut writer)?;
        actions.push(Action::Remove(add.remove_now()));
    }
    for (file, rows) in staged.iter().zip(incoming) {
        if rows.staying == file.rows {
            // Every row stays: the file is already under the table's directory.
            added.push(file.clone());
        } else if rows.staying > 0 {
            output.keep_rows(&file.path, |r| rows.stay.get(r) == Some(&true), &mut writer)?;
        }
    }
    finish_into(writer, &mut added)?;
    for file in &added.files {
        actions.push(Action::Add(tables::add_of(&output.table, file)?));
    }
    Ok((actions, added, removed))
}
