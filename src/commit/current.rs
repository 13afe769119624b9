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
    hash::{BuildHasher, Hash},
    num::NonZeroUsize,
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
    let passes = Passes::for_rows(staged.iter().map(|f| f.rows).sum(), run.merge_max_keys);
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
                    None => *ids_distinct.insert(distinct_ids(run, staged, &passes)?),
                };
                if distinct {
                    let added = take_whole(&output, staged)?;
                    let actions = added_actions(&output, &added)?;
                    result = (added, 0, None);
                    return Ok((!actions.is_empty()).then_some(actions));
                }
            }
            // Read again if the commit is retried: the table changed under it.
            let selection = MergeInput {
                run,
                table: &table,
                snapshot,
                staged,
                deleted: &deleted,
            }
            .select(&passes, want_winners)?;
            let removed = selection.removed_rows();
            let (actions, added) = write_plan(&output, snapshot, &selection, staged)?;
            result = (added, removed, selection.winners);
            Ok((!actions.is_empty()).then_some(actions))
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

/// The passes a merge makes over the run's keys: a resource is merged in the pass
/// `hash(key) % count`, so one pass holds about `rows / count` of them in memory.
struct Passes {
    count: u64,
    /// A hasher of its own: the maps' hashers must not see keys sharing their low bits.
    hasher: KeyHasher,
}

impl Passes {
    /// Enough passes that none holds more than `max_keys` of `rows` resources.
    fn for_rows(rows: u64, max_keys: NonZeroUsize) -> Self {
        Self {
            count: rows.div_ceil(max_keys.get() as u64).max(1),
            hasher: KeyHasher::default(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = Pass<'_>> {
        (0..self.count).map(|index| Pass {
            index,
            passes: self,
        })
    }
}

/// One pass of a merge.
#[derive(Clone, Copy)]
struct Pass<'a> {
    index: u64,
    passes: &'a Passes,
}

impl Pass<'_> {
    /// Whether the resource identified by `key` is merged in this pass.
    fn holds(&self, key: &(impl Hash + ?Sized)) -> bool {
        let count = self.passes.count;
        count == 1 || self.passes.hasher.hash_one(key) % count == self.index
    }
}

/// The newest row of each resource of this pass in the run's files; in the first
/// pass, counts the rows with an id of each file into `wins`.
fn read_candidates(
    run: &RunInfo<'_>,
    staged: &[WrittenFile],
    pass: Pass<'_>,
    wins: &mut [StagedWins],
) -> Result<Candidates, CommitError> {
    let rows: u64 = staged.iter().map(|f| f.rows).sum();
    let expected = rows.div_ceil(pass.passes.count) as usize;
    let mut candidates = Candidates::with_capacity_and_hasher(expected, KeyHasher::default());
    for (file, written) in staged.iter().enumerate() {
        let each = |KeyRow {
                        key,
                        version,
                        lineage,
                        row,
                        ..
                    }| {
            if pass.index == 0 {
                wins[file].with_id += 1;
            }
            if !pass.holds(&key) {
                return;
            }
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
    Ok(candidates)
}

/// Whether every row of the run's files has an id and no id repeats: then, in an
/// empty table, every row wins and the files are taken whole, without reading their
/// keys. Ids are compared by a 64-bit hash (a collision only means the full merge),
/// a share of them per pass.
fn distinct_ids(
    run: &RunInfo<'_>,
    staged: &[WrittenFile],
    passes: &Passes,
) -> Result<bool, CommitError> {
    let rows: u64 = staged.iter().map(|f| f.rows).sum();
    let expected = rows.div_ceil(passes.count) as usize;
    let hasher = KeyHasher::default();
    let mut seen: HashSet<u64, KeyHasher> =
        HashSet::with_capacity_and_hasher(expected, KeyHasher::default());
    for pass in passes.iter() {
        seen.clear();
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
                let repeats = ids
                    .iter()
                    .flatten()
                    .filter(|id| pass.holds(*id))
                    .any(|id| !seen.insert(hasher.hash_one(id)));
                if repeats {
                    return Ok(false);
                }
                read += batch.num_rows() as u64;
            }
            if read != file.rows {
                return Ok(false);
            }
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

/// Which rows of one staged file win.
struct StagedWins {
    /// By row.
    rows: Vec<bool>,
    /// How many win.
    count: usize,
    /// How many rows have an id (the others never enter the table).
    with_id: usize,
}

/// What a merge decides from.
struct MergeInput<'a, 'r> {
    run: &'a RunInfo<'r>,
    table: &'a TableId,
    /// The table as it is (none: it does not exist yet).
    snapshot: Option<&'a Snapshot>,
    /// The run's files of the type.
    staged: &'a [WrittenFile],
    /// The run's deletions.
    deleted: &'a HashSet<&'a Key, KeyHasher>,
}

/// What a merge changes in the table, decided one pass at a time.
struct Selection {
    /// The winning rows of each staged file.
    wins: Vec<StagedWins>,
    /// Rows of existing files that go, by file key.
    removed: HashMap<String, HashSet<usize>>,
    /// Where each touched resource stands afterwards, when asked for.
    winners: Option<Winners>,
}

impl Selection {
    fn removed_rows(&self) -> u64 {
        self.removed.values().map(|rows| rows.len() as u64).sum()
    }
}

impl MergeInput<'_, '_> {
    /// Decides, pass by pass, which of the run's rows win and which of the table's rows
    /// go: a pass reads the keys of its share of the resources, from the run's files
    /// and then from the table's.
    fn select(&self, passes: &Passes, want_winners: bool) -> Result<Selection, CommitError> {
        let mut selection = Selection {
            wins: self
                .staged
                .iter()
                .map(|f| StagedWins {
                    rows: vec![false; f.rows as usize],
                    count: 0,
                    with_id: 0,
                })
                .collect(),
            removed: HashMap::new(),
            winners: want_winners.then(Winners::default),
        };
        for pass in passes.iter() {
            let candidates = read_candidates(self.run, self.staged, pass, &mut selection.wins)?;
            self.select_pass(pass, &candidates, &mut selection)?;
        }
        Ok(selection)
    }

    /// One pass: its candidates against the table's rows of the same resources.
    fn select_pass(
        &self,
        pass: Pass<'_>,
        candidates: &Candidates,
        selection: &mut Selection,
    ) -> Result<(), CommitError> {
        // Candidates that lose to the table's row (by key); the others enter the table.
        let mut rejected: HashSet<Key, KeyHasher> = HashSet::default();
        if let Some(winners) = selection.winners.as_mut() {
            for (key, c) in candidates {
                winners.insert(key.clone(), Some(c.lineage.clone()));
            }
            let gone = self.deleted.iter().filter(|k| pass.holds(**k));
            for key in gone.filter(|k| !candidates.contains_key(**k)) {
                winners.insert((*key).clone(), None);
            }
        }
        let mut stays = |key: &Key, lineage: &Lineage| {
            if let Some(winners) = selection.winners.as_mut() {
                winners.insert(key.clone(), Some(lineage.clone()));
            }
        };
        for key in self.snapshot.into_iter().flat_map(|s| s.files().keys()) {
            let path = file_path(self.table, key);
            for_each_key(self.run.cx, &path, KeyColumns::Resource, |existing| {
                if !pass.holds(&existing.key) {
                    return;
                }
                let goes = match candidates.get(&existing.key) {
                    Some(c) if c.version.cmp_newer(&existing.version).is_gt() => true,
                    Some(_) => {
                        rejected.insert(existing.key.clone());
                        stays(&existing.key, &existing.lineage);
                        false
                    }
                    None if self.deleted.contains(&existing.key) => {
                        let goes = existing.version.transaction_time < self.run.transaction_micros;
                        if !goes {
                            stays(&existing.key, &existing.lineage);
                        }
                        goes
                    }
                    None => false,
                };
                if goes {
                    selection
                        .removed
                        .entry(key.clone())
                        .or_default()
                        .insert(existing.row);
                }
            })?;
        }
        let accepted = candidates
            .iter()
            .filter(|(key, _)| rejected.is_empty() || !rejected.contains(*key));
        for (_, c) in accepted {
            let wins = &mut selection.wins[c.file];
            if wins.rows.len() <= c.row {
                wins.rows.resize(c.row + 1, false);
            }
            if !wins.rows[c.row] {
                wins.rows[c.row] = true;
                wins.count += 1;
            }
        }
        Ok(())
    }
}

/// Writes what the selection adds (the run's winning rows, and what stays of the
/// files that lose rows) and returns the commit's actions and the files added.
fn write_plan(
    output: &Output<'_>,
    snapshot: Option<&Snapshot>,
    selection: &Selection,
    staged: &[WrittenFile],
) -> Result<(Vec<Action>, TableManifest), CommitError> {
    let mut added = TableManifest::default();
    let mut writer = output.writer();
    for (file, wins) in staged.iter().zip(&selection.wins) {
        match wins.count {
            0 => {}
            // Every row of the file wins (and it has no row without an id): take it whole.
            n if n == wins.with_id && n as u64 == file.rows => {
                added.push(output.copy_file(file, added.files.len())?)
            }
            _ => {
                output.keep_rows(&file.path, |r| wins.rows.get(r) == Some(&true), &mut writer)?;
            }
        }
    }
    let mut actions = Vec::new();
    for (key, gone) in &selection.removed {
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
