//! The dead-letter topic's producer: events the sink cannot apply ([`DeadLetter`]), with the original
//! bytes and key and headers saying why and where they came from.
//!
//! Headers: `cdcstar.reason` (human-readable), `cdcstar.reason.kind` (`invalid_envelope`,
//! `unknown_table`, `missing_key`, `missing_lsn`, `conversion` when routing refused the event;
//! `refused` when ClickHouse refused its rows), `cdcstar.source.topic`, `cdcstar.source.partition`,
//! `cdcstar.source.offset`.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::consume::batch::Batch;
use crate::dead_letters::isolate::Refused;
use crate::dead_letters::letter::{DeadLetter, REFUSED_KIND, source_table};
use crate::dead_letters::refetch::{RefetchError, read_messages};
use cdcstar_runtime::kafka::{KafkaConnection, KafkaSetupError};

/// Header carrying the reason.
pub const REASON_HEADER: &str = "cdcstar.reason";
/// Header carrying the reason kind.
pub const REASON_KIND_HEADER: &str = "cdcstar.reason.kind";
/// Header carrying the source topic.
pub const SOURCE_TOPIC_HEADER: &str = "cdcstar.source.topic";
/// Header carrying the source partition.
pub const SOURCE_PARTITION_HEADER: &str = "cdcstar.source.partition";
/// Header carrying the source offset.
pub const SOURCE_OFFSET_HEADER: &str = "cdcstar.source.offset";

/// Why a dead letter could not be delivered (the batch is retried).
#[derive(Debug, thiserror::Error)]
#[error(
    "failed to deliver dead letter from {topic}/{partition}@{offset} to {dead_letter_topic}: {reason}"
)]
pub struct DeliveryError {
    pub dead_letter_topic: String,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// The producer's error.
    pub reason: String,
}

/// Producer of the dead-letter topic.
#[derive(Clone)]
pub struct DeadLetterProducer {
    producer: FutureProducer,
    topic: String,
    /// To read back the bytes of events whose rows ClickHouse refused.
    connection: KafkaConnection,
}

cdcstar_runtime::debug_fields!(DeadLetterProducer { topic });

impl DeadLetterProducer {
    /// A producer for `topic` (acks from all in-sync replicas).
    pub fn new(connection: &KafkaConnection, topic: String) -> Result<Self, KafkaSetupError> {
        let producer = connection
            .client_config()
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(|source| KafkaSetupError::Client {
                what: "dead-letter producer",
                brokers: connection.brokers.clone(),
                source,
            })?;
        Ok(DeadLetterProducer {
            producer,
            topic,
            connection: connection.clone(),
        })
    }

    /// The dead letters of the `refused` events of `batch`, their bytes read back from the broker (an
    /// event the topic no longer holds goes with an empty body and says so).
    pub async fn refused_letters(
        &self,
        batch: &Batch,
        refused: &[Refused],
    ) -> Result<Vec<DeadLetter>, RefetchError> {
        let positions: Vec<_> = refused.iter().map(|r| batch.position(r.event)).collect();
        let connection = self.connection.clone();
        let read = {
            let positions = positions.clone();
            tokio::task::spawn_blocking(move || read_messages(&connection, &positions))
        };
        // NB: a panicking read is a bug; it surfaces as a failed (retried) read, not a crash.
        let messages = read.await.unwrap_or_else(|panic| {
            Err(RefetchError::Panicked {
                reason: panic.to_string(),
            })
        })?;
        Ok(refused
            .iter()
            .zip(positions)
            .zip(messages)
            .map(|((refused, position), message)| {
                let (key, payload, reason) = match message {
                    Some(message) => (message.key, message.payload, refused.reason.clone()),
                    None => (
                        None,
                        Vec::new(),
                        format!("{} (the message is no longer in its topic)", refused.reason),
                    ),
                };
                DeadLetter {
                    table: source_table(&payload),
                    kind: REFUSED_KIND,
                    reason,
                    topic: position.topic,
                    partition: position.partition,
                    offset: position.offset,
                    key,
                    payload,
                }
            })
            .collect())
    }

    /// The dead-letter topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends every letter and waits for the broker's acknowledgement of each.
    pub async fn send_all(&self, letters: &[DeadLetter]) -> Result<(), DeliveryError> {
        let sends = letters.iter().map(|letter| self.send(letter));
        for result in futures::future::join_all(sends).await {
            result?;
        }
        Ok(())
    }

    async fn send(&self, letter: &DeadLetter) -> Result<(), DeliveryError> {
        let partition = letter.partition.to_string();
        let offset = letter.offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: REASON_HEADER,
                value: Some(letter.reason.as_str()),
            })
            .insert(Header {
                key: REASON_KIND_HEADER,
                value: Some(letter.kind),
            })
            .insert(Header {
                key: SOURCE_TOPIC_HEADER,
                value: Some(letter.topic.as_str()),
            })
            .insert(Header {
                key: SOURCE_PARTITION_HEADER,
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: SOURCE_OFFSET_HEADER,
                value: Some(offset.as_str()),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic)
            .payload(letter.payload.as_slice())
            .headers(headers);
        if let Some(key) = &letter.key {
            record = record.key(key.as_slice());
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(error, _)| DeliveryError {
                dead_letter_topic: self.topic.clone(),
                topic: letter.topic.clone(),
                partition: letter.partition,
                offset: letter.offset,
                reason: error.to_string(),
            })
    }
}
