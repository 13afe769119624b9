//! Ctrl-C and SIGTERM as a cancellation: the first signal cancels the token that every
//! run, poll and download of the process watches; they stop, commit nothing, and bulk
//! sources cancel their exports on the server. The process then ends with the
//! cancelled outcome (the binary maps it to exit status 130).

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// Cancels `token` at the first Ctrl-C or SIGTERM, and calls `second` at the next one
/// (the binary exits at once then: the user insists).
pub fn cancel_on_signal(runtime: &Handle, token: CancellationToken, second: fn()) {
    runtime.spawn(async move {
        signal().await;
        tracing::warn!("signal received: stopping; runs in progress commit nothing");
        token.cancel();
        signal().await;
        second();
    });
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
