//! `/api/order-items`.

use axum::http::{Method, StatusCode};
use pretty_assertions::assert_eq;
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

#[sqlx::test(migrations = "./migrations")]
async fn order_item_lifecycle(pool: PgPool) {
    let app = test_app(&pool);
    let Shop { product, order, .. } = create_shop(&app).await;
    let pad = create_product(&app, "Pad", 5.0).await;

    let item = create_item(&app, order, product, 2, 29.99).await;
    let id = id_of(&item);
    assert_eq!(
        item,
        json!({"id": id, "orderId": order, "productId": product, "quantity": 2, "price": 29.99})
    );
    assert_read_and_listed(&app, "/api/order-items", id, &item).await;

    let uri = format!("/api/order-items/{id}");
    let updated = put_ok(&app, &uri, json!({"productId": pad, "quantity": 3})).await;
    assert_eq!(
        updated,
        json!({"id": id, "orderId": order, "productId": pad, "quantity": 3, "price": 29.99})
    );

    // The reference answered 422 here (a route/argument name mismatch).
    assert_deleted(&app, &pool, &uri, "orderitem").await;
    // Deleting an item keeps its order.
    assert_rows(&pool, &[("order", 1)]).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn order_item_validation_and_references(pool: PgPool) {
    let app = test_app(&pool);
    let Shop { product, order, .. } = create_shop(&app).await;
    let cases = [
        (
            json!({"productId": product, "quantity": 1, "price": 1}),
            vec!["orderId"],
        ),
        (
            json!({"orderId": order, "productId": product, "quantity": "many", "price": 1}),
            vec!["quantity"],
        ),
        (
            json!({"orderId": order, "productId": product, "quantity": 1.5, "price": 1}),
            vec!["quantity"],
        ),
        (
            json!({"orderId": order, "productId": product, "quantity": 0, "price": 0}),
            vec!["quantity", "price"],
        ),
    ];
    assert_refused(&app, Method::POST, "/api/order-items", cases).await;
    let conflicts = [
        (
            json!({"orderId": 999, "productId": product, "quantity": 1, "price": 1}),
            vec!["orderId"],
        ),
        (
            json!({"orderId": order, "productId": 999, "quantity": 1, "price": 1}),
            vec!["productId"],
        ),
    ];
    assert_errors(
        &app,
        StatusCode::CONFLICT,
        Method::POST,
        "/api/order-items",
        conflicts,
    )
    .await;

    let item = id_of(&create_item(&app, order, product, 1, 1.0).await);
    let uri = format!("/api/order-items/{item}");
    put(&app, &uri, json!({"quantity": -1}))
        .await
        .assert_invalid(&["quantity"]);
    let answer = put(&app, &uri, json!({"orderId": 999})).await;
    assert_eq!(answer.error_fields(StatusCode::CONFLICT), ["orderId"]);
    assert_unknown_id(&app, "/api/order-items", json!({"quantity": 1})).await;
    get(&app, "/api/order-items/-")
        .await
        .assert_invalid(&["id"]);
    assert_rows(&pool, &[("orderitem", 1)]).await;
}
