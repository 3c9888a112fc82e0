//! The sink binary end to end: real broker, real ClickHouse engine. The reference app's single-topic
//! layout, poison messages and events whose rows ClickHouse refuses into the dead-letter topic, the
//! partition positions and the watermark following changes and heartbeats, SIGKILL at several points
//! of a stream, a broker restart and a ClickHouse outage in the middle of a stream.
//!
//! Over 400 lines: each test runs the sink binary through a whole scenario (crash, outage,
//! rebalance, scale-out), and they share the process harness, the stream generator and the
//! convergence checks above them.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cdcstar_crds::pipeline::TopicMode;
use cdcstar_runtime::kafka::KafkaConnection;
use cdcstar_sink::dead_letters::producer::{
    REASON_HEADER, REASON_KIND_HEADER, SOURCE_OFFSET_HEADER, SOURCE_TOPIC_HEADER,
};
use common::broker::{Broker, free_port};
use common::{
    TestPipeline, customer, envelope, eventually, eventually_or, item, kafka_brokers, order,
    produce, produce_to_partitions, product, query_json,
};
use rdkafka::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use serde_json::{Value as Json, json};

/// A running `cdcstar-sink` process.
struct Sink {
    child: Child,
    log: PathBuf,
}

impl Sink {
    fn start(pipeline: &TestPipeline, brokers: &str, clickhouse_url: &str) -> Sink {
        Self::start_with(pipeline, brokers, clickhouse_url, &[])
    }

    fn start_with(
        pipeline: &TestPipeline,
        brokers: &str,
        clickhouse_url: &str,
        extra: &[&str],
    ) -> Sink {
        let log = unique_log(&pipeline.file);
        // The tests' batch limits, unless `extra` sets them.
        let defaults = [("--batch-wait-ms", "100"), ("--batch-events", "200")];
        let defaults = defaults
            .into_iter()
            .filter(|(flag, _)| !extra.contains(flag))
            .flat_map(|(flag, value)| [flag, value]);
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cdcstar-sink"))
            .arg("--pipeline")
            .arg(&pipeline.file)
            .args(["--kafka-brokers", brokers])
            .args(["--clickhouse-url", clickhouse_url])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(defaults)
            .args(extra)
            .env("RUST_LOG", "info,cdcstar_sink=debug")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start cdcstar-sink");
        Sink { child, log }
    }

    /// A sink that a test kills and starts again: always the same static group member, as a
    /// StatefulSet pod would be. NB: tansu does not expire the dynamic members of killed processes
    /// (observed: partitions stay assigned to them).
    fn start_restartable(pipeline: &TestPipeline, brokers: &str) -> Sink {
        Self::start_with(
            pipeline,
            brokers,
            &clickhouse_url(),
            &["--group-instance-id", "sink-0"],
        )
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, after which the sink must exit successfully.
    fn terminate_cleanly(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "sink exit status {status}");
                return;
            }
            assert!(Instant::now() < deadline, "sink did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `timeout` for `check` to hold, showing the end of this sink's log if it never
    /// does.
    async fn eventually<F, Fut>(&self, timeout: Duration, what: &str, check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        eventually_or(timeout, what, check, &|| tail(&self.log(), 30)).await;
    }

    /// Waits up to `timeout` for this sink's log to say `text`.
    async fn eventually_logs(&self, timeout: Duration, what: &str, text: &str) {
        self.eventually(timeout, what, || async { self.log().contains(text) })
            .await;
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique_log(path: &Path) -> PathBuf {
    let mut n = 0;
    loop {
        let candidate = path.with_file_name(format!("sink-{n}.log"));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}

fn clickhouse_url() -> String {
    common::clickhouse_url()
}

/// The test broker's address, and a pipeline named after `name` whose topics have `partitions`
/// partitions there.
async fn pipeline_with_topics(name: &str, partitions: i32) -> (String, TestPipeline) {
    let brokers = kafka_brokers();
    let pipeline = TestPipeline::new(name).await;
    pipeline.create_topics(&brokers, partitions).await;
    (brokers, pipeline)
}

/// A producer to the broker at `brokers`.
fn producer(brokers: &str) -> rdkafka::producer::FutureProducer {
    KafkaConnection::new(&[brokers])
        .client_config()
        .create()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_topic_stream_lands_and_poison_goes_to_the_dead_letter_topic() {
    let brokers = kafka_brokers();
    let pipeline = TestPipeline::with("single", |p| {
        p.spec.kafka.topics.mode = TopicMode::Single;
    })
    .await;
    pipeline.create_topics(&brokers, 1).await;
    let topic = pipeline.pipeline.data_topics()[0].clone();
    let poison: Vec<Vec<u8>> = vec![
        b"{not json".to_vec(),
        envelope("invoice", "insert", 0x30, json!({"id": 1})),
        envelope(
            "orderitem",
            "insert",
            0x31,
            json!({"id": 9, "orderId": 100, "productId": 5, "quantity": "many", "price": 1}),
        ),
    ];
    let mut messages = vec![
        envelope("customer", "insert", 0x10, customer(1, "ann", "FR")),
        envelope("order", "insert", 0x11, order(100, 1, "pending")),
    ];
    messages.extend(poison.iter().cloned());
    messages.push(envelope("order", "update", 0x40, order(100, 1, "paid")));
    // Like the reference's Redpanda Connect output: one topic, no key.
    let producer = producer(&brokers);
    for body in &messages {
        producer
            .send(
                rdkafka::producer::FutureRecord::<(), [u8]>::to(&topic).payload(body.as_slice()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let sink = Sink::start(&pipeline, &brokers, &clickhouse_url());
    eventually(
        Duration::from_secs(60),
        "the order with its customer",
        || async {
            pipeline.rows("order_fact", "status, customer_name").await
                == [json!({"status": "paid", "customer_name": "ann"})]
        },
    )
    .await;

    let letters = dead_letters(&brokers, &pipeline, poison.len(), &sink).await;
    let bodies: Vec<&Vec<u8>> = letters.iter().map(|l| &l.payload).collect();
    assert_eq!(bodies, poison.iter().collect::<Vec<_>>());
    let kinds: Vec<&str> = letters.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(kinds, ["invalid_envelope", "unknown_table", "conversion"]);
    assert!(
        letters[2].reason.contains("quantity"),
        "{}",
        letters[2].reason
    );
    let offsets: Vec<&str> = letters.iter().map(|l| l.offset.as_str()).collect();
    assert_eq!(offsets, ["2", "3", "4"]);
    sink.terminate_cleanly();
}

/// With a minimum interval between flushes, events that trickle in after a flush wait for the
/// interval and land as one batch (without it, each would be a batch and an insert of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_trickling_in_within_the_minimum_flush_interval_land_as_one_batch() {
    let (brokers, pipeline) = pipeline_with_topics("min_interval", 1).await;
    let topic = pipeline.pipeline.topic_for_table("customer");
    let customer_event = |id: u64| {
        let body = envelope(
            "customer",
            "insert",
            0x10 + id,
            customer(id, &format!("c{id}"), "FR"),
        );
        (topic.clone(), id.to_string(), body)
    };
    let customers = || async { pipeline.rows("customer_dim", "customer_id").await.len() };
    produce(&brokers, &[customer_event(1)]).await;
    let sink = Sink::start_with(
        &pipeline,
        &brokers,
        &clickhouse_url(),
        &[
            "--batch-min-interval-ms",
            "6000",
            "--batch-wait-ms",
            "10000",
        ],
    );
    sink.eventually(Duration::from_secs(60), "the first customer", || async {
        customers().await == 1
    })
    .await;
    for id in 2..=6 {
        produce(&brokers, &[customer_event(id)]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sink.eventually(Duration::from_secs(60), "the other five", || async {
        customers().await == 6
    })
    .await;
    let log = sink.log();
    assert_eq!(
        sink_log_batches(&log),
        ["events=1", "events=5"],
        "{}",
        tail(&log, 30)
    );
    sink.terminate_cleanly();
}

/// The `events=N` of every non-empty batch the sink's debug log says it applied.
fn sink_log_batches(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains("batch applied"))
        .filter_map(|line| line.split_whitespace().find(|w| w.starts_with("events=")))
        .collect()
}

/// An envelope as the native capture writes it, with its commit position (`commitLsn`, `commitTime`
/// at `second` past 2026-01-01T00:00:00Z); a `heartbeat` when `table` is empty.
fn positioned(table: &str, commit_lsn: u64, second: u32, payload: Json) -> Vec<u8> {
    let operation = if table.is_empty() {
        "heartbeat"
    } else {
        "insert"
    };
    let lsn = cdcstar_crds::Lsn(commit_lsn).to_string();
    serde_json::to_vec(&json!({
        "metadata": {"table": table, "operation": operation, "lsn": lsn, "commitLsn": lsn,
                     "txSeq": 0, "commitTime": format!("2026-01-01T00:00:{second:02}Z")},
        "payload": payload,
    }))
    .unwrap()
}

/// Sends `body` to `partition` of `topic`.
async fn send_to(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    partition: i32,
    body: &[u8],
) {
    producer
        .send(
            rdkafka::producer::FutureRecord::<(), [u8]>::to(topic)
                .partition(partition)
                .payload(body),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// A heartbeat at `commit_lsn`, committed at `second`, on both partitions of every topic.
async fn heartbeat_everywhere(
    producer: &rdkafka::producer::FutureProducer,
    topics: &[String],
    commit_lsn: u64,
    second: u32,
) {
    for topic in topics {
        for partition in 0..2 {
            send_to(
                producer,
                topic,
                partition,
                &positioned("", commit_lsn, second, json!({})),
            )
            .await;
        }
    }
}

/// `(commit_lsn, commit_time_us, partitions)` of the pipeline's watermark, as the operator reads it.
async fn watermark(pipeline: &TestPipeline) -> Option<(u64, i64, u64)> {
    let sql = cdcstar_crds::status_tables::watermark_query(&pipeline.database).replace(
        "{pipeline:String}",
        &format!("'{}'", pipeline.pipeline.status_key()),
    );
    query_json(&pipeline.store, &sql).await.first().map(|row| {
        (
            row["commit_lsn"].as_u64().unwrap(),
            row["commit_time_us"].as_i64().unwrap(),
            row["partitions"].as_u64().unwrap(),
        )
    })
}

/// Waits up to 60 s for the pipeline's watermark (commit LSN, commit time, partitions) to be `expected`.
async fn watermark_reaches(sink: &Sink, pipeline: &TestPipeline, expected: (u64, i64, u64)) {
    let what = format!("the watermark {expected:?}");
    sink.eventually(Duration::from_secs(60), &what, || async {
        watermark(pipeline).await == Some(expected)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_positions_and_the_watermark_follow_changes_and_heartbeats() {
    let (brokers, pipeline) = pipeline_with_topics("watermark", 2).await;
    let topics = pipeline.pipeline.data_topics();
    let sink = Sink::start(&pipeline, &brokers, &clickhouse_url());
    let second = |s: i64| 1_767_225_600_000_000 + s * 1_000_000;
    // At start every partition of the four topics enters at zero: nothing is consistent yet.
    watermark_reaches(&sink, &pipeline, (0, 0, 8)).await;

    let producer = producer(&brokers);
    let customer_topic = pipeline.pipeline.topic_for_table("customer");
    send_to(
        &producer,
        &customer_topic,
        0,
        &positioned("customer", 0x100, 1, customer(1, "ann", "FR")),
    )
    .await;
    // One partition applied a change; the seven others hold the watermark at zero.
    sink.eventually(Duration::from_secs(60), "the customer", || async {
        pipeline.rows("customer_dim", "name").await == [json!({"name": "ann"})]
    })
    .await;
    assert_eq!(watermark(&pipeline).await, Some((0, 0, 8)));

    // Heartbeats reach every partition: the watermark is theirs.
    heartbeat_everywhere(&producer, &topics, 0x200, 2).await;
    watermark_reaches(&sink, &pipeline, (0x200, second(2), 8)).await;

    // A later change on one partition only: the idle ones keep the watermark where it is, until the
    // next heartbeat moves every partition past it.
    let order_topic = pipeline.pipeline.topic_for_table("order");
    send_to(
        &producer,
        &order_topic,
        1,
        &positioned("order", 0x300, 3, order(100, 1, "paid")),
    )
    .await;
    sink.eventually(Duration::from_secs(60), "the order", || async {
        pipeline.rows("order_fact", "status").await == [json!({"status": "paid"})]
    })
    .await;
    assert_eq!(watermark(&pipeline).await, Some((0x200, second(2), 8)));
    heartbeat_everywhere(&producer, &topics, 0x400, 4).await;
    watermark_reaches(&sink, &pipeline, (0x400, second(4), 8)).await;
    let positions = query_json(
        &pipeline.store,
        "SELECT topic, partition, max(commit_lsn) AS lsn FROM cdcstar_partition_positions \
         GROUP BY topic, partition ORDER BY topic, partition",
    )
    .await;
    assert_eq!(positions.len(), 8);
    assert!(
        positions.iter().all(|row| row["lsn"] == json!(0x400)),
        "{positions:?}"
    );
    assert!(
        !sink.log().contains("dead-letter"),
        "heartbeats are no poison:\n{}",
        sink.log()
    );
    sink.terminate_cleanly();
}

/// A message of the dead-letter topic.
struct DeadLetter {
    payload: Vec<u8>,
    kind: String,
    reason: String,
    topic: String,
    offset: String,
}

/// The first `count` messages of the pipeline's dead-letter topic (partition 0), waiting up to 60 s
/// for each.
async fn dead_letters(
    brokers: &str,
    pipeline: &TestPipeline,
    count: usize,
    sink: &Sink,
) -> Vec<DeadLetter> {
    let consumer: StreamConsumer = KafkaConnection::new(&[brokers])
        .client_config()
        .set("group.id", common::unique("dlq_reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut partitions = rdkafka::TopicPartitionList::new();
    partitions
        .add_partition_offset(
            &pipeline.pipeline.dead_letter_topic(),
            0,
            rdkafka::Offset::Beginning,
        )
        .unwrap();
    consumer.assign(&partitions).unwrap();
    let mut letters = Vec::new();
    while letters.len() < count {
        let message = match tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await {
            Ok(message) => message.unwrap(),
            Err(_) => panic!(
                "no dead letter within 60 s; sink log:\n{}",
                tail(&sink.log(), 40)
            ),
        };
        let headers = message.headers().expect("dead letters carry headers");
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        letters.push(DeadLetter {
            payload: message.payload().unwrap_or_default().to_vec(),
            kind: header(REASON_KIND_HEADER),
            reason: header(REASON_HEADER),
            topic: header(SOURCE_TOPIC_HEADER),
            offset: header(SOURCE_OFFSET_HEADER),
        });
    }
    letters
}

#[tokio::test]
async fn an_event_whose_rows_clickhouse_refuses_goes_to_the_dead_letter_topic_and_the_stream_moves_on()
 {
    let (brokers, pipeline) = pipeline_with_topics("refused_dlq", 1).await;
    pipeline
        .store
        .client()
        .query("ALTER TABLE product_dim ADD CONSTRAINT price_not_negative CHECK price >= 0")
        .execute()
        .await
        .unwrap();
    let mut negative = product(2, "ink");
    negative["price"] = json!(-1);
    let refused = envelope("product", "insert", 0x12, negative);
    let topic = |table: &str| pipeline.pipeline.topic_for_table(table);
    let first: Vec<(String, String, Vec<u8>)> = vec![
        (
            topic("product"),
            "1".into(),
            envelope("product", "insert", 0x11, product(1, "pen")),
        ),
        (topic("product"), "2".into(), refused.clone()),
        (
            topic("product"),
            "3".into(),
            envelope("product", "insert", 0x13, product(3, "pad")),
        ),
        (
            topic("customer"),
            "1".into(),
            envelope("customer", "insert", 0x14, customer(1, "ann", "FR")),
        ),
        (
            topic("order"),
            "100".into(),
            envelope("order", "insert", 0x15, order(100, 1, "paid")),
        ),
        (
            topic("orderitem"),
            "1000".into(),
            envelope("orderitem", "insert", 0x16, item(1000, 100, 3, 1)),
        ),
    ];
    produce(&brokers, &first).await;
    let sink = Sink::start(&pipeline, &brokers, &clickhouse_url());
    let letters = dead_letters(&brokers, &pipeline, 1, &sink).await;
    assert_eq!(letters[0].payload, refused);
    assert_eq!(letters[0].kind, "refused");
    assert!(
        letters[0].reason.contains("VIOLATED_CONSTRAINT"),
        "{}",
        letters[0].reason
    );
    assert_eq!(letters[0].topic, topic("product"));
    assert_eq!(letters[0].offset, "1");
    // The stream moves on: what came before and after the refused event lands, and so do later
    // events, the corrected product included.
    let fixed = envelope("product", "update", 0x20, product(2, "ink"));
    produce(&brokers, &[(topic("product"), "2".into(), fixed)]).await;
    eventually(
        Duration::from_secs(60),
        "every product and the item",
        || async {
            pipeline.rows("product_dim", "product_id").await
                == [
                    json!({"product_id": 1}),
                    json!({"product_id": 2}),
                    json!({"product_id": 3}),
                ]
                && pipeline
                    .rows("orderitem_fact", "product_name, customer_country")
                    .await
                    == [json!({"product_name": "pad", "customer_country": "FR"})]
        },
    )
    .await;
    sink.terminate_cleanly();
}

/// A deterministic stream over the shop schema and the state it must leave.
struct Stream {
    events: Vec<(String, String, Vec<u8>)>,
    expected: BTreeMap<String, Vec<Json>>,
}

/// Produces the first half of a one-partition [`stream`], starts the sink (writing to
/// `clickhouse_url`) and waits until part of it has landed; answers the sink, and the stream with
/// only its second half left to produce.
async fn sink_through_first_half(
    pipeline: &TestPipeline,
    brokers: &str,
    clickhouse_url: &str,
) -> (Sink, Stream) {
    let Stream {
        mut events,
        expected,
    } = stream(pipeline, 1);
    let second_half = events.split_off(events.len() / 2);
    produce(brokers, &events).await;
    let sink = Sink::start(pipeline, brokers, clickhouse_url);
    sink.eventually(Duration::from_secs(60), "the first half", || async {
        !pipeline
            .rows("orderitem_fact", "orderitem_id")
            .await
            .is_empty()
    })
    .await;
    let rest = Stream {
        events: second_half,
        expected,
    };
    (sink, rest)
}

fn stream(pipeline: &TestPipeline, scale: u64) -> Stream {
    let topic = |t: &str| pipeline.pipeline.topic_for_table(t);
    let mut lsn = 0x1000_u64;
    let mut next = || {
        lsn += 1;
        lsn
    };
    let mut events = Vec::new();
    let mut push = |table: &str, key: u64, body: Vec<u8>| {
        events.push((topic(table), format!("{key}"), body));
    };
    let customers = 10 * scale;
    let products = 5 * scale;
    let orders = 20 * scale;
    let items = 40 * scale;
    let mut customer_state: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let mut product_state: BTreeMap<u64, String> = BTreeMap::new();
    let mut order_state: BTreeMap<u64, (u64, String)> = BTreeMap::new();
    let mut item_state: BTreeMap<u64, (u64, u64, u32)> = BTreeMap::new();
    for i in 0..items.max(orders) {
        if i < customers {
            let name = format!("c{i}");
            push(
                "customer",
                i,
                envelope("customer", "insert", next(), customer(i, &name, "FR")),
            );
            customer_state.insert(i, (name, "FR".into()));
        }
        if i < products {
            let name = format!("p{i}");
            push(
                "product",
                i,
                envelope("product", "insert", next(), product(i, &name)),
            );
            product_state.insert(i, name);
        }
        if i < orders {
            // Some orders reference customers that arrive later (fact first).
            let c = (i * 7) % customers;
            push(
                "order",
                i,
                envelope("order", "insert", next(), order(i, c, "pending")),
            );
            order_state.insert(i, (c, "pending".into()));
        }
        if i < items {
            let (o, p, q) = ((i * 3) % orders, (i * 5) % products, (i % 9 + 1) as u32);
            push(
                "orderitem",
                i,
                envelope("orderitem", "insert", next(), item(i, o, p, q)),
            );
            item_state.insert(i, (o, p, q));
        }
        if i % 4 == 3 {
            let c = i % customers;
            let country = ["DE", "IT", "ES"][(i % 3) as usize].to_owned();
            let name = format!("c{c}-v{i}");
            push(
                "customer",
                c,
                envelope("customer", "update", next(), customer(c, &name, &country)),
            );
            customer_state.insert(c, (name, country));
        }
        if i % 5 == 4 && i < orders {
            let (c, _) = order_state[&i].clone();
            push(
                "order",
                i,
                envelope("order", "update", next(), order(i, c, "paid")),
            );
            order_state.insert(i, (c, "paid".into()));
        }
        if i % 11 == 10 && i < items {
            push(
                "orderitem",
                i,
                envelope("orderitem", "delete", next(), json!({"id": i})),
            );
            item_state.remove(&i);
        }
    }
    let mut expected = BTreeMap::new();
    expected.insert(
        "customer_dim".to_owned(),
        customer_state
            .iter()
            .map(|(id, (name, country))| json!({"customer_id": id, "name": name, "country": country}))
            .collect(),
    );
    expected.insert(
        "product_dim".to_owned(),
        product_state
            .iter()
            .map(|(id, name)| json!({"product_id": id, "name": name}))
            .collect(),
    );
    expected.insert(
        "order_fact".to_owned(),
        order_state
            .iter()
            .map(|(id, (c, status))| {
                json!({"order_id": id, "customer_id": c, "status": status,
                       "customer_name": customer_state[c].0})
            })
            .collect(),
    );
    expected.insert(
        "orderitem_fact".to_owned(),
        item_state
            .iter()
            .map(|(id, (o, p, q))| {
                let (c, status) = &order_state[o];
                json!({"orderitem_id": id, "order_id": o, "quantity": q,
                       "product_name": product_state[p], "order_status": status,
                       "customer_country": customer_state[c].1})
            })
            .collect(),
    );
    Stream { events, expected }
}

async fn observed(pipeline: &TestPipeline) -> BTreeMap<String, Vec<Json>> {
    let mut state = BTreeMap::new();
    for (table, columns) in [
        ("customer_dim", "customer_id, name, country"),
        ("product_dim", "product_id, name"),
        ("order_fact", "order_id, customer_id, status, customer_name"),
        (
            "orderitem_fact",
            "orderitem_id, order_id, quantity, product_name, order_status, customer_country",
        ),
    ] {
        state.insert(table.to_owned(), pipeline.rows(table, columns).await);
    }
    state
}

/// Waits until ClickHouse holds `expected`, for up to 120 s; on timeout, shows the first differing
/// table.
async fn converges(
    pipeline: &TestPipeline,
    expected: &BTreeMap<String, Vec<Json>>,
    logs: &dyn Fn() -> String,
) {
    let within = Duration::from_secs(120);
    let started = Instant::now();
    loop {
        let state = observed(pipeline).await;
        if &state == expected {
            return;
        }
        if started.elapsed() > within {
            for (table, rows) in expected {
                if state.get(table) != Some(rows) {
                    let got = &state[table];
                    let missing: Vec<&Json> =
                        rows.iter().filter(|r| !got.contains(r)).take(5).collect();
                    let extra: Vec<&Json> =
                        got.iter().filter(|r| !rows.contains(r)).take(5).collect();
                    panic!(
                        "{table}: {} rows, expected {}; missing {missing:?}; unexpected {extra:?}\nsink log tail:\n{}",
                        got.len(),
                        rows.len(),
                        tail(&logs(), 40)
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Nothing duplicated: one live version per key, and FINAL counts equal the expected rows.
async fn assert_one_live_row_per_key(
    pipeline: &TestPipeline,
    expected: &BTreeMap<String, Vec<Json>>,
) {
    for (table, rows) in expected {
        let count = query_json(
            &pipeline.store,
            &format!("SELECT count() AS n FROM `{table}` FINAL WHERE is_deleted = 0"),
        )
        .await;
        assert_eq!(count, [json!({"n": rows.len()})], "{table}");
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_several_points_loses_nothing_and_duplicates_nothing() {
    let (brokers, pipeline) = pipeline_with_topics("crash", 3).await;
    let Stream { events, expected } = stream(&pipeline, 3);
    let producing = {
        let brokers = brokers.clone();
        let events = events.clone();
        tokio::spawn(async move {
            for chunk in events.chunks(40) {
                produce(&brokers, chunk).await;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    let start = || Sink::start_restartable(&pipeline, &brokers);
    let mut sink = start();
    for pause in [1200, 700, 2500, 300, 1800] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        sink.kill();
        sink = start();
    }
    producing.await.unwrap();
    converges(&pipeline, &expected, &|| sink.log()).await;
    assert_one_live_row_per_key(&pipeline, &expected).await;
    sink.terminate_cleanly();
}

/// A customer with 200 000 orders (and 40 000 items on them), built directly in ClickHouse, renamed
/// five times; after each of the first four renames the sink is killed as soon as the test sees its
/// log say it starts rewriting the orders (polled every 250 ms, then 0-150 ms more), while the one
/// `INSERT ... SELECT` of 200 000 rows may still run. Every order and item ends with the last values,
/// each key once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_large_propagation_converges() {
    const ORDERS: u64 = 200_000;
    const ITEMS: u64 = ORDERS / 5;
    let (brokers, pipeline) = pipeline_with_topics("crash_propagation", 1).await;
    for sql in [
        "INSERT INTO customer_dim VALUES (7, 'c0@example.com', 'c0', 'FR', 'FR-city', \
         '2024-01-01 00:00:00', 16, 0)"
            .to_owned(),
        format!(
            "INSERT INTO order_fact SELECT number + 1, 7, 'pending', 19.99, '2024-02-03 04:05:06', \
             'c0', 'c0@example.com', 4096 + number, 4096 + number, 0 FROM numbers({ORDERS})"
        ),
        format!(
            "INSERT INTO orderitem_fact SELECT number + 1, number * 5 + 1, 1, 2, 1.25, '', '', \
             'pending', '2024-02-03 04:05:06', 'FR', 'FR-city', 1048576 + number, \
             1048576 + number, 0 FROM numbers({ITEMS})"
        ),
    ] {
        pipeline.store.client().query(&sql).execute().await.unwrap();
    }
    let start = || Sink::start_restartable(&pipeline, &brokers);
    let topic = pipeline.pipeline.topic_for_table("customer");
    let countries = ["DE", "IT", "NL", "ES", "PT"];
    let rename = |round: usize| {
        let name = format!("c{round}");
        let body = envelope(
            "customer",
            "update",
            0x1_0000_0000 + round as u64,
            customer(7, &name, countries[round - 1]),
        );
        (topic.clone(), "7".to_owned(), body)
    };
    let mut sink = start();
    for (round, delay) in [(1, 0), (2, 50), (3, 100), (4, 150)] {
        produce(&brokers, &[rename(round)]).await;
        eventually_or(
            Duration::from_secs(60),
            "the sink to start rewriting the orders",
            || async {
                sink.log().lines().any(|l| {
                    l.contains("propagation rewrites fact rows") && l.contains("order_fact")
                })
            },
            &|| sink.log(),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        sink.kill();
        sink = start();
    }
    produce(&brokers, &[rename(5)]).await;
    let summary = || async {
        query_json(
            &pipeline.store,
            "SELECT (SELECT count() FROM order_fact FINAL WHERE is_deleted = 0) AS orders, \
             (SELECT countIf(customer_name = 'c5' AND customer_email = 'c5@example.com') \
              FROM order_fact FINAL WHERE is_deleted = 0) AS renamed, \
             (SELECT count() FROM orderitem_fact FINAL WHERE is_deleted = 0) AS items, \
             (SELECT countIf(customer_country = 'PT' AND customer_city = 'PT-city') \
              FROM orderitem_fact FINAL WHERE is_deleted = 0) AS moved",
        )
        .await
    };
    let expected = [json!({"orders": ORDERS, "renamed": ORDERS, "items": ITEMS, "moved": ITEMS})];
    sink.eventually(
        Duration::from_secs(120),
        "every order and item to show the last rename",
        || async { summary().await == expected },
    )
    .await;
    sink.terminate_cleanly();
}

// --- broker restart ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let broker = Broker::start(port, dir.path());
    let pipeline = TestPipeline::new("broker").await;
    pipeline.create_topics(&brokers, 1).await;
    let (sink, Stream { events, expected }) =
        sink_through_first_half(&pipeline, &brokers, &clickhouse_url()).await;
    drop(broker);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _broker = Broker::start(port, dir.path());
    produce(&brokers, &events).await;
    converges(&pipeline, &expected, &|| sink.log()).await;
    sink.terminate_cleanly();
}

// --- ClickHouse outage ------------------------------------------------------------------------

/// A TCP proxy to ClickHouse that can refuse and cut connections, to play an outage.
struct Proxy {
    address: String,
    down: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let down = Arc::new(AtomicBool::new(false));
        let flag = down.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused-ish
                }
                let upstream = upstream.clone();
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let cut = async {
                        while !flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Proxy { address, down }
    }

    /// A proxy to the test ClickHouse.
    async fn to_clickhouse() -> Proxy {
        let upstream = clickhouse_url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Self::start(upstream).await
    }

    /// The proxy's ClickHouse URL.
    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_outage_mid_stream_is_retried_until_it_catches_up() {
    let (brokers, pipeline) = pipeline_with_topics("outage", 1).await;
    let proxy = Proxy::to_clickhouse().await;
    let (sink, Stream { events, expected }) =
        sink_through_first_half(&pipeline, &brokers, &proxy.url()).await;
    proxy.set_down(true);
    produce(&brokers, &events).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    proxy.set_down(false);
    converges(&pipeline, &expected, &|| sink.log()).await;
    assert!(
        sink.log().contains("transient failure, retrying"),
        "the outage was noticed and retried"
    );
    sink.terminate_cleanly();
}

/// A second replica joins while the first one's flush is stuck on a ClickHouse outage (of the first
/// replica's connection only), then leaves again: the first replica's revoke waits for its in-flight
/// flush and commits before the partitions move, each hand-over resumes from the committed offsets,
/// and the final state is exact.
///
/// Few events arrive during the outage (fewer than a batch): a replica whose next batch is full
/// stops polling until its flush is done, and then serves the revoke only after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_during_an_in_flight_flush_hands_over_without_loss() {
    let (brokers, pipeline) = pipeline_with_topics("rebalance", 3).await;
    let proxy = Proxy::to_clickhouse().await;
    let Stream { events, expected } = stream(&pipeline, 3);
    let (before, rest) = events.split_at(events.len() / 2);
    let (during, after) = rest.split_at(40);

    produce(&brokers, before).await;
    let first = Sink::start(&pipeline, &brokers, &proxy.url());
    first
        .eventually(Duration::from_secs(60), "the first events", || async {
            !pipeline
                .rows("customer_dim", "customer_id")
                .await
                .is_empty()
        })
        .await;

    // The first replica's flush cannot finish while ClickHouse is away.
    proxy.set_down(true);
    produce(&brokers, during).await;
    first
        .eventually_logs(
            Duration::from_secs(30),
            "a flush retrying on the outage",
            "transient failure, retrying",
        )
        .await;
    // Only the first replica is cut off from ClickHouse (the second one would not start otherwise).
    let second = Sink::start(&pipeline, &brokers, &clickhouse_url());
    first
        .eventually_logs(
            Duration::from_secs(30),
            "the first replica's revoke, while its flush is still retrying",
            "partitions revoked",
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !first.log().contains("offsets committed on hand-over"),
        "the hand-over waits for the in-flight flush:\n{}",
        tail(&first.log(), 40)
    );
    proxy.set_down(false);

    produce(&brokers, after).await;
    eventually_or(
        Duration::from_secs(60),
        "both replicas owning partitions",
        || async {
            first.log().matches("partitions assigned").count() >= 2
                && second.log().contains("partitions assigned")
        },
        &|| {
            format!(
                "{}\n--- second:\n{}",
                tail(&first.log(), 20),
                tail(&second.log(), 20)
            )
        },
    )
    .await;
    assert!(
        first.log().contains("offsets committed on hand-over")
            && !first
                .log()
                .contains("could not flush before the partitions were revoked")
            && !first.log().contains("flushing took too long"),
        "the in-flight flush finished and its offsets were committed before the hand-over:\n{}",
        tail(&first.log(), 40)
    );
    // The second replica leaves; the first takes every partition back.
    second.terminate_cleanly();
    converges(&pipeline, &expected, &|| first.log()).await;
    assert_one_live_row_per_key(&pipeline, &expected).await;
    first.terminate_cleanly();
}

/// Scale-out: three replicas in one consumer group share every topic's three partitions, with the
/// lookup re-check on as the operator runs several replicas; the test checks from the delivery reports
/// and the replicas' assignments that a customer's event and an event of one of its orders were
/// applied by different replicas. One replica is killed (SIGKILL) in
/// the middle of the stream and started again as the same member, as Kubernetes restarts a pod.
/// ClickHouse ends equal to the stream's final state, each key once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_the_partitions_and_one_killed_midway_loses_nothing() {
    let (brokers, pipeline) = pipeline_with_topics("three_replicas", 3).await;
    let Stream { events, expected } = stream(&pipeline, 3);
    let start = |replica: usize| {
        Sink::start_with(
            &pipeline,
            &brokers,
            &clickhouse_url(),
            &["--group-instance-id", &format!("sink-{replica}")],
        )
    };
    let logs = |replicas: &[Sink]| {
        replicas
            .iter()
            .map(|r| tail(&r.log(), 15))
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let (first, rest) = events.split_at(events.len() / 3);
    let (middle, last) = rest.split_at(rest.len() / 2);
    // NB: one at a time: each join is a rebalance of the whole group.
    let mut replicas: Vec<Sink> = Vec::new();
    for replica in 0..3 {
        replicas.push(start(replica));
        eventually_or(
            Duration::from_secs(60),
            &format!("replica {replica} owning partitions"),
            || async { replicas[replica].log().contains("partitions assigned") },
            &|| logs(&replicas),
        )
        .await;
    }
    let partitions = produce_to_partitions(&brokers, first).await;
    // A customer's event and one of its orders' events went to partitions different replicas own.
    let owners: BTreeMap<String, usize> = replicas
        .iter()
        .enumerate()
        .flat_map(|(replica, sink)| {
            let log = sink.log();
            let assigned = log
                .lines()
                .rev()
                .find(|l| l.contains("partitions assigned"))
                .and_then(|l| l.split("partitions=").nth(1))
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            assigned
                .split(',')
                .map(|tp| (tp.to_owned(), replica))
                .collect::<Vec<_>>()
        })
        .collect();
    let owner = |index: usize| owners.get(&format!("{}/{}", first[index].0, partitions[index]));
    let payload = |index: usize| -> Json {
        serde_json::from_slice::<Json>(&first[index].2).unwrap()["payload"].clone()
    };
    let customer_topic = pipeline.pipeline.topic_for_table("customer");
    let order_topic = pipeline.pipeline.topic_for_table("order");
    let split = (0..first.len())
        .filter(|&c| first[c].0 == customer_topic)
        .any(|c| {
            (0..first.len()).any(|o| {
                first[o].0 == order_topic
                    && payload(o)["customerId"] == payload(c)["id"]
                    && owner(o).is_some()
                    && owner(o) != owner(c)
            })
        });
    assert!(
        split,
        "no customer and order of it on different replicas; owners {owners:?}"
    );
    eventually_or(
        Duration::from_secs(60),
        "every replica applying batches",
        || async {
            replicas.iter().all(|r| {
                r.log()
                    .rsplit("partitions assigned")
                    .next()
                    .unwrap()
                    .contains("batch applied")
            })
        },
        &|| logs(&replicas),
    )
    .await;
    produce(&brokers, middle).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    replicas.remove(1).kill();
    replicas.insert(1, start(1));
    produce(&brokers, last).await;
    converges(&pipeline, &expected, &|| logs(&replicas)).await;
    assert_one_live_row_per_key(&pipeline, &expected).await;
    for replica in replicas {
        replica.terminate_cleanly();
    }
}

#[test]
fn invalid_pipeline_file_exits_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.yaml");
    let text = include_str!("../../examples/shop-pipeline.yaml")
        .replace("type: UInt64 }", "type: Varchar }");
    std::fs::write(&file, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_cdcstar-sink"))
        .arg("--pipeline")
        .arg(&file)
        .args(["--metrics-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid pipeline"), "{stderr}");
    assert!(
        stderr.contains("spec.starSchema.dimensions[0].columns[0].type"),
        "{stderr}"
    );
}
