//! The sink's Prometheus metrics, registered once and shared by the consumer loop and the HTTP server.

use std::sync::atomic::AtomicU64;

use cdcstar_runtime::probes::latency_histogram;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set: a list of name/value pairs.
pub type Labels = Vec<(&'static str, String)>;

/// Every metric of the sink.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Events read from the topics, per source table (`unknown` for undecodable ones).
    pub events_consumed: Family<Labels, Counter>,
    /// Events whose batch was applied and whose offsets were stored.
    pub events_flushed: Counter,
    /// Rows inserted, per star table.
    pub rows_written: Family<Labels, Counter>,
    /// Events sent to the dead-letter topic, per source table and reason kind.
    pub events_dead_lettered: Family<Labels, Counter>,
    /// Values the column's type could not hold, replaced by its `onUnrepresentable` policy, per star
    /// table and column.
    pub values_adjusted: Family<Labels, Counter>,
    /// Fact rows rewritten because a referenced row changed.
    pub rows_propagated: Counter,
    /// Fact rows rewritten by the post-write re-check.
    pub rows_rechecked: Counter,
    /// Fact rows written while a row they look up was not there (yet): written with defaults and
    /// rewritten by propagation when it arrives. High on a backlog whose topics are read unevenly.
    pub rows_unresolved: Counter,
    /// Statements the row paths sent to ClickHouse and the seconds they took, per kind.
    pub clickhouse_statements: StatementMetrics,
    /// Events per flushed batch.
    pub batch_events: Histogram,
    /// Seconds to apply a batch to ClickHouse (all statements, retries excluded).
    pub apply_seconds: Histogram,
    /// Failed attempts that were retried, per operation.
    pub retries: Family<Labels, Counter>,
    /// Consumer lag per topic partition, from librdkafka statistics.
    pub consumer_lag: Family<Labels, Gauge>,
    /// Seconds from the source commit (`metadata.commitTime`) to the ClickHouse write.
    pub end_to_end_lag_seconds: Histogram,
    /// 1 while the sink can write to ClickHouse and is consuming.
    pub ready: Gauge,
    /// The pipeline's watermark as last read (`cdcstar_watermark`): the commit time, seconds since the
    /// Unix epoch, up to which every change is applied in every star table; 0 before every partition
    /// applied one.
    pub watermark_seconds: Gauge<f64, AtomicU64>,
    /// Keys still differing from Postgres at the last `cdcstar-sink verify` of a star table, per
    /// table (read back from `cdcstar_verifications`: the verifier's own process is gone by then).
    pub verification_mismatches: Family<Labels, Gauge>,
    /// Keys the last verification of a star table could not decide, per table.
    pub verification_skipped: Family<Labels, Gauge>,
    /// When the last verification of a star table ended, seconds since the Unix epoch, per table.
    pub verification_timestamp_seconds: Family<Labels, Gauge>,
}

/// The row paths' statements per kind: `insert` (RowBinary rows), `insert_select` (propagation),
/// `count` (propagation's rows to rewrite), `select` (stored rows and lookups).
#[derive(Debug, Clone, Default)]
pub struct StatementMetrics {
    /// Statements sent.
    pub count: Family<Labels, Counter>,
    /// Seconds until ClickHouse answered (a failed statement's included).
    pub seconds: Family<Labels, Counter<f64, AtomicU64>>,
}

impl StatementMetrics {
    /// Records one statement of `kind` that took from `started` until now.
    pub fn record(&self, kind: &'static str, started: std::time::Instant) {
        let labels = label("kind", kind);
        self.count.get_or_create(&labels).inc();
        self.seconds
            .get_or_create(&labels)
            .inc_by(started.elapsed().as_secs_f64());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `cdcstar_sink` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cdcstar_sink");
        let metrics = Metrics {
            events_consumed: Family::default(),
            events_flushed: Counter::default(),
            rows_written: Family::default(),
            events_dead_lettered: Family::default(),
            values_adjusted: Family::default(),
            rows_propagated: Counter::default(),
            rows_rechecked: Counter::default(),
            rows_unresolved: Counter::default(),
            clickhouse_statements: StatementMetrics::default(),
            batch_events: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            apply_seconds: latency_histogram(),
            retries: Family::default(),
            consumer_lag: Family::default(),
            end_to_end_lag_seconds: latency_histogram(),
            ready: Gauge::default(),
            watermark_seconds: Gauge::default(),
            verification_mismatches: Family::default(),
            verification_skipped: Family::default(),
            verification_timestamp_seconds: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events_consumed",
            "Events read from the CDC topics",
            metrics.events_consumed.clone(),
        );
        registry.register(
            "events_flushed",
            "Events whose batch was applied to ClickHouse and whose offsets were stored",
            metrics.events_flushed.clone(),
        );
        registry.register(
            "rows_written",
            "Rows inserted into star tables",
            metrics.rows_written.clone(),
        );
        registry.register(
            "events_dead_lettered",
            "Events sent to the dead-letter topic",
            metrics.events_dead_lettered.clone(),
        );
        registry.register(
            "values_adjusted",
            "Values a column's type could not hold, replaced by its onUnrepresentable policy",
            metrics.values_adjusted.clone(),
        );
        registry.register(
            "rows_propagated",
            "Fact rows rewritten because a referenced row changed",
            metrics.rows_propagated.clone(),
        );
        registry.register(
            "rows_rechecked",
            "Fact rows rewritten by the post-write lookup re-check",
            metrics.rows_rechecked.clone(),
        );
        registry.register(
            "rows_unresolved",
            "Fact rows written while a row they look up was missing; propagation rewrites them when it arrives",
            metrics.rows_unresolved.clone(),
        );
        registry.register(
            "clickhouse_statements",
            "Statements the row paths sent to ClickHouse, per kind",
            metrics.clickhouse_statements.count.clone(),
        );
        registry.register(
            "clickhouse_statement_seconds",
            "Seconds the row paths' statements took until ClickHouse answered, per kind",
            metrics.clickhouse_statements.seconds.clone(),
        );
        registry.register(
            "batch_events",
            "Events per flushed batch",
            metrics.batch_events.clone(),
        );
        registry.register(
            "apply_seconds",
            "Seconds to apply one batch to ClickHouse",
            metrics.apply_seconds.clone(),
        );
        registry.register(
            "retries",
            "Failed attempts that were retried",
            metrics.retries.clone(),
        );
        registry.register(
            "consumer_lag",
            "Messages behind the partition end, per topic partition",
            metrics.consumer_lag.clone(),
        );
        registry.register(
            "end_to_end_lag_seconds",
            "Seconds from the source commit to the ClickHouse write",
            metrics.end_to_end_lag_seconds.clone(),
        );
        registry.register(
            "ready",
            "1 while the sink consumes and ClickHouse accepts writes",
            metrics.ready.clone(),
        );
        registry.register(
            "watermark_seconds",
            "Commit time up to which every change is applied in every star table, seconds since the Unix epoch (0: not every partition yet)",
            metrics.watermark_seconds.clone(),
        );
        registry.register(
            "verification_mismatches",
            "Keys still differing from Postgres at the last verification of a star table",
            metrics.verification_mismatches.clone(),
        );
        registry.register(
            "verification_skipped",
            "Keys the last verification of a star table could not decide",
            metrics.verification_skipped.clone(),
        );
        registry.register(
            "verification_timestamp_seconds",
            "When the last verification of a star table ended, seconds since the Unix epoch",
            metrics.verification_timestamp_seconds.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        // NB: writing into a String cannot fail.
        cdcstar_runtime::probes::encode(&self.registry).unwrap_or_default()
    }
}

/// A one-label set.
pub fn label(name: &'static str, value: impl Into<String>) -> Labels {
    vec![(name, value.into())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_counted_and_timed_per_kind() {
        let metrics = Metrics::new();
        let started = std::time::Instant::now() - std::time::Duration::from_millis(250);
        metrics.clickhouse_statements.record("count", started);
        metrics.clickhouse_statements.record("count", started);
        metrics.clickhouse_statements.record("insert", started);
        let text = metrics.render();
        assert!(text.contains("cdcstar_sink_clickhouse_statements_total{kind=\"count\"} 2"));
        assert!(text.contains("cdcstar_sink_clickhouse_statements_total{kind=\"insert\"} 1"));
        let seconds: f64 = text
            .lines()
            .find(|l| {
                l.starts_with("cdcstar_sink_clickhouse_statement_seconds_total{kind=\"count\"}")
            })
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse().ok())
            .expect("the seconds of the count statements");
        assert!(seconds >= 0.5, "{seconds}");
    }
}
