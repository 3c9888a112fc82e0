//! The OpenAPI document (generated from the handlers by utoipa) and its viewers:
//! `/openapi.json`, Swagger UI at `/docs` and ReDoc at `/redoc`. Both viewers' assets are compiled
//! into the binary (Swagger UI through `utoipa-swagger-ui`'s `vendored` feature, ReDoc from
//! `assets/redoc.standalone.js`): nothing is downloaded at build or run time.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_redoc::{Redoc, Servable};
use utoipa_swagger_ui::SwaggerUi;

use crate::app::AppState;

/// ReDoc 2.5.4's standalone bundle (MIT, see `assets/redoc.LICENSE`).
const REDOC_JS: &[u8] = include_bytes!("../assets/redoc.standalone.js");

/// The ReDoc page: the vendored bundle instead of a CDN, no web fonts.
const REDOC_HTML: &str = r#"<!DOCTYPE html>
<html>
  <head>
    <title>cdcstar shop API - ReDoc</title>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <style>body { margin: 0; padding: 0; }</style>
  </head>
  <body>
    <div id="redoc-container"></div>
    <script src="/redoc/redoc.standalone.js"></script>
    <script>
      Redoc.init($spec, $config, document.getElementById("redoc-container"));
    </script>
  </body>
</html>
"#;

/// The document's static part; paths and schemas come from the routers.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "cdcstar shop API",
        description = "The reference shop's REST API (customers, products, orders, order items). \
            Successes answer `{success: true, data, message}`; errors answer \
            `{success: false, error: {message, code}, message, details: [{field, message}]}`. \
            Lists are ordered by id and paginated with `limit` (default 100, max 1000) and `offset`."
    ),
    tags(
        (name = "customers", description = "Customers; deleting one deletes its orders"),
        (name = "products", description = "Products; one referenced by order items cannot be deleted"),
        (name = "orders", description = "Orders, answered with their items"),
        (name = "order-items", description = "Items of orders"),
        (name = "star", description = "The pipeline's star schema in ClickHouse, read-only (when CLICKHOUSE_URL is set)"),
        (name = "operations", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

/// The full OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    crate::app::api_router().into_openapi()
}

/// The OpenAPI document as pretty JSON, exactly as committed in `api/openapi.json`.
pub fn openapi_json() -> Result<String, serde_json::Error> {
    let mut json = openapi().to_pretty_json()?;
    json.push('\n');
    Ok(json)
}

/// Routes of `/openapi.json`, `/docs` and `/redoc`.
pub fn router(openapi: utoipa::openapi::OpenApi) -> Router<AppState> {
    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi.clone()))
        .merge(Redoc::with_url("/redoc", openapi).custom_html(REDOC_HTML))
        .route("/redoc/redoc.standalone.js", get(redoc_js))
}

async fn redoc_js() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC_JS,
    )
}
