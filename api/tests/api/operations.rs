//! Health, readiness, the 404 envelope, CORS, the request timeout, metrics, the docs and the
//! OpenAPI drift check.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use cdcstar_api::{AppState, HttpSettings, app};
use pretty_assertions::assert_eq;
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

#[test]
fn services_are_configured() {
    require_services();
}

#[test]
fn committed_openapi_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let generated = cdcstar_api::docs::openapi_json().unwrap();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "api/openapi.json drifted from the handlers: regenerate it with \
         `cargo run -p cdcstar-api -- openapi > api/openapi.json` (or UPDATE_OPENAPI=1 cargo test -p cdcstar-api)"
    );
}

#[test]
fn openapi_documents_every_reference_endpoint() {
    let doc = serde_json::to_value(cdcstar_api::docs::openapi()).unwrap();
    let expected = [
        ("/api/customers", vec!["get", "post"]),
        ("/api/customers/{id}", vec!["get", "put", "delete"]),
        ("/api/products", vec!["get", "post"]),
        ("/api/products/{id}", vec!["get", "put", "delete"]),
        ("/api/orders", vec!["get", "post"]),
        ("/api/orders/{id}", vec!["get", "put", "patch", "delete"]),
        ("/api/order-items", vec!["get", "post"]),
        ("/api/order-items/{id}", vec!["get", "put", "delete"]),
        ("/health", vec!["get"]),
        ("/ready", vec!["get"]),
    ];
    for (path, methods) in expected {
        for method in methods {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} is not documented"
            );
        }
    }
    let limit = doc["paths"]["/api/orders"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["maximum"], json!(1000));
    assert_eq!(limit["schema"]["default"], json!(100));
    assert_eq!(limit["required"], json!(false));
}

#[sqlx::test(migrations = "./migrations")]
async fn health_and_readiness(pool: PgPool) {
    let app = test_app(&pool);
    let health = get(&app, "/health").await;
    assert_eq!(
        (health.status, health.body.clone()),
        (StatusCode::OK, json!({"status": "healthy"}))
    );
    let ready = get(&app, "/ready").await;
    assert_eq!(
        (ready.status, ready.body.clone()),
        (StatusCode::OK, json!({"status": "ready"}))
    );

    pool.close().await;
    let not_ready = get(&app, "/ready").await;
    assert_eq!(not_ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error_envelope(&not_ready.body);
    assert_eq!(
        get(&app, "/health").await.status,
        StatusCode::OK,
        "liveness does not touch the database"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn unknown_routes_answer_the_envelope(pool: PgPool) {
    let app = test_app(&pool);
    let answer = get(&app, "/api/nothing").await;
    answer.error_fields(StatusCode::NOT_FOUND);
    assert_eq!(answer.body["error"]["code"], "NOT_FOUND");
    let answer = call(&app, Method::PATCH, "/api/customers/1", Some(json!({}))).await;
    answer.error_fields(StatusCode::METHOD_NOT_ALLOWED);
}

/// A GET of `path` by a page served from `allowed` is answered with that origin allowed, and one
/// by a page served from `refused` with no origin allowed.
async fn assert_cors_allows_only(app: &axum::Router, allowed: &str, refused: &str, path: &str) {
    for (origin, expected) in [(allowed, Some(allowed)), (refused, None)] {
        let request = Request::get(path)
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .unwrap();
        let answer = send(app, request).await;
        let allowed_origin = answer
            .headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|value| value.to_str().unwrap());
        assert_eq!(allowed_origin, expected, "a GET of {path} from {origin}");
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn cors_allows_the_test_client(pool: PgPool) {
    let app = test_app(&pool);
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/api/orders/1")
        .header(header::ORIGIN, "http://localhost:3001")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PUT")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .body(Body::empty())
        .unwrap();
    let answer = send(&app, preflight).await;
    assert!(answer.status.is_success(), "{:?}", answer.status);
    assert_eq!(
        answer.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "http://localhost:3001"
    );
    let methods = answer.headers[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    assert!(
        answer.headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .contains("content-type")
    );

    assert_cors_allows_only(
        &app,
        "http://localhost:3001",
        "http://evil.example",
        "/api/customers",
    )
    .await;
}

#[sqlx::test(migrations = "./migrations")]
async fn cors_origins_are_configurable(pool: PgPool) {
    let mut state = AppState::new(pool);
    state.http = HttpSettings::new(
        &["http://app.example:8080".to_owned()],
        Duration::from_secs(5),
    )
    .unwrap();
    let app = app(state);
    assert_cors_allows_only(
        &app,
        "http://app.example:8080",
        "http://localhost:3001",
        "/health",
    )
    .await;
    assert!(HttpSettings::new(&["bad\norigin".to_owned()], Duration::from_secs(1)).is_err());
}

#[sqlx::test(migrations = "./migrations")]
async fn slow_requests_time_out_with_the_envelope(pool: PgPool) {
    let mut state = AppState::new(pool.clone());
    state.http = HttpSettings::new(&[], Duration::from_millis(300)).unwrap();
    let app = app(state);
    // A transaction holding an exclusive lock on the table makes the list wait.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE customer IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let answer = get(&app, "/api/customers").await;
    assert_eq!(answer.status, StatusCode::REQUEST_TIMEOUT);
    assert_error_envelope(&answer.body);
    assert_eq!(answer.body["error"]["code"], "TIMEOUT");
    blocker.rollback().await.unwrap();
    assert_eq!(get(&app, "/api/customers").await.status, StatusCode::OK);
}

#[sqlx::test(migrations = "./migrations")]
async fn metrics_count_requests_by_route_method_and_status(pool: PgPool) {
    let state = AppState::new(pool);
    let metrics = state.metrics.clone();
    let app = app(state);
    get(&app, "/api/customers/1").await;
    get(&app, "/api/customers/2").await;
    get(&app, "/api/customers").await;
    get(&app, "/no/such/route").await;
    let text = metrics.encode().unwrap();
    assert!(
        text.contains(r#"cdcstar_api_http_requests_total{route="/api/customers/{id}",method="GET",status="404"} 2"#),
        "{text}"
    );
    assert!(text.contains(
        r#"cdcstar_api_http_requests_total{route="/api/customers",method="GET",status="200"} 1"#
    ));
    assert!(text.contains(r#"route="unmatched",method="GET",status="404""#));
    assert!(text.contains(r#"cdcstar_api_http_request_duration_seconds_count{route="/api/customers",method="GET",status="200"} 1"#));

    let exposition = cdcstar_api::metrics::router(metrics);
    let answer = send(
        &exposition,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        String::from_utf8(answer.raw)
            .unwrap()
            .contains("cdcstar_api_http_requests_total")
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn docs_are_served_without_downloads(pool: PgPool) {
    let app = test_app(&pool);
    let spec = get(&app, "/openapi.json").await;
    assert_eq!(spec.status, StatusCode::OK);
    assert_eq!(spec.body["info"]["title"], "cdcstar shop API");

    let swagger = get(&app, "/docs/").await;
    assert_eq!(swagger.status, StatusCode::OK);
    let swagger_js = get(&app, "/docs/swagger-ui-bundle.js").await;
    assert_eq!(swagger_js.status, StatusCode::OK);
    assert!(swagger_js.raw.len() > 100_000, "swagger ui is vendored");

    let redoc = get(&app, "/redoc").await;
    assert_eq!(redoc.status, StatusCode::OK);
    let page = String::from_utf8(redoc.raw).unwrap();
    assert!(page.contains(r#"<script src="/redoc/redoc.standalone.js">"#));
    assert!(
        !page.contains("https://"),
        "the redoc page loads nothing from the network"
    );
    assert!(page.contains("/api/customers"), "the spec is inlined");
    let bundle = get(&app, "/redoc/redoc.standalone.js").await;
    assert_eq!(bundle.status, StatusCode::OK);
    assert!(bundle.raw.len() > 500_000);
}
