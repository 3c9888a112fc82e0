//! The test client page at `/client`: the reference React test client's actions (random customers
//! and products, an order with 1 to 3 items, its status changed, a customer renamed and moved, an
//! order deleted) through this API, beside a live view of the star schema
//! (`GET /api/star/{table}`, polled) with, for every action, the time until ClickHouse showed it.
//! Plain HTML, JavaScript and CSS compiled into the binary: no build step, nothing downloaded.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;

use crate::app::AppState;

const INDEX_HTML: &str = include_str!("../assets/client/index.html");
const APP_JS: &str = include_str!("../assets/client/app.js");
const APP_CSS: &str = include_str!("../assets/client/app.css");

/// Routes of the page: `/client/` (and `/client`, redirected), its script and its style sheet.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/client", get(|| async { Redirect::permanent("/client/") }))
        .route(
            "/client/",
            get(|| asset("text/html; charset=utf-8", INDEX_HTML)),
        )
        .route(
            "/client/app.js",
            get(|| asset("application/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/client/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
