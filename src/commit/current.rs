//! The merge of a run into a `current/<Type>` table: the newest version of each
//! resource wins, deletes are applied, and only the files that hold a replaced or
//! deleted row are rewritten (copy-on-write: their removes and the adds of what stays
//! go in one commit with the new rows).
//!
//! The run's rows come from its history files of the type. Of several rows of one
//! resource (a server may send one twice) the newest is the candidate; it replaces the
//! table's row when it is newer ([`super::keys::Version::cmp_newer`]), and is dropped when it is
//! older or the same version (a rerun changes nothing). A resource in the export's
//! `deleted[]` loses its row when that row came from an earlier export; a resource both
//! sent and deleted by one export keeps the sent row. A history file whose rows all win
//! is taken over whole, by a copy in the store; into an empty table, when the run's ids
//! are distinct, all of them are, without reading their keys.

use std::{
    collections::{HashMap, HashSet, hash_map::Entry},
    hash::BuildHasher,
};

use arrow_array::{Array, cast::AsArray};

use super::keys::KeyHasher;

use super::{
    CommitError, RunInfo,
    keys::{Key, KeyColumns, KeyRow, Lineage, Version, for_each_key},
    rewrite::{Output, finish_into},
    tables::{self, Committed, NewTable, commit_guarded, file_path},
};
use crate::{
    delta::{Action, Snapshot},
    warehouse::{TableId, TableManifest, WrittenFile},
};

/// Where each resource a run touched stands after the merge: the lineage of its current
/// row, or none (deleted, or never there).
pub type Winners = HashMap<Key, Option<Lineage>, KeyHasher>;

/// What a merge into `current/<Type>` did.
pub struct Merged {
    /// The commit.
    pub committed: Committed,
    /// Files added (and rows in them).
    pub added: TableManifest,
    /// Rows removed (replaced or deleted).
    pub removed: u64,
    /// The resources this run touched and their current rows; none when the commit was
    /// made earlier (a rerun): then they must be read from the table.
    pub winners: Option<Winners>,
}

/// The run's candidate for one resource: its version, and where its row is.
struct Candidate {
    version: Version,
    lineage: Lineage,
    /// The staged file, and the row in it.
    file: usize,
    row: usize,
}

/// Merges the run's rows of `resource_type` (its history files `staged`) and its
/// deletions (`deleted` ids, in the run's namespace) into `current/<Type>`.
///
/// `want_winners`: whether to return where each touched resource stands (its views
/// need it); otherwise that map is not built.
pub fn merge(
    run: &RunInfo<'_>,
    resource_type: &str,
    staged: &[WrittenFile],
    deleted: &[Key],
    want_winners: bool,
) -> Result<Merged, CommitError> {
    let cx = run.cx;
    let table = TableId::current(resource_type);
    // Read when first needed: a first load of distinct ids needs only the ids.
    let mut candidates: Option<(Candidates, Vec<usize>)> = None;
    let mut ids_distinct: Option<bool> = None;
    let first_load_possible = !want_winners && deleted.is_empty();
    let deleted: HashSet<&Key, KeyHasher> = deleted.iter().collect();
    let schema = run.resource_schema(resource_type)?;
    let output = Output {
        cx,
        table: table.clone(),
        files: run.files("c"),
        schema: Some(schema.clone()),
        parquet: run.parquet,
    };
    let mut result = (TableManifest::default(), 0u64, None::<Winners>);
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
            let empty = snapshot.is_none_or(|s| s.files().is_empty());
            if empty && first_load_possible {
                let distinct = match ids_distinct {
                    Some(known) => known,
                    None => *ids_distinct.insert(distinct_ids(run, staged)?),
                };
                if distinct {
                    let added = take_whole(&output, staged)?;
                    let actions = added_actions(&output, &added)?;
                    result = (added, 0, None);
                    return Ok((!actions.is_empty()).then_some(actions));
                }
            }
            let (candidates, rows_per_file) = match &mut candidates {
                Some(c) => c,
                None => candidates.insert(read_candidates(run, staged)?),
            };
            let plan = plan(run, &table, snapshot, candidates, &deleted, want_winners)?;
            let actions = write_plan(&output, snapshot, &plan, staged, rows_per_file, candidates)?;
            result = (actions.1, plan.removed_rows(), plan.winners);
            Ok((!actions.0.is_empty()).then_some(actions.0))
        },
    )?;
    let (added, removed, winners) = result;
    Ok(match committed {
        Committed::Already => Merged {
            committed,
            added: TableManifest::default(),
            removed: 0,
            winners: None,
        },
        _ => Merged {
            committed,
            added,
            removed,
            winners,
        },
    })
}

/// The run's candidate of each resource.
type Candidates = HashMap<Key, Candidate, KeyHasher>;

/// The newest row of each resource in the run's files of the type, and how many rows
/// with an id each file has.
fn read_candidates(
    run: &RunInfo<'_>,
    staged: &[WrittenFile],
) -> Result<(Candidates, Vec<usize>), CommitError> {
    let rows: u64 = staged.iter().map(|f| f.rows).sum();
    let mut candidates = Candidates::with_capacity_and_hasher(rows as usize, KeyHasher::default());
    let mut rows_per_file = vec![0usize; staged.len()];
    for (file, written) in staged.iter().enumerate() {
        let each = |KeyRow {
                        key,
                        version,
                        lineage,
                        row,
                        ..
                    }| {
            rows_per_file[file] += 1;
            let candidate = Candidate {
                version,
                lineage,
                file,
                row,
            };
            match candidates.entry(key) {
                Entry::Vacant(e) => {
                    e.insert(candidate);
                }
                Entry::Occupied(mut e) => {
                    if candidate.version.cmp_newer(&e.get().version).is_gt() {
                        e.insert(candidate);
                    }
                }
            }
        };
        for_each_key(run.cx, &written.path, KeyColumns::Resource, each)?;
    }
    Ok((candidates, rows_per_file))
}

/// Whether every row of the run's files has an id and no id repeats: then, in an
/// empty table, every row wins and the files are taken whole, without reading their
/// keys. Ids are compared by a 64-bit hash; a collision only means the full merge.
fn distinct_ids(run: &RunInfo<'_>, staged: &[WrittenFile]) -> Result<bool, CommitError> {
    let rows: u64 = staged.iter().map(|f| f.rows).sum();
    let hasher = KeyHasher::default();
    let mut seen: HashSet<u64, KeyHasher> =
        HashSet::with_capacity_and_hasher(rows as usize, KeyHasher::default());
    for file in staged {
        let reader = run.cx.runtime.block_on(
            run.cx
                .warehouse
                .read_parquet_columns(&file.path, Some(&["id"])),
        )?;
        let mut read = 0u64;
        for batch in reader {
            let batch = batch.map_err(|source| CommitError::Read {
                path: file.path.clone(),
                source,
            })?;
            let Some(ids) = batch
                .column_by_name("id")
                .and_then(|c| c.as_string_opt::<i32>())
            else {
                return Ok(false);
            };
            if ids.null_count() > 0 {
                return Ok(false);
            }
            if !ids
                .iter()
                .flatten()
                .all(|id| seen.insert(hasher.hash_one(id)))
            {
                return Ok(false);
            }
            read += batch.num_rows() as u64;
        }
        if read != file.rows {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every staged file taken into the table whole.
fn take_whole(output: &Output<'_>, staged: &[WrittenFile]) -> Result<TableManifest, CommitError> {
    let mut added = TableManifest::default();
    for file in staged {
        added.push(output.copy_file(file, added.files.len())?);
    }
    Ok(added)
}

/// The `add` actions of the files added.
fn added_actions(output: &Output<'_>, added: &TableManifest) -> Result<Vec<Action>, CommitError> {
    added
        .files
        .iter()
        .map(|file| Ok(Action::Add(tables::add_of(&output.table, file)?)))
        .collect()
}

/// What to change in the table.
struct Plan {
    /// Candidates that lose to the table's row (by key); the others enter the table.
    rejected: HashSet<Key, KeyHasher>,
    /// Rows of existing files that go, by file key.
    removed: HashMap<String, HashSet<usize>>,
    /// Where each touched resource stands afterwards, when asked for.
    winners: Option<Winners>,
}

impl Plan {
    fn removed_rows(&self) -> u64 {
        self.removed.values().map(|rows| rows.len() as u64).sum()
    }
}

/// Decides, against the table's rows of the resources the run touches, which
/// candidates win and which rows go.
fn plan(
    run: &RunInfo<'_>,
    table: &TableId,
    snapshot: Option<&Snapshot>,
    candidates: &Candidates,
    deleted: &HashSet<&Key, KeyHasher>,
    want_winners: bool,
) -> Result<Plan, CommitError> {
    let mut rejected: HashSet<Key, KeyHasher> = HashSet::default();
    let mut removed: HashMap<String, HashSet<usize>> = HashMap::new();
    let mut winners: Option<Winners> = want_winners.then(|| {
        let mut winners: Winners = candidates
            .iter()
            .map(|(k, c)| (k.clone(), Some(c.lineage.clone())))
            .collect();
        for key in deleted.iter().filter(|k| !candidates.contains_key(**k)) {
            winners.insert((*key).clone(), None);
        }
        winners
    });
    let mut stays = |key: &Key, lineage: &Lineage| {
        if let Some(winners) = winners.as_mut() {
            winners.insert(key.clone(), Some(lineage.clone()));
        }
    };
    for key in snapshot.into_iter().flat_map(|s| s.files().keys()) {
        let path = file_path(table, key);
        for_each_key(run.cx, &path, KeyColumns::Resource, |existing| {
            let goes = match candidates.get(&existing.key) {
                Some(c) if c.version.cmp_newer(&existing.version).is_gt() => true,
                Some(_) => {
                    rejected.insert(existing.key.clone());
                    stays(&existing.key, &existing.lineage);
                    false
                }
                None if deleted.contains(&existing.key) => {
                    let goes = existing.version.transaction_time < run.transaction_micros;
                    if !goes {
                        stays(&existing.key, &existing.lineage);
                    }
                    goes
                }
                None => false,
            };
            if goes {
                removed.entry(key.clone()).or_default().insert(existing.row);
            }
        })?;
    }
    Ok(Plan {
        rejected,
        removed,
        winners,
    })
}

/// Writes what the plan adds (the run's winning rows, and what stays of the files that
/// lose rows) and returns the commit's actions and the files added.
fn write_plan(
    output: &Output<'_>,
    snapshot: Option<&Snapshot>,
    plan: &Plan,
    staged: &[WrittenFile],
    rows_per_file: &[usize],
    candidates: &Candidates,
) -> Result<(Vec<Action>, TableManifest), CommitError> {
    let mut added = TableManifest::default();
    // Which rows of each staged file win, and how many.
    let mut keep: Vec<(Vec<bool>, usize)> = staged
        .iter()
        .map(|f| (vec![false; f.rows as usize], 0))
        .collect();
    let accepted = candidates
        .iter()
        .filter(|(key, _)| plan.rejected.is_empty() || !plan.rejected.contains(*key));
    for (_, c) in accepted {
        let (rows, n) = &mut keep[c.file];
        if rows.len() <= c.row {
            rows.resize(c.row + 1, false);
        }
        if !rows[c.row] {
            rows[c.row] = true;
            *n += 1;
        }
    }
    let mut writer = output.writer();
    for (i, file) in staged.iter().enumerate() {
        let (rows, wins) = &keep[i];
        match *wins {
            0 => {}
            // Every row of the file wins (and it has no row without an id): take it whole.
            n if n == rows_per_file[i] && n as u64 == file.rows => {
                added.push(output.copy_file(file, added.files.len())?)
            }
            _ => {
                output.keep_rows(&file.path, |r| rows.get(r) == Some(&true), &mut writer)?;
            }
        }
    }
    let mut actions = Vec::new();
    for (key, gone) in &plan.removed {
        let add =
            snapshot
                .and_then(|s| s.files().get(key))
                .ok_or_else(|| CommitError::Outside {
                    table: output.table.to_string(),
                    path: key.clone(),
                })?;
        let path = file_path(&output.table, key);
        output.keep_rows(&path, |r| !gone.contains(&r), &mut writer)?;
        actions.push(Action::Remove(add.remove_now()));
    }
    finish_into(writer, &mut added)?;
    actions.extend(added_actions(output, &added)?);
    Ok((actions, added))
}
