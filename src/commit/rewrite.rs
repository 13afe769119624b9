//! Copy-on-write: the rows of a file that stay, written into new files of a table; and
//! whole files taken over as they are (a server-side copy, no re-encoding).

use arrow_array::BooleanArray;
use arrow_schema::SchemaRef;
use arrow_select::filter::filter_record_batch;
use object_store::{ObjectStoreExt, path::Path};

use super::CommitError;
use crate::{
    commit::CommitContext,
    sink::{RunFiles, TableWriter, writer_properties},
    warehouse::{FileStats, TableId, TableManifest, WrittenFile, layout},
};

/// Where a merge writes: the table, its run's file names, and its file settings.
pub struct Output<'a> {
    /// The context.
    pub cx: &'a CommitContext,
    /// The table written.
    pub table: TableId,
    /// The run id and attempt token (plus a suffix telling the merge's files apart).
    pub files: RunFiles,
    /// The schema of the table's files (none: the schema of the files read).
    pub schema: Option<SchemaRef>,
    /// The Parquet settings.
    pub parquet: &'a crate::sink::ParquetConfig,
}

impl Output<'_> {
    /// A writer of new files of the table (unpartitioned).
    pub fn writer(&self) -> TableWriter {
        TableWriter::new(
            self.files.clone(),
            self.table.clone(),
            None,
            self.schema.clone(),
            writer_properties(self.parquet),
            self.parquet.max_file_bytes,
        )
    }

    /// Appends the rows of the file at `path` whose indices `keep` accepts to `writer`;
    /// returns how many.
    pub fn keep_rows(
        &self,
        path: &str,
        keep: impl Fn(usize) -> bool,
        writer: &mut TableWriter,
    ) -> Result<u64, CommitError> {
        let reader = self
            .cx
            .runtime
            .block_on(self.cx.warehouse.read_parquet(path))?;
        let (mut offset, mut kept) = (0, 0);
        for batch in reader {
            let batch = batch.map_err(|source| CommitError::Read {
                path: path.to_owned(),
                source,
            })?;
            let mask: BooleanArray = (0..batch.num_rows())
                .map(|i| Some(keep(offset + i)))
                .collect();
            offset += batch.num_rows();
            let filtered =
                filter_record_batch(&batch, &mask).map_err(|source| CommitError::Read {
                    path: path.to_owned(),
                    source,
                })?;
            if filtered.num_rows() > 0 {
                kept += filtered.num_rows() as u64;
                writer.write(&filtered)?;
            }
        }
        Ok(kept)
    }

    /// Takes the whole file `from` into the table as its `n`th copied file: a copy in the
    /// store, with the file's row count and statistics.
    pub fn copy_file(&self, from: &WrittenFile, n: usize) -> Result<WrittenFile, CommitError> {
        let to = layout::data_file(
            &self.table,
            None,
            &self.files.run_id,
            &format!("{}k", self.files.attempt),
            n,
        );
        self.cx
            .runtime
            .block_on(
                self.cx
                    .warehouse
                    .store()
                    .copy(&Path::from(from.path.as_str()), &to),
            )
            .map_err(|source| CommitError::Copy {
                from: from.path.clone(),
                to: to.to_string(),
                source,
            })?;
        Ok(WrittenFile {
            path: to.to_string(),
            stats: from.stats.clone().map(|s| FileStats {
                partition: None,
                ..s
            }),
            ..from.clone()
        })
    }
}

/// Finishes `writer` into `manifest`.
pub fn finish_into(writer: TableWriter, manifest: &mut TableManifest) -> Result<(), CommitError> {
    for file in writer.finish()?.files {
        manifest.push(file);
    }
    Ok(())
}
