//! `/api/orders`.
//!
//! Over 400 lines: one test per order behaviour of the reference app's contract (create with items,
//! list, update, validation errors).

use axum::http::{Method, StatusCode};
use pretty_assertions::assert_eq;
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

#[sqlx::test(migrations = "./migrations")]
async fn order_lifecycle(pool: PgPool) {
    let app = test_app(&pool);
    let customer = create_customer(&app, "o@example.com").await;
    let product = create_product(&app, "Mouse", 29.99).await;

    // The client sends `status` and a numeric total; the reference ignored the status.
    let body = json!({"customerId": customer, "status": "paid", "total": 59.98});
    let order = post_created(&app, "/api/orders", body).await;
    let id = id_of(&order);
    assert_eq!(order["customerId"], json!(customer));
    assert_eq!(order["status"], "paid");
    assert_eq!(order["total"], json!(59.98), "total is a JSON number");
    assert_eq!(order["items"], json!([]));
    let order_date = order["orderDate"].clone();
    assert!(order_date.is_string());

    let item = create_item(&app, id, product, 2, 29.99).await;

    let uri = format!("/api/orders/{id}");
    let read = get(&app, &uri).await;
    let read = read.data(StatusCode::OK);
    assert_eq!(read["items"], json!([item.clone()]));
    let listed = get(&app, "/api/orders").await;
    assert_eq!(listed.data(StatusCode::OK), &json!([read.clone()]));

    let by_put = put_ok(&app, &uri, json!({"status": "shipped"})).await;
    assert_eq!(by_put["status"], "shipped");
    assert_eq!(
        by_put["orderDate"], order_date,
        "PUT without orderDate keeps it"
    );
    assert_eq!(by_put["total"], json!(59.98));
    assert_eq!(by_put["items"], json!([item.clone()]));

    let by_patch = patch_ok(&app, &uri, json!({"status": "delivered", "total": "61.50"})).await;
    assert_eq!(by_patch["status"], "delivered");
    assert_eq!(by_patch["total"], json!(61.5));
    assert_eq!(by_patch["orderDate"], order_date);

    let dated = put_ok(&app, &uri, json!({"orderDate": "2024-05-01T12:30:00Z"})).await;
    assert_eq!(dated["orderDate"], "2024-05-01T12:30:00Z");

    assert_deleted(&app, &pool, &uri, "order").await;
    // Items are deleted with their order.
    assert_rows(&pool, &[("orderitem", 0)]).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn status_defaults_to_pending(pool: PgPool) {
    let app = test_app(&pool);
    let customer = create_customer(&app, "d@example.com").await;
    for body in [
        json!({"customerId": customer, "total": 1}),
        json!({"customerId": customer, "total": 1, "status": null}),
    ] {
        let order = post_created(&app, "/api/orders", body).await;
        assert_eq!(order["status"], "pending");
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn an_order_with_items_is_created_in_one_transaction(pool: PgPool) {
    let app = test_app(&pool);
    let customer = create_customer(&app, "t@example.com").await;
    let a = create_product(&app, "A", 1.0).await;
    let b = create_product(&app, "B", 2.0).await;
    let body = json!({"customerId": customer, "total": 5, "items": [
        {"productId": a, "quantity": 1, "price": 1.0},
        {"productId": b, "quantity": 2, "price": "2.00"},
    ]});
    let order = post_created(&app, "/api/orders", body).await;
    let items = order["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["productId"], json!(a));
    assert_eq!(items[1]["productId"], json!(b));
    assert_eq!(items[1]["quantity"], json!(2));
    assert!(items.iter().all(|item| item["orderId"] == order["id"]));

    // A missing product rolls the whole order back.
    let answer = post(
        &app,
        "/api/orders",
        json!({"customerId": customer, "total": 5, "items": [{"productId": a, "quantity": 1, "price": 1}, {"productId": 999, "quantity": 1, "price": 1}]}),
    )
    .await;
    assert_eq!(answer.error_fields(StatusCode::CONFLICT), ["productId"]);
    assert_rows(&pool, &[("order", 1), ("orderitem", 2)]).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn an_order_for_a_missing_customer_is_a_400(pool: PgPool) {
    let app = test_app(&pool);
    let customer = create_customer(&app, "m@example.com").await;
    let order = create_order(&app, customer, 10.0).await;
    // Customer 4242 does not exist: neither a new order nor a change of one may name it.
    let cases = [
        (
            Method::POST,
            "/api/orders".to_owned(),
            json!({"customerId": 4242, "total": 10}),
        ),
        (
            Method::PATCH,
            format!("/api/orders/{order}"),
            json!({"customerId": 4242}),
        ),
    ];
    for (method, uri, body) in cases {
        let answer = call(&app, method, &uri, Some(body)).await;
        assert_eq!(
            answer.error_fields(StatusCode::BAD_REQUEST),
            ["customerId"],
            "{uri}"
        );
        assert_eq!(answer.body["error"]["code"], "BAD_REQUEST", "{uri}");
    }
    assert_rows(&pool, &[("order", 1)]).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn order_validation_names_each_field(pool: PgPool) {
    let app = test_app(&pool);
    let customer = create_customer(&app, "v@example.com").await;
    let cases = [
        (json!({"total": 10}), vec!["customerId"]),
        (json!({"customerId": customer}), vec!["total"]),
        (
            json!({"customerId": "one", "total": 10}),
            vec!["customerId"],
        ),
        (
            json!({"customerId": customer, "total": "ten"}),
            vec!["total"],
        ),
        (
            json!({"customerId": customer, "total": 0, "status": ""}),
            vec!["status", "total"],
        ),
        (
            json!({"customerId": customer, "total": 1.234}),
            vec!["total"],
        ),
        (
            json!({"customerId": customer, "total": 1e11}),
            vec!["total"],
        ),
        (
            json!({"customerId": customer, "total": 1, "status": "s".repeat(51)}),
            vec!["status"],
        ),
        (
            json!({"customerId": customer, "total": 1, "items": [{"productId": 1, "quantity": 0, "price": -1}]}),
            vec!["items[0].quantity", "items[0].price"],
        ),
        (
            json!({"customerId": customer, "total": 1, "items": [{"productId": 1, "price": 1}]}),
            vec!["items[0].quantity"],
        ),
    ];
    assert_refused(&app, Method::POST, "/api/orders", cases).await;
    let order = create_order(&app, customer, 10.0).await;
    let cases = [
        (json!({"total": -5}), vec!["total"]),
        (json!({"status": ""}), vec!["status"]),
        (json!({"orderDate": "yesterday"}), vec!["orderDate"]),
    ];
    assert_refused(&app, Method::PUT, &format!("/api/orders/{order}"), cases).await;
    patch(&app, "/api/orders/999", json!({"status": "x"}))
        .await
        .error_fields(StatusCode::NOT_FOUND);
    get(&app, "/api/orders/999")
        .await
        .error_fields(StatusCode::NOT_FOUND);
    assert_rows(&pool, &[("order", 1)]).await;
}

#[sqlx::test(migrations = "./migrations")]
async fn listed_orders_carry_their_own_items(pool: PgPool) {
    let app = test_app(&pool);
    let customer = create_customer(&app, "l@example.com").await;
    let product = create_product(&app, "P", 3.0).await;
    let mut orders = Vec::new();
    for n in 0..4_i64 {
        let order = create_order(&app, customer, 3.0).await;
        for _ in 0..n {
            create_item(&app, order, product, 1, 3.0).await;
        }
        orders.push(order);
    }
    let listed = get(&app, "/api/orders?limit=3&offset=1").await;
    let listed = listed.data(StatusCode::OK).as_array().unwrap().clone();
    assert_eq!(listed.len(), 3);
    for (n, order) in listed.iter().enumerate() {
        assert_eq!(order["id"], json!(orders[n + 1]));
        let items = order["items"].as_array().unwrap();
        assert_eq!(items.len(), n + 1);
        assert!(items.iter().all(|item| item["orderId"] == order["id"]));
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn form_style_numbers_are_accepted(pool: PgPool) {
    // HTML form values arrive as strings; the reference (Pydantic, lax mode) accepted them.
    let app = test_app(&pool);
    let customer = create_customer(&app, "form@example.com").await;
    let product = create_product(&app, "Form", 2.5).await;
    let body = json!({"customerId": customer.to_string(), "total": "5.00", "status": "pending"});
    let order = id_of(&post_created(&app, "/api/orders", body).await);
    let body = json!({"orderId": order.to_string(), "productId": product as f64, "quantity": "2", "price": "2.5"});
    let item = post_created(&app, "/api/order-items", body).await;
    assert_eq!(item["quantity"], json!(2), "answers use real numbers");
    let answer = patch(
        &app,
        &format!("/api/orders/{order}"),
        json!({"customerId": "x"}),
    )
    .await;
    answer.assert_invalid(&["customerId"]);
}

#[sqlx::test(migrations = "./migrations")]
async fn order_dates_outside_the_analytics_range_are_a_422_naming_the_field(pool: PgPool) {
    let app = test_app(&pool);
    let customer = create_customer(&app, "range@example.com").await;
    let id = create_order(&app, customer, 10.0).await;
    let uri = format!("/api/orders/{id}");
    let refused = [
        "2300-01-01T00:00:00Z",
        "1899-12-31T23:59:59Z",
        "2299-12-31T23:00:00-02:00",
    ];
    let cases = refused.map(|date| (json!({"orderDate": date}), vec!["orderDate"]));
    assert_refused(&app, Method::PATCH, &uri, cases).await;
    for accepted in ["2299-12-31T23:59:59Z", "1900-01-01T00:00:00Z"] {
        let patched = patch_ok(&app, &uri, json!({"orderDate": accepted})).await;
        assert_eq!(patched["orderDate"], accepted);
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn nul_characters_are_a_422_naming_the_field(pool: PgPool) {
    let app = test_app(&pool);
    let customer = create_customer(&app, "nul@example.com").await;
    let answer = post(
        &app,
        "/api/orders",
        json!({"customerId": customer, "total": 1, "status": "pen\u{0}ding"}),
    )
    .await;
    answer.assert_invalid(&["status"]);
    let answer = post(
        &app,
        "/api/customers",
        json!({"email": "a@b.co", "name": "\u{0}", "country": "X", "city": "Y"}),
    )
    .await;
    answer.assert_invalid(&["name"]);
}

#[sqlx::test(migrations = "./migrations")]
async fn prices_round_trip_exactly(pool: PgPool) {
    let app = test_app(&pool);
    let body = r#"{"name": "Big", "category": "C", "price": 6.267775597024687e+189}"#;
    let request = axum::http::Request::post("/api/products")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let answer = send(&app, request).await;
    let price = &answer.data(StatusCode::CREATED)["price"];
    assert_eq!(price.to_string(), "6.267775597024687e+189");
}

#[sqlx::test(migrations = "./migrations")]
async fn totals_are_read_from_their_digits_without_a_float(pool: PgPool) {
    let app = test_app(&pool);
    let customer = create_customer(&app, "digits@example.com").await;
    let post_raw = |body: String| {
        let request = axum::http::Request::post("/api/orders")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        send(&app, request)
    };
    // As an f64 this is 1.0, which would pass the 2-decimal rule.
    let answer = post_raw(format!(
        r#"{{"customerId": {customer}, "total": 1.0000000000000001}}"#
    ))
    .await;
    answer.assert_invalid(&["total"]);
    let answer = post_raw(format!(
        r#"{{"customerId": {customer}, "total": 9999999999.99}}"#
    ))
    .await;
    assert_eq!(
        answer.data(StatusCode::CREATED)["total"].to_string(),
        "9999999999.99"
    );
}
