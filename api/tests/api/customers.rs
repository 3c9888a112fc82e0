//! `/api/customers`.

use axum::http::{Method, StatusCode};
use pretty_assertions::assert_eq;
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

#[sqlx::test(migrations = "./migrations")]
async fn customer_lifecycle(pool: PgPool) {
    let app = test_app(&pool);
    let created = post(
        &app,
        "/api/customers",
        json!({"email": "jane@example.com", "name": "Jane Doe", "country": "USA", "city": "San Francisco"}),
    )
    .await;
    let customer = created.data(StatusCode::CREATED).clone();
    let id = id_of(&customer);
    assert_eq!(customer["email"], "jane@example.com");
    assert_eq!(customer["name"], "Jane Doe");
    assert_eq!(customer["country"], "USA");
    assert_eq!(customer["city"], "San Francisco");
    assert!(customer["createdAt"].is_string());
    assert_eq!(created.body["message"], "Customer created successfully");

    assert_read_and_listed(&app, "/api/customers", id, &customer).await;

    let uri = format!("/api/customers/{id}");
    let updated = put_ok(&app, &uri, json!({"city": "Oakland"})).await;
    assert_eq!(updated["city"], "Oakland");
    assert_eq!(
        updated["email"], "jane@example.com",
        "absent fields keep their value"
    );
    assert_eq!(updated["createdAt"], customer["createdAt"]);

    assert_deleted(&app, &pool, &uri, "customer").await;
    let gone = get(&app, &uri).await;
    assert_eq!(
        gone.error_fields(StatusCode::NOT_FOUND),
        Vec::<String>::new()
    );
    assert_eq!(gone.body["error"]["code"], "NOT_FOUND");
    assert_eq!(
        gone.body["error"]["message"],
        format!("customer {id} not found")
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn customer_validation_names_each_field(pool: PgPool) {
    let app = test_app(&pool);
    let cases = [
        (
            json!({"name": "A", "country": "B", "city": "C"}),
            vec!["email"],
        ),
        (
            json!({"email": 5, "name": "A", "country": "B", "city": "C"}),
            vec!["email"],
        ),
        (
            json!({"email": "not-an-email", "name": "", "country": "x".repeat(101), "city": ""}),
            vec!["email", "name", "country", "city"],
        ),
        (
            json!({"email": format!("{}@example.com", "a".repeat(250)), "name": "n".repeat(256), "country": "B", "city": "C"}),
            vec!["email", "name"],
        ),
        (json!([1, 2]), vec!["body"]),
    ];
    for answer in assert_refused(&app, Method::POST, "/api/customers", cases).await {
        assert_eq!(answer.body["error"]["code"], "VALIDATION_ERROR");
    }
    let id = create_customer(&app, "ok@example.com").await;
    let cases = [
        (json!({"email": "nope", "city": ""}), vec!["email", "city"]),
        (json!({"name": 3}), vec!["name"]),
    ];
    assert_refused(&app, Method::PUT, &format!("/api/customers/{id}"), cases).await;
    // Nothing written by rejected requests.
    assert_rows(&pool, &[("customer", 1)]).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn malformed_json_is_a_422_on_the_body(pool: PgPool) {
    let app = test_app(&pool);
    let request = axum::http::Request::post("/api/customers")
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"email\": "))
        .unwrap();
    send(&app, request).await.assert_invalid(&["body"]);
}

#[sqlx::test(migrations = "./migrations")]
async fn duplicate_email_is_a_409(pool: PgPool) {
    let app = test_app(&pool);
    create_customer(&app, "dup@example.com").await;
    let other = create_customer(&app, "other@example.com").await;
    let answer = post(
        &app,
        "/api/customers",
        json!({"email": "dup@example.com", "name": "B", "country": "C", "city": "D"}),
    )
    .await;
    assert_eq!(answer.error_fields(StatusCode::CONFLICT), ["email"]);
    assert_eq!(answer.body["error"]["code"], "CONFLICT");
    let answer = put(
        &app,
        &format!("/api/customers/{other}"),
        json!({"email": "dup@example.com"}),
    )
    .await;
    assert_eq!(answer.error_fields(StatusCode::CONFLICT), ["email"]);
}

#[sqlx::test(migrations = "./migrations")]
async fn unknown_and_malformed_ids(pool: PgPool) {
    let app = test_app(&pool);
    assert_unknown_id(&app, "/api/customers", json!({"name": "x"})).await;
    for answer in [
        get(&app, "/api/customers/abc").await,
        delete(&app, "/api/customers/1.5").await,
        get(&app, "/api/customers/99999999999").await,
    ] {
        answer.assert_invalid(&["id"]);
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn lists_are_paginated_by_id(pool: PgPool) {
    let app = test_app(&pool);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(create_customer(&app, &format!("c{i}@example.com")).await);
    }
    let page = get(&app, "/api/customers?limit=2&offset=1").await;
    let page_ids: Vec<i64> = page
        .data(StatusCode::OK)
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(page_ids, ids[1..3]);
    let tail = get(&app, "/api/customers?offset=4").await;
    assert_eq!(tail.data(StatusCode::OK).as_array().unwrap().len(), 1);
    let empty = get(&app, "/api/customers?offset=50").await;
    assert_eq!(empty.data(StatusCode::OK), &json!([]));
    for query in ["limit=0", "limit=1001", "limit=x", "offset=-1"] {
        let answer = get(&app, &format!("/api/customers?{query}")).await;
        let field = query.split('=').next().unwrap();
        assert_eq!(
            answer.error_fields(StatusCode::UNPROCESSABLE_ENTITY),
            [field],
            "{query}"
        );
    }
    let max = get(&app, "/api/customers?limit=1000").await;
    assert_eq!(max.data(StatusCode::OK).as_array().unwrap().len(), 5);
}

#[sqlx::test(migrations = "./migrations")]
async fn deleting_a_customer_cascades_to_orders_and_items(pool: PgPool) {
    let app = test_app(&pool);
    let shop = create_shop_with_item(&app).await;
    let deleted = delete(&app, &format!("/api/customers/{}", shop.customer)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    // The customer's orders and their items go with it, the products stay.
    assert_rows(&pool, &[("order", 0), ("orderitem", 0), ("product", 1)]).await;
}
