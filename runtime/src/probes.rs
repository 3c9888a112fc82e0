//! The probe and metrics port every long-running binary serves (the api serves its own on its API
//! port): `/health` (the process answers), `/ready` (the binary's own readiness, 503 with the reason
//! until then) and `/metrics` (Prometheus' OpenMetrics text). The api's own metrics port answers
//! `/metrics` with the same [`metrics_response`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// What a binary's probe port reads.
pub trait Probed: Send + Sync + 'static {
    /// `Ok` when ready, otherwise why not (the body of the 503).
    fn readiness(&self) -> Result<(), &'static str>;
    /// The metrics in the OpenMetrics text format (usually [`encode`] of the binary's registry).
    fn render_metrics(&self) -> Result<String, std::fmt::Error>;
}

/// A histogram of the pipeline's latencies (commit → read, → acknowledged, → inserted, and the
/// sink's apply time): 1 ms to 11 s in steps of ×1.5, one layout for capture and sink so that their
/// stages compare, and fine enough to read a percentile from within a few tens of percent.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 1.5, 24))
}

/// `registry` in the OpenMetrics text format.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// The router of the probe port.
pub fn router(state: Arc<dyn Probed>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn ready(State(state): State<Arc<dyn Probed>>) -> Response {
    match state.readiness() {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

async fn metrics(State(state): State<Arc<dyn Probed>>) -> Response {
    metrics_response(state.render_metrics())
}

/// The answer of a `/metrics` endpoint: the `rendered` text as OpenMetrics, or a 500 saying why
/// there is none.
pub fn metrics_response(rendered: Result<String, std::fmt::Error>) -> Response {
    match rendered {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "failed to encode metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to encode metrics: {error}"),
            )
                .into_response()
        }
    }
}

/// Serves the probe port on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<dyn Probed>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "serving /health, /ready and /metrics");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `address`, then serves the probe port there until `shutdown` resolves.
pub async fn serve_on(
    address: SocketAddr,
    state: Arc<dyn Probed>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    serve(listener, state, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Fixed(AtomicBool);

    impl Probed for Fixed {
        fn readiness(&self) -> Result<(), &'static str> {
            if self.0.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("starting")
            }
        }
        fn render_metrics(&self) -> Result<String, std::fmt::Error> {
            Ok("# EOF\n".to_owned())
        }
    }

    async fn get_status(router: Router, path: &str) -> (StatusCode, String) {
        use tower::ServiceExt as _;
        let response = router
            .oneshot(
                axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn ready_says_why_not_until_ready_and_health_always_answers() {
        let state = Arc::new(Fixed(AtomicBool::new(false)));
        let app = router(state.clone());
        assert_eq!(
            get_status(app.clone(), "/ready").await,
            (StatusCode::SERVICE_UNAVAILABLE, "starting".to_owned())
        );
        assert_eq!(get_status(app.clone(), "/health").await.0, StatusCode::OK);
        state.0.store(true, Ordering::Relaxed);
        assert_eq!(get_status(app.clone(), "/ready").await.0, StatusCode::OK);
        assert_eq!(
            get_status(app, "/metrics").await,
            (StatusCode::OK, "# EOF\n".to_owned())
        );
    }
}
