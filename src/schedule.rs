//! When sources run: cron schedules, and the daemon loop that keeps them.
//!
//! A [`Schedule`] is a cron expression (five fields, `minute hour day month weekday`, or
//! six with seconds first), evaluated in UTC. [`run_daemon`] fires each source at its
//! times, never runs one source twice at once (a firing while the previous run is still
//! going is skipped and counted), runs at most `max_concurrent` sources together, and on
//! cancellation starts nothing new and waits for the runs in progress, which see the
//! same [`CancellationToken`] and end at a consistent point (committing nothing).

use std::{
    collections::BTreeMap,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use croner::Cron;
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

/// Errors of schedules.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The expression does not parse.
    #[error("schedule {expression:?}: {reason}")]
    Invalid {
        /// The expression as written.
        expression: String,
        /// The parser's message.
        reason: String,
    },
}

/// A cron schedule, in UTC.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    expression: String,
}

impl Schedule {
    /// Parses a cron expression.
    pub fn parse(expression: &str) -> Result<Self, ScheduleError> {
        let cron = Cron::from_str(expression).map_err(|e| ScheduleError::Invalid {
            expression: expression.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            cron,
            expression: expression.to_owned(),
        })
    }

    /// The first time strictly after `time`.
    pub fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&time, false).ok()
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }
}

/// One source the daemon keeps.
#[derive(Debug, Clone)]
pub struct ScheduledSource {
    /// The source name.
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
}

/// What the daemon did, per source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonTally {
    /// Runs started.
    pub started: u64,
    /// Firings skipped because the previous run of the source was still going.
    pub skipped: u64,
}

/// Runs `run_source(name)` for each source at its scheduled times until `cancel` fires;
/// then waits for the runs in progress (which see the same token). `run_source` is
/// blocking work (an ingest run), so it runs on the blocking pool.
pub async fn run_daemon<F>(
    sources: Vec<ScheduledSource>,
    max_concurrent: usize,
    cancel: CancellationToken,
    run_source: F,
) -> BTreeMap<String, DaemonTally>
where
    F: Fn(&str) + Send + Sync + 'static,
{
    let run_source = Arc::new(run_source);
    let permits = Arc::new(Semaphore::new(max_concurrent.max(1)));
    let running: BTreeMap<String, Arc<AtomicBool>> = sources
        .iter()
        .map(|s| (s.name.clone(), Arc::new(AtomicBool::new(false))))
        .collect();
    let mut tally: BTreeMap<String, DaemonTally> = sources
        .iter()
        .map(|s| (s.name.clone(), DaemonTally::default()))
        .collect();
    let mut next: Vec<Option<DateTime<Utc>>> = sources
        .iter()
        .map(|s| s.schedule.next_after(Utc::now()))
        .collect();
    let mut tasks = JoinSet::new();
    while let Some((index, at)) = earliest(&next) {
        let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.cancelled() => break,
        }
        let source = &sources[index];
        next[index] = source.schedule.next_after(at.max(Utc::now()));
        let busy = running[&source.name].clone();
        let entry = tally
            .get_mut(&source.name)
            .expect("every source has a tally");
        if busy.swap(true, Ordering::SeqCst) {
            entry.skipped += 1;
            continue;
        }
        entry.started += 1;
        let (name, run, permits, cancel) = (
            source.name.clone(),
            run_source.clone(),
            permits.clone(),
            cancel.clone(),
        );
        tasks.spawn(async move {
            if let Ok(_permit) = permits.acquire_owned().await
                && !cancel.is_cancelled()
            {
                let _ = tokio::task::spawn_blocking(move || run(&name)).await;
            }
            busy.store(false, Ordering::SeqCst);
        });
        // Reap finished runs so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    tally
}

/// The index and time of the earliest next firing.
fn earliest(next: &[Option<DateTime<Utc>>]) -> Option<(usize, DateTime<Utc>)> {
    next.iter()
        .enumerate()
        .filter_map(|(i, t)| t.map(|t| (i, t)))
        .min_by_key(|&(_, t)| t)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn five_and_six_field_expressions() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T22:54:17Z")
            .unwrap()
            .with_timezone(&Utc);
        let nightly = Schedule::parse("0 2 * * *").unwrap();
        assert_eq!(
            nightly.next_after(at).unwrap().to_rfc3339(),
            "2026-11-29T02:00:00+00:00"
        );
        let every_two_seconds = Schedule::parse("*/2 * * * * *").unwrap();
        assert_eq!(
            every_two_seconds.next_after(at).unwrap().to_rfc3339(),
            "2026-11-28T22:54:18+00:00"
        );
        let err = Schedule::parse("61 * * * *").unwrap_err();
        assert!(err.to_string().contains("61 * * * *"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fires_each_source_never_twice_at_once_and_stops_cleanly() {
        let sources = vec![
            ScheduledSource {
                name: "fast".into(),
                schedule: Schedule::parse("* * * * * *").unwrap(),
            },
            ScheduledSource {
                name: "slow".into(),
                schedule: Schedule::parse("* * * * * *").unwrap(),
            },
        ];
        let log = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let run_log = log.clone();
        let run_cancel = cancel.clone();
        let daemon = tokio::spawn(run_daemon(sources, 2, cancel.clone(), move |name| {
            let long = if name == "slow" { 2500 } else { 10 };
            // A run that notices the cancellation ends early, as ingest runs do.
            for _ in 0..long / 10 {
                if run_cancel.is_cancelled() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            run_log.lock().unwrap().push(name.to_owned());
        }));
        tokio::time::sleep(Duration::from_millis(3300)).await;
        cancel.cancel();
        let tally = tokio::time::timeout(Duration::from_secs(5), daemon)
            .await
            .unwrap()
            .unwrap();
        assert!(tally["fast"].started >= 2, "{tally:?}");
        assert!(
            tally["slow"].skipped >= 1,
            "a firing during the slow run is skipped: {tally:?}"
        );
        let log = log.lock().unwrap();
        assert_eq!(
            log.iter().filter(|n| *n == "fast").count() as u64,
            tally["fast"].started
        );
    }
}
