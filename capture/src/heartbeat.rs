//! The periodic source-side chores: a heartbeat message written to the WAL (so an idle or filtered
//! publication still gives the stream a position to confirm, and the slot stops retaining WAL) and
//! the retained-WAL measurement exported as a metric.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::metrics::CaptureMetrics;
use crate::source::{emit_heartbeat, retained_wal_bytes};

/// Runs until `shutdown`: every `interval`, writes a heartbeat when `emit` is set and measures the
/// WAL the slot retains. Failures are logged and retried at the next tick: a heartbeat is an aid,
/// never a reason to stop capturing.
pub async fn run(
    client: Client,
    slot: String,
    interval: Duration,
    emit: bool,
    metrics: Arc<CaptureMetrics>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if emit {
            match emit_heartbeat(&client).await {
                Ok(lsn) => {
                    metrics.heartbeats.inc();
                    tracing::debug!(%lsn, "heartbeat written");
                }
                Err(err) => tracing::warn!(error = %err, "heartbeat failed"),
            }
        }
        match retained_wal_bytes(&client, &slot).await {
            Ok(Some(bytes)) => {
                metrics.retained_wal_bytes.set(bytes);
            }
            Ok(None) => tracing::warn!(
                slot,
                "replication slot not found while measuring retained WAL"
            ),
            Err(err) => tracing::warn!(error = %err, "retained WAL measurement failed"),
        }
    }
}
