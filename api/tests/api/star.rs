//! `GET /api/star/{table}` and the `/client/` page: the star view answers 404 naming its settings
//! when it is not configured, and against the real ClickHouse (`CLICKHOUSE_URL`) reads the latest
//! version of each row, newest key first, without deleted rows, bounded and filtered.

use axum::http::StatusCode;
use cdcstar_api::config::ClickHouseArgs;
use cdcstar_api::star::StarReader;
use cdcstar_api::{AppState, app};
use cdcstar_testkit::{required_env, unique};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{assert_error_envelope, get, test_app};

/// Runs one statement on the test ClickHouse.
async fn clickhouse(url: &str, sql: &str) {
    let answer = reqwest::Client::new()
        .post(url)
        .body(sql.to_owned())
        .send()
        .await
        .unwrap_or_else(|err| panic!("ClickHouse at {url}: {err}"));
    let status = answer.status();
    let text = answer.text().await.unwrap();
    assert!(status.is_success(), "{sql}: {status} {text}");
}

#[sqlx::test(migrations = "./migrations")]
async fn the_star_view_is_off_without_clickhouse_and_the_page_is_served(pool: PgPool) {
    let app = test_app(&pool);
    let answer = get(&app, "/api/star/order_fact").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_error_envelope(&answer.body);
    let message = answer.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("CLICKHOUSE_URL"), "{message}");
    // Validation comes first: a bad table is a 422 whether or not the view is configured.
    let answer = get(&app, "/api/star/customer").await;
    answer.assert_invalid(&["table"]);

    let page = get(&app, "/client/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&page.raw).contains("<script src=\"/client/app.js\">"));
    assert_eq!(get(&app, "/client/app.js").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/client/app.css").await.status, StatusCode::OK);
    assert_eq!(
        get(&app, "/client").await.status,
        StatusCode::PERMANENT_REDIRECT
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn the_star_view_reads_final_rows_newest_first_without_deletes(pool: PgPool) {
    let url = required_env("CLICKHOUSE_URL");
    let database = unique("cdcstar_api_star");
    clickhouse(&url, &format!("CREATE DATABASE {database}")).await;
    for ddl in [
        "CREATE TABLE {db}.customer_dim (customer_id UInt64, name String, lsn UInt64, is_deleted UInt8) \
         ENGINE = ReplacingMergeTree(lsn, is_deleted) ORDER BY customer_id",
        "CREATE TABLE {db}.order_fact (order_id UInt64, customer_id UInt64, total Decimal(12, 2), \
         customer_name String, lsn UInt64, is_deleted UInt8) \
         ENGINE = ReplacingMergeTree(lsn, is_deleted) ORDER BY order_id",
        "CREATE TABLE {db}.orderitem_fact (orderitem_id UInt64, order_id UInt64, product_id UInt64, \
         lsn UInt64, is_deleted UInt8) ENGINE = ReplacingMergeTree(lsn, is_deleted) ORDER BY orderitem_id",
        "INSERT INTO {db}.customer_dim VALUES (1, 'Ada', 1, 0), (2, 'Alan', 2, 0), (3, 'Grace', 3, 0), \
         (1, 'Ada King', 4, 0), (2, 'Alan', 5, 1)",
        "INSERT INTO {db}.order_fact VALUES (10, 1, 59.98, 'Ada King', 6, 0), (11, 3, 1.5, 'Grace', 7, 0)",
        "INSERT INTO {db}.orderitem_fact VALUES (100, 10, 7, 8, 0), (101, 10, 8, 9, 0), (102, 11, 7, 10, 0)",
    ] {
        clickhouse(&url, &ddl.replace("{db}", &database)).await;
    }
    let mut state = AppState::new(pool);
    state.star = StarReader::from_args(&ClickHouseArgs {
        clickhouse_url: Some(url.clone()),
        clickhouse_database: database.clone(),
        ..ClickHouseArgs::default()
    });
    let app = app(state);

    let answer = get(&app, "/api/star/customer_dim").await;
    let data = answer.data(StatusCode::OK);
    assert_eq!(data["database"], json!(database));
    assert_eq!(data["key"], "customer_id");
    let columns: Vec<&str> = data["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["customer_id", "name", "lsn"]);
    assert_eq!(
        data["rows"],
        json!([
            {"customer_id": 3, "name": "Grace", "lsn": 3},
            {"customer_id": 1, "name": "Ada King", "lsn": 4},
        ])
    );

    let answer = get(&app, "/api/star/customer_dim?limit=1").await;
    assert_eq!(
        answer.data(StatusCode::OK)["rows"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let answer = get(&app, "/api/star/order_fact?customer_id=1").await;
    assert_eq!(
        answer.data(StatusCode::OK)["rows"],
        json!([{"order_id": 10, "customer_id": 1, "total": 59.98, "customer_name": "Ada King", "lsn": 6}])
    );
    // orderitem_fact has no customer_id: a customer's items are those of its orders.
    let answer = get(&app, "/api/star/orderitem_fact?customer_id=1").await;
    let ids: Vec<&Value> = answer.data(StatusCode::OK)["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| &row["orderitem_id"])
        .collect();
    assert_eq!(ids, [&json!(101), &json!(100)]);

    let answer = get(&app, "/api/star/product_dim").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("product_dim does not exist")
    );
    let answer = get(&app, "/api/star/customer_dim?order_id=10").await;
    assert_eq!(answer.error_fields(StatusCode::BAD_REQUEST), ["order_id"]);
    let answer = get(&app, "/api/star/customer_dim?limit=0&customer_id=x").await;
    answer.assert_invalid(&["limit", "customer_id"]);
    clickhouse(&url, &format!("DROP DATABASE {database}")).await;
}
