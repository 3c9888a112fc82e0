//! A replay of the reference React test client's flow: random customers and products, orders
//! with several items each, status changes by PUT (what the client sends) and PATCH (what the
//! README documents), item and order deletions; then the tables and every response shape.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::*;

#[track_caller]
fn assert_keys(value: &Value, keys: &[&str]) {
    let actual: BTreeSet<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = keys.iter().copied().collect();
    assert_eq!(actual, expected, "{value}");
}

const CUSTOMER_KEYS: [&str; 6] = ["id", "email", "name", "country", "city", "createdAt"];
const PRODUCT_KEYS: [&str; 5] = ["id", "name", "category", "price", "createdAt"];
const ORDER_KEYS: [&str; 6] = ["id", "customerId", "orderDate", "total", "status", "items"];
const ITEM_KEYS: [&str; 5] = ["id", "orderId", "productId", "quantity", "price"];

#[sqlx::test(migrations = "./migrations")]
async fn replay_of_the_test_client(pool: PgPool) {
    let app = test_app(&pool);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut random = u64::from_str_radix(&run[..12], 16).unwrap() | 1;
    let mut next = move |n: u64| {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random % n
    };
    const COUNTRIES: [&str; 4] = ["USA", "France", "Japan", "Brazil"];
    const CATEGORIES: [&str; 3] = ["Electronics", "Books", "Garden"];

    let mut customers = Vec::new();
    for i in 0..6 {
        let answer = post(
            &app,
            "/api/customers",
            json!({
                "email": format!("user{i}-{run}@example.com"),
                "name": format!("User {i}"),
                "country": COUNTRIES[next(4) as usize],
                "city": format!("City {}", next(100)),
            }),
        )
        .await;
        assert_keys(&answer.body, &["success", "data", "message"]);
        let customer = answer.data(StatusCode::CREATED).clone();
        assert_keys(&customer, &CUSTOMER_KEYS);
        customers.push(customer);
    }
    let mut products = Vec::new();
    for i in 0..5 {
        let price = (1 + next(9999)) as f64 / 100.0;
        let body = json!({"name": format!("Product {i}"), "category": CATEGORIES[next(3) as usize], "price": price});
        let product = post_created(&app, "/api/products", body).await;
        assert_keys(&product, &PRODUCT_KEYS);
        assert_eq!(product["price"], json!(price));
        products.push(product);
    }

    // Orders first, then their items through /api/order-items, as the client does.
    let mut orders = Vec::new();
    let mut items_of: Vec<Vec<Value>> = Vec::new();
    for _ in 0..8 {
        let customer = &customers[next(customers.len() as u64) as usize];
        let lines: Vec<(i64, i64, f64)> = (0..2 + next(3))
            .map(|_| {
                let product = &products[next(products.len() as u64) as usize];
                (
                    id_of(product),
                    1 + next(5) as i64,
                    product["price"].as_f64().unwrap(),
                )
            })
            .collect();
        let total_cents: i64 = lines
            .iter()
            .map(|(_, q, p)| q * (p * 100.0).round() as i64)
            .sum();
        let total = total_cents as f64 / 100.0;
        let body = json!({"customerId": customer["id"], "status": "pending", "total": total});
        let order = post_created(&app, "/api/orders", body).await;
        assert_keys(&order, &ORDER_KEYS);
        assert_eq!(order["total"], json!(total));
        let mut items = Vec::new();
        for (product, quantity, price) in lines {
            let body = json!({"orderId": order["id"], "productId": product, "quantity": quantity, "price": price});
            let item = post_created(&app, "/api/order-items", body).await;
            assert_keys(&item, &ITEM_KEYS);
            items.push(item);
        }
        orders.push(order);
        items_of.push(items);
    }

    // The order list shows every order with exactly its items.
    let listed = get(&app, "/api/orders").await;
    let listed = listed.data(StatusCode::OK).as_array().unwrap().clone();
    assert_eq!(listed.len(), orders.len());
    for ((order, items), shown) in orders.iter().zip(&items_of).zip(&listed) {
        assert_keys(shown, &ORDER_KEYS);
        assert_eq!(shown["id"], order["id"]);
        assert_eq!(&shown["items"], &json!(items));
        for item in shown["items"].as_array().unwrap() {
            assert_keys(item, &ITEM_KEYS);
        }
    }

    // Status changes: the client's "edit order" sends PUT with the whole order; PATCH as documented.
    let mut edited = orders[0].clone();
    edited["status"] = json!("shipped");
    edited.as_object_mut().unwrap().remove("items");
    let by_put = put(&app, &format!("/api/orders/{}", orders[0]["id"]), edited).await;
    let by_put = by_put.data(StatusCode::OK);
    assert_keys(by_put, &ORDER_KEYS);
    assert_eq!(by_put["status"], "shipped");
    assert_eq!(by_put["orderDate"], orders[0]["orderDate"]);
    let by_patch = patch(
        &app,
        &format!("/api/orders/{}", orders[1]["id"]),
        json!({"status": "cancelled"}),
    )
    .await;
    assert_eq!(by_patch.data(StatusCode::OK)["status"], "cancelled");
    assert_eq!(
        by_patch.data(StatusCode::OK)["orderDate"],
        orders[1]["orderDate"]
    );

    // Deletions: one item of order 2, the whole of order 3.
    let removed_item = id_of(&items_of[2][0]);
    assert_eq!(
        delete(&app, &format!("/api/order-items/{removed_item}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let removed_order = id_of(&orders[3]);
    assert_eq!(
        delete(&app, &format!("/api/orders/{removed_order}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    // The tables hold exactly what the API answered.
    let expected_items: usize =
        items_of.iter().map(Vec::len).sum::<usize>() - 1 - items_of[3].len();
    assert_rows(
        &pool,
        &[
            ("customer", customers.len() as i64),
            ("product", products.len() as i64),
            ("order", orders.len() as i64 - 1),
            ("orderitem", expected_items as i64),
        ],
    )
    .await;

    let statuses: Vec<(i32, String)> =
        sqlx::query_as(r#"SELECT id, status FROM "order" ORDER BY id"#)
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected_statuses: Vec<(i32, String)> = orders
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(i, order)| {
            let status = match i {
                0 => "shipped",
                1 => "cancelled",
                _ => "pending",
            };
            (id_of(order) as i32, status.to_owned())
        })
        .collect();
    assert_eq!(statuses, expected_statuses);

    let stored_items: Vec<(i32, i32, i32, i32, f64)> = sqlx::query_as(
        r#"SELECT id, "orderId", "productId", quantity, price FROM orderitem ORDER BY id"#,
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let answered_items: Vec<(i32, i32, i32, i32, f64)> = items_of
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .flat_map(|(_, items)| items.iter())
        .filter(|item| id_of(item) != removed_item)
        .map(|item| {
            let int = |key: &str| item[key].as_i64().unwrap() as i32;
            (
                int("id"),
                int("orderId"),
                int("productId"),
                int("quantity"),
                item["price"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(stored_items, answered_items);

    let stored_customers: Vec<(i32, String)> =
        sqlx::query_as("SELECT id, email FROM customer ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let answered_customers: Vec<(i32, String)> = customers
        .iter()
        .map(|c| (id_of(c) as i32, c["email"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(stored_customers, answered_customers);

    // The customers and products lists show every row in id order.
    let listed = get(&app, "/api/customers").await;
    assert_eq!(listed.data(StatusCode::OK), &json!(customers));
    let listed = get(&app, "/api/products").await;
    assert_eq!(listed.data(StatusCode::OK), &json!(products));
}
