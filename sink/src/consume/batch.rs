//! The batch being accumulated: routed row changes (and the message each came from), events bound
//! for the dead-letter topic, and the highest offset seen per partition, with the row, byte and age
//! limits that end it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use cdcstar_crds::star_model::{StarModel, TableId};
use rdkafka::{Offset, TopicPartitionList};

use crate::dead_letters::letter::{DeadLetter, source_table};
use crate::metrics::{Metrics, label};
use crate::route::{CommitPosition, RowChange, route};

/// When a batch is flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_events: usize,
    /// Message bytes.
    pub max_bytes: usize,
    /// Age of the oldest event.
    pub max_wait: Duration,
    /// Least time from the start of one flush to the start of the next when the consumer runs dry
    /// (a full or due batch does not wait for it).
    pub min_interval: Duration,
}

/// One consumed message, as the batch needs it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Message key.
    pub key: Option<&'a [u8]>,
    /// Message body (`None` for a tombstone).
    pub payload: Option<&'a [u8]>,
}

/// Where a message was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The message one routed event came from, and where its row changes end in [`Batch::changes`]
/// (they start where the previous event's end). Kept so that rows ClickHouse refuses can be traced
/// back to their event without keeping every message's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Index in [`Batch::topics`].
    topic: usize,
    partition: i32,
    offset: i64,
    changes_end: usize,
}

/// Events consumed since the last flush.
#[derive(Debug, Default)]
pub struct Batch {
    /// Row changes, in consumption order.
    pub changes: Vec<RowChange>,
    /// One per event that has row changes, in consumption order.
    pub origins: Vec<Origin>,
    /// Topics read, each once: origins and offsets name a topic by its index here.
    pub topics: Vec<String>,
    /// Events that cannot be applied.
    pub dead_letters: Vec<DeadLetter>,
    /// Highest offset per (index in `topics`, partition).
    pub offsets: BTreeMap<(usize, i32), i64>,
    /// Commit times (seconds since the epoch) of the events that had one.
    pub commit_times: Vec<f64>,
    /// Values replaced under their column's `onUnrepresentable` policy, per (star table, index in
    /// its `columns`).
    pub adjusted: BTreeMap<(TableId, usize), u64>,
    /// The highest commit position read per (index in `topics`, partition), from the events that
    /// carry one (changes, truncates, heartbeats).
    pub positions: BTreeMap<(usize, i32), CommitPosition>,
    /// Messages in the batch.
    pub events: usize,
    /// Bytes of the messages.
    pub bytes: usize,
    /// When the first message arrived.
    pub started: Option<Instant>,
}

impl Batch {
    /// Adds a message: routed when it is a valid event, else queued for the dead-letter topic.
    pub fn push(&mut self, plan: &StarModel, message: Message<'_>, metrics: &Metrics) {
        self.started.get_or_insert_with(Instant::now);
        self.events += 1;
        let topic = self.topic_index(message.topic);
        let entry = self
            .offsets
            .entry((topic, message.partition))
            .or_insert(message.offset);
        *entry = (*entry).max(message.offset);
        // NB: a tombstone (no body) carries no change; its offset is still committed.
        let Some(payload) = message.payload else {
            return;
        };
        self.bytes += payload.len();
        match route(plan, payload) {
            Ok(routed) => {
                if let Some(position) = routed.position {
                    let highest = self
                        .positions
                        .entry((topic, message.partition))
                        .or_insert(position);
                    *highest = (*highest).max(position);
                }
                if routed.source.is_empty() {
                    // A heartbeat: a position, no change.
                    return;
                }
                metrics
                    .events_consumed
                    .get_or_create(&label("table", routed.source.as_str()))
                    .inc();
                for adjusted in &routed.adjusted {
                    let table = &plan.tables[adjusted.table];
                    metrics
                        .values_adjusted
                        .get_or_create(&vec![
                            ("table", table.name.clone()),
                            ("column", table.columns[adjusted.column].name.clone()),
                        ])
                        .inc();
                    *self
                        .adjusted
                        .entry((adjusted.table, adjusted.column))
                        .or_default() += 1;
                }
                if let Some(t) = routed.commit_time {
                    self.commit_times.push(t);
                }
                if !routed.changes.is_empty() {
                    self.changes.extend(routed.changes);
                    self.origins.push(Origin {
                        topic,
                        partition: message.partition,
                        offset: message.offset,
                        changes_end: self.changes.len(),
                    });
                }
            }
            Err(error) => {
                let table = source_table(payload);
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

    fn topic_index(&mut self, topic: &str) -> usize {
        match self.topics.iter().position(|t| t == topic) {
            Some(index) => index,
            None => {
                self.topics.push(topic.to_owned());
                self.topics.len() - 1
            }
        }
    }

    /// The row changes of the events `events` (indexes in [`Batch::origins`]).
    pub fn changes_of(&self, events: Range<usize>) -> &[RowChange] {
        if events.is_empty() {
            return &[];
        }
        let start = match events.start {
            0 => 0,
            i => self.origins[i - 1].changes_end,
        };
        &self.changes[start..self.origins[events.end - 1].changes_end]
    }

    /// Where the event `event` (an index in [`Batch::origins`]) was read.
    pub fn position(&self, event: usize) -> Position {
        let origin = &self.origins[event];
        Position {
            topic: self.topics[origin.topic].clone(),
            partition: origin.partition,
            offset: origin.offset,
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
            let _ = list.add_partition_offset(
                &self.topics[*topic],
                *partition,
                Offset::Offset(offset + 1),
            );
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::shop;

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
        let plan = StarModel::for_pipeline(&shop().spec).unwrap();
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
        assert_eq!(batch.changes_of(0..1), &batch.changes[..]);
        assert_eq!(
            batch.position(0),
            Position {
                topic: "t".to_owned(),
                partition: 2,
                offset: 7
            }
        );
        let offsets = batch.offsets_to_store();
        let stored = offsets.find_partition("t", 2).unwrap();
        assert_eq!(stored.offset(), Offset::Offset(9));
    }

    #[test]
    fn the_highest_commit_position_is_kept_per_partition() {
        let plan = StarModel::for_pipeline(&shop().spec).unwrap();
        let metrics = Metrics::new();
        let mut batch = Batch::default();
        let event = |commit: u32, second: u32| {
            format!(
                r#"{{"metadata":{{"lsn":"0/{commit}","commitLsn":"0/{commit}","operation":"insert",
                    "commitTime":"2026-01-01T00:00:0{second}Z","table":"product"}},
                    "payload":{{"id":1,"name":"Pen","category":"x","price":2}}}}"#
            )
        };
        let heartbeat = r#"{"metadata":{"table":"","operation":"heartbeat","lsn":"0/40",
            "commitLsn":"0/40","commitTime":"2026-01-01T00:00:04Z"},"payload":{}}"#;
        batch.push(&plan, message(1, event(20, 2).as_bytes()), &metrics);
        batch.push(&plan, message(2, event(10, 1).as_bytes()), &metrics);
        let mut other = message(3, heartbeat.as_bytes());
        other.partition = 5;
        batch.push(&plan, other, &metrics);
        let second = |s: i64| 1_767_225_600_000_000 + s * 1_000_000;
        assert_eq!(
            batch.positions,
            [
                (
                    (0, 2),
                    CommitPosition {
                        lsn: 0x20,
                        time_micros: second(2)
                    }
                ),
                (
                    (0, 5),
                    CommitPosition {
                        lsn: 0x40,
                        time_micros: second(4)
                    }
                ),
            ]
            .into()
        );
        assert_eq!(batch.changes.len(), 2, "the heartbeat changes nothing");
        assert_eq!(batch.events, 3);
        assert!(batch.dead_letters.is_empty());
    }

    #[test]
    fn values_replaced_by_their_policy_are_counted_per_table_and_column() {
        let plan = StarModel::for_pipeline(&shop().spec).unwrap();
        let metrics = Metrics::new();
        let mut batch = Batch::default();
        let in_2300 = |id: u32| {
            format!(
                r#"{{"metadata":{{"lsn":"0/{id}","operation":"insert","table":"product"}},
                    "payload":{{"id":{id},"name":"Ink","category":"x","price":2,
                               "createdAt":"2300-01-01T00:00:00Z"}}}}"#
            )
        };
        batch.push(&plan, message(1, in_2300(1).as_bytes()), &metrics);
        batch.push(&plan, message(2, in_2300(2).as_bytes()), &metrics);
        let product_dim = plan.table_id("product_dim").unwrap();
        let created_at = plan.tables[product_dim]
            .columns
            .iter()
            .position(|c| c.name == "created_at")
            .unwrap();
        assert_eq!(batch.adjusted, [((product_dim, created_at), 2)].into());
        assert!(
            metrics.render().contains(
                r#"cdcstar_sink_values_adjusted_total{table="product_dim",column="created_at"} 2"#
            ),
            "{}",
            metrics.render()
        );
    }

    fn limits(max_events: usize, max_wait_ms: u64) -> BatchLimits {
        BatchLimits {
            min_interval: Duration::ZERO,
            max_events,
            max_bytes: 1000,
            max_wait: Duration::from_millis(max_wait_ms),
        }
    }

    #[test]
    fn limits_end_the_batch() {
        let limits = limits(2, 200);
        let plan = StarModel::for_pipeline(&shop().spec).unwrap();
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
        let plan = StarModel::for_pipeline(&shop().spec).unwrap();
        let mut batch = Batch::default();
        batch.push(&plan, message(1, b"x"), &Metrics::new());
        assert!(!batch.is_due(&limits));
        std::thread::sleep(Duration::from_millis(25));
        assert!(batch.is_due(&limits));
        assert!(!batch.is_full(&limits));
    }
}
