//! Order item handlers: [`crate::resource`]'s, around the order item's own statements.

use super::models::{NewOrderItem, OrderItem, OrderItemUpdate};
use crate::connections::RowQuery;

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
    /// Add an item to an order.
    create: create_order_item(NewOrderItem) => insert,
        refused: "The order or the product does not exist",
    /// Update an order item: absent fields keep their value.
    update: update_order_item(OrderItemUpdate) => update,
        refused: "The new order or product does not exist",
);

/// The `INSERT` of a new order item, answering the row.
fn insert(new: &NewOrderItem) -> RowQuery<'_, OrderItem> {
    sqlx::query_as(
        r#"INSERT INTO orderitem ("orderId", "productId", quantity, price) VALUES ($1, $2, $3, $4)
           RETURNING id, "orderId", "productId", quantity, price"#,
    )
    .bind(new.order_id)
    .bind(new.product_id)
    .bind(new.quantity)
    .bind(new.price)
}

/// The `UPDATE` of order item `id`, answering the row (none when there is no such order item).
fn update(id: i32, update: &OrderItemUpdate) -> RowQuery<'_, OrderItem> {
    sqlx::query_as(
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
    .bind(update.price)
}
