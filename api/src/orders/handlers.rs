//! Order handlers. Orders are answered with their items, loaded with one query per request
//! whatever the page size (no N+1).

use std::collections::HashMap;

use axum::extract::State;
use sqlx::PgExecutor;

use super::models::{DEFAULT_STATUS, NewOrder, Order, OrderUpdate};
use crate::app::AppState;
use crate::envelope::{ApiResponse, Created, Deleted};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{IdPath, ValidJson};
use crate::order_items::models::OrderItem;
use crate::pagination::Pagination;

const RESOURCE: &str = "order";

/// Fills each order's `items` with one query.
async fn attach_items<'e>(
    executor: impl PgExecutor<'e>,
    orders: &mut [Order],
) -> Result<(), sqlx::Error> {
    if orders.is_empty() {
        return Ok(());
    }
    let ids: Vec<i32> = orders.iter().map(|order| order.id).collect();
    let items = sqlx::query_as::<_, OrderItem>(
        r#"SELECT id, "orderId", "productId", quantity, price FROM orderitem
           WHERE "orderId" = ANY($1) ORDER BY id"#,
    )
    .bind(&ids)
    .fetch_all(executor)
    .await?;
    let position: HashMap<i32, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for item in items {
        if let Some(&i) = position.get(&item.order_id) {
            orders[i].items.push(item);
        }
    }
    Ok(())
}

/// List orders with their items, ordered by id.
#[utoipa::path(
    get, path = "/api/orders", tag = "orders",
    params(Pagination),
    responses(
        (status = 200, description = "A page of orders with their items, ordered by id", body = ApiResponse<Vec<Order>>),
        (status = 422, description = "Bad `limit` or `offset`", body = ErrorBody),
    )
)]
pub async fn list_orders(
    State(state): State<AppState>,
    page: Pagination,
) -> Result<ApiResponse<Vec<Order>>, ApiError> {
    let mut orders = sqlx::query_as::<_, Order>(
        r#"SELECT id, "customerId", "orderDate", total, status FROM "order"
           ORDER BY id LIMIT $1 OFFSET $2"#,
    )
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(&state.pool)
    .await?;
    attach_items(&state.pool, &mut orders).await?;
    Ok(ApiResponse::ok(orders, "Orders retrieved successfully"))
}

/// Read one order with its items.
#[utoipa::path(
    get, path = "/api/orders/{id}", tag = "orders",
    params(("id" = i32, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order with its items", body = ApiResponse<Order>),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
pub async fn get_order(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<ApiResponse<Order>, ApiError> {
    let order = sqlx::query_as::<_, Order>(
        r#"SELECT id, "customerId", "orderDate", total, status FROM "order" WHERE id = $1"#,
    )
    .bind(id)
    .fetch_optional(&state.pool)
    .await?
    .ok_or(ApiError::NotFound {
        resource: RESOURCE,
        id,
    })?;
    let mut orders = [order];
    attach_items(&state.pool, &mut orders).await?;
    let [order] = orders;
    Ok(ApiResponse::ok(order, "Order retrieved successfully"))
}

/// Create an order, honouring its `status`, with its optional `items` in the same transaction.
#[utoipa::path(
    post, path = "/api/orders", tag = "orders",
    request_body = NewOrder,
    responses(
        (status = 201, description = "The created order with its items", body = ApiResponse<Order>),
        (status = 400, description = "The customer does not exist", body = ErrorBody),
        (status = 409, description = "An item's product does not exist", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
    )
)]
pub async fn create_order(
    State(state): State<AppState>,
    ValidJson(new): ValidJson<NewOrder>,
) -> Result<Created<Order>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let mut order = sqlx::query_as::<_, Order>(
        r#"INSERT INTO "order" ("customerId", total, status) VALUES ($1, $2, $3)
           RETURNING id, "customerId", "orderDate", total, status"#,
    )
    .bind(new.customer_id)
    .bind(new.total)
    .bind(new.status.as_deref().unwrap_or(DEFAULT_STATUS))
    .fetch_one(&mut *tx)
    .await?;
    if !new.items.is_empty() {
        let products: Vec<i32> = new.items.iter().map(|line| line.product_id).collect();
        let quantities: Vec<i32> = new.items.iter().map(|line| line.quantity).collect();
        let prices: Vec<f64> = new.items.iter().map(|line| line.price).collect();
        order.items = sqlx::query_as::<_, OrderItem>(
            r#"INSERT INTO orderitem ("orderId", "productId", quantity, price)
               SELECT $1, line.product, line.quantity, line.price
               FROM UNNEST($2::int4[], $3::int4[], $4::float8[])
                    WITH ORDINALITY AS line(product, quantity, price, n)
               ORDER BY line.n
               RETURNING id, "orderId", "productId", quantity, price"#,
        )
        .bind(order.id)
        .bind(&products)
        .bind(&quantities)
        .bind(&prices)
        .fetch_all(&mut *tx)
        .await?;
        order.items.sort_by_key(|item| item.id);
    }
    tx.commit().await?;
    Ok(Created::new(order, "Order created successfully"))
}

/// Update an order (`PUT`): absent fields keep their value, `orderDate` included.
#[utoipa::path(
    put, path = "/api/orders/{id}", tag = "orders",
    params(("id" = i32, Path, description = "Order id")),
    request_body = OrderUpdate,
    responses(
        (status = 200, description = "The updated order with its items", body = ApiResponse<Order>),
        (status = 400, description = "The new customer does not exist", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    )
)]
pub async fn put_order(
    state: State<AppState>,
    id: IdPath,
    update: ValidJson<OrderUpdate>,
) -> Result<ApiResponse<Order>, ApiError> {
    update_order(state, id, update).await
}

/// Update an order (`PATCH`): absent fields keep their value, `orderDate` included.
#[utoipa::path(
    patch, path = "/api/orders/{id}", tag = "orders",
    params(("id" = i32, Path, description = "Order id")),
    request_body = OrderUpdate,
    responses(
        (status = 200, description = "The updated order with its items", body = ApiResponse<Order>),
        (status = 400, description = "The new customer does not exist", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    )
)]
pub async fn patch_order(
    state: State<AppState>,
    id: IdPath,
    update: ValidJson<OrderUpdate>,
) -> Result<ApiResponse<Order>, ApiError> {
    update_order(state, id, update).await
}

async fn update_order(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ValidJson(update): ValidJson<OrderUpdate>,
) -> Result<ApiResponse<Order>, ApiError> {
    let order = sqlx::query_as::<_, Order>(
        r#"UPDATE "order" SET
               "customerId" = COALESCE($2, "customerId"),
               status = COALESCE($3, status),
               total = COALESCE($4, total),
               "orderDate" = COALESCE($5, "orderDate")
           WHERE id = $1
           RETURNING id, "customerId", "orderDate", total, status"#,
    )
    .bind(id)
    .bind(update.customer_id)
    .bind(&update.status)
    .bind(update.total)
    .bind(update.order_date)
    .fetch_optional(&state.pool)
    .await?
    .ok_or(ApiError::NotFound {
        resource: RESOURCE,
        id,
    })?;
    let mut orders = [order];
    attach_items(&state.pool, &mut orders).await?;
    let [order] = orders;
    Ok(ApiResponse::ok(order, "Order updated successfully"))
}

/// Delete an order with its items.
#[utoipa::path(
    delete, path = "/api/orders/{id}", tag = "orders",
    params(("id" = i32, Path, description = "Order id")),
    responses(
        (status = 204, description = "Deleted, with its items"),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
pub async fn delete_order(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Deleted, ApiError> {
    let deleted = sqlx::query(r#"DELETE FROM "order" WHERE id = $1"#)
        .bind(id)
        .execute(&state.pool)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound {
            resource: RESOURCE,
            id,
        });
    }
    Ok(Deleted)
}
