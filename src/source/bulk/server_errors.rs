//! The export's failed parts (`error[]` issues of severity `error` or `fatal`) and what
//! `on_server_errors` makes of them.
//!
//! With `hold-checkpoint` (the default) the run commits what arrived but neither moves
//! the checkpoint nor keeps the export in flight: resuming that finished export would
//! only give the same incomplete manifest again, so the next run starts a new export
//! from the same `_since`. The committed run still lists the failures (with their
//! severities) in its `server_errors`, and the checkpoint repair after a crash skips
//! such runs: a held run never becomes the checkpoint.

use crate::{
    bulk::{BulkClient, KickOff, OnServerErrors, is_failure},
    source::state::SourceState,
    warehouse::RunManifest,
};

/// The issues that report a failed part of the export.
pub(super) fn failures(server_errors: &[String]) -> Vec<String> {
    server_errors
        .iter()
        .filter(|m| is_failure(m))
        .cloned()
        .collect()
}

/// Whether a committed run held the checkpoint (its export had failed parts under
/// `hold-checkpoint`): the checkpoint repair must not move to it.
pub(super) fn held_checkpoint(run: &RunManifest, policy: OnServerErrors) -> bool {
    policy == OnServerErrors::HoldCheckpoint && run.server_errors.iter().any(|m| is_failure(m))
}

/// Logs the failed parts (the first ten) and what becomes of the checkpoint.
pub(super) fn report(failures: &[String], policy: OnServerErrors, since: Option<&str>) {
    tracing::warn!(
        "the server could not export everything: {} failed parts",
        failures.len()
    );
    for failure in failures.iter().take(10) {
        tracing::warn!("server: {failure}");
    }
    let again = since.map_or("a full export".to_owned(), |s| format!("changes since {s}"));
    match policy {
        OnServerErrors::HoldCheckpoint => tracing::warn!(
            "on_server_errors = \"hold-checkpoint\": what arrived is committed, the \
             checkpoint is not moved; the next run asks again for {again}"
        ),
        OnServerErrors::Fail => tracing::warn!(
            "on_server_errors = \"fail\": nothing is committed; the next run asks again \
             for {again}"
        ),
        OnServerErrors::Ignore => tracing::warn!(
            "on_server_errors = \"ignore\": the checkpoint moves on; the failed parts are \
             not asked for again"
        ),
    }
}

/// Forgets a finished export whose failed parts keep the checkpoint: the in-flight
/// record goes (the next run starts a new export from the same `_since`), and the
/// server may delete the export (when configured, or always when it is abandoned).
pub(super) async fn forget_export(
    state: &SourceState,
    client: &BulkClient,
    kickoff: &KickOff,
    abandoned: bool,
) -> Result<(), crate::source::state::StateError> {
    state.clear_in_flight().await?;
    let deleted = match kickoff {
        KickOff::Accepted { status_url } if abandoned => client.cancel(status_url).await,
        _ => client.finish(kickoff).await.map(|_| ()),
    };
    if let Err(e) = deleted {
        tracing::warn!(
            "deleting the export on the server: {}",
            crate::message::chain(&e)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_and_fatal_issues_are_failures() {
        let issues = [
            "error (processing): Failed to export Claim.ndjson".to_owned(),
            "warning (processing): slow".to_owned(),
            "fatal (exception): out of disk".to_owned(),
            "information (informational): 3 files".to_owned(),
        ];
        assert_eq!(
            failures(&issues),
            [issues[0].clone(), issues[2].clone()],
            "warnings and information never hold the checkpoint"
        );
    }
}
