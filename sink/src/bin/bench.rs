//! `cdcstar-sink-bench`: how fast the sink drains CDC events into ClickHouse, compared with a raw
//! insert of the same rows into the same ClickHouse from the same machine.
//!
//! 1. Produces N envelopes of the example schema (customers, products, orders, order items, with
//!    updates) into a fresh set of topics.
//! 2. Drains the topics with a bare consumer (no processing): with librdkafka's default fetch
//!    settings, the broker's own ceiling on this machine; then with the sink's fetch settings, what
//!    the sink's prefetch budget allows on this broker.
//! 3. Starts the `cdcstar-sink` binary on them and times it until every event is flushed (its
//!    `events_flushed` metric), sampling its peak RSS and CPU time from /proc.
//! 4. Inserts the same rows (as the sink would write them, lookups included) into copies of the
//!    tables in RowBinary batches of the same size, timed.
//! 5. Prints events/s, the ratios to the raw insert and to the slower of the two fixture ceilings,
//!    the broker's produce rate (step 1) and drain rate (step 2), peak RSS and CPU, and checks the row
//!    counts.
//!
//! `make bench-sink` runs it on a private librdkafka mock broker (scripts/bench-broker.sh).
//!
//! Over 400 lines: a standalone benchmark binary whose setup, five timed phases and report read top to
//! bottom.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use cdcstar_crds::star_model::StarModel;
use cdcstar_crds::{CdcPipeline, Lsn};
use cdcstar_runtime::kafka::{KafkaConnection, ensure_topics};
use cdcstar_sink::consume::fetch::{budget_partitions, partitions_per_topic};
use cdcstar_sink::route::route;
use cdcstar_sink::route::value::default_value;
use cdcstar_sink::settings::Args as SinkArgs;
use cdcstar_sink::store::Row;
use clap::Parser;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use support::{metric_sum, metrics_text, sample};

// NB: each benchmark binary uses part of what they share.
#[allow(dead_code)]
#[path = "support/mod.rs"]
mod support;

/// Benchmark of the sink against a raw ClickHouse insert.
#[derive(Debug, Parser)]
struct Args {
    /// Number of CDC events.
    #[arg(long, env = "BENCH_EVENTS", default_value_t = 1_000_000)]
    events: usize,
    /// Bootstrap brokers of the benchmark's topics, `host:port[,host:port...]`.
    #[arg(long, env = "KAFKA_BROKERS")]
    kafka_brokers: String,
    /// ClickHouse HTTP endpoint.
    #[arg(long, env = "CLICKHOUSE_URL")]
    clickhouse_url: String,
    /// Pipeline to benchmark (its star schema and topic layout).
    #[arg(long, env = "BENCH_PIPELINE", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/shop-pipeline.yaml"))]
    pipeline: PathBuf,
    /// Partitions per topic.
    #[arg(long, env = "BENCH_PARTITIONS", default_value_t = 3)]
    partitions: i32,
    /// Largest sink batch (and rows per raw insert).
    #[arg(long, env = "BENCH_BATCH_EVENTS", default_value_t = 20_000)]
    batch_events: usize,
    /// Run the sink with the post-write lookup re-check (needed with several replicas).
    #[arg(long, env = "BENCH_LOOKUP_RECHECK", default_value_t = true, action = clap::ArgAction::Set)]
    lookup_recheck: bool,
    /// Largest record batch the benchmark's producer builds (librdkafka's `batch.size`). A consumer
    /// fetches whole record batches, so this sets the sink's fetch grain. The default is the
    /// capture's (`--kafka-batch-kib 128`); librdkafka's own, 1 000 000, is what a producer that
    /// leaves it writes while behind, and lets about half of the facts reach the sink first.
    #[arg(long, env = "BENCH_PRODUCE_BATCH_BYTES", default_value_t = 128 * 1024)]
    produce_batch_bytes: usize,
    /// Orders and items that reference rows coming later in the stream (see `generate`).
    #[arg(long, env = "BENCH_FACT_FIRST")]
    fact_first: bool,
    /// Keep the benchmark's ClickHouse database afterwards.
    #[arg(long, env = "BENCH_KEEP")]
    keep: bool,
}

const COUNTRIES: [&str; 4] = ["FR", "DE", "IT", "ES"];

/// The events of the benchmark: (table, key, body). In the order a source with the example's foreign
/// keys writes them (an order's customer, an item's order and product exist before it, and updates
/// change existing rows), unless `fact_first`: then orders and items reference rows that come later
/// in the stream, each arriving dimension rewriting the facts written before it (a backlog's worst
/// case, and the shape this benchmark had before).
fn generate(events: usize, fact_first: bool) -> Vec<(&'static str, u64, Vec<u8>)> {
    let mut out = Vec::with_capacity(events);
    let customers = (events / 10).max(1) as u64;
    let products = (events / 50).max(1) as u64;
    let orders = (events * 28 / 100).max(1) as u64;
    let mut lsn = 0x1_0000_u64;
    let mut counters = [0_u64; 4];
    let created = "2024-05-06T07:08:09.123456Z";
    while out.len() < events {
        lsn += 1;
        let n = out.len() as u64;
        // A row id among `count` that exist by now (the first `count` ids, or all of them).
        let existing = |id: u64, count: u64, emitted: u64| {
            if fact_first {
                id % count
            } else {
                id % emitted.clamp(1, count)
            }
        };
        let metadata = |table: &str, operation: &str| json!({"table": table, "operation": operation, "lsn": Lsn(lsn).to_string()});
        let customer = |metadata, id, name: &str, country: &str, city: &str| {
            json!({"metadata": metadata, "payload":
            {"id": id, "email": format!("c{id}@example.com"), "name": name,
             "country": country, "city": city, "createdAt": created}})
        };
        // Per 50 events: 5 customers, 1 product, 14 orders, 28 items, 2 updates.
        let (table, key, body) = match n % 50 {
            0..=4 => {
                let id = counters[0] % customers;
                counters[0] += 1;
                (
                    "customer",
                    id,
                    customer(
                        metadata("customer", "insert"),
                        id,
                        &format!("customer {id}"),
                        COUNTRIES[(id % 4) as usize],
                        "Paris",
                    ),
                )
            }
            5 => {
                let id = counters[1] % products;
                counters[1] += 1;
                (
                    "product",
                    id,
                    json!({"metadata": metadata("product", "insert"), "payload":
                    {"id": id, "name": format!("product {id}"), "category": "office",
                     "price": 9.5, "createdAt": created}}),
                )
            }
            6..=19 => {
                let id = counters[2] % orders;
                counters[2] += 1;
                (
                    "order",
                    id,
                    json!({"metadata": metadata("order", "insert"), "payload":
                    {"id": id, "customerId": existing(id, customers, counters[0]), "status": "pending",
                     "total": "123.45", "orderDate": created}}),
                )
            }
            20..=47 => {
                let id = counters[3];
                counters[3] += 1;
                (
                    "orderitem",
                    id,
                    json!({"metadata": metadata("orderitem", "insert"), "payload":
                    {"id": id, "orderId": existing(id / 2, orders, counters[2]),
                     "productId": existing(id, products, counters[1]),
                     "quantity": (id % 5) + 1, "price": 4.75}}),
                )
            }
            48 => {
                let id = existing(n, customers, counters[0]);
                (
                    "customer",
                    id,
                    customer(
                        metadata("customer", "update"),
                        id,
                        &format!("renamed {id}"),
                        "NL",
                        "Amsterdam",
                    ),
                )
            }
            _ => {
                let id = existing(n, orders, counters[2]);
                (
                    "order",
                    id,
                    json!({"metadata": metadata("order", "update"), "payload":
                    {"id": id, "customerId": existing(id, customers, counters[0]), "status": "paid",
                     "total": "123.45", "orderDate": created}}),
                )
            }
        };
        out.push((table, key, serde_json::to_vec(&body).expect("json")));
    }
    out
}

/// Seconds a bare consumer takes to read `count` messages of `topics` from the beginning: with
/// librdkafka's default fetch settings (the broker's own ceiling), or with those the sink would use
/// (its defaults and environment: what the sink's own fetch limits allow on this broker).
async fn drain(
    connection: &KafkaConnection,
    topics: &[String],
    count: usize,
    sink_fetch: bool,
) -> anyhow::Result<f64> {
    let mut config = connection.client_config();
    if sink_fetch {
        let sink_args = SinkArgs::try_parse_from(["cdcstar-sink", "--pipeline", "-"])?;
        let partitions = budget_partitions(&partitions_per_topic(
            connection,
            topics,
            Duration::from_secs(10),
        )?);
        sink_args.fetch().apply(&mut config, partitions);
    }
    let consumer: StreamConsumer = config
        .set(
            "group.id",
            format!("bench-drain-{}-{sink_fetch}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
        }
    }
    let started = Instant::now();
    consumer.assign(&assignment)?;
    let mut bytes = 0_usize;
    for _ in 0..count {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .context("the broker drain stalled")??;
        bytes += message.payload().map_or(0, <[u8]>::len);
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "broker drain ({} fetch settings): {count} messages, {:.1} MiB in {seconds:.2} s",
        if sink_fetch {
            "the sink's"
        } else {
            "librdkafka's default"
        },
        bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(seconds)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.pipeline)
        .with_context(|| format!("failed to read {}", args.pipeline.display()))?;
    let mut pipeline: CdcPipeline = serde_yaml::from_str(&text).context("pipeline yaml")?;
    let (name, store) =
        support::private_pipeline(&mut pipeline, "bench", &args.clickhouse_url).await?;
    let plan = StarModel::for_pipeline(&pipeline.spec).context("plan")?;
    let run = |sql: String| {
        let query = store
            .client()
            .query(&sql)
            .with_option("database", "default");
        async move {
            query
                .execute()
                .await
                .with_context(|| format!("failed: {sql}"))
        }
    };
    for table in &plan.tables {
        run(format!(
            "CREATE TABLE `{name}`.`raw_{0}` AS `{name}`.`{0}`",
            table.name
        ))
        .await?;
    }
    let connection = KafkaConnection::new(&[&args.kafka_brokers]);
    let mut topics = pipeline.data_topics();
    topics.push(pipeline.dead_letter_topic());
    ensure_topics(&connection, &topics, args.partitions).await?;

    let events = generate(args.events, args.fact_first);
    println!("benchmark: {} events, database {name}", events.len());
    let producer: FutureProducer = connection
        .client_config()
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("batch.size", args.produce_batch_bytes.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "lz4")
        .create()?;
    let started = Instant::now();
    for chunk in events.chunks(20_000) {
        let sends = chunk.iter().map(|(table, key, body)| {
            let key = key.to_string();
            let topic = pipeline.topic_for_table(table);
            let producer = &producer;
            async move {
                producer
                    .send(
                        FutureRecord::to(&topic).key(&key).payload(body.as_slice()),
                        Duration::from_secs(60),
                    )
                    .await
                    .map_err(|(e, _)| e)
            }
        });
        for result in futures::future::join_all(sends).await {
            result?;
        }
    }
    let produce_seconds = started.elapsed().as_secs_f64();
    println!(
        "broker produce (the benchmark's producer, lz4, acks=all): {} events in {produce_seconds:.1} s = {:.0} events/s",
        events.len(),
        events.len() as f64 / produce_seconds
    );
    let drain_seconds = drain(&connection, &pipeline.data_topics(), events.len(), false).await?;
    let sink_fetch_seconds =
        drain(&connection, &pipeline.data_topics(), events.len(), true).await?;

    // The sink.
    let started = Instant::now();
    let (sink, metrics_addr) = support::start_sink(
        &pipeline,
        &args.kafka_brokers,
        &args.clickhouse_url,
        &[
            format!("--batch-events={}", args.batch_events),
            format!("--lookup-recheck={}", args.lookup_recheck),
        ],
    )?;
    let pid = sink.0.id();
    let mut peak;
    let (apply_seconds, metrics) = loop {
        if let Some(s) = sample(pid) {
            peak = s;
        } else {
            bail!("the sink exited early");
        }
        if let Some(text) = metrics_text(&metrics_addr).await
            && metric_sum(&text, "cdcstar_sink_events_flushed_total ") >= events.len() as f64
        {
            break (metric_sum(&text, "cdcstar_sink_apply_seconds_sum "), text);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sink_seconds = started.elapsed().as_secs_f64();
    if let Some(s) = sample(pid) {
        peak = s;
    }
    drop(sink);

    // The raw insert of the same rows.
    let mut per_table: Vec<Vec<Row>> = vec![Vec::new(); plan.tables.len()];
    for (_, _, body) in &events {
        for change in route(&plan, body)?.changes {
            let table = &plan.tables[change.table];
            let mut values = change.values;
            values.extend(table.lookups.iter().map(|l| default_value(&l.ty)));
            per_table[change.table].push(Row {
                values,
                lsn: change.version,
                deleted: false,
                source_lsn: change.version,
            });
        }
    }
    let raw_plans: Vec<_> = plan
        .tables
        .iter()
        .map(|t| cdcstar_crds::star_model::TableModel {
            name: format!("raw_{}", t.name),
            ..t.clone()
        })
        .collect();
    let started = Instant::now();
    for (table, rows) in raw_plans.iter().zip(&per_table) {
        for chunk in rows.chunks(args.batch_events) {
            store.insert(table, chunk).await?;
        }
    }
    let raw_seconds = started.elapsed().as_secs_f64();

    // Checks and figures.
    for table in &plan.tables {
        let mut counts = Vec::new();
        for name in [table.name.clone(), format!("raw_{}", table.name)] {
            let sql = format!("SELECT count() FROM `{name}` FINAL");
            let rows = store
                .select(&name, &sql, &[cdcstar_crds::ColumnType::UInt64])
                .await?;
            counts.push(rows.into_iter().next().unwrap_or_default());
        }
        ensure!(
            counts[0] == counts[1],
            "{}: the sink and the raw insert hold different row counts: {counts:?}",
            table.name
        );
    }
    let n = events.len() as f64;
    let sink_rate = n / sink_seconds;
    let raw_rate = n / raw_seconds;
    let drain_rate = n / drain_seconds;
    let produce_rate = n / produce_seconds;
    let ceiling = raw_rate.min(drain_rate);
    println!(
        "broker (fixture, {}) in this run: produce {produce_rate:.0} events/s; drain by a bare consumer {n} messages in {drain_seconds:.2} s = {drain_rate:.0} messages/s \
         (with the sink's fetch settings: {:.0} messages/s)",
        std::env::var("CDCSTAR_BENCH_BROKER").unwrap_or_else(|_| args.kafka_brokers.clone()),
        n / sink_fetch_seconds
    );
    println!("raw insert: {n} rows in {raw_seconds:.2} s = {raw_rate:.0} rows/s");
    println!("sink:       {n} events in {sink_seconds:.2} s = {sink_rate:.0} events/s");
    println!(
        "ratio:      {:.1} % of the raw insert rate; {:.0} % of the fixtures' ceiling min(broker drain, raw insert) = {ceiling:.0}/s",
        100.0 * sink_rate / raw_rate,
        100.0 * sink_rate / ceiling
    );
    let apply_rate = n / apply_seconds.max(f64::EPSILON);
    println!(
        "ClickHouse work of the sink (sum of batch apply times; consumption overlaps it): {apply_seconds:.2} s = {apply_rate:.0} events/s = {:.0} % of the raw insert rate",
        100.0 * apply_rate / raw_rate
    );
    println!(
        "the sink's statements in {:.0} batches (--lookup-recheck {}):\n{}",
        metric_sum(&metrics, "cdcstar_sink_apply_seconds_count "),
        args.lookup_recheck,
        support::statement_report(&metrics).trim_end()
    );
    println!(
        "fact rows written before a row they look up (defaults until propagation rewrites them): {:.0}; rows rewritten by propagation: {:.0}",
        metric_sum(&metrics, "cdcstar_sink_rows_unresolved_total "),
        metric_sum(&metrics, "cdcstar_sink_rows_propagated_total ")
    );
    println!(
        "sink peak RSS {:.1} MiB, CPU {:.1} s ({:.0} % of one core over the run) = {:.1} us of CPU per event = {:.0} events per CPU-second",
        peak.peak_rss_kib as f64 / 1024.0,
        peak.cpu_seconds,
        100.0 * peak.cpu_seconds / sink_seconds,
        1e6 * peak.cpu_seconds / n,
        n / peak.cpu_seconds.max(f64::EPSILON)
    );
    if !args.keep {
        run(format!("DROP DATABASE IF EXISTS `{name}`")).await?;
    }
    Ok(())
}
