//! Reading messages back from the broker by position. The bytes of an event whose rows ClickHouse
//! refused are needed for the dead-letter topic; re-reading the few such events costs less than
//! keeping every message of every batch in memory until its flush ends.
//!
//! A plain consumer with assigned partitions: it never joins the sink's consumer group and never
//! commits, so it cannot disturb the group's assignment or offsets.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use crate::consume::batch::Position;
use cdcstar_runtime::kafka::KafkaConnection;

/// How long reading one message may take before the read is retried.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A message as stored in its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub key: Option<Vec<u8>>,
    /// Body (empty for a tombstone).
    pub payload: Vec<u8>,
}

/// Why a message could not be read back (retried).
#[derive(Debug, thiserror::Error)]
pub enum RefetchError {
    /// The client failed.
    #[error("failed to read {topic}/{partition}@{offset} back: {source}")]
    Kafka {
        topic: String,
        partition: i32,
        offset: i64,
        /// The client's error.
        source: KafkaError,
    },
    /// The reading thread panicked.
    #[error("reading messages back failed: {reason}")]
    Panicked {
        /// The panic.
        reason: String,
    },
    /// Nothing arrived in time.
    #[error("timed out reading {topic}/{partition}@{offset} back")]
    TimedOut {
        topic: String,
        partition: i32,
        offset: i64,
    },
}

/// Reads the message at each position, in order: `None` where the topic no longer holds it
/// (retention or compaction removed it). Blocks the calling thread.
pub fn read_messages(
    connection: &KafkaConnection,
    positions: &[Position],
) -> Result<Vec<Option<StoredMessage>>, RefetchError> {
    let Some(first) = positions.first() else {
        return Ok(Vec::new());
    };
    // NB: librdkafka wants a group id even for assigned partitions; with nothing committed and no
    // subscription it never contacts the group coordinator.
    let consumer: BaseConsumer = connection
        .client_config()
        .set("group.id", "cdcstar-sink-refetch")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "error")
        .create()
        .map_err(|source| kafka_error(first, source))?;
    positions
        .iter()
        .map(|position| read_one(&consumer, position))
        .collect()
}

fn kafka_error(position: &Position, source: KafkaError) -> RefetchError {
    RefetchError::Kafka {
        topic: position.topic.clone(),
        partition: position.partition,
        offset: position.offset,
        source,
    }
}

fn read_one(
    consumer: &BaseConsumer,
    position: &Position,
) -> Result<Option<StoredMessage>, RefetchError> {
    // NB: a position outside the partition's log is answered here: some brokers (the tansu fixture)
    // answer a fetch beyond the end with nothing rather than OFFSET_OUT_OF_RANGE.
    let (low, high) = consumer
        .fetch_watermarks(&position.topic, position.partition, READ_TIMEOUT)
        .map_err(|source| kafka_error(position, source))?;
    if position.offset < low || position.offset >= high {
        return Ok(None);
    }
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(
        &position.topic,
        position.partition,
        Offset::Offset(position.offset),
    )
    .map_err(|source| kafka_error(position, source))?;
    consumer
        .assign(&list)
        .map_err(|source| kafka_error(position, source))?;
    let deadline = Instant::now() + READ_TIMEOUT;
    while let Some(remaining) = deadline.checked_duration_since(Instant::now()) {
        match consumer.poll(remaining) {
            None => {}
            Some(Ok(message)) => {
                if message.topic() != position.topic || message.partition() != position.partition {
                    continue;
                }
                if message.offset() == position.offset {
                    return Ok(Some(StoredMessage {
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    }));
                }
                // Compaction removed it: the partition resumed after it.
                if message.offset() > position.offset {
                    return Ok(None);
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(None),
            Some(Err(error))
                if matches!(
                    error.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange)
                ) =>
            {
                return Ok(None);
            }
            Some(Err(error)) => return Err(kafka_error(position, error)),
        }
    }
    Err(RefetchError::TimedOut {
        topic: position.topic.clone(),
        partition: position.partition,
        offset: position.offset,
    })
}
