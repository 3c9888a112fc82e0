//! The capture's Prometheus metrics and its probe port (`cdcstar_runtime::probes`) with the
//! `/health` (the process is serving) and `/ready` (replication is streaming) probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use cdcstar_runtime::probes::{self, Probed};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// Labels of per-table event counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TableOperation {
    /// Source table.
    pub table: String,
    /// `read`, `insert`, `update` or `delete`.
    pub operation: String,
}

/// Labels of per-table snapshot metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TableLabel {
    /// Source table.
    pub table: String,
}

/// Every metric the capture exports.
#[derive(Debug)]
pub struct CaptureMetrics {
    /// Events produced (enqueued to the producer), per table and operation.
    pub events: Family<TableOperation, Counter>,
    /// Position confirmed to the replication slot (LSN as an integer).
    pub confirmed_lsn: Gauge,
    /// WAL the slot retains on the server: `pg_current_wal_lsn() - confirmed_flush_lsn`.
    pub retained_wal_bytes: Gauge,
    /// Snapshot rows emitted and acknowledged, per table.
    pub snapshot_rows: Family<TableLabel, Counter>,
    /// Snapshot state per table: 0 pending, 1 running, 2 done.
    pub snapshot_state: Family<TableLabel, Gauge>,
    /// Heartbeat messages written to the WAL.
    pub heartbeats: Counter,
    /// `heartbeat` envelopes enqueued (one per partition of every topic per heartbeat read back).
    pub heartbeat_envelopes: Counter,
    /// Commit time (seconds since the Unix epoch) of the last change or heartbeat enqueued.
    pub sent_commit_time_seconds: Gauge<f64, AtomicU64>,
    /// Values that could not be converted to their JSON type and were kept as text.
    pub conversion_warnings: Counter,
    /// Events handed to the producer and not yet acknowledged by the broker.
    pub in_flight: Gauge,
    /// Per streamed transaction: its commit timestamp → its commit message read from the slot.
    pub commit_to_read_seconds: Histogram,
    /// Per streamed transaction with events: its commit timestamp → the broker acknowledged all
    /// of them.
    pub commit_to_ack_seconds: Histogram,
    /// TRUNCATE statements read from the stream and propagated, per table.
    pub truncates: Family<TableLabel, Counter>,
    /// 1 once the replication stream has started: the readiness probe and a metric alike.
    ready: Gauge,
}

impl Default for CaptureMetrics {
    fn default() -> Self {
        Self {
            events: Family::default(),
            confirmed_lsn: Gauge::default(),
            retained_wal_bytes: Gauge::default(),
            snapshot_rows: Family::default(),
            snapshot_state: Family::default(),
            heartbeats: Counter::default(),
            heartbeat_envelopes: Counter::default(),
            sent_commit_time_seconds: Gauge::default(),
            conversion_warnings: Counter::default(),
            in_flight: Gauge::default(),
            commit_to_read_seconds: probes::latency_histogram(),
            commit_to_ack_seconds: probes::latency_histogram(),
            truncates: Family::default(),
            ready: Gauge::default(),
        }
    }
}

impl CaptureMetrics {
    /// A change or heartbeat committed at `unix_micros` was enqueued.
    pub fn sent_commit_time(&self, unix_micros: i64) {
        self.sent_commit_time_seconds.set(unix_micros as f64 / 1e6);
    }

    /// Registers every metric under the `cdcstar_capture` prefix.
    pub fn register(self: &Arc<Self>) -> Registry {
        let mut registry = Registry::with_prefix("cdcstar_capture");
        registry.register(
            "events",
            "Events produced, per table and operation",
            self.events.clone(),
        );
        registry.register(
            "confirmed_lsn",
            "Position confirmed to the replication slot",
            self.confirmed_lsn.clone(),
        );
        registry.register(
            "retained_wal_bytes",
            "WAL bytes the replication slot retains on the source",
            self.retained_wal_bytes.clone(),
        );
        registry.register(
            "snapshot_rows",
            "Snapshot rows acknowledged by the broker, per table",
            self.snapshot_rows.clone(),
        );
        registry.register(
            "snapshot_state",
            "Snapshot state per table: 0 pending, 1 running, 2 done",
            self.snapshot_state.clone(),
        );
        registry.register(
            "heartbeats",
            "Heartbeat messages written to the WAL",
            self.heartbeats.clone(),
        );
        registry.register(
            "heartbeat_envelopes",
            "Heartbeat envelopes enqueued, one per partition of every topic per heartbeat",
            self.heartbeat_envelopes.clone(),
        );
        registry.register(
            "last_sent_commit_time_seconds",
            "Commit time of the last change or heartbeat enqueued, seconds since the Unix epoch",
            self.sent_commit_time_seconds.clone(),
        );
        registry.register(
            "conversion_warnings",
            "Values kept as text because they did not convert to their JSON type",
            self.conversion_warnings.clone(),
        );
        registry.register(
            "in_flight_events",
            "Events not yet acknowledged by the broker",
            self.in_flight.clone(),
        );
        registry.register(
            "commit_to_read_seconds",
            "Per streamed transaction, from its commit timestamp to its commit read from the slot",
            self.commit_to_read_seconds.clone(),
        );
        registry.register(
            "commit_to_ack_seconds",
            "Per streamed transaction with events, from its commit timestamp to the broker's acknowledgement of all of them",
            self.commit_to_ack_seconds.clone(),
        );
        registry.register(
            "truncates",
            "TRUNCATE statements read from the stream and propagated, per table",
            self.truncates.clone(),
        );
        registry.register(
            "ready",
            "1 while the replication stream runs (the readiness probe)",
            self.ready.clone(),
        );
        registry
    }

    /// Marks the capture ready (the replication stream started).
    pub fn set_ready(&self) {
        self.ready.set(1);
    }

    /// Whether the replication stream started.
    pub fn is_ready(&self) -> bool {
        self.ready.get() == 1
    }
}

/// The capture's probe port (`cdcstar_runtime::probes`): ready once the replication stream started.
struct ProbePort {
    metrics: Arc<CaptureMetrics>,
    registry: Registry,
}

impl Probed for ProbePort {
    fn readiness(&self) -> Result<(), &'static str> {
        if self.metrics.is_ready() {
            Ok(())
        } else {
            Err("replication not started")
        }
    }

    fn render_metrics(&self) -> Result<String, std::fmt::Error> {
        probes::encode(&self.registry)
    }
}

/// Serves `/metrics`, `/health` and `/ready` on `address` until `shutdown` is cancelled.
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<CaptureMetrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let registry = metrics.register();
    let port = Arc::new(ProbePort { metrics, registry });
    probes::serve_on(address, port, shutdown.cancelled_owned()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_prefix_and_labels() {
        let metrics = Arc::new(CaptureMetrics::default());
        metrics
            .events
            .get_or_create(&TableOperation {
                table: "order".into(),
                operation: "insert".into(),
            })
            .inc_by(3);
        metrics.retained_wal_bytes.set(4096);
        let text = probes::encode(&metrics.register()).unwrap();
        assert!(
            text.contains(r#"cdcstar_capture_events_total{table="order",operation="insert"} 3"#),
            "{text}"
        );
        assert!(
            text.contains("cdcstar_capture_retained_wal_bytes 4096"),
            "{text}"
        );
    }
}
