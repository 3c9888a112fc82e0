//! Order handlers. Every handler answers orders with their items from ONE SQL statement: the
//! orders (a page, one order, or the row just written) LEFT JOINed with their items, folded into
//! [`Order`]s here. No N+1, and one round trip per request (creating an order with its items is a
//! single statement too, hence atomic without an explicit transaction).

use axum::extract::State;

use super::models::{DEFAULT_STATUS, NewOrder, Order, OrderUpdate};
use crate::app::AppState;
use crate::connections::Connections;
use crate::envelope::{ApiResponse, Created, Deleted};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{IdPath, ValidJson};
use crate::order_items::models::OrderItem;
use crate::pagination::Pagination;
use crate::resource::Resource;
use crate::rows;

const RESOURCE: &str = "order";

/// One row of an order joined with one of its items (item columns are NULL for an order
/// without items).
#[derive(Debug, sqlx::FromRow)]
#[sqlx(rename_all = "camelCase")]
struct OrderItemRow {
    #[sqlx(flatten)]
    order: Order,
    item_id: Option<i32>,
    item_product_id: Option<i32>,
    item_quantity: Option<i32>,
    item_price: Option<f64>,
}

/// The item columns selected from `i` (an `orderitem`) next to an order's.
macro_rules! item_columns {
    () => {
        r#"i.id AS "itemId", i."productId" AS "itemProductId", i.quantity AS "itemQuantity", i.price AS "itemPrice""#
    };
}

/// Folds rows ordered by order id then item id into orders with their items.
fn fold_orders(rows: Vec<OrderItemRow>) -> Vec<Order> {
    let mut orders: Vec<Order> = Vec::new();
    for row in rows {
        let item = match (
            row.item_id,
            row.item_product_id,
            row.item_quantity,
            row.item_price,
        ) {
            (Some(id), Some(product_id), Some(quantity), Some(price)) => Some(OrderItem {
                id,
                order_id: row.order.id,
                product_id,
                quantity,
                price,
            }),
            _ => None,
        };
        match orders.last_mut() {
            Some(last) if last.id == row.order.id => last.items.extend(item),
            _ => {
                let mut order = row.order;
                order.items.extend(item);
                orders.push(order);
            }
        }
    }
    orders
}

crate::resource::handlers!(
    Order,
    tag: "orders",
    path: "/api/orders",
    id_path: "/api/orders/{id}",
    one: "order",
    One: "Order",
    Many: "Orders",
    listing: "orders with their items",
    reading: "order with its items",
    /// List orders with their items, ordered by id.
    list: list_orders,
    /// Read one order with its items.
    get: get_order,
    /// Delete an order with its items.
    delete: delete_order => "Deleted, with its items",
);

/// Orders are read with their items, each request in one statement (see the module docs).
impl Resource for Order {
    async fn page(db: &Connections, page: Pagination) -> Result<Vec<Order>, ApiError> {
        let query = sqlx::query_as::<_, OrderItemRow>(concat!(
            r#"WITH page AS (
                   SELECT id, "customerId", "orderDate", total, status FROM "order"
                   ORDER BY id LIMIT $1 OFFSET $2
               )
               SELECT page.*, "#,
            item_columns!(),
            // NB: the LATERAL subquery (kept unflattened by `OFFSET 0`) makes Postgres look each
            // order's items up by "ix_orderitem_orderId" whatever its statistics say. With a plain
            // LEFT JOIN on tables not analysed yet (a fresh database, until autovacuum's first
            // ANALYZE), it hashed a sequential scan of the whole orderitem table on every page.
            r#" FROM page LEFT JOIN LATERAL (
                   SELECT id, "productId", quantity, price FROM orderitem
                   WHERE orderitem."orderId" = page.id OFFSET 0
               ) i ON true
               ORDER BY page.id, i.id"#
        ))
        .bind(page.limit)
        .bind(page.offset);
        Ok(fold_orders(db.fetch_all(query).await?))
    }

    async fn by_id(db: &Connections, id: i32) -> Result<Order, ApiError> {
        let query = sqlx::query_as::<_, OrderItemRow>(concat!(
            r#"SELECT o.id, o."customerId", o."orderDate", o.total, o.status, "#,
            item_columns!(),
            r#" FROM "order" o LEFT JOIN orderitem i ON i."orderId" = o.id
               WHERE o.id = $1 ORDER BY i.id"#
        ))
        .bind(id);
        let rows = db.fetch_all(query).await?;
        fold_orders(rows).pop().ok_or(ApiError::NotFound {
            resource: RESOURCE,
            id,
        })
    }

    async fn delete(db: &Connections, id: i32) -> Result<Deleted, ApiError> {
        rows::delete_row(
            db,
            RESOURCE,
            r#"DELETE FROM "order" WHERE id = $1"#,
            id,
            ApiError::from,
        )
        .await
    }
}

/// Create an order, honouring its `status`, with its optional `items` in the same statement.
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
    let products: Vec<i32> = new.items.iter().map(|line| line.product_id).collect();
    let quantities: Vec<i32> = new.items.iter().map(|line| line.quantity).collect();
    let prices: Vec<f64> = new.items.iter().map(|line| line.price).collect();
    let query = sqlx::query_as::<_, OrderItemRow>(concat!(
        r#"WITH o AS (
               INSERT INTO "order" ("customerId", total, status) VALUES ($1, $2, $3)
               RETURNING id, "customerId", "orderDate", total, status
           ), i AS (
               INSERT INTO orderitem ("orderId", "productId", quantity, price)
               SELECT o.id, line.product, line.quantity, line.price
               FROM o, UNNEST($4::int4[], $5::int4[], $6::float8[])
                       WITH ORDINALITY AS line(product, quantity, price, n)
               ORDER BY line.n
               RETURNING id, "productId", quantity, price
           )
           SELECT o.*, "#,
        item_columns!(),
        r#" FROM o LEFT JOIN i ON true ORDER BY i.id"#
    ))
    .bind(new.customer_id)
    .bind(new.total)
    .bind(new.status.as_deref().unwrap_or(DEFAULT_STATUS))
    .bind(&products)
    .bind(&quantities)
    .bind(&prices);
    let rows = state.db.fetch_all(query).await?;
    let order = fold_orders(rows).pop().ok_or_else(|| {
        ApiError::Database(sqlx::Error::Protocol(
            "insert into \"order\" returned no row".to_owned(),
        ))
    })?;
    Ok(Created::new(order, "Order created successfully"))
}

/// Declares the handler of one method updating an order: `PUT` and `PATCH` are the same update,
/// each documented as its own operation.
// NB: a macro, not a function: utoipa documents an operation from an attribute on a concrete
// function, one per method.
macro_rules! update_handler {
    ($method:ident, $name:ident, #[doc = $doc:literal]) => {
        #[doc = $doc]
        #[utoipa::path(
            $method, path = "/api/orders/{id}", tag = "orders",
            params(("id" = i32, Path, description = "Order id")),
            request_body = OrderUpdate,
            responses(
                (status = 200, description = "The updated order with its items", body = ApiResponse<Order>),
                (status = 400, description = "The new customer does not exist", body = ErrorBody),
                (status = 404, description = "No such order", body = ErrorBody),
                (status = 422, description = "A field is invalid", body = ErrorBody),
            )
        )]
        pub async fn $name(
            state: State<AppState>,
            id: IdPath,
            update: ValidJson<OrderUpdate>,
        ) -> Result<ApiResponse<Order>, ApiError> {
            update_order(state, id, update).await
        }
    };
}

update_handler!(
    put,
    put_order,
    /// Update an order (`PUT`): absent fields keep their value, `orderDate` included.
);
update_handler!(
    patch,
    patch_order,
    /// Update an order (`PATCH`): absent fields keep their value, `orderDate` included.
);

async fn update_order(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ValidJson(update): ValidJson<OrderUpdate>,
) -> Result<ApiResponse<Order>, ApiError> {
    let query = sqlx::query_as::<_, OrderItemRow>(concat!(
        r#"WITH o AS (
               UPDATE "order" SET
                   "customerId" = COALESCE($2, "customerId"),
                   status = COALESCE($3, status),
                   total = COALESCE($4, total),
                   "orderDate" = COALESCE($5, "orderDate")
               WHERE id = $1
               RETURNING id, "customerId", "orderDate", total, status
           )
           SELECT o.*, "#,
        item_columns!(),
        r#" FROM o LEFT JOIN orderitem i ON i."orderId" = o.id ORDER BY i.id"#
    ))
    .bind(id)
    .bind(update.customer_id)
    .bind(&update.status)
    .bind(update.total)
    .bind(update.order_date);
    let rows = state.db.fetch_all(query).await?;
    let order = fold_orders(rows).pop().ok_or(ApiError::NotFound {
        resource: RESOURCE,
        id,
    })?;
    Ok(ApiResponse::ok(order, "Order updated successfully"))
}
