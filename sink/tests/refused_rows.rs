//! Rows the real ClickHouse engine refuses (a CHECK constraint added to a star table): the events
//! they come from are isolated and left out while the rest of the batch lands, and a table that
//! drifted from the spec is reported as drift instead of refusing the stream event by event.
//!
//! These drive the isolation directly on a batch; the dead-letter delivery of refused events through
//! the broker is covered in `kafka_pipeline.rs`.

mod common;

use cdcstar_sink::consume::batch::{Batch, Message};
use cdcstar_sink::dead_letters::isolate::apply_isolating;
use cdcstar_sink::metrics::Metrics;
use cdcstar_sink::store::StoreError;
use common::{Harness, customer, envelope, execute_with, item, order, product};
use serde_json::json;

impl Harness {
    async fn execute(&self, sql: &str) {
        execute_with(&self.pipeline.store, sql, &[]).await;
    }

    /// A batch of `events`, read at offsets 0, 1, ... of one partition.
    fn batch(&self, events: &[Vec<u8>]) -> Batch {
        let mut batch = Batch::default();
        for (offset, body) in events.iter().enumerate() {
            batch.push(
                &self.pipeline.plan,
                Message {
                    topic: "events",
                    partition: 0,
                    offset: offset as i64,
                    key: None,
                    payload: Some(body),
                },
                &Metrics::new(),
            );
        }
        batch
    }
}

fn priced(id: u64, name: &str, price: f64) -> serde_json::Value {
    let mut row = product(id, name);
    row["price"] = json!(price);
    row
}

#[tokio::test]
async fn events_whose_rows_are_refused_are_left_out_and_the_rest_lands() {
    let h = Harness::new("refused").await;
    h.execute("ALTER TABLE product_dim ADD CONSTRAINT price_not_negative CHECK price >= 0")
        .await;
    let batch = h.batch(&[
        envelope("customer", "insert", 0x10, customer(1, "ann", "FR")),
        envelope("product", "insert", 0x11, priced(1, "pen", 2.0)),
        envelope("product", "insert", 0x12, priced(2, "ink", -1.0)),
        envelope("product", "insert", 0x13, priced(3, "pad", 3.0)),
        envelope("order", "insert", 0x14, order(100, 1, "paid")),
        envelope("orderitem", "insert", 0x15, item(1000, 100, 1, 2)),
        envelope("orderitem", "insert", 0x16, item(1001, 100, 3, 1)),
        envelope("product", "update", 0x17, priced(3, "pad", -5.0)),
        envelope("orderitem", "insert", 0x18, item(1002, 100, 2, 1)),
    ]);
    let applied = apply_isolating(&h.applier, &batch).await.expect("applied");
    let refused: Vec<usize> = applied.refused.iter().map(|r| r.event).collect();
    assert_eq!(refused, [2, 7], "{:?}", applied.refused);
    assert!(
        applied.refused[0].reason.contains("VIOLATED_CONSTRAINT")
            && applied.refused[0].reason.contains("product_dim"),
        "{}",
        applied.refused[0].reason
    );
    assert_eq!(batch.position(7).offset, 7);
    assert_eq!(
        h.pipeline.rows("product_dim", "product_id, price").await,
        [
            json!({"product_id": 1, "price": 2}),
            json!({"product_id": 3, "price": 3})
        ]
    );
    // The item of the refused product still lands, its product columns empty until a valid
    // version of the product arrives.
    assert_eq!(
        h.pipeline
            .rows(
                "orderitem_fact",
                "orderitem_id, product_name, customer_country"
            )
            .await,
        [
            json!({"orderitem_id": 1000, "product_name": "pen", "customer_country": "FR"}),
            json!({"orderitem_id": 1001, "product_name": "pad", "customer_country": "FR"}),
            json!({"orderitem_id": 1002, "product_name": "", "customer_country": "FR"}),
        ]
    );
    // One row per accepted event: the halves that applied were not written again.
    assert_eq!(applied.report.rows_written.iter().sum::<usize>(), 7);

    let later = h.batch(&[envelope("product", "update", 0x20, priced(2, "ink", 4.0))]);
    let applied = apply_isolating(&h.applier, &later).await.expect("applied");
    assert!(applied.refused.is_empty());
    assert_eq!(
        h.pipeline
            .rows("orderitem_fact", "orderitem_id, product_name")
            .await[2],
        json!({"orderitem_id": 1002, "product_name": "ink"})
    );
}

#[tokio::test]
async fn a_refusal_by_a_table_that_drifted_from_the_spec_is_drift_not_refused_events() {
    let h = Harness::new("drift").await;
    h.execute("ALTER TABLE product_dim ADD CONSTRAINT price_not_negative CHECK price >= 0")
        .await;
    h.execute("ALTER TABLE product_dim MODIFY COLUMN name LowCardinality(String)")
        .await;
    let batch = h.batch(&[
        envelope("product", "insert", 0x11, priced(1, "pen", 2.0)),
        envelope("product", "insert", 0x12, priced(2, "ink", -1.0)),
    ]);
    match apply_isolating(&h.applier, &batch).await {
        Err(StoreError::SchemaDrift { table, drift, .. }) => {
            assert_eq!(table, "product_dim");
            assert_eq!(
                drift,
                ["column name is LowCardinality(String), the sink writes String"]
            );
        }
        other => panic!("expected schema drift, got {other:?}"),
    }
    // Fixed by hand: the same batch goes through, the refused event left out.
    h.execute("ALTER TABLE product_dim MODIFY COLUMN name String")
        .await;
    let applied = apply_isolating(&h.applier, &batch).await.expect("applied");
    assert_eq!(applied.refused.len(), 1);
    assert_eq!(applied.refused[0].event, 1);
}
