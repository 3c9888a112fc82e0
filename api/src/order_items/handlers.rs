//! Order item handlers: one SQL statement each (reads and deletes by id are [`crate::rows`]').

use axum::extract::State;

use super::models::{NewOrderItem, OrderItem, OrderItemUpdate};
use crate::app::AppState;
use crate::envelope::{ApiResponse, Created, Deleted};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{IdPath, ValidJson};
use crate::pagination::Pagination;
use crate::rows;

/// List order items, ordered by id.
#[utoipa::path(
    get, path = "/api/order-items", tag = "order-items",
    params(Pagination),
    responses(
        (status = 200, description = "A page of order items, ordered by id", body = ApiResponse<Vec<OrderItem>>),
        (status = 422, description = "Bad `limit` or `offset`", body = ErrorBody),
    )
)]
pub async fn list_order_items(
    State(state): State<AppState>,
    page: Pagination,
) -> Result<ApiResponse<Vec<OrderItem>>, ApiError> {
    let items = rows::page(&state.db, page).await?;
    Ok(ApiResponse::ok(items, "Order items retrieved successfully"))
}

/// Read one order item.
#[utoipa::path(
    get, path = "/api/order-items/{id}", tag = "order-items",
    params(("id" = i32, Path, description = "Order item id")),
    responses(
        (status = 200, description = "The order item", body = ApiResponse<OrderItem>),
        (status = 404, description = "No such order item", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
pub async fn get_order_item(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<ApiResponse<OrderItem>, ApiError> {
    let item = rows::by_id(&state.db, id).await?;
    Ok(ApiResponse::ok(item, "Order item retrieved successfully"))
}

/// Add an item to an order.
#[utoipa::path(
    post, path = "/api/order-items", tag = "order-items",
    request_body = NewOrderItem,
    responses(
        (status = 201, description = "The created order item", body = ApiResponse<OrderItem>),
        (status = 409, description = "The order or the product does not exist", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
    )
)]
pub async fn create_order_item(
    State(state): State<AppState>,
    ValidJson(new): ValidJson<NewOrderItem>,
) -> Result<Created<OrderItem>, ApiError> {
    let query = sqlx::query_as::<_, OrderItem>(
        r#"INSERT INTO orderitem ("orderId", "productId", quantity, price) VALUES ($1, $2, $3, $4)
           RETURNING id, "orderId", "productId", quantity, price"#,
    )
    .bind(new.order_id)
    .bind(new.product_id)
    .bind(new.quantity)
    .bind(new.price);
    let item = state.db.fetch_one(query).await?;
    Ok(Created::new(item, "Order item created successfully"))
}

/// Update an order item: absent fields keep their value.
#[utoipa::path(
    put, path = "/api/order-items/{id}", tag = "order-items",
    params(("id" = i32, Path, description = "Order item id")),
    request_body = OrderItemUpdate,
    responses(
        (status = 200, description = "The updated order item", body = ApiResponse<OrderItem>),
        (status = 404, description = "No such order item", body = ErrorBody),
        (status = 409, description = "The new order or product does not exist", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    )
)]
pub async fn update_order_item(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ValidJson(update): ValidJson<OrderItemUpdate>,
) -> Result<ApiResponse<OrderItem>, ApiError> {
    let query = sqlx::query_as::<_, OrderItem>(
        r#"UPDATE orderitem SET
               "orderId" = COALESCE($2, "orderId"),
               "productId" = COALESCE($3, "productId"),
               quantity = COALESCE($4, quantity),
               price = COALESCE($5, price)
           WHERE id = $1
           RETURNING id, "orderId", "productId", quantity, price"#,
    )
    .bind(id)
    .bind(update.order_id)
    .bind(update.product_id)
    .bind(update.quantity)
    .bind(update.price);
    let item = rows::found(state.db.fetch_optional(query).await?, id)?;
    Ok(ApiResponse::ok(item, "Order item updated successfully"))
}

/// Delete an order item.
#[utoipa::path(
    delete, path = "/api/order-items/{id}", tag = "order-items",
    params(("id" = i32, Path, description = "Order item id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such order item", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
pub async fn delete_order_item(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Deleted, ApiError> {
    rows::delete_by_id::<OrderItem>(&state.db, id, ApiError::from).await
}
