//! NDJSON lines to Arrow record batches, one table per resource type.
//!
//! Each line is parsed by simd-json into a flat tape (no DOM); the tape is walked once
//! into column decoders prepared per resource type ([`column`]). Whatever the typed
//! columns cannot hold goes to the row's `_overflow` (module `overflow`); a line that is not a
//! FHIR resource at all is rejected with a [`Rejection`] saying why.
//!
//! ```
//! use std::sync::Arc;
//! use fhir_ingest::{decode::{LineDecoder, LineOrigin, RunLineage}, schema::Registry};
//!
//! let registry = Arc::new(Registry::embedded().unwrap());
//! let lineage = Arc::new(RunLineage { source: "demo".into(), namespace: "demo".into(), run_id: "r1".into(), transaction_time: None });
//! let mut decoder = LineDecoder::new(registry, lineage);
//! let origin = LineOrigin { file: "Patient.ndjson".into(), expected_type: None, skip_parameters: false };
//! decoder.decode_line(br#"{"resourceType":"Patient","id":"p1","birthDate":"1970"}"#, &origin, 1).unwrap();
//! let batches = decoder.finish_all().unwrap();
//! assert_eq!(batches[0].0, "Patient");
//! assert_eq!(batches[0].1.num_rows(), 1);
//! ```

mod column;
pub(crate) mod overflow;
mod reason;
mod rejection;
mod view_table;

use std::sync::Arc;

use arrow_array::{
    RecordBatch, StructArray,
    builder::{Int64Builder, StringBuilder},
};
use arrow_schema::{ArrowError, SchemaRef};
use rustc_hash::FxHashMap;
use simd_json::{Node, Tape};

pub use self::reason::incomplete_json;
pub use self::rejection::Rejection;
pub use self::view_table::{RESOURCE_KEY_COLUMN, view_table_schema};
use self::{
    column::{Cx, StructColumn},
    overflow::{NumberTexts, OverflowWriter, Seg},
    view_table::{ViewTable, lineage_array},
};
use crate::{
    schema::{Registry, ResourceSchema},
    view::ViewDefinition,
};

/// Where a batch of lines comes from.
#[derive(Debug, Clone)]
pub struct LineOrigin {
    /// The file name or URL (secrets stripped), as recorded in `_lineage.file`.
    pub file: Arc<str>,
    /// The resource type the file is said to hold; other types are rejected.
    pub expected_type: Option<Arc<str>>,
    /// Skip `Parameters` lines (counted, not ingested): the header lines that Bulk Data
    /// 3.0 files organised by patient may carry. True for downloads, false for local files.
    pub skip_parameters: bool,
}

/// The lineage values shared by every row of a run.
#[derive(Debug, Clone)]
pub struct RunLineage {
    /// The configured source name.
    pub source: String,
    /// The namespace of the resources' ids (the source's own, unless sources share one).
    pub namespace: String,
    /// The run id.
    pub run_id: String,
    /// The export's `transactionTime`, when the data came from an export.
    pub transaction_time: Option<String>,
}

/// A resource whose view rows could not be computed (its table row was kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewFailure {
    /// The view.
    pub view: String,
    /// The resource's file.
    pub file: Arc<str>,
    /// Its line.
    pub line: u64,
    /// What went wrong.
    pub message: String,
}

/// Decodes lines of any resource type; owns one [`TableDecoder`] per type seen, and the
/// rows of the views of each type.
pub struct LineDecoder {
    registry: Arc<Registry>,
    lineage: Arc<RunLineage>,
    tables: FxHashMap<String, TableDecoder>,
    views: FxHashMap<String, Vec<ViewTable>>,
    view_failures: Vec<ViewFailure>,
    buffers: simd_json::Buffers,
    input: Vec<u8>,
    tape: Option<Tape<'static>>,
    numbers: NumberTexts,
    path: Vec<Seg>,
    overflow: OverflowWriter,
    skipped: u64,
    /// Spans of the numbers beyond the float range of the line being decoded.
    huge: Vec<(usize, usize)>,
}

impl LineDecoder {
    /// A decoder using the schemas of `registry`.
    pub fn new(registry: Arc<Registry>, lineage: Arc<RunLineage>) -> Self {
        Self::with_views(registry, lineage, &[])
    }

    /// A decoder that also computes `views` from each line of their resource type.
    pub fn with_views(
        registry: Arc<Registry>,
        lineage: Arc<RunLineage>,
        views: &[Arc<ViewDefinition>],
    ) -> Self {
        let mut by_type: FxHashMap<String, Vec<ViewTable>> = FxHashMap::default();
        for view in views {
            by_type
                .entry(view.resource().to_owned())
                .or_default()
                .push(ViewTable::new(view.clone()));
        }
        Self {
            registry,
            lineage,
            tables: FxHashMap::default(),
            views: by_type,
            view_failures: Vec::new(),
            buffers: simd_json::Buffers::default(),
            input: Vec::new(),
            tape: Some(Tape::null()),
            numbers: NumberTexts::default(),
            path: Vec::new(),
            overflow: OverflowWriter::default(),
            skipped: 0,
            huge: Vec::new(),
        }
    }

    /// Lines skipped (not ingested, not rejected) since the last call: `Parameters`
    /// header lines of files whose origin says to skip them.
    pub fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.skipped)
    }

    /// Decodes one line (without its newline) into the table of its resource type and
    /// returns that type's row count so far.
    pub fn decode_line(
        &mut self,
        line: &[u8],
        origin: &LineOrigin,
        line_no: u64,
    ) -> Result<usize, Rejection> {
        let mut input = std::mem::take(&mut self.input);
        self.huge.clear();
        // Parsed again (rarely) for each number beyond the float range: see
        // `overflow::huge_number_at`.
        let result = loop {
            fill_input(&mut input, line, &self.huge);
            let mut tape = self.tape.take().unwrap_or_else(Tape::null).reset();
            let input_base = input.as_ptr() as usize;
            let parsed =
                simd_json::fill_tape_padded(&mut input, line.len(), &mut self.buffers, &mut tape);
            let outcome = match parsed {
                Ok(()) => {
                    if !self.huge.is_empty() {
                        overflow::mark_huge(&mut tape.0, line, &self.huge);
                    }
                    Some(self.decode_tape(&tape.0, line, input_base, origin, line_no))
                }
                Err(e) => match overflow::huge_number_at(line, e.index()) {
                    Some(span) if self.huge.len() < MAX_HUGE_NUMBERS => {
                        self.huge.push(span);
                        None
                    }
                    _ => Some(Err(Rejection::InvalidJson(reason::describe(line, &e)))),
                },
            };
            self.tape = Some(tape.reset());
            if let Some(result) = outcome {
                break result;
            }
        };
        self.input = input;
        result
    }

    fn decode_tape(
        &mut self,
        tape: &[Node<'_>],
        line: &[u8],
        input_base: usize,
        origin: &LineOrigin,
        line_no: u64,
    ) -> Result<usize, Rejection> {
        let resource_type = resource_type_of(tape)?;
        if origin.skip_parameters && resource_type == "Parameters" {
            self.skipped += 1;
            return Ok(0);
        }
        if let Some(expected) = &origin.expected_type
            && **expected != *resource_type
        {
            return Err(Rejection::TypeMismatch {
                expected: expected.to_string(),
                found: resource_type.to_owned(),
            });
        }
        if !self.tables.contains_key(resource_type) {
            let schema = self
                .registry
                .get(resource_type)
                .ok_or_else(|| Rejection::UnknownResourceType(resource_type.to_owned()))?;
            self.tables.insert(
                resource_type.to_owned(),
                TableDecoder::new(schema.clone(), self.lineage.clone()),
            );
        }
        let table = self.tables.get_mut(resource_type).expect("inserted above");
        self.numbers.reset();
        self.path.clear();
        self.overflow.reset();
        let mut cx = Cx {
            tape,
            line,
            input_base,
            numbers: &mut self.numbers,
            path: &mut self.path,
            overflow: &mut self.overflow,
        };
        table.append(&mut cx, &origin.file, line_no, line.len());
        let rows = table.rows;
        for view in self.views.get_mut(resource_type).into_iter().flatten() {
            if let Err(e) = view.append(tape, line, &origin.file, line_no) {
                self.view_failures.push(ViewFailure {
                    view: view.name().to_owned(),
                    file: origin.file.clone(),
                    line: line_no,
                    message: e.to_string(),
                });
            }
        }
        Ok(rows)
    }

    /// The resources whose view rows failed since the last call.
    pub fn take_view_failures(&mut self) -> Vec<ViewFailure> {
        std::mem::take(&mut self.view_failures)
    }

    /// Finishes the view rows of `resource_type`'s views that have rows, as
    /// `(view name, batch)`.
    pub fn finish_views(
        &mut self,
        resource_type: &str,
        out: &mut Vec<(String, RecordBatch)>,
    ) -> Result<(), ArrowError> {
        for view in self.views.get_mut(resource_type).into_iter().flatten() {
            if view.rows() > 0 {
                out.push((view.name().to_owned(), view.finish(&self.lineage)?));
            }
        }
        Ok(())
    }

    /// Fills `out` with the types that have a table being built, sorted.
    pub fn types(&self, out: &mut Vec<String>) {
        out.clear();
        out.extend(self.tables.keys().cloned());
        out.sort_unstable();
    }

    /// Fills `out` with the types whose batch should be handed over now: full ones
    /// (`rows` or `bytes` reached), and those that got no line since the previous call
    /// (their file is probably done: holding their builders would only hold memory).
    pub fn ready_types(&mut self, rows: usize, bytes: usize, out: &mut Vec<String>) {
        out.clear();
        for (resource_type, table) in &mut self.tables {
            if table.rows > 0 && (table.rows >= rows || table.bytes >= bytes || !table.touched) {
                out.push(resource_type.clone());
            }
            table.touched = false;
        }
        out.sort_unstable();
    }

    /// Finishes the batch of one type, if it has rows.
    pub fn finish(&mut self, resource_type: &str) -> Result<Option<RecordBatch>, ArrowError> {
        match self.tables.get_mut(resource_type) {
            Some(table) if table.rows > 0 => table.finish().map(Some),
            _ => Ok(None),
        }
    }

    /// Finishes the batches of every type with rows, sorted by type.
    pub fn finish_all(&mut self) -> Result<Vec<(String, RecordBatch)>, ArrowError> {
        let mut types: Vec<String> = self
            .tables
            .iter()
            .filter(|(_, t)| t.rows > 0)
            .map(|(k, _)| k.clone())
            .collect();
        types.sort();
        let mut out = Vec::with_capacity(types.len());
        for t in types {
            if let Some(batch) = self.finish(&t)? {
                out.push((t, batch));
            }
        }
        Ok(out)
    }
}

/// Numbers beyond the float range kept in one line at most (each costs a parse).
const MAX_HUGE_NUMBERS: usize = 64;

/// Copies `line` into the parse buffer, with the numbers of `huge` blanked out (a `0`
/// and spaces: every offset stays), and pads it as simd-json needs.
fn fill_input(input: &mut Vec<u8>, line: &[u8], huge: &[(usize, usize)]) {
    input.clear();
    input.extend_from_slice(line);
    for &(start, end) in huge {
        input[start] = b'0';
        input[start + 1..end].fill(b' ');
    }
    input.resize(line.len() + simd_json::INPUT_PADDING, b' ');
}

/// The `resourceType` of a parsed line. Every top-level key is looked at: a line that
/// gives it twice with different values is ambiguous (the table would depend on which
/// one a reader takes), so it is refused.
fn resource_type_of<'t>(tape: &[Node<'t>]) -> Result<&'t str, Rejection> {
    let Some(&Node::Object { len, .. }) = tape.first() else {
        return Err(Rejection::NotAnObject);
    };
    let mut found: Option<&'t str> = None;
    let mut key = 1;
    for _ in 0..len {
        let value = key + 1;
        if let Node::String("resourceType") = tape[key] {
            match (found, tape[value]) {
                (None, Node::String(t)) => found = Some(t),
                (None, _) => return Err(Rejection::MissingResourceType),
                (Some(first), Node::String(t)) if t == first => {}
                (Some(first), other) => {
                    return Err(Rejection::AmbiguousResourceType {
                        first: first.to_owned(),
                        other: match other {
                            Node::String(t) => format!("{t:?}"),
                            _ => "a value that is not a string".to_owned(),
                        },
                    });
                }
            }
        }
        key = value + overflow::node_span(tape, value);
    }
    found.ok_or(Rejection::MissingResourceType)
}

/// Builds the record batch of one resource type.
pub struct TableDecoder {
    arrow: SchemaRef,
    root: StructColumn,
    lineage: Arc<RunLineage>,
    lineage_file: StringBuilder,
    lineage_line: Int64Builder,
    overflow: StringBuilder,
    rows: usize,
    bytes: usize,
    /// A line was decoded since the last [`LineDecoder::ready_types`].
    touched: bool,
}

impl TableDecoder {
    /// A decoder for the table of `schema`.
    pub fn new(schema: Arc<ResourceSchema>, lineage: Arc<RunLineage>) -> Self {
        Self {
            arrow: schema.arrow_schema(),
            root: StructColumn::new(&schema.elements, &["resourceType"]),
            lineage,
            lineage_file: StringBuilder::new(),
            lineage_line: Int64Builder::new(),
            overflow: StringBuilder::new(),
            rows: 0,
            bytes: 0,
            touched: false,
        }
    }

    fn append(&mut self, cx: &mut Cx<'_, '_>, file: &str, line_no: u64, line_len: usize) {
        let Node::Object { len, .. } = cx.tape[0] else {
            unreachable!("checked by resource_type_of")
        };
        self.root.append_object(cx, 0, len);
        self.overflow.append_option(cx.overflow.finish());
        self.lineage_file.append_value(file);
        self.lineage_line.append_value(line_no as i64);
        self.rows += 1;
        self.bytes += line_len;
        self.touched = true;
    }

    /// The rows decoded since the last call, as a record batch.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let (mut columns, _) = self.root.finish_columns();
        let rows = self.rows;
        columns.push(Arc::new(self.finish_lineage(rows)));
        columns.push(Arc::new(self.overflow.finish()));
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.arrow.clone(), columns)
    }

    fn finish_lineage(&mut self, rows: usize) -> StructArray {
        let file = Arc::new(self.lineage_file.finish());
        let line = Arc::new(self.lineage_line.finish());
        lineage_array(&self.lineage, file, line, rows)
    }
}

#[cfg(test)]
mod tests;
