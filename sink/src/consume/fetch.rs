//! How the consumer fetches from the brokers: a TOTAL prefetch budget divided across the partitions it
//! may be assigned, and a short fetch wait.
//!
//! librdkafka's `queued.max.messages.kbytes` and `max.partition.fetch.bytes` are per partition: 12
//! partitions with a 16 MiB queue each may hold 192 MiB ahead of the consumer. The sink therefore
//! divides its budget by the partition count of the topics it subscribes to (every partition may be
//! assigned to one replica), and bounds one fetch response (`fetch.max.bytes`) by the same budget.
//!
//! librdkafka also keeps up to `queued.min.messages` (default 100 000) messages queued PER
//! partition; each holds a queue entry and keeps its decompressed record batch alive, so a backlog
//! filled the sink's memory whatever the byte limit. The sink bounds it by a total message budget
//! (its largest batch) divided the same way.
//!
//! `fetch.wait.max.ms` is how long a broker may hold a fetch that finds no new data. A Kafka broker
//! answers as soon as data arrives, so a short wait only costs idle fetch requests; some brokers
//! (the tansu fixture among them) hold every fetch for the whole wait, data or not, so it bounds the
//! latency of every fetch.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;

use cdcstar_runtime::kafka::KafkaConnection;

/// Smallest per-partition share of the budget, in KiB (a few record batches).
pub const MIN_PARTITION_KBYTES: usize = 64;
/// Largest message librdkafka must be able to fetch (its `message.max.bytes` default); a fetch
/// response is never bounded below it.
pub const MIN_FETCH_BYTES: usize = 1_000_000;

/// Record batches arrive compressed and are held decompressed (with one queue entry per message):
/// a partition fetches at most this fraction of its share per request, so a compressed fetch
/// expands to about its share. A record batch larger than that is still fetched whole.
pub const COMPRESSION_ALLOWANCE: usize = 4;

/// Smallest per-partition share of the message budget.
pub const MIN_PARTITION_MESSAGES: usize = 100;

/// Fetch settings of a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchSettings {
    /// Most KiB of messages fetched ahead of the application, over all partitions.
    pub prefetch_kbytes: usize,
    /// Messages librdkafka tries to keep queued ahead of the application, over all partitions
    /// (its per-partition `queued.min.messages` defaults to 100 000: every message of a backlog
    /// holds a decompressed copy of its record batch and a queue entry, whatever the byte limit).
    pub prefetch_messages: usize,
    /// Longest time a broker may hold a fetch request.
    pub fetch_wait: Duration,
}

impl FetchSettings {
    /// The per-partition share of the budget when `partitions` partitions may be assigned.
    pub fn partition_kbytes(&self, partitions: usize) -> usize {
        (self.prefetch_kbytes / partitions.max(1)).max(MIN_PARTITION_KBYTES)
    }

    /// Sets the fetch properties on `config` for a consumer of `partitions` partitions.
    pub fn apply(&self, config: &mut ClientConfig, partitions: usize) {
        let partition_kbytes = self.partition_kbytes(partitions);
        let partition_messages =
            (self.prefetch_messages / partitions.max(1)).max(MIN_PARTITION_MESSAGES);
        config
            .set("queued.min.messages", partition_messages.to_string())
            .set("queued.max.messages.kbytes", partition_kbytes.to_string())
            .set(
                "max.partition.fetch.bytes",
                (partition_kbytes * 1024 / COMPRESSION_ALLOWANCE).to_string(),
            )
            .set(
                "fetch.max.bytes",
                (self.prefetch_kbytes * 1024 / 2)
                    .max(MIN_FETCH_BYTES)
                    .to_string(),
            )
            .set(
                "fetch.wait.max.ms",
                self.fetch_wait.as_millis().max(1).to_string(),
            )
            // NB: with queues this small, librdkafka finds a partition's queue full at almost every
            // fetch and then postpones the partition's next fetch by this much (default 1 s): the
            // bare consumer drained 300 000 messages in 14-23 s with it, whatever the budget.
            .set(
                "fetch.queue.backoff.ms",
                self.fetch_wait.as_millis().max(1).to_string(),
            );
    }
}

/// The number of partitions of each of `topics`, in order (0 for a topic the broker does not have).
pub fn partitions_per_topic(
    connection: &KafkaConnection,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<(String, usize)>, KafkaError> {
    let client: BaseConsumer = connection.client_config().create()?;
    let mut counts = Vec::with_capacity(topics.len());
    for topic in topics {
        let metadata = client.fetch_metadata(Some(topic), timeout)?;
        let partitions = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .map(|t| t.partitions().len())
            .sum::<usize>();
        counts.push((topic.clone(), partitions));
    }
    Ok(counts)
}

/// The partitions the prefetch budget is divided across: a missing topic counts as one (it is
/// created with at least one, and the budget is only a bound).
pub fn budget_partitions(counts: &[(String, usize)]) -> usize {
    counts
        .iter()
        .map(|(_, partitions)| (*partitions).max(1))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_divided_across_partitions_with_a_floor() {
        let settings = FetchSettings {
            prefetch_kbytes: 12 * 1024,
            prefetch_messages: 24_000,
            fetch_wait: Duration::from_millis(20),
        };
        assert_eq!(settings.partition_kbytes(12), 1024);
        assert_eq!(settings.partition_kbytes(0), 12 * 1024);
        assert_eq!(settings.partition_kbytes(10_000), MIN_PARTITION_KBYTES);

        let mut config = ClientConfig::new();
        settings.apply(&mut config, 12);
        assert_eq!(config.get("queued.max.messages.kbytes"), Some("1024"));
        assert_eq!(config.get("queued.min.messages"), Some("2000"));
        assert_eq!(config.get("max.partition.fetch.bytes"), Some("262144"));
        assert_eq!(config.get("fetch.max.bytes"), Some("6291456"));
        assert_eq!(config.get("fetch.wait.max.ms"), Some("20"));
    }

    #[test]
    fn a_small_budget_still_fetches_a_whole_message() {
        let settings = FetchSettings {
            prefetch_kbytes: 256,
            prefetch_messages: 0,
            fetch_wait: Duration::ZERO,
        };
        let mut config = ClientConfig::new();
        settings.apply(&mut config, 2);
        assert_eq!(config.get("fetch.max.bytes"), Some("1000000"));
        assert_eq!(config.get("fetch.wait.max.ms"), Some("1"));
        assert_eq!(config.get("queued.min.messages"), Some("100"));
    }
}
