//! `fhir-ingest daemon`: every source that has a `schedule` runs on it until Ctrl-C or
//! SIGTERM, with `/healthz` and Prometheus `/metrics` served on `daemon.listen`.
//!
//! The scheduling itself is [`crate::schedule::run_daemon`]; this module wires it to the
//! configuration, the runs ([`crate::source::run`]), the metrics and the signals. On a
//! signal no new run starts, every export in flight is cancelled on its server
//! ([`crate::export::cancel_active_exports`]) and the process exits, 130 when runs were
//! in progress (they commit nothing, so checkpoints stay), else 0.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use tokio::runtime::{Handle, Runtime};

use crate::{
    config::Config,
    export,
    metrics::{self, Metrics, MetricsError, RunOutcome, RunTotals},
    pipeline::Outcome,
    schedule::{self, ScheduledSource, StopSignal},
    schema::{Registry, SchemaError},
    source::{self, RunContext},
    warehouse::{RunManifest, Warehouse},
};

/// Errors that keep the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// No source has a schedule.
    #[error("no source in {0} has a schedule: add e.g. schedule = \"0 2 * * *\" to a [[sources]]")]
    NothingScheduled(String),
    /// The embedded schemas do not load (a build problem).
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The metrics endpoint cannot listen.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// Runs the scheduled sources of `config` into `warehouse` until a signal ends the
/// process; `log` gets one line per notable event.
pub fn run(
    config: &Config,
    warehouse: Warehouse,
    runtime: &Runtime,
    log: fn(&str),
) -> Result<(), DaemonError> {
    let scheduled: Vec<ScheduledSource> = config
        .sources
        .iter()
        .filter_map(|s| {
            s.schedule.clone().map(|schedule| ScheduledSource {
                name: s.name.clone(),
                schedule,
            })
        })
        .collect();
    if scheduled.is_empty() {
        return Err(DaemonError::NothingScheduled(
            config.path.display().to_string(),
        ));
    }
    let registry = Arc::new(Registry::embedded()?);
    let metrics = Arc::new(Metrics::default());
    for s in &scheduled {
        metrics.register(&s.name);
    }
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (address, _server) = runtime.block_on(metrics::serve(
        config.daemon.listen,
        metrics.clone(),
        shutdown_rx.clone(),
    ))?;
    log(&format!(
        "daemon: {} scheduled sources; /healthz and /metrics on http://{address}",
        scheduled.len()
    ));
    for s in &scheduled {
        let next = s
            .schedule
            .next_after(chrono::Utc::now())
            .map_or("never".into(), |t| t.to_rfc3339());
        log(&format!(
            "source {}: schedule {:?}, next run {next}",
            s.name,
            s.schedule.expression()
        ));
    }
    let running = Arc::new(AtomicUsize::new(0));
    let signal_running = running.clone();
    runtime.spawn(async move {
        export::shutdown_signal().await;
        log("signal received: stopping; no new runs start");
        let _ = shutdown_tx.send(true);
        let cancelled = export::cancel_active_exports().await;
        let busy = signal_running.load(Ordering::SeqCst);
        // Runs in progress are abandoned: nothing they wrote is committed.
        std::process::exit(if busy > 0 || cancelled > 0 { 130 } else { 0 });
    });
    let config = Arc::new(config.clone());
    let handle = runtime.handle().clone();
    let tally = runtime.block_on(schedule::run_daemon(
        scheduled,
        config.daemon.max_concurrent_sources.get(),
        shutdown_rx,
        StopSignal::default(),
        move |name, _stop| {
            running.fetch_add(1, Ordering::SeqCst);
            run_scheduled(
                &config,
                &warehouse,
                registry.clone(),
                handle.clone(),
                &metrics,
                name,
                log,
            );
            running.fetch_sub(1, Ordering::SeqCst);
        },
    ));
    for (source, t) in tally {
        log(&format!(
            "source {source}: {} runs started, {} firings skipped",
            t.started, t.skipped
        ));
    }
    Ok(())
}

/// One scheduled run of `name`: its summary to the log, its totals to the metrics.
fn run_scheduled(
    config: &Config,
    warehouse: &Warehouse,
    registry: Arc<Registry>,
    runtime: Handle,
    metrics: &Metrics,
    name: &str,
    log: fn(&str),
) {
    let Some(source) = config.sources.iter().find(|s| s.name == name) else {
        return;
    };
    let cx = RunContext {
        config,
        warehouse,
        registry,
        runtime,
        transaction_time: None,
        handle_signals: false,
    };
    metrics.run_started(name);
    let started = Instant::now();
    match source::run(&cx, source, &log) {
        Ok(run) => {
            let totals = totals(&run.summary.manifest);
            log(&format!(
                "source {name}: run {} {:?}: {} rows, {} rejected, {:.1} s",
                run.summary.manifest.run_id,
                run.summary.outcome,
                totals.rows,
                totals.rejected,
                run.summary.elapsed.as_secs_f64()
            ));
            metrics.run_finished(
                name,
                outcome(run.summary.outcome),
                totals,
                started.elapsed(),
            );
        }
        Err(e) => {
            log(&format!("source {name}: run failed: {e}"));
            metrics.run_finished(
                name,
                RunOutcome::Failure,
                RunTotals::default(),
                started.elapsed(),
            );
        }
    }
}

/// How the metrics count a run's outcome (a rerun of a committed export is a success).
fn outcome(outcome: Outcome) -> RunOutcome {
    match outcome {
        Outcome::Complete | Outcome::AlreadyCommitted | Outcome::CommittedByAnother => {
            RunOutcome::Success
        }
        Outcome::Partial => RunOutcome::Partial,
        Outcome::TooManyRejected => RunOutcome::Failure,
    }
}

/// A run manifest's totals, as the metrics count them.
fn totals(manifest: &RunManifest) -> RunTotals {
    RunTotals {
        rows: manifest.tables.values().map(|t| t.rows).sum(),
        bytes_in: manifest.input.bytes,
        bytes_out: manifest
            .tables
            .values()
            .flat_map(|t| &t.files)
            .map(|f| f.bytes)
            .sum(),
        rejected: manifest.rejected.lines,
    }
}
