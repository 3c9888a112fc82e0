//! `cdcstar-propagation-bench`: how long one dimension change takes to reach every fact that looks it
//! up, and what it costs the sink, on the example shop schema.
//!
//! 1. Builds, directly in ClickHouse, one customer with N orders (their `customer_name` and
//!    `customer_email` current) and N/5 order items on those orders (their `customer_country` and
//!    `customer_city` current through the order), plus N/10 orders of another customer.
//! 2. Starts the `cdcstar-sink` binary on empty topics and samples its idle RSS.
//! 3. Produces one update of that customer (new name, email, country and city) and times it until
//!    the sink has flushed it (a batch is flushed after its propagation is written), sampling RSS.
//! 4. Checks that every order and item shows the new values and the other customer's orders do not,
//!    and prints the time, the rows written, the statements sent per kind (the sink's metrics), the
//!    sink's idle and peak RSS, and the fixture's own figure for the same rows: ClickHouse rewriting
//!    the N orders with a plain `INSERT ... SELECT ... FINAL` (no join, no comparison), timed.
//!
//! `make bench-propagation` runs it for 100 000 and 1 000 000 facts on a private mock broker.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use cdcstar_crds::{CdcPipeline, Lsn};
use cdcstar_runtime::kafka::{KafkaConnection, ensure_topics};
use clap::Parser;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use support::{metric_sum, metrics_text, sample};

#[path = "support/mod.rs"]
mod support;

/// Benchmark of one dimension change reaching N facts.
#[derive(Debug, Parser)]
struct Args {
    /// Orders of the changed customer (items: a fifth of that).
    #[arg(long, env = "BENCH_FACTS", default_value_t = 100_000)]
    facts: u64,
    /// Bootstrap brokers of the benchmark's topics, `host:port[,host:port...]`.
    #[arg(long, env = "KAFKA_BROKERS")]
    kafka_brokers: String,
    /// ClickHouse HTTP endpoint.
    #[arg(long, env = "CLICKHOUSE_URL")]
    clickhouse_url: String,
    /// Run the sink with the lookup re-check (needed with several replicas).
    #[arg(long, env = "BENCH_LOOKUP_RECHECK", default_value_t = true, action = clap::ArgAction::Set)]
    lookup_recheck: bool,
    /// Keep the benchmark's ClickHouse database afterwards.
    #[arg(long, env = "BENCH_KEEP")]
    keep: bool,
}

const CUSTOMER: u64 = 7;
const OTHER_CUSTOMER: u64 = 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = include_str!("../../../examples/shop-pipeline.yaml");
    let mut pipeline: CdcPipeline = serde_yaml::from_str(text).context("pipeline yaml")?;
    pipeline.spec.kafka.topics.partitions = 1;
    let (name, store) =
        support::private_pipeline(&mut pipeline, "propagation_bench", &args.clickhouse_url).await?;
    let run = |sql: String| {
        let query = store.client().query(&sql).with_option("database", &name);
        async move {
            query
                .execute()
                .await
                .with_context(|| format!("failed: {sql}"))
        }
    };

    // 1. The facts, written as the sink would have: versions from 0x1000 up, lookups current.
    let facts = args.facts;
    let items = facts / 5;
    let others = facts / 10;
    let started = Instant::now();
    run(format!(
        "INSERT INTO customer_dim VALUES ({CUSTOMER}, 'before@example.com', 'before', 'FR', 'Paris', \
         '2024-01-01 00:00:00', 16, 0), ({OTHER_CUSTOMER}, 'other@example.com', 'other', 'IT', \
         'Rome', '2024-01-01 00:00:00', 17, 0)"
    ))
    .await?;
    run(
        "INSERT INTO product_dim VALUES (1, 'pen', 'office', 2.5, '2024-01-01 00:00:00', 18, 0)"
            .into(),
    )
    .await?;
    run(format!(
        "INSERT INTO order_fact SELECT number + 1, if(number < {facts}, {CUSTOMER}, {OTHER_CUSTOMER}), \
         'pending', 19.99, '2024-02-03 04:05:06', if(number < {facts}, 'before', 'other'), \
         if(number < {facts}, 'before@example.com', 'other@example.com'), 4096 + number, \
         4096 + number, 0 FROM numbers({})",
        facts + others
    ))
    .await?;
    run(format!(
        "INSERT INTO orderitem_fact SELECT number + 1, number * 5 + 1, 1, 2, 1.25, 'pen', 'office', \
         'pending', '2024-02-03 04:05:06', 'FR', 'Paris', 4096 + {} + number, 4096 + {} + number, 0 \
         FROM numbers({items})",
        facts + others,
        facts + others
    ))
    .await?;
    println!(
        "propagation benchmark: customer {CUSTOMER} with {facts} orders and {items} items (and {others} \
         orders of another customer) built in {:.1} s, database {name}",
        started.elapsed().as_secs_f64()
    );

    // 2. The sink, idle.
    let connection = KafkaConnection::new(&[&args.kafka_brokers]);
    let mut topics = pipeline.data_topics();
    topics.push(pipeline.dead_letter_topic());
    ensure_topics(&connection, &topics, 1).await?;
    let (sink, metrics_addr) = support::start_sink(
        &pipeline,
        &args.kafka_brokers,
        &args.clickhouse_url,
        &[format!("--lookup-recheck={}", args.lookup_recheck)],
    )?;
    let pid = sink.0.id();
    let ready = Instant::now();
    loop {
        let Some(text) = metrics_text(&metrics_addr).await else {
            ensure!(sample(pid).is_some(), "the sink exited early");
            ensure!(
                ready.elapsed() < Duration::from_secs(60),
                "the sink did not answer"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if metric_sum(&text, "cdcstar_sink_ready ") >= 1.0 {
            break;
        }
        ensure!(
            ready.elapsed() < Duration::from_secs(60),
            "the sink did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = sample(pid).context("the sink exited")?;

    // 3. The change.
    let producer: FutureProducer = connection.client_config().create()?;
    let body = serde_json::to_vec(&json!({
        "metadata": {"table": "customer", "operation": "update", "lsn": Lsn(1 << 40).to_string()},
        "payload": {"id": CUSTOMER, "email": "after@example.com", "name": "after", "country": "DE",
                    "city": "Berlin", "createdAt": "2024-01-01T00:00:00Z"},
    }))?;
    let topic = pipeline.topic_for_table("customer");
    let key = CUSTOMER.to_string();
    let started = Instant::now();
    producer
        .send(
            FutureRecord::to(&topic).key(&key).payload(&body),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)?;
    let mut last;
    let mut peak_rss_kib = idle.rss_kib;
    let (seconds, metrics) = loop {
        match sample(pid) {
            Some(s) => last = s,
            None => bail!("the sink exited during the propagation"),
        }
        peak_rss_kib = peak_rss_kib.max(last.rss_kib);
        if let Some(text) = metrics_text(&metrics_addr).await
            && metric_sum(&text, "cdcstar_sink_events_flushed_total ") >= 1.0
        {
            break (started.elapsed().as_secs_f64(), text);
        }
        ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the change was not flushed within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    if let Some(s) = sample(pid) {
        last = s;
        peak_rss_kib = peak_rss_kib.max(last.rss_kib);
    }
    drop(sink);

    // 4. Checks and figures.
    let count = |sql: String| {
        let store = &store;
        async move {
            store
                .count("bench", &sql)
                .await
                .with_context(|| format!("failed: {sql}"))
        }
    };
    let orders_after = count(format!(
        "SELECT count() FROM order_fact FINAL WHERE customer_id = {CUSTOMER} \
         AND customer_name = 'after' AND customer_email = 'after@example.com'"
    ))
    .await?;
    let items_after = count(
        "SELECT count() FROM orderitem_fact FINAL WHERE customer_country = 'DE' \
         AND customer_city = 'Berlin'"
            .into(),
    )
    .await?;
    let others_untouched = count(format!(
        "SELECT count() FROM order_fact FINAL WHERE customer_id = {OTHER_CUSTOMER} \
         AND customer_name = 'other'"
    ))
    .await?;
    ensure!(
        orders_after as u64 == facts && items_after as u64 == items,
        "after the flush {orders_after}/{facts} orders and {items_after}/{items} items show the change"
    );
    ensure!(
        others_untouched as u64 == others,
        "{others_untouched}/{others} orders of the other customer kept their values"
    );
    let started = Instant::now();
    run(
        "CREATE TABLE fixture_rewrite AS order_fact ENGINE = ReplacingMergeTree(lsn, is_deleted) \
         ORDER BY order_id"
            .into(),
    )
    .await?;
    run(format!(
        "INSERT INTO fixture_rewrite SELECT * FROM order_fact FINAL WHERE customer_id = {CUSTOMER}"
    ))
    .await?;
    let fixture_seconds = started.elapsed().as_secs_f64();

    let written = metric_sum(&metrics, "cdcstar_sink_rows_written_total{");
    let propagated = metric_sum(&metrics, "cdcstar_sink_rows_propagated_total ");
    let rechecked = metric_sum(&metrics, "cdcstar_sink_rows_rechecked_total ");
    println!(
        "change -> every fact shows it (flushed): {seconds:.2} s for {facts} orders + {items} items = \
         {:.0} facts/s (lookup re-check {})",
        (facts + items) as f64 / seconds,
        if args.lookup_recheck { "on" } else { "off" }
    );
    println!(
        "rows written: {written:.0} ({propagated:.0} propagated, {rechecked:.0} by the re-check); \
         statements:\n{}",
        support::statement_report(&metrics)
    );
    println!(
        "fixture (ClickHouse adapter) rewriting the {facts} orders alone with a plain INSERT ... SELECT \
         FINAL: {fixture_seconds:.2} s"
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "sink RSS: idle {:.1} MiB, highest sampled during the propagation {:.1} MiB (+{:.1} MiB; \
         sampled every 10 ms), high-water mark since start {:.1} MiB (idle: {:.1}); CPU {:.2} s for \
         the change",
        mib(idle.rss_kib),
        mib(peak_rss_kib),
        mib(peak_rss_kib) - mib(idle.rss_kib),
        mib(last.peak_rss_kib),
        mib(idle.peak_rss_kib),
        last.cpu_seconds - idle.cpu_seconds
    );
    if !args.keep {
        let query = store
            .client()
            .query(&format!("DROP DATABASE IF EXISTS `{name}`"))
            .with_option("database", "default");
        query.execute().await?;
    }
    Ok(())
}
