//! The broker's own share, measured without Postgres, the capture's encoding or the sink:
//!
//! - `ceiling`: snapshot-sized envelopes produced as fast as the capture's own producer
//!   ([`EventProducer`], same settings) can get them acknowledged: the most any snapshot can reach
//!   against this broker; then the same events read back by a bare consumer: the most any consumer
//!   (the sink) can drain from it;
//! - `round_trip`: at a fixed rate, with the capture's streaming producer settings, produce →
//!   acknowledged and produce → consumed by a consumer that polls without delay: what the broker
//!   adds to end-to-end latency.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cdcstar_capture::acks::AckTracker;
use cdcstar_capture::producer::{BatchAcks, EventProducer, ProducerSettings, producer_config};
use cdcstar_crds::envelope::Lsn;
use cdcstar_runtime::kafka::{KafkaConnection, ensure_topics};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::Notify;

use crate::{pace, percentile};

const PARTITIONS: i32 = 3;

async fn fresh_topic(connection: &KafkaConnection, what: &str) -> Result<String> {
    let topic = format!(
        "cdcstar-bench-{what}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    ensure_topics(connection, std::slice::from_ref(&topic), PARTITIONS).await?;
    Ok(topic)
}

/// Produces `messages` read envelopes of a 3-column row with the capture's producer and settings.
pub async fn ceiling(brokers: &str, messages: u64, settings: ProducerSettings) -> Result<()> {
    const BATCH: u64 = 10_000;
    let connection = KafkaConnection::new(&[brokers]);
    let topic = fresh_topic(&connection, "ceiling").await?;
    let producer = EventProducer::new(
        &connection,
        &settings,
        Arc::new(Mutex::new(AckTracker::new(Lsn(0)))),
        Arc::new(Notify::new()),
    )?;
    let began = Instant::now();
    let (mut payload, mut key) = (Vec::with_capacity(256), Vec::with_capacity(16));
    let mut batches = Vec::new();
    for first in (0..messages).step_by(BATCH as usize) {
        let acks = Arc::new(BatchAcks::default());
        for id in first..(first + BATCH).min(messages) {
            payload.clear();
            key.clear();
            write!(key, "{id}")?;
            write!(
                payload,
                r#"{{"metadata":{{"table":"bench_snapshot","operation":"read"}},"payload":{{"id":{id},"note":"row {id}","v":{}}}}}"#,
                id * 7
            )?;
            producer
                .send_snapshot(&topic, Some(&key), &payload, &acks)
                .await?;
        }
        batches.push(acks);
    }
    for acks in batches {
        acks.wait().await.map_err(anyhow::Error::msg)?;
    }
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "broker produce ceiling (fixture): {messages} snapshot-sized events acknowledged in {seconds:.1} s = {:.0} events/s \
         (the capture's producer: {}; no Postgres, no encoding)",
        messages as f64 / seconds,
        settings.describe()
    );
    drop(producer);
    let seconds = drain(&connection, &topic, messages).await?;
    println!(
        "broker drain ceiling (fixture): {messages} events read back by a bare consumer in {seconds:.1} s = {:.0} events/s",
        messages as f64 / seconds
    );
    Ok(())
}

/// Seconds a bare consumer (no group, no processing) takes to read `messages` messages of `topic`
/// from the beginning: what any consumer can get out of this broker.
async fn drain(connection: &KafkaConnection, topic: &str, messages: u64) -> Result<f64> {
    let consumer: StreamConsumer = connection
        .client_config()
        .set("group.id", format!("{topic}-drain"))
        .set("enable.auto.commit", "false")
        .create()
        .context("create the drain consumer")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..count_partitions(&consumer, topic)? {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    let began = Instant::now();
    consumer.assign(&assignment)?;
    for _ in 0..messages {
        tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .context("the drain stalled: nothing consumed for 30 s")??;
    }
    Ok(began.elapsed().as_secs_f64())
}

/// The topic's partition count as the broker reports it (a broker without CreateTopics picks its own).
fn count_partitions(consumer: &StreamConsumer, topic: &str) -> Result<i32> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    anyhow::ensure!(partitions > 0, "topic {topic} has no partitions");
    Ok(i32::try_from(partitions)?)
}

/// At `rate` messages/s for `seconds`: produce → acknowledged and produce → consumed.
pub async fn round_trip(
    brokers: &str,
    rate: u64,
    seconds: u64,
    settings: ProducerSettings,
) -> Result<()> {
    const FETCH_WAIT_MS: &str = "10";
    let connection = KafkaConnection::new(&[brokers]);
    let topic = fresh_topic(&connection, "round-trip").await?;
    let producer: FutureProducer = producer_config(&connection, &settings)
        .create()
        .context("create the round-trip producer")?;
    let consumer: StreamConsumer = connection
        .client_config()
        .set("group.id", &topic)
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", FETCH_WAIT_MS)
        .set("fetch.min.bytes", "1")
        .create()
        .context("create the round-trip consumer")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..count_partitions(&consumer, &topic)? {
        assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let base = Instant::now();
    let total = rate * seconds;
    let consumed = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(total as usize);
        while (samples.len() as u64) < total {
            let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
                .await
                .context("nothing consumed for 30 s")??;
            let sent_nanos: u64 =
                std::str::from_utf8(message.payload().unwrap_or_default())?.parse()?;
            let now = base.elapsed().as_nanos() as u64;
            samples.push(now.saturating_sub(sent_nanos) as f64 / 1e6);
        }
        anyhow::Ok(samples)
    });
    // Let the consumer connect before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked: Arc<Mutex<Vec<f64>>> = Arc::default();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut next_at = Instant::now();
    let mut deliveries = Vec::with_capacity(total as usize);
    for n in 0..total {
        let sent = Instant::now();
        let payload = (sent - base).as_nanos().to_string();
        let key = n.to_string();
        let delivery = producer
            .send_result(FutureRecord::to(&topic).key(&key).payload(&payload))
            .map_err(|(err, _)| err)?;
        let acked = Arc::clone(&acked);
        deliveries.push(tokio::spawn(async move {
            if let Ok(Ok(_)) = delivery.await {
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                acked.lock().expect("not poisoned").push(ms);
            }
        }));
        next_at += interval;
        pace(next_at).await;
    }
    for delivery in deliveries {
        delivery.await?;
    }
    let mut consumed = consumed.await??;
    let mut acked = std::mem::take(&mut *acked.lock().expect("not poisoned"));
    acked.sort_by(f64::total_cmp);
    consumed.sort_by(f64::total_cmp);
    println!(
        "broker alone (fixture), {rate} msg/s for {seconds} s: produce -> acked (the capture's producer: {}) p50 {:.1} ms, p99 {:.1} ms; \
         produce -> consumed (fetch.wait.max.ms {FETCH_WAIT_MS}) p50 {:.1} ms, p99 {:.1} ms",
        settings.describe(),
        percentile(&acked, 0.5),
        percentile(&acked, 0.99),
        percentile(&consumed, 0.5),
        percentile(&consumed, 0.99),
    );
    Ok(())
}
