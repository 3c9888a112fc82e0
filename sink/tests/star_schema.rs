//! The star-schema semantics against the real ClickHouse engine: every operation per table type,
//! lookups in every arrival order (chained ones included), deletes, unchanged TOASTed columns,
//! idempotent replays and the version interleavings where a naive choice of version breaks.
//!
//! These tests drive the applier directly (decode -> apply) so each batch boundary is explicit; the
//! Kafka path is covered in `kafka_pipeline.rs`.
//!
//! Over 400 lines: one test per version interleaving and lookup arrival order; each spells out its
//! events, which is what makes it readable.

mod common;

use cdcstar_sink::apply::{Applier, ApplyReport};
use cdcstar_sink::route::{RowChange, route};
use common::{Harness, TestPipeline, customer, envelope, item, order, product, query_json};
use serde_json::{Value as Json, json};

impl Harness {
    /// Applies `events` as one batch.
    async fn batch(&self, events: &[Vec<u8>]) -> ApplyReport {
        let changes: Vec<RowChange> = events
            .iter()
            .flat_map(|e| route(&self.pipeline.plan, e).expect("valid event").changes)
            .collect();
        self.applier.apply(&changes).await.expect("apply")
    }

    /// Applies the event `envelope(table, op, lsn, row)` as its own batch.
    async fn event(&self, table: &str, op: &str, lsn: u64, row: Json) -> ApplyReport {
        self.batch(&[envelope(table, op, lsn, row)]).await
    }

    /// Applies each event as its own batch.
    async fn one_by_one(&self, events: &[Vec<u8>]) {
        for event in events {
            self.batch(std::slice::from_ref(event)).await;
        }
    }

    async fn rows(&self, table: &str, columns: &str) -> Vec<Json> {
        self.pipeline.rows(table, columns).await
    }
}

/// Customer 1 (ann, FR) at LSN 0x10, then her order 100 (pending) at 0x11, each in its own batch.
async fn seed_customer_then_order(h: &Harness) {
    h.one_by_one(&[
        envelope("customer", "insert", 0x10, customer(1, "ann", "FR")),
        envelope("order", "insert", 0x11, order(100, 1, "pending")),
    ])
    .await;
}

#[tokio::test]
async fn inserts_updates_deletes_and_snapshot_rows_land_in_dimensions_and_facts() {
    let h = Harness::new("ops").await;
    h.batch(&[
        envelope("customer", "insert", 0x10, customer(1, "ann", "FR")),
        envelope("customer", "insert", 0x11, customer(2, "bob", "DE")),
        envelope("product", "read", 0, product(5, "pen")),
        envelope("order", "insert", 0x12, order(100, 1, "pending")),
        envelope("order", "insert", 0x13, order(101, 2, "pending")),
    ])
    .await;
    h.batch(&[
        envelope("customer", "update", 0x20, customer(1, "anna", "FR")),
        envelope("order", "update", 0x21, order(100, 1, "paid")),
        envelope(
            "customer",
            "delete",
            0x22,
            json!({"id": 2, "name": null, "email": null,
            "country": null, "city": null, "createdAt": null}),
        ),
        envelope("order", "delete", 0x23, json!({"id": 101})),
    ])
    .await;
    assert_eq!(
        h.rows(
            "customer_dim",
            "customer_id, name, country, toString(created_at) AS created_at"
        )
        .await,
        [json!({"customer_id": 1, "name": "anna", "country": "FR",
                "created_at": "2024-01-02 03:04:05.123456"})]
    );
    assert_eq!(
        h.rows("product_dim", "product_id, name, price, lsn").await,
        [json!({"product_id": 5, "name": "pen", "price": 2.5, "lsn": 0})]
    );
    assert_eq!(
        h.rows(
            "order_fact",
            "order_id, status, total, customer_name, lsn, source_lsn"
        )
        .await,
        [
            json!({"order_id": 100, "status": "paid", "total": 19.99, "customer_name": "anna",
                "lsn": 0x21, "source_lsn": 0x21})
        ]
    );
    // Deleted rows stay as tombstones with is_deleted = 1 (FINAL hides them).
    let tombstones = common::query_json(
        &h.pipeline.store,
        "SELECT customer_id, is_deleted FROM customer_dim WHERE customer_id = 2 \
         ORDER BY lsn DESC LIMIT 1",
    )
    .await;
    assert_eq!(tombstones, [json!({"customer_id": 2, "is_deleted": 1})]);
}

#[tokio::test]
async fn lookups_fill_in_whatever_arrives_first_and_follow_later_changes() {
    let h = Harness::new("lookups").await;
    // Dimension first.
    seed_customer_then_order(&h).await;
    // Fact first: the order of customer 2 arrives before customer 2, and is counted as waiting.
    let report = h
        .event("order", "insert", 0x21, order(200, 2, "pending"))
        .await;
    assert_eq!(report.unresolved, 1);
    assert_eq!(
        h.rows("order_fact", "order_id, customer_name, customer_email")
            .await,
        [
            json!({"order_id": 100, "customer_name": "ann", "customer_email": "ann@example.com"}),
            json!({"order_id": 200, "customer_name": "", "customer_email": ""}),
        ]
    );
    h.event("customer", "insert", 0x20, customer(2, "bob", "DE"))
        .await;
    let resolved = h
        .event("order", "update", 0x22, order(200, 2, "paid"))
        .await;
    assert_eq!(resolved.unresolved, 0);
    // Dimension changed later.
    h.event("customer", "update", 0x30, customer(1, "anna", "FR"))
        .await;
    assert_eq!(
        h.rows("order_fact", "order_id, customer_name, customer_email")
            .await,
        [
            json!({"order_id": 100, "customer_name": "anna", "customer_email": "anna@example.com"}),
            json!({"order_id": 200, "customer_name": "bob", "customer_email": "bob@example.com"}),
        ]
    );
}

/// More facts than the applier reads and writes at a time (`FACT_CHUNK_ROWS`, 10 000): a batch's own
/// facts are split into chunks, and no row may fall between two of them; their propagation is one
/// statement.
#[tokio::test]
async fn facts_and_propagations_larger_than_a_chunk_are_applied_whole() {
    let h = Harness::new("chunks").await;
    const ORDERS: u64 = 12_500;
    // The orders arrive before their customer, in one batch.
    let orders: Vec<Vec<u8>> = (1..=ORDERS)
        .map(|id| envelope("order", "insert", 0x100 + id, order(id, 7, "pending")))
        .collect();
    h.batch(&orders).await;
    h.event("customer", "insert", 0x10_0000, customer(7, "zoe", "NL"))
        .await;
    let summary = query_json(
        &h.pipeline.store,
        "SELECT count() AS orders, countIf(customer_name = 'zoe') AS enriched, \
         min(order_id) AS first, max(order_id) AS last \
         FROM order_fact FINAL WHERE is_deleted = 0",
    )
    .await;
    assert_eq!(
        summary,
        [json!({"orders": ORDERS, "enriched": ORDERS, "first": 1, "last": ORDERS})]
    );
}

#[tokio::test]
async fn chained_lookups_go_through_the_order_and_follow_each_step() {
    let h = Harness::new("chain").await;
    // Every version of an order stays stored, as a busy server may keep them unmerged.
    h.applier
        .store()
        .client()
        .query("SYSTEM STOP MERGES order_fact")
        .execute()
        .await
        .unwrap();
    // The item first, then its product, its order, and the order's customer, each in its own batch.
    h.one_by_one(&[
        envelope("orderitem", "insert", 0x14, item(1000, 100, 5, 3)),
        envelope("product", "insert", 0x13, product(5, "pen")),
        envelope("order", "insert", 0x12, order(100, 1, "pending")),
        envelope("customer", "insert", 0x11, customer(1, "ann", "FR")),
    ])
    .await;
    let columns = "orderitem_id, product_name, order_status, customer_country, customer_city, \
                   toString(order_date) AS order_date";
    assert_eq!(
        h.rows("orderitem_fact", columns).await,
        [
            json!({"orderitem_id": 1000, "product_name": "pen", "order_status": "pending",
                "customer_country": "FR", "customer_city": "FR-city",
                "order_date": "2024-02-03 04:05:06.000000"})
        ]
    );
    // The customer moves; the order changes status; then the order moves to another customer.
    h.event("customer", "update", 0x20, customer(1, "ann", "IT"))
        .await;
    h.event("order", "update", 0x21, order(100, 1, "paid"))
        .await;
    assert_eq!(
        h.rows("orderitem_fact", "order_status, customer_country")
            .await,
        [json!({"order_status": "paid", "customer_country": "IT"})]
    );
    h.batch(&[
        envelope("customer", "insert", 0x30, customer(2, "bob", "DE")),
        envelope("order", "update", 0x31, order(100, 2, "paid")),
    ])
    .await;
    assert_eq!(
        h.rows("orderitem_fact", "customer_country, customer_city")
            .await,
        [json!({"customer_country": "DE", "customer_city": "DE-city"})]
    );
    // The customer the order left changes, alone, then beside another step of the same fact: the
    // item follows the order's customer of now, not one an older version of the order pointed to
    // (still stored: merges are stopped above).
    h.event("customer", "update", 0x40, customer(1, "ann", "ES"))
        .await;
    let item = "product_name, order_status, customer_country";
    assert_eq!(
        h.rows("orderitem_fact", item).await,
        [json!({"product_name": "pen", "order_status": "paid", "customer_country": "DE"})]
    );
    h.batch(&[
        envelope("customer", "update", 0x50, customer(1, "ann", "PT")),
        envelope("product", "update", 0x51, product(5, "pencil")),
    ])
    .await;
    assert_eq!(
        h.rows("orderitem_fact", item).await,
        [json!({"product_name": "pencil", "order_status": "paid", "customer_country": "DE"})]
    );
}

#[tokio::test]
async fn deleted_rows_are_hidden_and_can_come_back() {
    let h = Harness::new("deletes").await;
    h.one_by_one(&[
        envelope("product", "insert", 0x10, product(5, "pen")),
        envelope("orderitem", "insert", 0x11, item(1000, 100, 5, 3)),
        envelope(
            "orderitem",
            "delete",
            0x12,
            json!({"id": 1000, "orderId": null,
            "productId": null, "quantity": null, "price": null}),
        ),
        envelope("product", "delete", 0x13, json!({"id": 5})),
    ])
    .await;
    assert_eq!(
        h.rows("orderitem_fact", "orderitem_id").await,
        Vec::<Json>::new()
    );
    assert_eq!(
        h.rows("product_dim", "product_id").await,
        Vec::<Json>::new()
    );
    // A replay of the old insert does not resurrect the deleted fact row.
    h.event("orderitem", "insert", 0x11, item(1000, 100, 5, 3))
        .await;
    assert_eq!(
        h.rows("orderitem_fact", "orderitem_id").await,
        Vec::<Json>::new()
    );
    // A new row with the same key does.
    h.event("product", "insert", 0x20, product(5, "pencil"))
        .await;
    assert_eq!(
        h.rows("product_dim", "product_id, name").await,
        [json!({"product_id": 5, "name": "pencil"})]
    );
}

#[tokio::test]
async fn unchanged_toast_columns_keep_their_stored_values() {
    let h = Harness::new("toast").await;
    h.event("customer", "insert", 0x10, customer(1, "ann", "FR"))
        .await;
    let mut update = serde_json::from_slice::<Json>(&envelope(
        "customer",
        "update",
        0x20,
        json!({"id": 1, "email": "ann@example.com", "name": "ann", "country": "ES",
               "createdAt": "2024-01-02T03:04:05.123456Z"}),
    ))
    .unwrap();
    update["metadata"]["unchangedToast"] = json!(["city"]);
    h.batch(&[serde_json::to_vec(&update).unwrap()]).await;
    assert_eq!(
        h.rows("customer_dim", "country, city").await,
        [json!({"country": "ES", "city": "FR-city"})]
    );
    // Same inside one batch: the value comes from the earlier change of the batch.
    let mut second = update.clone();
    second["metadata"]["lsn"] = json!("0/40");
    second["payload"]["country"] = json!("PT");
    h.batch(&[
        envelope("customer", "update", 0x30, customer(1, "ann", "NL")),
        serde_json::to_vec(&second).unwrap(),
    ])
    .await;
    assert_eq!(
        h.rows("customer_dim", "country, city").await,
        [json!({"country": "PT", "city": "NL-city"})]
    );
}

fn shop_stream() -> Vec<Vec<u8>> {
    vec![
        envelope("customer", "read", 0, customer(1, "ann", "FR")),
        envelope("customer", "insert", 0x10, customer(2, "bob", "DE")),
        envelope("product", "insert", 0x11, product(5, "pen")),
        envelope("order", "insert", 0x12, order(100, 1, "pending")),
        envelope("orderitem", "insert", 0x13, item(1000, 100, 5, 3)),
        envelope("order", "update", 0x14, order(100, 2, "paid")),
        envelope("customer", "update", 0x15, customer(2, "bobby", "AT")),
        envelope("orderitem", "insert", 0x16, item(1001, 100, 5, 1)),
        envelope("orderitem", "delete", 0x17, json!({"id": 1001})),
    ]
}

#[tokio::test]
async fn replaying_the_same_events_changes_nothing() {
    let h = Harness::new("replay").await;
    let events = shop_stream();
    h.one_by_one(&events).await;
    let once = h.pipeline.state().await;
    h.batch(&events).await;
    h.one_by_one(&events[3..]).await;
    assert_eq!(h.pipeline.state().await, once);
    assert_eq!(
        h.rows("orderitem_fact", "orderitem_id, customer_country")
            .await,
        [json!({"orderitem_id": 1000, "customer_country": "AT"})]
    );
    // The same events in one batch from scratch give the same state.
    let fresh = Harness::new("replay_batch").await;
    fresh.batch(&events).await;
    assert_eq!(fresh.pipeline.state().await, once);
}

#[tokio::test]
async fn order_update_committed_before_a_customer_rename_with_a_lower_change_lsn() {
    let h = Harness::new("interleave").await;
    seed_customer_then_order(&h).await;
    // Transaction R renames the customer at change LSN 0x100 but commits last; transaction O updates
    // the order at 0x200 and commits first, so the sink sees O's event first.
    h.event("order", "update", 0x200, order(100, 1, "paid"))
        .await;
    h.event("customer", "update", 0x100, customer(1, "anna", "FR"))
        .await;
    assert_eq!(
        h.rows("order_fact", "status, customer_name, source_lsn")
            .await,
        [json!({"status": "paid", "customer_name": "anna", "source_lsn": 0x200})]
    );
    // The other way round: a propagation carried the fact far ahead of its own changes; the fact's
    // next update (lower LSN than the fact's version) must still win.
    h.event("customer", "update", 0x9000, customer(1, "annie", "FR"))
        .await;
    h.event("order", "update", 0x300, order(100, 1, "shipped"))
        .await;
    assert_eq!(
        h.rows("order_fact", "status, customer_name, source_lsn")
            .await,
        [json!({"status": "shipped", "customer_name": "annie", "source_lsn": 0x300})]
    );
    // Replaying the whole history leaves it there.
    h.batch(&[
        envelope("order", "update", 0x200, order(100, 1, "paid")),
        envelope("customer", "update", 0x100, customer(1, "anna", "FR")),
    ])
    .await;
    assert_eq!(
        h.rows("order_fact", "status, customer_name").await,
        [json!({"status": "shipped", "customer_name": "annie"})]
    );
}

#[tokio::test]
async fn a_fact_deleted_and_inserted_again_comes_back_even_after_propagations() {
    let h = Harness::new("reinsert").await;
    seed_customer_then_order(&h).await;
    h.one_by_one(&[
        // A rename far ahead in LSN bumps the fact row's version past its own changes.
        envelope("customer", "update", 0x9000, customer(1, "anna", "FR")),
        envelope("order", "delete", 0x300, json!({"id": 100})),
    ])
    .await;
    assert_eq!(h.rows("order_fact", "order_id").await, Vec::<Json>::new());
    h.event("order", "insert", 0x400, order(100, 1, "new"))
        .await;
    assert_eq!(
        h.rows("order_fact", "order_id, status, customer_name")
            .await,
        [json!({"order_id": 100, "status": "new", "customer_name": "anna"})]
    );
}

/// A customer, a product, order 100 (pending) and its item 1000, for the order's later changes.
async fn seed_order_with_an_item(h: &Harness) {
    h.batch(&[
        envelope("customer", "insert", 0x10, customer(1, "ann", "FR")),
        envelope("product", "insert", 0x11, product(5, "pen")),
        envelope("order", "insert", 0x12, order(100, 1, "pending")),
        envelope("orderitem", "insert", 0x13, item(1000, 100, 5, 3)),
    ])
    .await;
}

/// An update of order 100 at `lsn` with `status` and `order_date`.
fn order_update(lsn: u64, status: &str, order_date: &str) -> Vec<u8> {
    let mut order = order(100, 1, status);
    order["orderDate"] = json!(order_date);
    envelope("order", "update", lsn, order)
}

/// Order 100 has `status` and `order_date`, and its item looks up that status.
async fn assert_order_and_item_status(h: &Harness, status: &str, order_date: &str) {
    let order_and_item = (
        h.rows("order_fact", "status, toString(order_date) AS order_date")
            .await,
        h.rows("orderitem_fact", "order_status").await,
    );
    assert_eq!(
        order_and_item,
        (
            vec![json!({"status": status, "order_date": order_date})],
            vec![json!({"order_status": status})]
        )
    );
}

#[tokio::test]
async fn an_unrepresentable_date_is_clamped_and_later_changes_of_the_order_still_land() {
    let h = Harness::new("clamp").await;
    seed_order_with_an_item(&h).await;
    // Year 2300 is past DateTime64's 2299. Every later change carries the same date (Postgres sends
    // the whole row): it must still land.
    h.batch(&[order_update(0x20, "pending", "2300-01-01T00:00:00Z")])
        .await;
    h.batch(&[order_update(0x21, "completed", "2300-01-01T00:00:00Z")])
        .await;
    assert_order_and_item_status(&h, "completed", "2299-12-31 23:59:59.999999").await;
}

#[tokio::test]
async fn with_dead_letter_the_refused_change_stays_out_and_the_next_valid_one_lands() {
    let pipeline = TestPipeline::with("deadletter", |p| {
        p.spec.star_schema.on_unrepresentable = cdcstar_crds::OnUnrepresentable::DeadLetter;
    })
    .await;
    let h = Harness {
        applier: pipeline.applier(),
        pipeline,
    };
    seed_order_with_an_item(&h).await;
    // The refused event goes to the dead-letter topic (see kafka_pipeline.rs); it writes nothing.
    let refused = order_update(0x20, "shipped", "2300-01-01T00:00:00Z");
    let error = route(&h.pipeline.plan, &refused).unwrap_err();
    assert_eq!(error.kind(), "conversion");
    assert!(error.to_string().contains("orderDate"), "{error}");
    h.batch(&[order_update(0x21, "completed", "2030-01-01T00:00:00Z")])
        .await;
    assert_order_and_item_status(&h, "completed", "2030-01-01 00:00:00.000000").await;
}

#[tokio::test]
async fn truncate_deletes_the_rows_before_it_and_facts_fall_back_to_default_lookups() {
    let h = Harness::new("truncate").await;
    seed_order_with_an_item(&h).await;
    h.batch(&[
        envelope("customer", "insert", 0x14, customer(2, "bob", "DE")),
        envelope("orderitem", "insert", 0x15, item(1001, 100, 5, 1)),
    ])
    .await;
    // A customer inserted after the truncate but consumed before it (another partition) stays.
    h.event("customer", "insert", 0x40, customer(3, "cy", "IT"))
        .await;
    h.batch(&[
        envelope("customer", "truncate", 0x30, json!({})),
        envelope("orderitem", "truncate", 0x31, json!({})),
        envelope("orderitem", "insert", 0x32, item(1002, 100, 5, 2)),
    ])
    .await;
    assert_eq!(
        h.rows("customer_dim", "customer_id").await,
        [json!({"customer_id": 3})]
    );
    assert_eq!(
        h.rows("order_fact", "order_id, customer_name").await,
        [json!({"order_id": 100, "customer_name": ""})]
    );
    assert_eq!(
        h.rows("orderitem_fact", "orderitem_id, customer_country")
            .await,
        [json!({"orderitem_id": 1002, "customer_country": ""})]
    );
    // A replay of the stream before the truncate does not bring the rows back.
    h.batch(&[
        envelope("orderitem", "insert", 0x13, item(1000, 100, 5, 3)),
        envelope("orderitem", "truncate", 0x31, json!({})),
    ])
    .await;
    assert_eq!(
        h.rows("orderitem_fact", "orderitem_id").await,
        [json!({"orderitem_id": 1002})]
    );
}

/// Two replicas at once, as when several sink replicas share the topics: one applies the orders'
/// own changes (new status, moves to another customer) while the other renames and moves the
/// customers, each through its own applier with the re-check on. Whatever the interleaving of their
/// reads and writes, every order and item ends with its own last change and its customer's last
/// values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_racing_on_facts_and_their_dimension_converge() {
    const CUSTOMERS: u64 = 4;
    const ORDERS: u64 = 200;
    const ROUNDS: u64 = 6;
    let h = Harness::new("replica_race").await;
    let mut seed: Vec<Vec<u8>> = (1..=CUSTOMERS)
        .map(|c| envelope("customer", "insert", 0x10 + c, customer(c, "c0", "FR")))
        .collect();
    seed.push(envelope("product", "insert", 0x20, product(5, "pen")));
    for id in 1..=ORDERS {
        seed.push(envelope(
            "order",
            "insert",
            0x100 + id,
            order(id, 1 + id % CUSTOMERS, "new"),
        ));
        seed.push(envelope(
            "orderitem",
            "insert",
            0x1000 + id,
            item(id, id, 5, 1),
        ));
    }
    h.batch(&seed).await;

    let order_customer = |id: u64, round: u64| 1 + (id + round) % CUSTOMERS;
    let countries = ["DE", "IT", "NL", "ES", "PT", "BE"];
    let orders_replica = h.pipeline.applier();
    let customers_replica = h.pipeline.applier();
    let plan = &h.pipeline.plan;
    let apply = |applier: Applier, events: Vec<Vec<u8>>| async move {
        let changes: Vec<RowChange> = events
            .iter()
            .flat_map(|e| route(plan, e).expect("valid event").changes)
            .collect();
        applier.apply(&changes).await.expect("apply");
    };
    // Small batches, so that the two replicas' reads and writes interleave often: the orders ten at a
    // time, each customer on its own, several times per round.
    for round in 1..=ROUNDS {
        // Change LSNs grow per key, as Postgres row locks make them.
        let orders = async {
            for first in (1..=ORDERS).step_by(10) {
                let events = (first..first + 10)
                    .map(|id| {
                        let status = format!("s{round}");
                        let lsn = 0x10_0000 * round + id;
                        envelope(
                            "order",
                            "update",
                            lsn,
                            order(id, order_customer(id, round), &status),
                        )
                    })
                    .collect();
                apply(orders_replica.clone(), events).await;
            }
        };
        let customers = async {
            for step in 0..5u64 {
                for c in 1..=CUSTOMERS {
                    let name = format!("c{round}");
                    let country = countries[((c + round + step) % 6) as usize];
                    let lsn = 0x10_0000 * round + 0x8000 + step * 0x100 + c;
                    let event = envelope("customer", "update", lsn, customer(c, &name, country));
                    apply(customers_replica.clone(), vec![event]).await;
                }
            }
        };
        tokio::join!(orders, customers);
    }

    let country_of = |c: u64| countries[((c + ROUNDS + 4) % 6) as usize];
    let expected_orders: Vec<Json> = (1..=ORDERS)
        .map(|id| {
            json!({"order_id": id, "status": format!("s{ROUNDS}"),
                "customer_id": order_customer(id, ROUNDS), "customer_name": format!("c{ROUNDS}")})
        })
        .collect();
    assert_eq!(
        h.rows("order_fact", "order_id, status, customer_id, customer_name")
            .await,
        expected_orders
    );
    let expected_items: Vec<Json> = (1..=ORDERS)
        .map(|id| {
            let country = country_of(order_customer(id, ROUNDS));
            json!({"orderitem_id": id, "order_status": format!("s{ROUNDS}"),
                "customer_country": country, "customer_city": format!("{country}-city")})
        })
        .collect();
    assert_eq!(
        h.rows(
            "orderitem_fact",
            "orderitem_id, order_status, customer_country, customer_city"
        )
        .await,
        expected_items
    );
}
