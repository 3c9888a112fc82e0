//! `/api/orders`: list and read orders with their items, create an order (optionally with its
//! items, in one transaction), update it by PUT or PATCH (both partial: the reference's README says
//! PATCH, its client sends PUT) and delete it with its items.

pub mod handlers;
pub mod models;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

/// The order routes, with their OpenAPI operations.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list_orders, handlers::create_order))
        .routes(routes!(
            handlers::get_order,
            handlers::put_order,
            handlers::patch_order,
            handlers::delete_order
        ))
}
