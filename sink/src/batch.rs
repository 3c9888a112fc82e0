//! The batch being accumulated: routed row changes, events bound for the dead-letter topic, and the
//! highest offset seen per partition, with the row, byte and age limits that end it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::{Offset, TopicPartitionList};

use crate::dlq::DeadLetter;
use crate::metrics::{Metrics, label};
use crate::plan::Plan;
use crate::route::{RowChange, route};

/// When a batch is flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Events.
    pub max_events: usize,
    /// Message bytes.
    pub max_bytes: usize,
    /// Age of the oldest event.
    pub max_wait: Duration,
}

/// One consumed message, as the batch needs it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Message key.
    pub key: Option<&'a [u8]>,
    /// Message body (`None` for a tombstone).
    pub payload: Option<&'a [u8]>,
}

/// Events consumed since the last flush.
#[derive(Debug, Default)]
pub struct Batch {
    /// Row changes, in consumption order.
    pub changes: Vec<RowChange>,
    /// Events that cannot be applied.
    pub dead_letters: Vec<DeadLetter>,
    /// Highest offset per (topic, partition).
    pub offsets: BTreeMap<(String, i32), i64>,
    /// Commit times (seconds since the epoch) of the events that had one.
    pub commit_times: Vec<f64>,
    /// Messages in the batch.
    pub events: usize,
    /// Bytes of the messages.
    pub bytes: usize,
    /// When the first message arrived.
    pub started: Option<Instant>,
}

impl Batch {
    /// Adds a message: routed when it is a valid event, else queued for the dead-letter topic.
    pub fn push(&mut self, plan: &Plan, message: Message<'_>, metrics: &Metrics) {
        self.started.get_or_insert_with(Instant::now);
        self.events += 1;
        let entry = self
            .offsets
            .entry((message.topic.to_owned(), message.partition))
            .or_insert(message.offset);
        *entry = (*entry).max(message.offset);
        // NB: a tombstone (no body) carries no change; its offset is still committed.
        let Some(payload) = message.payload else {
            return;
        };
        self.bytes += payload.len();
        match route(plan, payload) {
            Ok(routed) => {
                metrics
                    .events_consumed
                    .get_or_create(&label("table", routed.source.as_str()))
                    .inc();
                if let Some(t) = routed.commit_time {
                    self.commit_times.push(t);
                }
                self.changes.extend(routed.changes);
            }
            Err(error) => {
                let table = serde_json::from_slice::<serde_json::Value>(payload)
                    .ok()
                    .and_then(|v| v["metadata"]["table"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unknown".to_owned());
                metrics
                    .events_consumed
                    .get_or_create(&label("table", table.as_str()))
                    .inc();
                tracing::warn!(topic = message.topic, partition = message.partition,
                    offset = message.offset, %error, "event goes to the dead-letter topic");
                self.dead_letters.push(DeadLetter {
                    table,
                    kind: error.kind(),
                    reason: error.to_string(),
                    topic: message.topic.to_owned(),
                    partition: message.partition,
                    offset: message.offset,
                    key: message.key.map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                });
            }
        }
    }

    /// Whether the batch must be flushed now.
    pub fn is_full(&self, limits: &BatchLimits) -> bool {
        self.events >= limits.max_events || self.bytes >= limits.max_bytes
    }

    /// Whether the batch must be flushed even though more events are immediately available: it is
    /// full, or its first event is older than the wait limit.
    pub fn is_due(&self, limits: &BatchLimits) -> bool {
        self.is_full(limits) || self.started.is_some_and(|s| s.elapsed() >= limits.max_wait)
    }

    /// Whether nothing was consumed since the last flush.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The offsets to store once the batch is applied: the next offset to read per partition.
    pub fn offsets_to_store(&self) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in &self.offsets {
            // NB: the partition was just added, so setting its offset cannot fail.
            let _ = list.add_partition_offset(topic, *partition, Offset::Offset(offset + 1));
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::shop;

    fn message<'a>(offset: i64, payload: &'a [u8]) -> Message<'a> {
        Message {
            topic: "t",
            partition: 2,
            offset,
            key: None,
            payload: Some(payload),
        }
    }

    #[test]
    fn valid_events_route_and_poison_is_queued_with_its_bytes() {
        let plan = Plan::for_pipeline(&shop().spec).unwrap();
        let metrics = Metrics::new();
        let mut batch = Batch::default();
        let good = br#"{"metadata":{"lsn":"0/1","operation":"insert","table":"product"},
                        "payload":{"id":1,"name":"Pen","category":"x","price":2}}"#;
        batch.push(&plan, message(7, good), &metrics);
        batch.push(&plan, message(8, b"{oops"), &metrics);
        assert_eq!(batch.changes.len(), 1);
        assert_eq!(batch.dead_letters.len(), 1);
        assert_eq!(batch.dead_letters[0].payload, b"{oops");
        assert_eq!(batch.dead_letters[0].kind, "invalid_envelope");
        assert_eq!(batch.events, 2);
        let offsets = batch.offsets_to_store();
        let stored = offsets.find_partition("t", 2).unwrap();
        assert_eq!(stored.offset(), Offset::Offset(9));
    }

    fn limits(max_events: usize, max_wait_ms: u64) -> BatchLimits {
        BatchLimits {
            max_events,
            max_bytes: 1000,
            max_wait: Duration::from_millis(max_wait_ms),
        }
    }

    #[test]
    fn limits_end_the_batch() {
        let limits = limits(2, 200);
        let plan = Plan::for_pipeline(&shop().spec).unwrap();
        let metrics = Metrics::new();
        let mut batch = Batch::default();
        assert!(!batch.is_due(&limits));
        batch.push(&plan, message(1, b"x"), &metrics);
        assert!(!batch.is_full(&limits));
        assert!(!batch.is_due(&limits));
        batch.push(&plan, message(2, b"y"), &metrics);
        assert!(batch.is_full(&limits));
        assert!(batch.is_due(&limits));
    }

    #[test]
    fn an_old_batch_is_due_before_it_is_full() {
        let limits = limits(100, 20);
        let plan = Plan::for_pipeline(&shop().spec).unwrap();
        let mut batch = Batch::default();
        batch.push(&plan, message(1, b"x"), &Metrics::new());
        assert!(!batch.is_due(&limits));
        std::thread::sleep(Duration::from_millis(25));
        assert!(batch.is_due(&limits));
        assert!(!batch.is_full(&limits));
    }
}
