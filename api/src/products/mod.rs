//! `/api/products`: list, read, create, update (partial) and delete products. A product still
//! referenced by order items cannot be deleted (409).

pub mod handlers;
pub mod models;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

/// The product routes, with their OpenAPI operations.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list_products, handlers::create_product))
        .routes(routes!(
            handlers::get_product,
            handlers::update_product,
            handlers::delete_product
        ))
}
