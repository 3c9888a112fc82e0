//! `/api/products`.

use axum::http::{Method, StatusCode};
use pretty_assertions::assert_eq;
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

#[sqlx::test(migrations = "./migrations")]
async fn product_lifecycle(pool: PgPool) {
    let app = test_app(&pool);
    // The reference README posts the price as a string.
    let body = json!({"name": "Wireless Mouse", "category": "Electronics", "price": "29.99"});
    let product = post_created(&app, "/api/products", body).await;
    let id = id_of(&product);
    assert_eq!(product["price"], json!(29.99), "price is a JSON number");
    assert_eq!(product["category"], "Electronics");
    assert!(product["createdAt"].is_string());

    assert_read_and_listed(&app, "/api/products", id, &product).await;

    let uri = format!("/api/products/{id}");
    let updated = put_ok(&app, &uri, json!({"price": 19.5, "name": "Mouse"})).await;
    assert_eq!(updated["price"], json!(19.5));
    assert_eq!(updated["name"], "Mouse");
    assert_eq!(updated["category"], "Electronics");

    assert_deleted(&app, &pool, &uri, "product").await;
}

#[sqlx::test(migrations = "./migrations")]
async fn product_validation_names_each_field(pool: PgPool) {
    let app = test_app(&pool);
    let cases = [
        (json!({"name": "A", "category": "B"}), vec!["price"]),
        (
            json!({"name": "A", "category": "B", "price": "abc"}),
            vec!["price"],
        ),
        (
            json!({"name": "A", "category": "B", "price": true}),
            vec!["price"],
        ),
        (
            json!({"name": "", "category": "c".repeat(101), "price": 0}),
            vec!["name", "category", "price"],
        ),
        (
            json!({"name": "A", "category": "B", "price": -3.5}),
            vec!["price"],
        ),
    ];
    assert_refused(&app, Method::POST, "/api/products", cases).await;
    let id = create_product(&app, "Pen", 1.0).await;
    let answer = put(
        &app,
        &format!("/api/products/{id}"),
        json!({"price": 0, "name": ""}),
    )
    .await;
    answer.assert_invalid(&["name", "price"]);
    assert_unknown_id(&app, "/api/products", json!({"price": 2})).await;
    get(&app, "/api/products/x").await.assert_invalid(&["id"]);
    assert_rows(&pool, &[("product", 1)]).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn a_product_with_order_items_cannot_be_deleted(pool: PgPool) {
    let app = test_app(&pool);
    let shop = create_shop_with_item(&app).await;
    let answer = delete(&app, &format!("/api/products/{}", shop.product)).await;
    assert_eq!(answer.error_fields(StatusCode::CONFLICT), ["id"]);
    assert_eq!(answer.body["error"]["code"], "CONFLICT");
    assert_rows(&pool, &[("product", 1), ("orderitem", 1)]).await;
}
