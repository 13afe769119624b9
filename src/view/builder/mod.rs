//! Rows of a view to Arrow: one [`ViewBuilder`] per view per worker thread. The Arrow
//! arrays of the output columns are built in [`columns`].

mod columns;

use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::ArrowError;
use simd_json::Node;

use super::{
    definition::ViewDefinition,
    fhirpath::eval::Input,
    rows::{EvalError, RowEngine},
};
use columns::{OutColumn, check};

/// Appends the rows of a view over resources to Arrow arrays, and hands them over as
/// record batches. Evaluation buffers are reused from resource to resource.
///
/// ```
/// use std::sync::Arc;
/// use fhir_ingest::view::{ViewBuilder, ViewDefinition};
///
/// let view = ViewDefinition::from_json(
///     r#"{"resource":"Patient","select":[{"column":[{"name":"id","path":"id","type":"id"}]},
///         {"forEach":"name","column":[{"name":"family","path":"family","type":"string"}]}]}"#,
///     "example.json",
/// ).unwrap();
/// let mut builder = ViewBuilder::new(Arc::new(view));
/// let mut line = br#"{"resourceType":"Patient","id":"p1","name":[{"family":"A"},{"family":"B"}]}"#.to_vec();
/// let tape = simd_json::to_tape(&mut line).unwrap();
/// assert_eq!(builder.append_resource(&tape.0).unwrap(), 2);
/// let batch = builder.finish().unwrap();
/// assert_eq!(batch.num_rows(), 2);
/// ```
pub struct ViewBuilder {
    view: Arc<ViewDefinition>,
    engine: RowEngine,
    columns: Vec<OutColumn>,
    rows: usize,
    text: String,
}

impl ViewBuilder {
    /// A builder for `view`.
    pub fn new(view: Arc<ViewDefinition>) -> Self {
        let columns = view
            .columns
            .iter()
            .map(|c| OutColumn::new(c.out, c.collection))
            .collect();
        Self {
            view,
            engine: RowEngine::default(),
            columns,
            rows: 0,
            text: String::new(),
        }
    }

    /// The view this builder evaluates.
    pub fn view(&self) -> &Arc<ViewDefinition> {
        &self.view
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends the rows of one resource; `tape` is the whole resource (`tape[0]` is its
    /// object). A resource of another type than the view's yields no rows. Returns how
    /// many rows were appended. On error nothing is appended.
    ///
    /// Decimals are known here by their parsed value only; see
    /// [`append_resource_line`](Self::append_resource_line) for their exact precision.
    pub fn append_resource(&mut self, tape: &[Node<'_>]) -> Result<usize, EvalError> {
        self.append(tape, None)
    }

    /// As [`append_resource`](Self::append_resource), with the resource's original JSON
    /// text (the line the tape was parsed from): decimals then keep their exact text
    /// (`1.50`) in string columns and their precision in `lowBoundary()` and
    /// `highBoundary()`.
    pub fn append_resource_line(
        &mut self,
        tape: &[Node<'_>],
        line: &[u8],
    ) -> Result<usize, EvalError> {
        self.append(tape, Some(line))
    }

    fn append(&mut self, tape: &[Node<'_>], line: Option<&[u8]>) -> Result<usize, EvalError> {
        let view = &*self.view;
        let inp = Input {
            tape,
            line,
            pool: &view.pool,
        };
        let count = self.engine.run(view, &inp)?;
        let (cells, values, eval) = self.engine.parts(view);
        let width = view.columns.len();
        // Check every value first: an error must leave the builders untouched.
        let data = eval.data(&inp);
        for row in 0..count {
            for (c, def) in view.columns.iter().enumerate() {
                let cell = cells[row * width + c];
                for &item in &values[cell.range()] {
                    if let Err(found) = check(&data, item, def.out) {
                        return Err(EvalError::ColumnType {
                            pointer: def.pointer.clone(),
                            column: def.name.clone(),
                            expected: def.out.name(),
                            found: found.to_owned(),
                        });
                    }
                }
            }
        }
        for row in 0..count {
            for (c, column) in self.columns.iter_mut().enumerate() {
                let cell = cells[row * width + c];
                column.append(&inp, eval, &values[cell.range()], cell, &mut self.text);
            }
        }
        self.rows += count;
        Ok(count)
    }

    /// The rows appended since the last call, as a record batch of the view's schema.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let schema = self.view.arrow_schema();
        let arrays = self
            .columns
            .iter_mut()
            .zip(schema.fields())
            .map(|(c, f)| c.finish(f.data_type()))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = std::mem::take(&mut self.rows);
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(schema, arrays, &options)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};

    use arrow_array::{Array, cast::AsArray, types::Float64Type};
    use simd_json::Tape;

    use super::*;
    use arrow_schema::DataType;

    /// Appends each line through a tape parsed as the decoder parses lines.
    fn append_lines(builder: &mut ViewBuilder, lines: &[String]) -> Vec<Result<usize, EvalError>> {
        let mut buffers = simd_json::Buffers::default();
        let mut results = Vec::new();
        for line in lines {
            let mut input = line.as_bytes().to_vec();
            input.resize(line.len() + simd_json::INPUT_PADDING, b' ');
            let mut tape = Tape::null();
            simd_json::fill_tape_padded(&mut input, line.len(), &mut buffers, &mut tape)
                .expect("valid JSON");
            results.push(builder.append_resource_line(&tape.0, line.as_bytes()));
        }
        results
    }

    fn builder(json: &str) -> ViewBuilder {
        ViewBuilder::new(Arc::new(
            ViewDefinition::from_json(json, "test.json").unwrap(),
        ))
    }

    fn sample_lines(file: &str, n: usize) -> Vec<String> {
        let path = format!(
            "{}/sample-data/bulk-export-10-patients/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
        BufReader::new(gz)
            .lines()
            .take(n)
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn example_views_over_sample_data() {
        let mut patients = builder(include_str!(
            "../../../examples/views/patient_demographics.json"
        ));
        let lines = sample_lines("Patient.ndjson.gz", 5);
        let counts: Vec<usize> = append_lines(&mut patients, &lines)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(counts, [1, 1, 1, 1, 1]);
        let batch = patients.finish().unwrap();
        assert_eq!(batch.num_rows(), 5);
        let family = batch.column_by_name("family").unwrap().as_string::<i32>();
        assert_eq!(family.value(0), "Medhurst46");
        let given = batch.column_by_name("given").unwrap().as_string::<i32>();
        assert_eq!(given.value(0), "Sumiko254 Larue605");
        assert_eq!(batch.column_by_name("gender").unwrap().null_count(), 0);

        let mut observations = builder(include_str!(
            "../../../examples/views/observation_values.json"
        ));
        // The sample export has no Observation file: other types yield no rows.
        let encounters = sample_lines("Encounter.ndjson.gz", 3);
        assert!(
            append_lines(&mut observations, &encounters)
                .into_iter()
                .all(|r| r == Ok(0))
        );
        let lines = vec![
            r#"{"resourceType":"Observation","id":"o1","status":"final","subject":{"reference":"Patient/129c6ac7-8d06-89de-ad63-0204a93e76c3"},"effectiveDateTime":"2019-04-01T10:00:00-04:00","code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body Height"}]},"valueQuantity":{"value":170.20,"unit":"cm"}}"#.to_owned(),
            r#"{"resourceType":"Observation","id":"o2","status":"final","subject":{"reference":"Patient/p2"},"code":{"text":"smoking"},"valueCodeableConcept":{"text":"never"}}"#.to_owned(),
        ];
        let counts: Vec<_> = append_lines(&mut observations, &lines);
        assert_eq!(counts, [Ok(1), Ok(1)]);
        let batch = observations.finish().unwrap();
        let patient = batch
            .column_by_name("patient_id")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(patient.value(0), "129c6ac7-8d06-89de-ad63-0204a93e76c3");
        let value = batch
            .column_by_name("value")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert_eq!(value.value(0), 170.2);
        assert!(value.is_null(1));
        assert_eq!(
            batch
                .column_by_name("code")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "8302-2"
        );
    }

    #[test]
    fn views_are_shared_across_threads_and_builders_move_between_them() {
        fn shared<T: Send + Sync>() {}
        fn moved<T: Send>() {}
        shared::<ViewDefinition>();
        moved::<ViewBuilder>();
    }

    #[test]
    fn an_error_leaves_the_builder_unchanged() {
        let mut b = builder(
            r#"{"resource":"Patient","select":[{"column":[{"name":"id","path":"id"}]},
                {"forEach":"name","column":[{"name":"family","path":"family"}]}]}"#,
        );
        let lines = vec![
            r#"{"resourceType":"Patient","id":"a","name":[{"family":"A1"},{"family":"A2"}]}"#
                .to_owned(),
            // `family` is a string in FHIR; two values make the column an error.
            r#"{"resourceType":"Patient","id":"b","name":[{"family":"B1"},{"family":["x","y"]}]}"#
                .to_owned(),
            r#"{"resourceType":"Patient","id":"c","name":[{"family":"C1"}]}"#.to_owned(),
        ];
        let results = append_lines(&mut b, &lines);
        assert_eq!(results[0], Ok(2));
        assert!(
            matches!(&results[1], Err(EvalError::NotASingleValue { pointer, count: 2, .. }) if pointer == "/select/1/column/0/path"),
            "{:?}",
            results[1]
        );
        assert_eq!(results[2], Ok(1));
        assert_eq!(b.len(), 3);
        let batch = b.finish().unwrap();
        let family = batch.column(1).as_string::<i32>();
        let got: Vec<_> = (0..3).map(|i| family.value(i)).collect();
        assert_eq!(got, ["A1", "A2", "C1"]);
        assert!(b.is_empty());
    }

    #[test]
    fn values_must_fit_the_column_type() {
        let mut b = builder(
            r#"{"resource":"Patient","select":[{"column":[{"name":"n","path":"name.family","type":"integer"}]}]}"#,
        );
        let results = append_lines(
            &mut b,
            &[r#"{"resourceType":"Patient","name":[{"family":"A"}]}"#.to_owned()],
        );
        assert!(
            matches!(
                &results[0],
                Err(EvalError::ColumnType {
                    expected: "integer",
                    ..
                })
            ),
            "{:?}",
            results[0]
        );
        assert_eq!(b.finish().unwrap().num_rows(), 0);
    }

    #[test]
    fn collections_nulls_and_exact_decimals() {
        let mut b = builder(
            r#"{"resource":"Observation","select":[{"column":[
                {"name":"given","path":"component.code.text","collection":true},
                {"name":"v","path":"value.ofType(Quantity).value","type":"string"},
                {"name":"n","path":"component.count()"}]},
                {"forEachOrNull":"note","column":[{"name":"notes","path":"text","collection":true}]}]}"#,
        );
        let lines = vec![
            r#"{"resourceType":"Observation","valueQuantity":{"value":1.50},"component":[{"code":{"text":"a"}},{"code":{"text":"b"}}]}"#.to_owned(),
            r#"{"resourceType":"Observation"}"#.to_owned(),
        ];
        assert_eq!(append_lines(&mut b, &lines), [Ok(1), Ok(1)]);
        let batch = b.finish().unwrap();
        let list = batch.column(0).as_list::<i32>();
        assert_eq!(list.value(0).len(), 2);
        assert!(!list.is_null(1) && list.value(1).is_empty());
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "1.50");
        assert_eq!(batch.column(2).data_type(), &DataType::Int32);
        // Without notes, `forEachOrNull` evaluates its columns over an empty focus: the
        // collection column is an empty list.
        assert_eq!(batch.column(3).as_list::<i32>().value(1).len(), 0);
    }
}
