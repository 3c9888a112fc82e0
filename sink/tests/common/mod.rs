//! Shared helpers of the sink's integration tests: service addresses from the environment (failing
//! loudly when absent), a per-test pipeline (own topic prefix, own ClickHouse database, tables
//! created from the crds DDL), envelope builders, producing, and reading `FINAL` state back.
#![allow(dead_code)]

pub mod broker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdcstar_crds::star_model::StarModel;
use cdcstar_crds::{CdcPipeline, Lsn};
use cdcstar_runtime::kafka::{KafkaConnection, ensure_topics};
use cdcstar_sink::apply::Applier;
use cdcstar_sink::store::{Store, StoreConfig};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value as Json, json};

use cdcstar_testkit::required_env;
pub use cdcstar_testkit::unique;

/// `KAFKA_BROKERS`.
pub fn kafka_brokers() -> String {
    required_env("KAFKA_BROKERS")
}

/// `CLICKHOUSE_URL`.
pub fn clickhouse_url() -> String {
    required_env("CLICKHOUSE_URL")
}

/// Runs `sql` on `store`'s ClickHouse with the `settings` given, failing with the statement.
pub async fn execute_with(store: &Store, sql: &str, settings: &[(&str, &str)]) {
    let mut query = store.client().query(sql);
    for (name, value) in settings {
        query = query.with_option(*name, *value);
    }
    query
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The shop example pipeline with its own topics and ClickHouse database, written to a file, its
/// tables created.
pub struct TestPipeline {
    pub pipeline: CdcPipeline,
    pub plan: StarModel,
    pub database: String,
    pub store: Store,
    pub file: PathBuf,
    _dir: tempfile::TempDir,
}

/// A passing test drops its database (a failing one keeps it, to be looked at).
impl Drop for TestPipeline {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.database);
        // NB: Drop cannot await, and the test's runtime is blocked here: the statement runs on a
        // runtime of its own thread with a client (connection pool) of its own.
        let client = clickhouse::Client::default().with_url(clickhouse_url());
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(
                    client
                        .query(&sql)
                        .with_option("database", "default")
                        .execute(),
                )
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "could not drop test database {}: {dropped:?}",
                self.database
            );
        }
    }
}

impl TestPipeline {
    pub async fn new(purpose: &str) -> Self {
        Self::with(purpose, |_| {}).await
    }

    /// Like `new`, after `edit` changed the pipeline.
    pub async fn with(purpose: &str, edit: impl FnOnce(&mut CdcPipeline)) -> Self {
        let text = include_str!("../../../examples/shop-pipeline.yaml");
        let mut pipeline: CdcPipeline = serde_yaml::from_str(text).expect("example parses");
        let name = unique(purpose);
        pipeline.metadata.name = Some(name.replace('_', "-"));
        pipeline.spec.kafka.topics.prefix = Some(name.clone());
        pipeline.spec.clickhouse.database = name.clone();
        pipeline.spec.kafka.brokers = vec![kafka_brokers()];
        pipeline.spec.clickhouse.url = clickhouse_url();
        edit(&mut pipeline);
        let plan = StarModel::for_pipeline(&pipeline.spec).expect("plan");
        let store = Store::new(&StoreConfig {
            url: clickhouse_url(),
            database: name.clone(),
            user: None,
            password: None,
        });
        for statement in cdcstar_crds::clickhouse_ddl::install_statements(&pipeline).expect("ddl") {
            execute_with(&store, &statement, &[("database", "default")]).await;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pipeline.yaml");
        std::fs::write(&file, serde_yaml::to_string(&pipeline).unwrap()).unwrap();
        TestPipeline {
            pipeline,
            plan,
            database: name,
            store,
            file,
            _dir: dir,
        }
    }

    /// An applier writing into this pipeline's tables, with the lookup re-check on (the sink's
    /// default).
    pub fn applier(&self) -> Applier {
        Applier::new(self.store.clone(), Arc::new(self.plan.clone()), true)
    }

    /// Creates the data and dead-letter topics (one partition each unless `partitions`).
    pub async fn create_topics(&self, brokers: &str, partitions: i32) {
        let mut topics = self.pipeline.data_topics();
        topics.push(self.pipeline.dead_letter_topic());
        ensure_topics(&KafkaConnection::new(&[brokers]), &topics, partitions)
            .await
            .expect("create topics");
    }

    /// `SELECT columns FROM table FINAL WHERE is_deleted = 0 ORDER BY key`, each row as JSON.
    pub async fn rows(&self, table: &str, columns: &str) -> Vec<Json> {
        let key = &self.plan.tables[self.plan.table_id(table).expect("table")]
            .key_column()
            .name;
        let sql =
            format!("SELECT {columns} FROM `{table}` FINAL WHERE is_deleted = 0 ORDER BY `{key}`");
        query_json(&self.store, &sql).await
    }

    /// Every live row of every table, for whole-state comparisons.
    pub async fn state(&self) -> BTreeMap<String, Vec<Json>> {
        let mut state = BTreeMap::new();
        for table in &self.plan.tables {
            let columns: Vec<String> = table
                .columns
                .iter()
                .map(|c| format!("`{}`", c.name))
                .chain(table.lookups.iter().map(|l| format!("`{}`", l.name)))
                .collect();
            state.insert(
                table.name.clone(),
                self.rows(&table.name, &columns.join(", ")).await,
            );
        }
        state
    }
}

/// A test pipeline and an applier over it, for the tests that drive batches directly; each test
/// file adds the steps it drives.
pub struct Harness {
    pub pipeline: TestPipeline,
    pub applier: Applier,
}

impl Harness {
    /// A fresh pipeline for `purpose`, its tables created.
    pub async fn new(purpose: &str) -> Self {
        let pipeline = TestPipeline::new(purpose).await;
        Harness {
            applier: pipeline.applier(),
            pipeline,
        }
    }
}

/// Runs `sql` and parses its JSONEachRow output.
pub async fn query_json(store: &Store, sql: &str) -> Vec<Json> {
    let bytes = store
        .client()
        .query(sql)
        .with_option("output_format_json_quote_64bit_integers", "0")
        .with_option("output_format_json_quote_decimals", "0")
        .fetch_bytes("JSONEachRow")
        .unwrap()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    std::str::from_utf8(&bytes)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An envelope; `lsn` 0 means a snapshot row without LSN.
pub fn envelope(table: &str, operation: &str, lsn: u64, payload: Json) -> Vec<u8> {
    let mut metadata = json!({"table": table, "operation": operation});
    if lsn > 0 {
        metadata["lsn"] = json!(Lsn(lsn).to_string());
    }
    serde_json::to_vec(&json!({"metadata": metadata, "payload": payload})).unwrap()
}

pub fn customer(id: u64, name: &str, country: &str) -> Json {
    json!({"id": id, "email": format!("{name}@example.com"), "name": name, "country": country,
           "city": format!("{country}-city"), "createdAt": "2024-01-02T03:04:05.123456Z"})
}

pub fn product(id: u64, name: &str) -> Json {
    json!({"id": id, "name": name, "category": "office", "price": 2.5,
           "createdAt": "2024-01-02 03:04:05"})
}

pub fn order(id: u64, customer_id: u64, status: &str) -> Json {
    json!({"id": id, "customerId": customer_id, "status": status, "total": "19.99",
           "orderDate": "2024-02-03T04:05:06Z"})
}

pub fn item(id: u64, order_id: u64, product_id: u64, quantity: u32) -> Json {
    json!({"id": id, "orderId": order_id, "productId": product_id, "quantity": quantity,
           "price": 1.25})
}

/// Produces `(topic, key, body)` messages and waits for every acknowledgement.
pub async fn produce(brokers: &str, messages: &[(String, String, Vec<u8>)]) {
    produce_to_partitions(brokers, messages).await;
}

/// Like [`produce`], returning the partition each message landed in.
pub async fn produce_to_partitions(
    brokers: &str,
    messages: &[(String, String, Vec<u8>)],
) -> Vec<i32> {
    let producer: FutureProducer = KafkaConnection::new(&[brokers])
        .client_config()
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let sends = messages.iter().map(|(topic, key, body)| {
        producer.send(
            FutureRecord::to(topic)
                .key(key.as_str())
                .payload(body.as_slice()),
            Duration::from_secs(30),
        )
    });
    futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|result| result.map_err(|(e, _)| e).expect("produce").partition)
        .collect()
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_or(timeout, what, check, &String::new).await;
}

/// Like `eventually`, showing `context()` (e.g. a log) on timeout.
pub async fn eventually_or<F, Fut>(
    timeout: Duration,
    what: &str,
    mut check: F,
    context: &dyn Fn() -> String,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out waiting for {what}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
