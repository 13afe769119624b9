//! `fhir-ingest daemon`: every source that has a `schedule` runs on it until the run
//! context is cancelled (Ctrl-C or SIGTERM), with `/healthz` and Prometheus `/metrics`
//! served on `daemon.listen`.
//!
//! The scheduling itself is [`crate::schedule::run_daemon`]; this module wires it to the
//! configuration, the runs ([`super::run_source`]) and the metrics. On cancellation no
//! new run starts; the runs in progress see the same token, cancel their exports on the
//! server and commit nothing, so checkpoints stay; the daemon returns once they ended.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use super::metrics::{self, Metrics, MetricsError};
use crate::{
    config::Config,
    ingest::RunContext,
    maintain::vacuum,
    schedule::{self, Schedule, ScheduledSource},
    warehouse::Warehouse,
};

/// Errors that keep the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// No source has a schedule.
    #[error("no source in {0} has a schedule: add e.g. schedule = \"0 2 * * *\" to a [[sources]]")]
    NothingScheduled(String),
    /// The metrics endpoint cannot start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonExit {
    /// Runs that were in progress when the daemon was cancelled (cut short, nothing
    /// committed).
    pub interrupted: usize,
}

/// Runs the scheduled sources of `config` until `cx.cancel` fires. Blocking: call it
/// outside the runtime.
pub fn run(cx: &RunContext, config: &Config) -> Result<DaemonExit, DaemonError> {
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
    let names: Vec<String> = scheduled.iter().map(|s| s.name.clone()).collect();
    let metrics = Arc::new(Metrics::install(&names)?);
    let (address, server) = cx.runtime.block_on(metrics::serve(
        config.daemon.listen,
        metrics,
        cx.cancel.clone(),
    ))?;
    tracing::info!(
        "daemon: {} scheduled sources; /healthz and /metrics on http://{address}",
        scheduled.len()
    );
    for s in &scheduled {
        let next = s
            .schedule
            .next_after(chrono::Utc::now())
            .map_or("never".into(), |t| t.to_rfc3339());
        tracing::info!(
            "source {}: schedule {:?}, next run {next}",
            s.name,
            s.schedule.expression()
        );
    }
    if let Some(schedule) = config.daemon.vacuum_schedule.clone() {
        tracing::info!("vacuum: schedule {:?}", schedule.expression());
        cx.runtime.spawn(vacuum_on_schedule(
            cx.warehouse.clone(),
            schedule,
            config.warehouse.vacuum_retention,
            cx.cancel.clone(),
        ));
    }
    let interrupted = Arc::new(AtomicUsize::new(0));
    let tally = {
        let (cx, config) = (cx.clone(), Arc::new(config.clone()));
        let interrupted = interrupted.clone();
        cx.runtime.clone().block_on(schedule::run_daemon(
            scheduled,
            config.daemon.max_concurrent_sources.get(),
            cx.cancel.clone(),
            move |name| {
                run_scheduled(&cx, &config, name);
                if cx.cancel.is_cancelled() {
                    interrupted.fetch_add(1, Ordering::SeqCst);
                }
            },
        ))
    };
    for (source, t) in tally {
        tracing::info!(
            "source {source}: {} runs started, {} firings skipped",
            t.started,
            t.skipped
        );
    }
    let _ = cx.runtime.block_on(server);
    Ok(DaemonExit {
        interrupted: interrupted.load(Ordering::SeqCst),
    })
}

/// One scheduled run of `name`: its summary to the log (its totals go to the metrics in
/// [`super::run_source`]).
fn run_scheduled(cx: &RunContext, config: &Config, name: &str) {
    let Some(source) = config.sources.iter().find(|s| s.name == name) else {
        return;
    };
    match super::run_source(cx, config, source, None) {
        Ok(finished) => {
            let run = &finished.run;
            let (run_id, rows, rejected, secs) = run.summary.as_ref().map_or_else(
                || ("-".to_owned(), 0, 0, 0.0),
                |s| {
                    (
                        s.manifest.run_id.clone(),
                        s.manifest.rows(),
                        s.manifest.rejected.lines,
                        s.elapsed.as_secs_f64(),
                    )
                },
            );
            tracing::info!(
                source = name,
                run_id = %run_id,
                rows,
                rejected,
                "source {name}: run {run_id} {:?}: {rows} rows, {rejected} rejected, {secs:.1} s",
                run.outcome
            );
        }
        Err(e) => tracing::error!(source = name, "source {name}: run failed: {}", chain(&e)),
    }
}

/// Vacuums the warehouse's tables at the times of `schedule` until `cancel` fires.
async fn vacuum_on_schedule(
    warehouse: Warehouse,
    schedule: Schedule,
    retention: Duration,
    cancel: CancellationToken,
) {
    while let Some(at) = schedule.next_after(chrono::Utc::now()) {
        let wait = (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.cancelled() => return,
        }
        match vacuum::vacuum_all(&warehouse, retention, false).await {
            Ok(reports) => {
                let (files, bytes) = reports.iter().fold((0, 0), |(f, b), (_, r)| {
                    (
                        f + r.tombstone_files + r.orphan_files,
                        b + r.tombstone_bytes + r.orphan_bytes,
                    )
                });
                tracing::info!(
                    files,
                    bytes,
                    "vacuum: deleted {files} files ({bytes} bytes) of {} tables",
                    reports.len()
                );
            }
            Err(e) => tracing::error!("vacuum failed: {}", chain(&e)),
        }
    }
}

/// An error with its causes, `a: b: c`, scrubbed of secrets (see
/// [`crate::message::chain`]).
pub fn chain(error: &dyn std::error::Error) -> String {
    crate::message::chain(error)
}
