//! `/api/customers`: list, read, create, update (partial) and delete customers. Deleting a
//! customer deletes its orders and their items (database cascade).

pub mod handlers;
pub mod models;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

/// The customer routes, with their OpenAPI operations.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list_customers, handlers::create_customer))
        .routes(routes!(
            handlers::get_customer,
            handlers::update_customer,
            handlers::delete_customer
        ))
}
