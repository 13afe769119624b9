//! Before the downloads: the checkpoint (repaired after a crash), the export (resumed or
//! kicked off), its manifest (polled for), and its `error[]` and `deleted[]` files.

use std::time::Duration;

use super::ExportError;
use crate::{
    auth::redact_url,
    bulk::{BulkClient, KickOff, Manifest, OnServerErrors, PollProgress, is_failure},
    source::state::{Checkpoint, InFlight, SourceState},
    temporal,
    warehouse::{DeletedRef, RunManifest, Warehouse},
};

/// The export to ingest, ready for download.
pub(super) struct Prepared {
    pub kickoff: KickOff,
    pub manifest: Manifest,
    pub transaction_time: String,
    pub since: Option<String>,
    pub resumed: bool,
    pub seq: u64,
    pub deleted: Vec<DeletedRef>,
    pub server_errors: Vec<String>,
}

/// Repairs the checkpoint, resumes or starts the export, waits for its manifest and
/// fetches its `error[]` and `deleted[]` files. `active` holds the export once it is
/// kicked off or resumed, so that a run cancelled meanwhile (the caller drops this
/// future) can cancel it on the server.
pub(super) async fn prepare(
    warehouse: &Warehouse,
    state: &SourceState,
    client: &BulkClient,
    active: &mut Option<KickOff>,
) -> Result<Prepared, ExportError> {
    let policy = client.config().on_server_errors;
    let (seq, checkpoint) = repair_checkpoint(warehouse, state, policy).await?;
    let since = checkpoint
        .map(|c| c.transaction_time)
        .or_else(|| client.config().since.clone());
    let mut resume = match state.in_flight().await? {
        Some(record) if record.checkpoint_seq == seq => {
            tracing::info!(
                "resuming the export kicked off at {} ({})",
                record.kicked_off_at,
                redact_url(&record.status_url)
            );
            let kickoff = KickOff::Accepted {
                status_url: record.status_url,
            };
            Some((kickoff, since_kick_off(&record.kicked_off_at)))
        }
        Some(_) => {
            // Started from an older checkpoint, which has moved since: already ingested.
            state.clear_in_flight().await?;
            None
        }
        None => None,
    };
    let resumed = resume.is_some();
    let (kickoff, manifest) = loop {
        let (kickoff, waited) = match resume.take() {
            Some(resumed) => resumed,
            None => (
                kick_off(state, client, since.as_deref(), seq).await?,
                Duration::ZERO,
            ),
        };
        *active = Some(kickoff.clone());
        match wait_within_limit(state, client, &kickoff, waited).await {
            Ok(manifest) => break (kickoff, manifest),
            Err(ExportError::Bulk(e)) if resumed && e.needs_new_export() => {
                tracing::warn!("{}; starting a new export", crate::message::chain(&e));
                *active = None;
                state.clear_in_flight().await?;
            }
            Err(e) => return Err(e),
        }
    };
    let transaction_time =
        manifest
            .transaction_time
            .clone()
            .ok_or_else(|| ExportError::NoTransactionTime {
                url: redact_url(&client.kickoff_url()),
            })?;
    let (server_errors, deleted) = fetch_errors_and_deleted(client, &manifest).await?;
    tracing::info!(
        files = manifest.output.len(),
        deleted = deleted.len(),
        server_issues = server_errors.len(),
        "export complete: transactionTime {transaction_time}, {} files, {} deleted, {} server issues",
        manifest.output.len(),
        deleted.len(),
        server_errors.len()
    );
    Ok(Prepared {
        kickoff,
        manifest,
        transaction_time,
        since,
        resumed,
        seq,
        deleted,
        server_errors,
    })
}

/// The checkpoint, advanced first to the newest committed run of the source when a
/// crash came between that run's commit and its checkpoint.
async fn repair_checkpoint(
    warehouse: &Warehouse,
    state: &SourceState,
    policy: OnServerErrors,
) -> Result<(u64, Option<Checkpoint>), ExportError> {
    let (seq, checkpoint) = state.checkpoint().await?;
    let runs = warehouse.committed_runs().await?;
    // Newest by the export's transactionTime, not by run id: run ids of one second
    // do not sort by time. A run whose export had failed parts held the checkpoint on
    // purpose: it is never the one to move to.
    let newest = runs
        .into_iter()
        .filter(|r| r.source == state.source())
        .filter(|r| r.transaction_time.is_some())
        .filter(|r| !super::server_errors::held_checkpoint(r, policy))
        .max_by(|a, b| instant(run_time(a)).cmp(&instant(run_time(b))));
    let Some(run) = newest else {
        return Ok((seq, checkpoint));
    };
    if checkpoint
        .as_ref()
        .is_some_and(|c| instant(&c.transaction_time) >= instant(run_time(&run)))
    {
        return Ok((seq, checkpoint));
    }
    let repaired = Checkpoint {
        source: run.source.clone(),
        transaction_time: run.transaction_time.clone().unwrap_or_default(),
        run_id: run.run_id.clone(),
        committed_at: run.finished_at.clone(),
    };
    tracing::warn!(
        "run {} was committed but the checkpoint not moved: moving it to {}",
        run.run_id,
        repaired.transaction_time
    );
    let seq = state.advance(seq, &repaired).await?;
    state.clear_in_flight().await?;
    Ok((seq, Some(repaired)))
}

/// A committed run's transactionTime ("" for none).
fn run_time(run: &RunManifest) -> &str {
    run.transaction_time.as_deref().unwrap_or("")
}

/// An export's transactionTime as a sortable instant (microseconds, then the text).
fn instant(transaction_time: &str) -> (Option<i64>, &str) {
    (temporal::parse_micros(transaction_time), transaction_time)
}

/// Kicks off a new export and records it as in flight.
async fn kick_off(
    state: &SourceState,
    client: &BulkClient,
    since: Option<&str>,
    seq: u64,
) -> Result<KickOff, ExportError> {
    let url = redact_url(&client.kickoff_url());
    match since {
        Some(since) => tracing::info!("kick-off {url} with _since={since}"),
        None => tracing::info!("kick-off {url} (full export)"),
    }
    let kickoff = client.kick_off(since).await?;
    if let KickOff::Accepted { status_url } = &kickoff {
        state
            .set_in_flight(&InFlight {
                status_url: status_url.clone(),
                kicked_off_at: temporal::now_rfc3339(),
                since: since.map(str::to_owned),
                checkpoint_seq: seq,
            })
            .await?;
    } else {
        tracing::info!("the server answered with the manifest at once (synchronous export)");
    }
    crate::failpoint::hit("after-kick-off");
    Ok(kickoff)
}

/// Time since an export's kick-off, from its in-flight record (zero when unreadable).
fn since_kick_off(kicked_off_at: &str) -> Duration {
    let Some(micros) = temporal::parse_micros(kicked_off_at) else {
        return Duration::ZERO;
    };
    let elapsed = temporal::unix_now().saturating_mul(1_000_000) - micros;
    Duration::from_micros(elapsed.max(0).unsigned_abs())
}

/// Waits for the manifest at most what is left of `max_export_wait` after `waited`
/// since the kick-off. An export that takes longer is stuck (a server that lost it may
/// answer 202 for ever): it is cancelled on the server and forgotten, and the run
/// fails, so that the next run (or the daemon's next firing) starts a new one.
async fn wait_within_limit(
    state: &SourceState,
    client: &BulkClient,
    kickoff: &KickOff,
    waited: Duration,
) -> Result<Manifest, ExportError> {
    let limit = client.config().max_export_wait;
    let left = limit.0.saturating_sub(waited);
    if let Ok(result) = tokio::time::timeout(left, wait_for_manifest(client, kickoff)).await {
        return result;
    }
    if let KickOff::Accepted { status_url } = kickoff
        && let Err(e) = client.cancel(status_url).await
    {
        tracing::warn!(
            "cancelling the stuck export on the server: {}",
            crate::message::chain(&e)
        );
    }
    state.clear_in_flight().await?;
    Err(ExportError::TimedOut { limit })
}

/// Waits for the manifest, logging the poll progress.
async fn wait_for_manifest(
    client: &BulkClient,
    kickoff: &KickOff,
) -> Result<Manifest, ExportError> {
    let mut updates = client.progress();
    let manifest = client.manifest(kickoff);
    futures::pin_mut!(manifest);
    let mut printed = 0;
    loop {
        tokio::select! {
            result = &mut manifest => return Ok(result?),
            changed = updates.changed() => {
                if changed.is_err() {
                    continue;
                }
                let update = updates.borrow_and_update().clone();
                if let Some(line) = poll_line(&update, &mut printed) {
                    tracing::info!("{line}");
                }
            }
        }
    }
}

/// A progress line per poll, with that poll's own answer and wait: the server's
/// `X-Progress` for a `202`, the status for a `429` (asked to slow down), the problem
/// for a failed poll that is retried.
pub(super) fn poll_line(update: &PollProgress, printed: &mut u32) -> Option<String> {
    let wait = update.next_wait?.as_secs_f64();
    if update.polls == *printed || update.complete {
        return None;
    }
    *printed = update.polls;
    let poll = update.polls;
    Some(match (&update.problem, update.status) {
        (Some(problem), _) => {
            format!("status poll {poll} failed ({problem}): retrying in {wait:.1} s")
        }
        (None, Some(429)) => format!(
            "status poll {poll} answered HTTP 429 Too Many Requests: next poll in {wait:.1} s"
        ),
        (None, _) => match &update.progress {
            Some(progress) => {
                format!("export in progress: {progress} (poll {poll}, next in {wait:.1} s)")
            }
            None => format!("export in progress (poll {poll}, next in {wait:.1} s)"),
        },
    })
}

/// Downloads the `error[]` OperationOutcomes (reported) and the `deleted[]` lists.
async fn fetch_errors_and_deleted(
    client: &BulkClient,
    manifest: &Manifest,
) -> Result<(Vec<String>, Vec<DeletedRef>), ExportError> {
    let requires_token = manifest.requires_access_token();
    let mut server_errors = Vec::new();
    for file in &manifest.error {
        server_errors.extend(client.download_errors(&file.url, requires_token).await?);
    }
    // Failed parts are reported with what they do to the checkpoint (server_errors.rs);
    // warnings and information here.
    let notes: Vec<&String> = server_errors.iter().filter(|m| !is_failure(m)).collect();
    for message in notes.iter().take(10) {
        tracing::info!("server: {message}");
    }
    if notes.len() > 10 {
        tracing::info!(
            "server: ... {} more issues (in the run manifest's server_errors)",
            notes.len() - 10
        );
    }
    let mut deleted = Vec::new();
    for file in &manifest.deleted {
        deleted.extend(
            client
                .download_deleted(&file.url, requires_token)
                .await?
                .into_iter()
                .map(|d| DeletedRef {
                    resource_type: d.resource_type,
                    id: d.id,
                }),
        );
    }
    Ok((server_errors, once_each(deleted)))
}

/// The deleted resources, each once, in the order first listed (a server may list a
/// resource twice: in two Bundles, or as `Type/id` and `Type/id/_history/n`).
fn once_each(deleted: Vec<DeletedRef>) -> Vec<DeletedRef> {
    let mut seen = std::collections::HashSet::new();
    deleted
        .into_iter()
        .filter(|d| seen.insert((d.resource_type.clone(), d.id.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_of_a_resumed_export_counts_from_its_kick_off() {
        let hour_ago = temporal::rfc3339(temporal::unix_now() - 3600);
        let waited = since_kick_off(&hour_ago).as_secs();
        assert!((3599..3700).contains(&waited), "{waited}");
        assert_eq!(since_kick_off("garbage"), Duration::ZERO);
    }

    #[test]
    fn deleted_resources_are_recorded_once_each() {
        let d = |t: &str, id: &str| DeletedRef {
            resource_type: t.into(),
            id: id.into(),
        };
        let listed = vec![d("Patient", "p2"), d("Patient", "p1"), d("Patient", "p2")];
        assert_eq!(once_each(listed), [d("Patient", "p2"), d("Patient", "p1")]);
    }

    #[test]
    fn transaction_times_order_by_instant_not_text() {
        assert!(instant("2026-01-01T10:00:00+02:00") < instant("2026-01-01T09:00:00Z"));
        assert!(instant("2026-01-01T00:00:00.5Z") > instant("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn one_progress_line_per_answered_poll() {
        let mut printed = 0;
        let mut update = PollProgress {
            polls: 1,
            ..PollProgress::default()
        };
        assert_eq!(poll_line(&update, &mut printed), None, "no answer yet");
        update.next_wait = Some(Duration::from_secs(2));
        update.progress = Some("40%".into());
        update.status = Some(202);
        let line = poll_line(&update, &mut printed).unwrap();
        assert!(line.contains("40%") && line.contains("poll 1"), "{line}");
        assert_eq!(poll_line(&update, &mut printed), None, "printed once");
    }

    /// Regression (issue 9, item 12): a 429 or a failed poll names its status and the
    /// wait, not "export in progress: -".
    #[test]
    fn slowed_down_and_failed_polls_say_so() {
        let mut printed = 0;
        let mut update = PollProgress {
            polls: 2,
            status: Some(429),
            next_wait: Some(Duration::from_secs(30)),
            ..PollProgress::default()
        };
        assert_eq!(
            poll_line(&update, &mut printed).unwrap(),
            "status poll 2 answered HTTP 429 Too Many Requests: next poll in 30.0 s"
        );
        update.polls = 3;
        update.status = Some(503);
        update.problem = Some("HTTP 503: busy".into());
        update.next_wait = Some(Duration::from_millis(1500));
        assert_eq!(
            poll_line(&update, &mut printed).unwrap(),
            "status poll 3 failed (HTTP 503: busy): retrying in 1.5 s"
        );
    }
}
