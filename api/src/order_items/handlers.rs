//! Order item handlers: one SQL statement each; the list, read and delete handlers are
//! [`crate::resource`]'s.

use axum::extract::State;

use super::models::{NewOrderItem, OrderItem, OrderItemUpdate};
use crate::app::AppState;
use crate::envelope::{ApiResponse, Created};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{IdPath, ValidJson};
use crate::rows;

crate::resource::handlers!(
    OrderItem,
    tag: "order-items",
    path: "/api/order-items",
    id_path: "/api/order-items/{id}",
    one: "order item",
    One: "Order item",
    Many: "Order items",
    listing: "order items",
    reading: "order item",
    /// List order items, ordered by id.
    list: list_order_items,
    /// Read one order item.
    get: get_order_item,
    /// Delete an order item.
    delete: delete_order_item => "Deleted",
);

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
