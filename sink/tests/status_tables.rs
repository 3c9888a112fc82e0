//! The sink's reports in the status tables beside the star tables, on the real ClickHouse engine: a
//! flushed batch leaves, after its rows, the values it replaced under their column's policy in
//! `cdcstar_value_adjustments`, read back with the operator's query.
//!
//! These drive the flusher directly on a batch (the consumer around it is `kafka_pipeline.rs`'s);
//! nothing is sent to the broker, whose address the dead-letter producer still needs.

mod common;

use std::sync::Arc;

use cdcstar_crds::status_tables::value_adjustments_query;
use cdcstar_runtime::kafka::KafkaConnection;
use cdcstar_sink::consume::batch::{Batch, Message};
use cdcstar_sink::dead_letters::producer::DeadLetterProducer;
use cdcstar_sink::flush::Flusher;
use cdcstar_sink::metrics::Metrics;
use cdcstar_sink::status_tables::StatusWriter;
use common::{TestPipeline, customer, envelope, kafka_brokers, order, query_json};
use serde_json::{Value as Json, json};
use tokio::sync::watch;

struct Harness {
    pipeline: TestPipeline,
    flusher: Flusher,
    metrics: Arc<Metrics>,
}

impl Harness {
    async fn new(purpose: &str) -> Self {
        let pipeline = TestPipeline::new(purpose).await;
        let metrics = Arc::new(Metrics::new());
        let dead_letters = DeadLetterProducer::new(
            &KafkaConnection::new(&[kafka_brokers()]),
            pipeline.pipeline.dead_letter_topic(),
        )
        .expect("dead-letter producer");
        let flusher = Flusher::new(
            pipeline.applier(),
            dead_letters,
            StatusWriter::new(pipeline.store.clone(), pipeline.pipeline.status_key()),
            metrics.clone(),
        );
        Harness {
            pipeline,
            flusher,
            metrics,
        }
    }

    /// Flushes `events` as one batch read from one partition of `topic`, from `offset` on.
    async fn flush(&self, topic: &str, offset: i64, events: &[Vec<u8>]) {
        let mut batch = Batch::default();
        for (i, body) in events.iter().enumerate() {
            batch.push(
                &self.pipeline.plan,
                Message {
                    topic,
                    partition: 0,
                    offset: offset + i as i64,
                    key: None,
                    payload: Some(body),
                },
                &self.metrics,
            );
        }
        let (_stop, mut shutdown) = watch::channel(false);
        self.flusher
            .flush(&batch, &mut shutdown)
            .await
            .expect("flushed");
        // The positions are written in the background, after the rows.
        self.flusher.positions_written().await;
    }

    /// The operator's read of the adjustments, as JSON rows.
    async fn adjustments(&self) -> Vec<Json> {
        let sql = value_adjustments_query(&self.pipeline.database).replace(
            "{pipeline:String}",
            &format!("'{}'", self.pipeline.pipeline.status_key()),
        );
        query_json(&self.pipeline.store, &sql)
            .await
            .into_iter()
            .map(|mut row| {
                row.as_object_mut().unwrap().remove("last_seen_ms");
                row
            })
            .collect()
    }
}

fn order_dated(id: u64, date: &str) -> Json {
    let mut row = order(id, 1, "pending");
    row["orderDate"] = json!(date);
    row
}

#[tokio::test]
async fn values_clamped_in_a_flush_are_counted_in_the_adjustments_table_after_the_rows() {
    let h = Harness::new("adjusted").await;
    assert_eq!(h.adjustments().await, Vec::<Json>::new());
    let before = chrono::Utc::now().timestamp_millis() / 1000 * 1000;
    h.flush(
        "orders",
        0,
        &[
            envelope("customer", "insert", 0x10, customer(1, "ann", "FR")),
            envelope(
                "order",
                "insert",
                0x11,
                order_dated(100, "2300-01-01T00:00:00Z"),
            ),
            envelope(
                "order",
                "insert",
                0x12,
                order_dated(101, "2400-06-01T00:00:00Z"),
            ),
            envelope(
                "order",
                "insert",
                0x13,
                order_dated(102, "2024-06-01T00:00:00Z"),
            ),
        ],
    )
    .await;
    // The rows are there, clamped...
    assert_eq!(
        h.pipeline
            .rows("order_fact", "order_id, toString(order_date) AS order_date")
            .await,
        [
            json!({"order_id": 100, "order_date": "2299-12-31 23:59:59.999999"}),
            json!({"order_id": 101, "order_date": "2299-12-31 23:59:59.999999"}),
            json!({"order_id": 102, "order_date": "2024-06-01 00:00:00.000000"}),
        ]
    );
    // ...and counted, with the column's policy and when.
    assert_eq!(
        h.adjustments().await,
        [json!({"table": "order_fact", "column": "order_date", "policy": "clamp", "values": 2})]
    );
    let last_seen: Vec<Json> = query_json(
        &h.pipeline.store,
        &format!(
            "SELECT toUnixTimestamp64Milli(last_seen) AS ms FROM cdcstar_value_adjustments \
             WHERE pipeline = '{}'",
            h.pipeline.pipeline.status_key()
        ),
    )
    .await;
    let ms = last_seen[0]["ms"].as_i64().unwrap();
    assert!(
        ms >= before && ms <= chrono::Utc::now().timestamp_millis(),
        "{ms}"
    );

    // A later flush adds to the count; a flush without adjustments writes nothing.
    h.flush(
        "orders",
        4,
        &[envelope(
            "order",
            "update",
            0x14,
            order_dated(102, "2301-01-01T00:00:00Z"),
        )],
    )
    .await;
    h.flush(
        "orders",
        5,
        &[envelope(
            "customer",
            "update",
            0x15,
            customer(1, "ann", "DE"),
        )],
    )
    .await;
    assert_eq!(
        h.adjustments().await,
        [json!({"table": "order_fact", "column": "order_date", "policy": "clamp", "values": 3})]
    );
    let inserts: Vec<Json> = query_json(
        &h.pipeline.store,
        "SELECT count() AS parts FROM cdcstar_value_adjustments",
    )
    .await;
    assert_eq!(
        inserts,
        [json!({"parts": 2})],
        "one row per flush that adjusted"
    );
}

/// A change as the native capture writes it, committed at `commit_lsn`, `second` past 2026-01-01.
fn committed(table: &str, commit_lsn: u64, second: u32, payload: Json) -> Vec<u8> {
    let lsn = cdcstar_crds::Lsn(commit_lsn).to_string();
    serde_json::to_vec(&json!({
        "metadata": {"table": table, "operation": "insert", "lsn": lsn, "commitLsn": lsn,
                     "txSeq": 0, "commitTime": format!("2026-01-01T00:00:{second:02}Z")},
        "payload": payload,
    }))
    .unwrap()
}

#[tokio::test]
async fn a_flush_records_its_partitions_positions_after_the_rows_and_the_gauge_reads_the_watermark()
{
    let h = Harness::new("positions").await;
    h.flush(
        "shop.customer",
        0,
        &[
            committed("customer", 0x20, 2, customer(1, "ann", "FR")),
            committed("customer", 0x10, 1, customer(2, "bob", "DE")),
        ],
    )
    .await;
    let positions = || async {
        query_json(
            &h.pipeline.store,
            "SELECT topic, partition, max(commit_lsn) AS lsn, \
             toString(argMax(commit_time, commit_lsn)) AS time \
             FROM cdcstar_partition_positions GROUP BY topic, partition ORDER BY topic, partition",
        )
        .await
    };
    assert_eq!(
        positions().await,
        [
            json!({"topic": "shop.customer", "partition": 0, "lsn": 0x20,
                "time": "2026-01-01 00:00:02.000000"})
        ]
    );
    assert!(
        h.metrics
            .render()
            .contains("cdcstar_sink_watermark_seconds 1767225602.0"),
        "{}",
        h.metrics.render()
    );
    // A replay of an older position leaves the highest in place.
    h.flush(
        "shop.customer",
        0,
        &[committed("customer", 0x10, 1, customer(2, "bob", "DE"))],
    )
    .await;
    assert_eq!(positions().await[0]["lsn"], json!(0x20));
}
