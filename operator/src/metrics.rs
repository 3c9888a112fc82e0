//! Prometheus metrics of the reconcile loop, served on `/metrics` by [`crate::http`]:
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `cdcstar_operator_reconciles_total` | counter | |
//! | `cdcstar_operator_reconcile_failures_total` | counter | `error`: the error kind |
//! | `cdcstar_operator_reconcile_duration_seconds` | histogram | |
//! | `cdcstar_operator_leader` | gauge | 1 while this replica holds the lease |

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of a failure: the error kind (`Error::kind`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Error kind, e.g. `source`, `secret_missing`, `invalid_spec`.
    pub error: String,
}

/// The operator's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Reconciles started.
    pub reconciles: Counter,
    /// Reconciles that failed, by error kind.
    pub failures: Family<FailureLabels, Counter>,
    /// How long reconciles took.
    pub duration: Histogram,
    /// 1 while this replica leads.
    pub leader: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Counter::default(),
            failures: Family::default(),
            duration: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            leader: Gauge::default(),
        }
    }
}

impl Metrics {
    /// New metrics registered in `registry` under the `cdcstar_operator` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Metrics::default();
        let registry = registry.sub_registry_with_prefix("cdcstar_operator");
        registry.register(
            "reconciles",
            "Reconciles started",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by error kind",
            metrics.failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles",
            metrics.duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            metrics.leader.clone(),
        );
        for kind in crate::controller::error_kind::ALL {
            let _ = metrics.failures.get_or_create(&FailureLabels {
                error: kind.to_owned(),
            });
        }
        metrics
    }

    /// Counts a reconcile that took `elapsed`.
    pub fn reconciled(&self, elapsed: Duration) {
        self.reconciles.inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Counts a failure of kind `kind`.
    pub fn failed(&self, kind: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                error: kind.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdcstar_runtime::probes;

    #[test]
    fn failures_are_exported_by_kind() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.reconciled(Duration::from_millis(20));
        metrics.failed("source");
        metrics.failed("source");
        let text = probes::encode(&registry).unwrap();
        assert!(
            text.contains("cdcstar_operator_reconciles_total 1"),
            "{text}"
        );
        assert!(
            text.contains("cdcstar_operator_reconcile_failures_total{error=\"source\"} 2"),
            "{text}"
        );
        // Every kind is exported from the start, at 0 until it happens.
        assert!(
            text.contains("cdcstar_operator_reconcile_failures_total{error=\"finalizer\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("cdcstar_operator_reconcile_duration_seconds_count 1"),
            "{text}"
        );
    }
}
