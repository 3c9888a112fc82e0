//! The Kafka producer of CDC events and the routing of its delivery reports.
//!
//! Settings: `acks=all`, LZ4 compression and a short linger. Events of one key stay in order on
//! their partition in both delivery modes: by default one produce request is in flight per broker
//! connection (a retry cannot overtake a later request; a retry after a lost acknowledgement may
//! write an event twice, which the sink's LSN versioning makes harmless), or, with
//! `--kafka-idempotence`, librdkafka's idempotent producer (up to five requests in flight, no
//! duplicates from retries).
//!
//! Why the default is not the idempotent producer: the pipeline is at least once anyway (a restart
//! replays from the slot), so idempotence buys nothing the sink needs, and it is not free. Against
//! the local broker fixture (tansu) at 1 000 transactions/s, the idempotent producer's broker
//! thread polled its socket with a zero timeout ~17 000 times a second (half a core) and the
//! broker's own idempotence bookkeeping slowed every produce; commit → visible p99 went from
//! ~1.4-2.1 s to ~0.3-0.4 s with one request in flight.
//!
//! Each event carries a [`Ticket`] that says whom to tell when the broker acknowledged it: the
//! streaming [`AckTracker`] (per transaction) or a snapshot [`BatchAcks`] (per batch).
//!
//! Over 400 lines: the producer's settings, delivery-report routing and the in-order rules they
//! guarantee are one contract.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdcstar_crds::envelope::LIBRDKAFKA_PARTITIONER;
use cdcstar_runtime::kafka::{KafkaConnection, KafkaSetupError};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tokio::sync::Notify;

use crate::acks::{AckTracker, TxId};

/// Whom a delivery report concerns.
#[derive(Debug)]
pub enum Ticket {
    /// An event of a streamed transaction.
    Stream(TxId),
    /// A row of a snapshot batch.
    Snapshot(Arc<BatchAcks>),
    /// A heartbeat envelope: it carries no change, so a lost one only delays the next position;
    /// a failure is logged.
    Heartbeat,
}

/// Outstanding deliveries of one snapshot batch.
#[derive(Debug, Default)]
pub struct BatchAcks {
    outstanding: AtomicUsize,
    failure: Mutex<Option<String>>,
    done: Notify,
}

impl BatchAcks {
    /// Waits until every event of the batch was acknowledged; the first failure, if any.
    pub async fn wait(&self) -> Result<(), String> {
        loop {
            let notified = self.done.notified();
            if let Some(reason) = lock(&self.failure).clone() {
                return Err(reason);
            }
            if self.outstanding.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
            notified.await;
        }
    }

    fn settle(&self, failure: Option<String>) {
        if let Some(reason) = failure {
            lock(&self.failure).get_or_insert(reason);
        }
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) <= 1 || lock(&self.failure).is_some() {
            self.done.notify_waiters();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // NB: a panic while holding one of these locks only ever happens in a bug; the data (counters)
    // stays meaningful, so poisoning is ignored.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Receives delivery reports on the producer's polling thread.
#[derive(Debug)]
pub struct DeliveryRouter {
    tracker: Arc<Mutex<AckTracker>>,
    progress: Arc<Notify>,
}

impl ClientContext for DeliveryRouter {}

impl ProducerContext for DeliveryRouter {
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Box<Ticket>) {
        let failure = result
            .as_ref()
            .err()
            .map(|(err, _)| format!("broker did not acknowledge an event: {err}"));
        match *ticket {
            Ticket::Stream(tx) => {
                let mut tracker = lock(&self.tracker);
                match failure {
                    Some(reason) => tracker.failed(reason),
                    None => tracker.delivered(tx),
                }
            }
            Ticket::Snapshot(batch) => batch.settle(failure),
            Ticket::Heartbeat => {
                if let Some(reason) = failure {
                    tracing::warn!(%reason, "a heartbeat envelope was not delivered");
                }
            }
        }
        self.progress.notify_one();
    }
}

/// Producer settings that are not the brokers' addresses (the capture's flags, shared by the
/// benchmark's broker measurements so they produce as the capture does).
#[derive(Debug, Clone, clap::Args)]
pub struct ProducerSettings {
    /// Producer compression (`lz4`, `zstd`, `snappy`, `gzip`, `none`).
    #[arg(
        value_name = "KAFKA_COMPRESSION",
        long = "kafka-compression",
        env = "CAPTURE_KAFKA_COMPRESSION",
        default_value = "lz4"
    )]
    pub compression: String,
    /// Producer linger in milliseconds.
    #[arg(
        value_name = "KAFKA_LINGER_MS",
        long = "kafka-linger-ms",
        env = "CAPTURE_KAFKA_LINGER_MS",
        default_value_t = 5
    )]
    pub linger_ms: u32,
    /// librdkafka's idempotent producer (up to five requests in flight, no duplicates from
    /// retries) instead of one request in flight per connection.
    #[arg(
        long = "kafka-idempotence",
        env = "CAPTURE_KAFKA_IDEMPOTENCE",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub idempotence: bool,
    /// Memory budget of the producer's queue in MiB: events waiting to be sent or acknowledged
    /// (librdkafka's `queue.buffering.max.kbytes`). A full queue holds the WAL reader back instead
    /// of growing the process: overloaded with a count-based queue, the capture reached 122 MiB.
    #[arg(
        value_name = "KAFKA_QUEUE_MIB",
        long = "kafka-queue-mib",
        env = "CAPTURE_KAFKA_QUEUE_MIB",
        default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(1..=2048)
    )]
    pub queue_mib: u32,
    /// Largest record batch of one partition in KiB (librdkafka's `batch.size`, whose default is
    /// ~1 MB; at most `message.max.bytes`). A consumer receives whole record batches, so this is
    /// the grain in which the sink reads each partition of a backlog the capture wrote while behind:
    /// on `make bench-sink`, 1 MB batches let half of the facts arrive before the row they look up
    /// (each then written twice), 128 KiB batches 0.1 %.
    #[arg(
        value_name = "KAFKA_BATCH_KIB",
        long = "kafka-batch-kib",
        env = "CAPTURE_KAFKA_BATCH_KIB",
        default_value_t = 128,
        value_parser = clap::value_parser!(u32).range(1..=976)
    )]
    pub batch_kib: u32,
}

impl ProducerSettings {
    /// The settings in words, for reports.
    pub fn describe(&self) -> String {
        let delivery = if self.idempotence {
            "idempotent"
        } else {
            "one request in flight"
        };
        format!(
            "acks=all, {delivery}, {} compression, linger {} ms, record batches up to {} KiB",
            self.compression, self.linger_ms, self.batch_kib
        )
    }
}

/// The client configuration of the capture's producers: `acks=all`, `settings`' delivery mode
/// (per-key order either way, see the module docs), compression, linger, record-batch size and queue
/// budget, Nagle's algorithm off (a small produce request must not wait for the acknowledgement of
/// the previous segment), and Kafka's murmur2 partitioner, the one the Redpanda Connect engine uses
/// too.
pub fn producer_config(connection: &KafkaConnection, settings: &ProducerSettings) -> ClientConfig {
    let mut config = connection.client_config();
    config.set("acks", "all");
    if settings.idempotence {
        config.set("enable.idempotence", "true");
    } else {
        config
            .set("enable.idempotence", "false")
            .set("max.in.flight.requests.per.connection", "1");
    }
    config
        .set("compression.type", &settings.compression)
        .set("linger.ms", settings.linger_ms.to_string())
        .set("socket.nagle.disable", "true")
        // NB: the budget is in bytes; the message count is librdkafka's largest, so it never binds.
        .set(
            "queue.buffering.max.kbytes",
            (u64::from(settings.queue_mib) * 1024).to_string(),
        )
        .set("queue.buffering.max.messages", "2147483647")
        .set("batch.size", (settings.batch_kib * 1024).to_string())
        .set("partitioner", LIBRDKAFKA_PARTITIONER);
    config
}

/// The event producer shared by the streaming loop and the snapshot.
pub struct EventProducer {
    producer: ThreadedProducer<DeliveryRouter>,
    tracker: Arc<Mutex<AckTracker>>,
    progress: Arc<Notify>,
    /// Partitions per topic and when they were read.
    partitions: Mutex<HashMap<String, (i32, Instant)>>,
}

/// How long reading a topic's partitions (for a `TRUNCATE` or a heartbeat) may take.
const PARTITION_METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a topic's partition count is reused before it is read again (partitions added to a
/// topic get truncates and heartbeats after at most this long).
const PARTITION_METADATA_MAX_AGE: Duration = Duration::from_secs(60);

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer")
            .field("in_flight", &self.producer.in_flight_count())
            .finish()
    }
}

impl EventProducer {
    /// Creates the producer; `tracker` receives the acknowledgements of streamed events and
    /// `progress` is notified after every delivery report.
    pub fn new(
        connection: &KafkaConnection,
        settings: &ProducerSettings,
        tracker: Arc<Mutex<AckTracker>>,
        progress: Arc<Notify>,
    ) -> Result<Self, KafkaSetupError> {
        let config = producer_config(connection, settings);
        let router = DeliveryRouter {
            tracker: Arc::clone(&tracker),
            progress: Arc::clone(&progress),
        };
        let producer =
            config
                .create_with_context(router)
                .map_err(|source| KafkaSetupError::Client {
                    what: "producer",
                    brokers: connection.brokers.clone(),
                    source,
                })?;
        Ok(Self {
            producer,
            tracker,
            progress,
            partitions: Mutex::new(HashMap::new()),
        })
    }

    /// The partitions of `topic`, read from the broker at most every
    /// [`PARTITION_METADATA_MAX_AGE`].
    ///
    /// NB: reading them is a blocking metadata round trip, once a minute per topic at most.
    fn partitions(&self, topic: &str) -> Result<i32, KafkaError> {
        if let Some((count, read)) = lock(&self.partitions).get(topic)
            && read.elapsed() < PARTITION_METADATA_MAX_AGE
        {
            return Ok(*count);
        }
        let metadata = self
            .producer
            .client()
            .fetch_metadata(Some(topic), PARTITION_METADATA_TIMEOUT)?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len() as i32);
        if partitions == 0 {
            return Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        }
        lock(&self.partitions).insert(topic.to_owned(), (partitions, Instant::now()));
        Ok(partitions)
    }

    /// Enqueues a heartbeat envelope once to every partition of `topic`, after every event enqueued
    /// to it before (one partition's events stay in order, see the module docs); answers how many.
    pub async fn send_heartbeat(&self, topic: &str, payload: &[u8]) -> Result<i32, KafkaError> {
        let partitions = self.partitions(topic)?;
        for partition in 0..partitions {
            self.enqueue(
                topic,
                Some(partition),
                None,
                payload,
                Box::new(Ticket::Heartbeat),
            )
            .await?;
        }
        Ok(partitions)
    }

    /// The shared streaming tracker.
    pub fn tracker(&self) -> &Arc<Mutex<AckTracker>> {
        &self.tracker
    }

    /// Notified after every delivery report.
    pub fn progress(&self) -> &Arc<Notify> {
        &self.progress
    }

    /// Enqueues an event of streamed transaction `tx`, waiting while the local queue is full.
    pub async fn send_stream(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        tx: TxId,
    ) -> Result<(), KafkaError> {
        lock(&self.tracker).sent(tx);
        let result = self
            .enqueue(topic, None, key, payload, Box::new(Ticket::Stream(tx)))
            .await;
        if let Err(err) = &result {
            lock(&self.tracker).failed(format!("failed to enqueue an event for {topic}: {err}"));
        }
        result
    }

    /// Enqueues an event of streamed transaction `tx` once to every partition of `topic`, so that
    /// each partition reads it after every earlier event it holds (a `TRUNCATE`, which concerns the
    /// rows of all partitions).
    pub async fn send_stream_to_every_partition(
        &self,
        topic: &str,
        payload: &[u8],
        tx: TxId,
    ) -> Result<(), KafkaError> {
        let partitions = self.partitions(topic)?;
        for partition in 0..partitions {
            lock(&self.tracker).sent(tx);
            let result = self
                .enqueue(
                    topic,
                    Some(partition),
                    None,
                    payload,
                    Box::new(Ticket::Stream(tx)),
                )
                .await;
            if let Err(err) = &result {
                lock(&self.tracker)
                    .failed(format!("failed to enqueue an event for {topic}: {err}"));
                return result;
            }
        }
        Ok(())
    }

    /// Enqueues a snapshot row counted in `batch`.
    pub async fn send_snapshot(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        batch: &Arc<BatchAcks>,
    ) -> Result<(), KafkaError> {
        batch.outstanding.fetch_add(1, Ordering::AcqRel);
        let ticket = Box::new(Ticket::Snapshot(Arc::clone(batch)));
        let result = self.enqueue(topic, None, key, payload, ticket).await;
        if let Err(err) = &result {
            batch.settle(Some(format!(
                "failed to enqueue a snapshot row for {topic}: {err}"
            )));
        }
        result
    }

    async fn enqueue(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: &[u8],
        ticket: Box<Ticket>,
    ) -> Result<(), KafkaError> {
        let mut record = BaseRecord::with_opaque_to(topic, ticket).payload(payload);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        if let Some(key) = key {
            record = record.key(key);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((err, _)) => return Err(err),
            }
        }
    }

    /// Events handed to librdkafka and not yet reported on.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Waits (blocking the calling thread) until every queued event was reported on.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}
