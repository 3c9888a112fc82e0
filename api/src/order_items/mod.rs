//! `/api/order-items`: list, read, create, update (partial) and delete order items. An item whose
//! order or product does not exist answers 409.

pub mod handlers;
pub mod models;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

/// The order item routes, with their OpenAPI operations.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            handlers::list_order_items,
            handlers::create_order_item
        ))
        .routes(routes!(
            handlers::get_order_item,
            handlers::update_order_item,
            handlers::delete_order_item
        ))
}
