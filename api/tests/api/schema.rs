//! The migrations: table and column names, constraints, defaults and CDC readiness.

use std::time::Duration;

use axum::http::StatusCode;
use pretty_assertions::assert_eq;
use sqlx::PgPool;

use crate::common::*;

#[sqlx::test(migrations = "./migrations")]
async fn tables_and_columns_match_the_reference(pool: PgPool) {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name IN ('customer', 'product', 'order', 'orderitem')
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected = [
        (
            "customer",
            vec!["id", "email", "name", "country", "city", "createdAt"],
        ),
        (
            "order",
            vec!["id", "customerId", "orderDate", "total", "status"],
        ),
        (
            "orderitem",
            vec!["id", "orderId", "productId", "quantity", "price"],
        ),
        (
            "product",
            vec!["id", "name", "category", "price", "createdAt"],
        ),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .flat_map(|(table, cols)| cols.iter().map(move |c| (table.to_string(), c.to_string())))
        .collect();
    assert_eq!(columns, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn tables_are_cdc_ready(pool: PgPool) {
    // Primary keys, and REPLICA IDENTITY FULL so updates and deletes carry the whole old row.
    let identities: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relreplident::text,
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relname IN ('customer', 'product', 'order', 'orderitem')
         ORDER BY c.relname",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected: Vec<(String, String, bool)> = ["customer", "order", "orderitem", "product"]
        .iter()
        .map(|t| (t.to_string(), "f".to_owned(), true))
        .collect();
    assert_eq!(identities, expected);
}

#[sqlx::test(migrations = "./migrations")]
async fn database_constraints_hold_without_the_api(pool: PgPool) {
    let violations = [
        (
            "INSERT INTO product (name, category, price) VALUES ('p', 'c', 0)",
            "23514",
        ),
        (
            "INSERT INTO customer (email, name, country, city) VALUES ('a@b.c', '', 'x', 'y')",
            "23514",
        ),
        (
            r#"INSERT INTO "order" ("customerId", total) VALUES (1, 1)"#,
            "23503",
        ),
        (
            "INSERT INTO orderitem (\"orderId\", \"productId\", quantity, price) VALUES (1, 1, 1, 1)",
            "23503",
        ),
    ];
    for (sql, code) in violations {
        let err = sqlx::query(sql).execute(&pool).await.unwrap_err();
        assert_eq!(
            err.as_database_error().unwrap().code().unwrap(),
            code,
            "{sql}"
        );
    }
    sqlx::query(
        "INSERT INTO customer (email, name, country, city) VALUES ('a@b.c', 'n', 'x', 'y')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let err = sqlx::query(
        "INSERT INTO customer (email, name, country, city) VALUES ('a@b.c', 'm', 'x', 'y')",
    )
    .execute(&pool)
    .await
    .unwrap_err();
    assert_eq!(err.as_database_error().unwrap().code().unwrap(), "23505");
    let (status, total): (String, rust_decimal::Decimal) = sqlx::query_as(
        r#"INSERT INTO "order" ("customerId", total) SELECT id, 12.345 FROM customer RETURNING status, total"#,
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), total.to_string().as_str()),
        ("pending", "12.35")
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn timestamps_are_taken_at_insert_time(pool: PgPool) {
    // The reference evaluated its defaults once at process start.
    let app = test_app(&pool);
    let first = create_customer(&app, "first@example.com").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = create_customer(&app, "second@example.com").await;
    let first = get(&app, &format!("/api/customers/{first}"))
        .await
        .data(StatusCode::OK)["createdAt"]
        .clone();
    let second = get(&app, &format!("/api/customers/{second}"))
        .await
        .data(StatusCode::OK)["createdAt"]
        .clone();
    assert!(
        first.as_str().unwrap() < second.as_str().unwrap(),
        "{first} then {second}"
    );

    let utc_now_gap: f64 = sqlx::query_scalar(
        r#"SELECT abs(extract(epoch FROM ("createdAt" - timezone('utc', now()))))::float8 FROM customer LIMIT 1"#,
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        utc_now_gap < 60.0,
        "createdAt is UTC: {utc_now_gap} s from now"
    );
}
