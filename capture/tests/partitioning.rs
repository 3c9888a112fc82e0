//! The capture's producer against the real broker: a keyed event lands on the partition Kafka's
//! murmur2 hash of its key names, the partition Redpanda Connect's `kafka_franz` (`murmur2_hash`)
//! chooses for the same key, so a row's changes share a partition with either engine.

mod common;

use std::time::Duration;

use cdcstar_capture::producer::{ProducerSettings, producer_config};
use cdcstar_runtime::kafka::{KafkaConnection, ensure_topics};
use clap::Parser;
use common::{TopicReader, required_env, unique};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), written from its definition.
fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions` by Kafka's default (murmur2) partitioner.
fn murmur2_partition(key: &str, partitions: i32) -> i32 {
    (murmur2(key.as_bytes()) & 0x7fff_ffff) % partitions
}

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    producer: ProducerSettings,
}

#[test]
fn murmur2_matches_the_java_clients_reference_values() {
    for (key, hash) in [
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        (
            "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        ("abc", 479_470_107),
    ] {
        assert_eq!(murmur2(key.as_bytes()), hash, "{key}");
    }
}

#[tokio::test]
async fn keyed_events_land_on_the_murmur2_partition_of_their_key() {
    const PARTITIONS: i32 = 3;
    let connection = KafkaConnection::new(&[required_env("KAFKA_BROKERS")]);
    let topic = unique("partitioning");
    ensure_topics(&connection, std::slice::from_ref(&topic), PARTITIONS)
        .await
        .expect("create topic");
    let settings = Flags::parse_from(["capture"]).producer;
    let producer: BaseProducer = producer_config(&connection, &settings)
        .create()
        .expect("create producer");
    let keys: Vec<String> = (1..=40).map(|id| id.to_string()).collect();
    for key in &keys {
        producer
            .send(BaseRecord::to(&topic).key(key).payload("{}"))
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");

    let mut reader = TopicReader::new(&topic);
    reader.read_until(Duration::from_secs(60), |events| events.len() >= keys.len());
    assert_eq!(reader.events.len(), keys.len());
    let mut used = std::collections::BTreeSet::new();
    for event in &reader.events {
        let key = event.key.as_deref().expect("keyed");
        assert_eq!(
            event.partition,
            murmur2_partition(key, PARTITIONS),
            "key {key}"
        );
        used.insert(event.partition);
    }
    assert_eq!(
        used.len(),
        PARTITIONS as usize,
        "the keys spread over every partition"
    );
}
