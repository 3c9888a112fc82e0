//! The operator's probe port (`cdcstar_runtime::probes`): `/ready` once the CRD is installed and
//! the controller started; a standby replica waiting for the lease is ready too, so a rollout can
//! proceed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cdcstar_runtime::probes::{self, Probed};
use prometheus_client::registry::Registry;

/// What the endpoints read.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub registry: Arc<Registry>,
    /// Set once startup checks passed.
    pub ready: Arc<AtomicBool>,
}

impl Probed for HttpState {
    fn readiness(&self) -> Result<(), &'static str> {
        if self.ready.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("starting")
        }
    }

    fn render_metrics(&self) -> Result<String, std::fmt::Error> {
        probes::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    #[tokio::test]
    async fn ready_follows_the_flag_and_metrics_are_served() {
        let mut registry = Registry::default();
        let metrics = crate::metrics::Metrics::register(&mut registry);
        metrics.failed("source");
        let state = HttpState {
            registry: Arc::new(registry),
            ready: Arc::new(AtomicBool::new(false)),
        };
        let app = probes::router(Arc::new(state.clone()));
        let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(get("/ready")).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        state.ready.store(true, Ordering::Relaxed);
        let response = app.clone().oneshot(get("/ready")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let response = app.clone().oneshot(get("/health")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let response = app.oneshot(get("/metrics")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("cdcstar_operator_reconcile_failures_total{error=\"source\"} 1"));
    }
}
