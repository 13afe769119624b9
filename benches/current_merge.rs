//! The cost of keeping `current/` up to date: a 1% change to a table of 1M resources,
//! merged copy-on-write, against rewriting the whole table.
//!
//! Run with `cargo bench --bench current_merge` (release build). It builds, in a
//! temporary local warehouse, `current/Patient` from 20 daily exports of 50,000
//! patients (1,000,000 rows, 20 files), then merges one more export of 10,000 patients
//! (1%) in two shapes:
//!
//! - **realistic**: 9,000 new patients and 1,000 updates of patients of the latest
//!   export (recently created resources are the ones that change);
//! - **uniform**: 10,000 updates of patients drawn uniformly from the whole table (the
//!   worst case for copy-on-write without deletion vectors);
//!
//! and, for comparison, a full rewrite of the table (what a tool that rewrites a merged
//! snapshot every run pays). It prints, for each, the time and the bytes of `current/`
//! rewritten (files removed) and written (files added), as a fraction of the table.
//! `FHIR_INGEST_BENCH_ROWS` changes the table size (default 1,000,000).

use std::{io::Write, num::NonZeroUsize, path::PathBuf, sync::Arc, time::Instant};

use fhir_ingest::{
    ingest::{self, DecodeConfig, IngestSettings, Progress, RunContext, RunSpec},
    input,
    maintain::compact::compact_table,
    schema::Registry,
    sink::ParquetConfig,
    warehouse::{ExportRecord, TableId, Warehouse},
};

const EXPORTS: usize = 20;

fn patient(id: usize, version: usize, day: usize) -> String {
    format!(
        r#"{{"resourceType":"Patient","id":"p{id:07}","meta":{{"versionId":"{version}","lastUpdated":"2026-01-{day:02}T00:00:00Z"}},"gender":"{}","birthDate":"19{:02}-0{}-1{}","name":[{{"family":"Family{}","given":["Given{id}"]}}],"address":[{{"city":"City{}","postalCode":"{:05}"}}]}}"#,
        if id.is_multiple_of(2) {
            "female"
        } else {
            "male"
        },
        id % 100,
        1 + id % 9,
        id % 10,
        id % 997,
        id % 101,
        id % 99_999
    )
}

struct Bench {
    _dir: tempfile::TempDir,
    inputs: PathBuf,
    warehouse: Warehouse,
    cx: RunContext,
    settings: IngestSettings,
    runtime: tokio::runtime::Runtime,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let warehouse = Warehouse::open_local(&dir.path().join("wh")).unwrap();
        let cx = RunContext {
            warehouse: warehouse.clone(),
            registry: Arc::new(Registry::embedded().unwrap()),
            runtime: runtime.handle().clone(),
            cancel: Default::default(),
            progress: Arc::new(Progress::default()),
        };
        Self {
            inputs: dir.path().join("in"),
            _dir: dir,
            warehouse,
            cx,
            settings: IngestSettings {
                decode: DecodeConfig::default(),
                ..IngestSettings::default()
            },
            runtime,
        }
    }

    /// Ingests `lines` as the export of `day`.
    fn export(&self, day: usize, lines: impl Iterator<Item = String>) -> f64 {
        let folder = self.inputs.join(format!("day{day}"));
        std::fs::create_dir_all(&folder).unwrap();
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(folder.join("Patient.ndjson")).unwrap());
        for line in lines {
            writeln!(file, "{line}").unwrap();
        }
        file.flush().unwrap();
        drop(file);
        let spec = RunSpec {
            source: "ehr".into(),
            namespace: "ehr".into(),
            inputs: input::discover(&[folder], &self.cx.registry).unwrap(),
            parallel_files: NonZeroUsize::MIN,
            transaction_time: Some(format!("2026-01-{day:02}T12:00:00Z")),
            export: ExportRecord::default(),
            views: Vec::new(),
        };
        let started = Instant::now();
        ingest::run(&self.cx, &self.settings, spec).unwrap();
        started.elapsed().as_secs_f64()
    }

    /// Paths and sizes of the live files of `current/Patient`.
    fn current_files(&self) -> Vec<(String, u64)> {
        self.runtime
            .block_on(self.warehouse.live_files(&TableId::current("Patient")))
            .unwrap()
            .into_iter()
            .map(|f| (f.path, f.bytes))
            .collect()
    }

    /// Runs `change` and reports the bytes of current/ it rewrote and wrote.
    fn measure(&self, name: &str, change: impl FnOnce() -> f64) {
        let before = self.current_files();
        let total: u64 = before.iter().map(|f| f.1).sum();
        let secs = change();
        let after = self.current_files();
        let removed: u64 = before
            .iter()
            .filter(|f| !after.contains(f))
            .map(|f| f.1)
            .sum();
        let added: u64 = after
            .iter()
            .filter(|f| !before.contains(f))
            .map(|f| f.1)
            .sum();
        println!(
            "{name:<34} {secs:>7.2} s   rewrote {:>6.1} MB ({:>5.1}% of {:.1} MB)   wrote {:>6.1} MB ({:>5.1}%)",
            removed as f64 / 1e6,
            100.0 * removed as f64 / total as f64,
            total as f64 / 1e6,
            added as f64 / 1e6,
            100.0 * added as f64 / total as f64,
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` (as criterion answers)
    }
    let rows: usize = std::env::var("FHIR_INGEST_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let per_export = rows / EXPORTS;
    let change = rows / 100;
    println!(
        "current/Patient: {rows} rows from {EXPORTS} exports; a change of {change} resources (1%)"
    );
    let bench = Bench::new();
    let load = Instant::now();
    for day in 0..EXPORTS {
        let first = day * per_export;
        bench.export(
            day + 1,
            (first..first + per_export).map(|id| patient(id, 1, day + 1)),
        );
    }
    println!("initial load: {:.1} s", load.elapsed().as_secs_f64());

    let latest = (EXPORTS - 1) * per_export;
    bench.measure("realistic: 90% new, 10% recent", || {
        let new = (rows..rows + change * 9 / 10).map(|id| patient(id, 1, 21));
        let updates = (latest..latest + change / 10).map(|id| patient(id, 2, 21));
        bench.export(21, new.chain(updates))
    });
    bench.measure("uniform: 1% random updates", || {
        // A multiplicative walk over the ids: spread uniformly, no repeats.
        let step = 7_919usize;
        let updates = (0..change).map(|i| patient((i * step * 131 + 17) % rows, 3, 22));
        bench.export(22, updates)
    });
    bench.measure("full rewrite of the table", || {
        let started = Instant::now();
        let table = TableId::current("Patient");
        compact_table(
            &bench.cx,
            &table,
            usize::MAX >> 1,
            &ParquetConfig::default(),
        )
        .unwrap();
        started.elapsed().as_secs_f64()
    });
}
