//! The router: every resource's routes, the docs, health, and the layers every request goes
//! through (CORS, tracing, metrics, request timeout), over a shared [`AppState`].

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::{BoxError, Router, middleware};
use sqlx::PgPool;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::connections::Connections;
use crate::docs::ApiDoc;
use crate::error::ApiError;
use crate::metrics::{self, Metrics};
use crate::star::StarReader;
use crate::{client, customers, docs, health, order_items, orders, products, star};

/// The origin of the reference React test client.
pub const TEST_CLIENT_ORIGIN: &str = "http://localhost:3001";

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Connections,
    pub metrics: Arc<Metrics>,
    /// CORS and timeout settings.
    pub http: HttpSettings,
    /// The star-schema view's ClickHouse; `None` when not configured (the view answers 404).
    pub star: Option<StarReader>,
}

impl AppState {
    /// State with default HTTP settings (CORS for the test client, 30 s timeout) and fresh metrics.
    pub fn new(pool: PgPool) -> Self {
        Self {
            db: Connections::new(pool),
            metrics: Arc::new(Metrics::new()),
            http: HttpSettings::default(),
            star: None,
        }
    }
}

/// A CORS origin is not a valid header value.
#[derive(Debug, thiserror::Error)]
#[error("invalid cors origin {0:?}")]
pub struct InvalidOrigin(String);

/// The HTTP layers' settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    // NB: behind an `Arc` because `State<AppState>` clones the state on every request, and a
    // `CorsLayer` clone copies its origin, method and header lists.
    cors: Arc<CorsLayer>,
    request_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self::new(&[TEST_CLIENT_ORIGIN.to_owned()], Duration::from_secs(30))
            .unwrap_or_else(|err| unreachable!("the default origin is valid: {err}"))
    }
}

impl HttpSettings {
    /// CORS for `origins` (`*` allows any) and a request timeout.
    pub fn new(origins: &[String], request_timeout: Duration) -> Result<Self, InvalidOrigin> {
        let allow_origin = if origins.iter().any(|origin| origin == "*") {
            AllowOrigin::from(Any)
        } else {
            let values = origins
                .iter()
                .map(|origin| {
                    HeaderValue::from_str(origin.trim_end_matches('/'))
                        .map_err(|_| InvalidOrigin(origin.clone()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            AllowOrigin::list(values)
        };
        let cors = CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([header::CONTENT_TYPE, header::ACCEPT, header::AUTHORIZATION])
            .max_age(Duration::from_secs(3600));
        Ok(Self {
            cors: Arc::new(cors),
            request_timeout,
        })
    }
}

/// Every documented route, with the OpenAPI document they make.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(customers::router())
        .merge(products::router())
        .merge(orders::router())
        .merge(order_items::router())
        .merge(star::router())
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    let (router, openapi) = api_router().split_for_parts();
    let timeout = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: BoxError| async {
            ApiError::Timeout
        }))
        .timeout(state.http.request_timeout);
    router
        .merge(docs::router(openapi))
        .merge(client::router())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        // NB: `Router::layer` wraps each route, so the metrics middleware sees the matched route;
        // the last layer added runs first: CORS, then tracing, metrics, and the timeout innermost
        // so a timed-out request is still counted (as 408).
        .layer(timeout)
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(CorsLayer::clone(&state.http.cors))
        .with_state(state)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
