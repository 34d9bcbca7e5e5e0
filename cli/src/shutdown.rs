//! Waiting for Ctrl-C or SIGTERM, the two ways a run or a worker is asked to stop.

use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

/// Completes when SIGINT or SIGTERM arrives.
pub async fn shutdown_requested() {
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(error) => {
            // Without a SIGTERM handler we still stop on Ctrl-C.
            tracing::warn!(%error, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("interrupted; draining"),
        _ = terminate.recv() => info!("SIGTERM; draining"),
    }
}
