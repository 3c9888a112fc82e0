//! Shared helpers: the services check, requests through the router, and fixtures.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use cdcstar_api::{AppState, app};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;

/// Fails (never skips) when the test services are not configured.
pub fn require_services() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: these tests need the real PostgreSQL. Start the services with \
             `scripts/services.sh up` and load their environment with \
             `eval \"$(scripts/services.sh env)\"`, then rerun"
        )
    })
}

/// The router over a test pool.
pub fn test_app(pool: &PgPool) -> Router {
    app(AppState::new(pool.clone()))
}

/// An answer: status, headers and the JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Answer {
    /// `data` of a success envelope, after checking the envelope's shape and the status.
    #[track_caller]
    pub fn data(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        assert_eq!(self.body["success"], json!(true), "{}", self.body);
        assert!(self.body["message"].is_string(), "{}", self.body);
        &self.body["data"]
    }

    /// The fields named by an error envelope, after checking its shape and the status.
    #[track_caller]
    pub fn error_fields(&self, status: StatusCode) -> Vec<String> {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        assert_error_envelope(&self.body);
        self.body["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Checks that the answer is a 422 whose error envelope names exactly `fields`, in order.
    #[track_caller]
    pub fn assert_invalid(&self, fields: &[&str]) {
        assert_eq!(
            self.error_fields(StatusCode::UNPROCESSABLE_ENTITY),
            fields,
            "{}",
            self.body
        );
    }
}

/// The error envelope: `{success: false, error: {message, code}, message, details: [...]}`.
#[track_caller]
pub fn assert_error_envelope(body: &Value) {
    assert_eq!(body["success"], json!(false), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert_eq!(body["message"], body["error"]["message"], "{body}");
    for detail in body["details"].as_array().expect("details is a list") {
        assert!(
            detail["field"].is_string() && detail["message"].is_string(),
            "{body}"
        );
    }
}

/// Sends one request through the router.
pub async fn call(app: &Router, method: Method, uri: &str, body: Option<Value>) -> Answer {
    let builder = Request::builder().method(method).uri(uri);
    let request = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .unwrap();
    send(app, request).await
}

/// Sends a prepared request through the router.
pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let raw = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw).unwrap_or(Value::Null)
    };
    Answer {
        status,
        headers,
        body,
        raw,
    }
}

pub async fn get(app: &Router, uri: &str) -> Answer {
    call(app, Method::GET, uri, None).await
}

pub async fn post(app: &Router, uri: &str, body: Value) -> Answer {
    call(app, Method::POST, uri, Some(body)).await
}

pub async fn put(app: &Router, uri: &str, body: Value) -> Answer {
    call(app, Method::PUT, uri, Some(body)).await
}

pub async fn patch(app: &Router, uri: &str, body: Value) -> Answer {
    call(app, Method::PATCH, uri, Some(body)).await
}

pub async fn delete(app: &Router, uri: &str) -> Answer {
    call(app, Method::DELETE, uri, None).await
}

/// `POST uri` of `body` answers 201 with a success envelope; answers its `data`.
pub async fn post_created(app: &Router, uri: &str, body: Value) -> Value {
    post(app, uri, body).await.data(StatusCode::CREATED).clone()
}

/// `PUT uri` of `body` answers 200 with a success envelope; answers its `data`.
pub async fn put_ok(app: &Router, uri: &str, body: Value) -> Value {
    put(app, uri, body).await.data(StatusCode::OK).clone()
}

/// `PATCH uri` of `body` answers 200 with a success envelope; answers its `data`.
pub async fn patch_ok(app: &Router, uri: &str, body: Value) -> Value {
    patch(app, uri, body).await.data(StatusCode::OK).clone()
}

/// Creates a customer through the API; answers its id.
pub async fn create_customer(app: &Router, email: &str) -> i64 {
    let body =
        json!({"email": email, "name": "Jane Doe", "country": "USA", "city": "San Francisco"});
    id_of(&post_created(app, "/api/customers", body).await)
}

/// Creates a product through the API; answers its id.
pub async fn create_product(app: &Router, name: &str, price: f64) -> i64 {
    let body = json!({"name": name, "category": "Electronics", "price": price});
    id_of(&post_created(app, "/api/products", body).await)
}

/// Creates an order through the API; answers its id.
pub async fn create_order(app: &Router, customer_id: i64, total: f64) -> i64 {
    let body = json!({"customerId": customer_id, "total": total});
    id_of(&post_created(app, "/api/orders", body).await)
}

/// Creates an item of `order` through the API; answers it.
pub async fn create_item(
    app: &Router,
    order: i64,
    product: i64,
    quantity: i64,
    price: f64,
) -> Value {
    let body =
        json!({"orderId": order, "productId": product, "quantity": quantity, "price": price});
    post_created(app, "/api/order-items", body).await
}

/// The `id` of a resource's JSON.
#[track_caller]
pub fn id_of(resource: &Value) -> i64 {
    resource["id"].as_i64().expect("an integer id")
}

/// The ids of a customer, a product and an order of that customer (without items).
pub struct Shop {
    pub customer: i64,
    pub product: i64,
    pub order: i64,
}

/// Creates a customer, a product (at 10.0) and an order of that customer (of 20.0) through the
/// API.
pub async fn create_shop(app: &Router) -> Shop {
    let customer = create_customer(app, "shop@example.com").await;
    let product = create_product(app, "Mouse", 10.0).await;
    let order = create_order(app, customer, 20.0).await;
    Shop {
        customer,
        product,
        order,
    }
}

/// [`create_shop`], its order holding one item of its product (1 at 10.0): each of its rows is
/// then referenced by another.
pub async fn create_shop_with_item(app: &Router) -> Shop {
    let shop = create_shop(app).await;
    create_item(app, shop.order, shop.product, 1, 10.0).await;
    shop
}

/// For each `(body, fields)`, `method uri` of `body` is a 422 naming exactly `fields`; answers
/// the answers, in order.
pub async fn assert_refused(
    app: &Router,
    method: Method,
    uri: &str,
    cases: impl IntoIterator<Item = (Value, Vec<&str>)>,
) -> Vec<Answer> {
    assert_errors(app, StatusCode::UNPROCESSABLE_ENTITY, method, uri, cases).await
}

/// For each `(body, fields)`, `method uri` of `body` answers `status` with an error envelope
/// naming exactly `fields`; answers the answers, in order.
pub async fn assert_errors(
    app: &Router,
    status: StatusCode,
    method: Method,
    uri: &str,
    cases: impl IntoIterator<Item = (Value, Vec<&str>)>,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    for (body, fields) in cases {
        let answer = call(app, method.clone(), uri, Some(body.clone())).await;
        assert_eq!(answer.error_fields(status), fields, "{body}");
        answers.push(answer);
    }
    answers
}

/// `GET collection/id` answers `resource`, and `GET collection` lists it alone.
pub async fn assert_read_and_listed(app: &Router, collection: &str, id: i64, resource: &Value) {
    let read = get(app, &format!("{collection}/{id}")).await;
    assert_eq!(read.data(StatusCode::OK), resource);
    let listed = get(app, collection).await;
    assert_eq!(listed.data(StatusCode::OK), &json!([resource.clone()]));
}

/// `DELETE uri` answers 204 without a body and leaves `table` empty; a second one answers 404.
pub async fn assert_deleted(app: &Router, pool: &PgPool, uri: &str, table: &str) {
    let deleted = delete(app, uri).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.raw.is_empty(), "204 has no body");
    assert_rows(pool, &[(table, 0)]).await;
    delete(app, uri).await.error_fields(StatusCode::NOT_FOUND);
}

/// `GET`, `PUT` (of `update`) and `DELETE` of `collection/999`, a row that does not exist, each
/// answer 404.
pub async fn assert_unknown_id(app: &Router, collection: &str, update: Value) {
    let uri = format!("{collection}/999");
    for answer in [
        get(app, &uri).await,
        put(app, &uri, update).await,
        delete(app, &uri).await,
    ] {
        answer.error_fields(StatusCode::NOT_FOUND);
    }
}

/// Checks how many rows each table holds: `expected` lists `(table, rows)`.
pub async fn assert_rows(pool: &PgPool, expected: &[(&str, i64)]) {
    let mut counted = Vec::new();
    for &(table, _) in expected {
        counted.push((table, count(pool, table).await));
    }
    assert_eq!(counted, expected, "rows per table");
}

/// Counts rows of a table.
pub async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\""))
        .fetch_one(pool)
        .await
        .unwrap()
}
