//! What the daemon reports to operators: Prometheus metrics on `/metrics` and `/healthz`,
//! served with axum on `daemon.listen`.
//!
//! Runs record through the `metrics` facade (no-ops unless a recorder is installed, as
//! in `run`): per source, runs by outcome, rows, bytes in and out, rejected lines, the
//! last run's duration and success time, whether a run is in progress, and histograms
//! of run and phase durations. The daemon installs the Prometheus recorder, adds the
//! standard process metrics (CPU, memory, file descriptors, threads) and renders the
//! text format on each scrape.

use std::{net::SocketAddr, time::Duration};

use axum::{Router, http::header, response::IntoResponse, routing::get};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::{ingest::Outcome, warehouse::RunManifest};

/// Buckets of the duration histograms, in seconds: a second to a day.
const DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
];

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The Prometheus recorder cannot be installed (one per process).
    #[error("cannot install the metrics recorder")]
    Install(#[source] metrics_exporter_prometheus::BuildError),
}

/// How a run ended, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Committed, nothing rejected (or already committed).
    Success,
    /// Committed, but incomplete.
    Partial,
    /// Not committed.
    Failure,
}

impl RunOutcome {
    const ALL: [RunOutcome; 3] = [Self::Success, Self::Partial, Self::Failure];

    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Partial => "partial",
            Self::Failure => "failure",
        }
    }

    /// How a run's outcome counts (a rerun of a committed export is a success; a
    /// cancelled run committed nothing).
    pub fn of(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Complete | Outcome::AlreadyCommitted | Outcome::CommittedByAnother => {
                Self::Success
            }
            Outcome::Partial => Self::Partial,
            Outcome::TooManyRejected | Outcome::Cancelled => Self::Failure,
        }
    }
}

/// The Prometheus recorder of this process and its process metrics.
pub struct Metrics {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

impl Metrics {
    /// Installs the process's recorder, with every source's series at zero so they
    /// appear before their first run.
    pub fn install(sources: &[String]) -> Result<Self, MetricsError> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), DURATION_BUCKETS)
            .and_then(PrometheusBuilder::install_recorder)
            .map_err(MetricsError::Install)?;
        let process = metrics_process::Collector::default();
        process.describe();
        describe();
        for source in sources {
            for outcome in RunOutcome::ALL {
                runs(source, outcome).increment(0);
            }
            metrics::gauge!("fhir_ingest_running", "source" => source.clone()).set(0.0);
        }
        Ok(Self { handle, process })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.process.collect();
        self.handle.run_upkeep();
        self.handle.render()
    }
}

fn describe() {
    metrics::describe_counter!("fhir_ingest_runs_total", "Finished runs by outcome.");
    metrics::describe_counter!("fhir_ingest_rows_total", "Rows written.");
    metrics::describe_counter!("fhir_ingest_input_bytes_total", "NDJSON bytes read.");
    metrics::describe_counter!("fhir_ingest_output_bytes_total", "Parquet bytes written.");
    metrics::describe_counter!("fhir_ingest_rejected_lines_total", "Lines quarantined.");
    metrics::describe_gauge!(
        "fhir_ingest_last_run_duration_seconds",
        "Duration of the last finished run."
    );
    metrics::describe_gauge!(
        "fhir_ingest_last_success_timestamp_seconds",
        "When the last run that committed finished (Unix time)."
    );
    metrics::describe_gauge!(
        "fhir_ingest_running",
        "1 while a run of the source is going."
    );
    metrics::describe_histogram!(
        "fhir_ingest_run_duration_seconds",
        "Durations of finished runs."
    );
    metrics::describe_histogram!(
        "fhir_ingest_phase_duration_seconds",
        "Durations of the phases of runs (export: kick-off to manifest; ingest: files to commit)."
    );
}

fn runs(source: &str, outcome: RunOutcome) -> metrics::Counter {
    metrics::counter!(
        "fhir_ingest_runs_total",
        "source" => source.to_owned(),
        "outcome" => outcome.label()
    )
}

/// Records that a run of `source` started.
pub fn run_started(source: &str) {
    metrics::gauge!("fhir_ingest_running", "source" => source.to_owned()).set(1.0);
}

/// Records a finished run of `source` (its manifest when it wrote one).
pub fn run_finished(
    source: &str,
    outcome: RunOutcome,
    manifest: Option<&RunManifest>,
    duration: Duration,
) {
    let label = || source.to_owned();
    metrics::gauge!("fhir_ingest_running", "source" => label()).set(0.0);
    runs(source, outcome).increment(1);
    if let Some(m) = manifest.filter(|_| outcome != RunOutcome::Failure) {
        metrics::counter!("fhir_ingest_rows_total", "source" => label()).increment(m.rows());
        metrics::counter!("fhir_ingest_input_bytes_total", "source" => label())
            .increment(m.input.bytes);
        metrics::counter!("fhir_ingest_output_bytes_total", "source" => label())
            .increment(m.bytes_written());
    }
    if let Some(m) = manifest {
        metrics::counter!("fhir_ingest_rejected_lines_total", "source" => label())
            .increment(m.rejected.lines);
    }
    let secs = duration.as_secs_f64();
    metrics::gauge!("fhir_ingest_last_run_duration_seconds", "source" => label()).set(secs);
    metrics::histogram!("fhir_ingest_run_duration_seconds", "source" => label()).record(secs);
    if outcome != RunOutcome::Failure {
        metrics::gauge!("fhir_ingest_last_success_timestamp_seconds", "source" => label())
            .set(crate::temporal::unix_now() as f64);
    }
}

/// Records how long a phase of a run of `source` took.
pub fn phase_finished(source: &str, phase: &'static str, duration: Duration) {
    metrics::histogram!(
        "fhir_ingest_phase_duration_seconds",
        "source" => source.to_owned(),
        "phase" => phase
    )
    .record(duration.as_secs_f64());
}

/// Serves `/healthz` and `/metrics` on `address` until `cancel` fires; returns the bound
/// address (port 0 picks a free one) and the server's task.
pub async fn serve(
    address: SocketAddr,
    metrics: std::sync::Arc<Metrics>,
    cancel: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), MetricsError> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| MetricsError::Bind { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { address, source })?;
    let app = Router::new()
        .route("/healthz", get(|| async { close("ok\n".to_owned()) }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { close(metrics.render()) }
            }),
        );
    let server = axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned());
    let task = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::warn!("metrics endpoint: {e}");
        }
    });
    Ok((bound, task))
}

/// A plain-text answer after which the connection closes (scrapers and probes make one
/// request a connection).
fn close(body: String) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
            (header::CONNECTION, "close"),
        ],
        body,
    )
}
