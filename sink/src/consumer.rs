//! The consume loop: read messages into a batch, flush it when it is full or old enough, and store the
//! batch's offsets only after the flush succeeded (`enable.auto.offset.store=false`; librdkafka's
//! auto-commit then commits what was stored). On partition revoke and on shutdown the pending batch
//! is flushed and the offsets committed synchronously, so the next owner of a partition starts where
//! this one stopped; if that flush cannot finish, nothing is stored and the next owner replays the
//! batch, which the version rules make harmless.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::watch;

use crate::batch::{Batch, BatchLimits, Message};
use crate::flush::Flusher;
use crate::kafka::KafkaConnection;
use crate::metrics::Metrics;
use crate::plan::Plan;

/// How long a flush on partition revoke or shutdown may take before giving up (and replaying).
pub const HANDOVER_FLUSH_TIMEOUT: Duration = Duration::from_secs(20);

/// Errors that stop the consumer.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The consumer could not be created.
    #[error("failed to create kafka consumer for group {group}: {source}")]
    Create {
        /// Consumer group.
        group: String,
        /// The client's error.
        source: KafkaError,
    },
    /// The subscription failed.
    #[error("failed to subscribe to topics {topics:?}: {source}")]
    Subscribe {
        /// Topics.
        topics: Vec<String>,
        /// The client's error.
        source: KafkaError,
    },
}

/// What the consumer loop shares with librdkafka's callbacks.
struct Shared {
    plan: Arc<Plan>,
    flusher: Flusher,
    metrics: Arc<Metrics>,
    pending: Mutex<Batch>,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Batch> {
        // NB: a panic while holding the lock cannot leave a half-built batch that matters: the
        // process restarts and replays from the committed offsets.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_pending(&self) -> Batch {
        std::mem::take(&mut *self.pending())
    }

    /// Flushes the pending batch from inside a librdkafka callback and commits synchronously.
    fn hand_over(&self, consumer: &BaseConsumer<SinkContext>) {
        let batch = self.take_pending();
        if !batch.is_empty() {
            let flushed = match Handle::try_current() {
                Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(|| {
                        handle.block_on(async {
                            let (_stop, mut never) = watch::channel(false);
                            tokio::time::timeout(
                                HANDOVER_FLUSH_TIMEOUT,
                                self.flusher.flush(&batch, &mut never),
                            )
                            .await
                        })
                    })
                    .is_ok_and(|r| r.is_ok())
                }
                _ => false,
            };
            if flushed {
                store_offsets(consumer, &batch, &self.metrics);
            } else {
                tracing::warn!(
                    events = batch.events,
                    "could not flush before the partitions were revoked; their next owner replays them"
                );
            }
        }
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!("offsets committed on hand-over"),
            // Nothing stored since the last commit.
            Err(KafkaError::ConsumerCommit(code)) => {
                tracing::debug!(%code, "nothing to commit on hand-over");
            }
            Err(error) => tracing::warn!(%error, "failed to commit offsets on hand-over"),
        }
    }
}

fn store_offsets<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    batch: &Batch,
    metrics: &Metrics,
) {
    match consumer.store_offsets(&batch.offsets_to_store()) {
        Ok(()) => {
            metrics.events_flushed.inc_by(batch.events as u64);
        }
        // The partition was revoked meanwhile: its next owner replays the batch.
        Err(error) => tracing::warn!(%error, "failed to store offsets of a flushed batch"),
    }
}

/// librdkafka callbacks: flush on revoke, lag from statistics.
struct SinkContext {
    shared: Arc<Shared>,
}

impl ClientContext for SinkContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, topic_stats) in &statistics.topics {
            for (partition, stats) in &topic_stats.partitions {
                if *partition >= 0 && stats.consumer_lag >= 0 {
                    self.shared
                        .metrics
                        .consumer_lag
                        .get_or_create(&vec![
                            ("topic", topic.clone()),
                            ("partition", partition.to_string()),
                        ])
                        .set(stats.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for SinkContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                tracing::info!(partitions = %describe(partitions), "partitions revoked");
                self.shared.hand_over(consumer);
            }
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = %describe(partitions), "partitions assigned");
            }
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance error"),
        }
    }
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Consumer group.
    pub group_id: String,
    /// Topics to read.
    pub topics: Vec<String>,
    /// Batch limits.
    pub limits: BatchLimits,
    /// Consumer session timeout (librdkafka's default when `None`).
    pub session_timeout: Option<Duration>,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// Most kilobytes librdkafka fetches ahead of the consumer.
    pub prefetch_kbytes: usize,
}

/// Consumes until `shutdown` turns true, then flushes and commits.
pub async fn consume(
    connection: &KafkaConnection,
    settings: &ConsumerSettings,
    plan: Arc<Plan>,
    flusher: Flusher,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConsumerError> {
    let shared = Arc::new(Shared {
        plan,
        flusher,
        metrics,
        pending: Mutex::new(Batch::default()),
    });
    let mut config = connection.client_config();
    if let Some(instance) = &settings.group_instance_id {
        config.set("group.instance.id", instance);
    }
    if let Some(timeout) = settings.session_timeout {
        config
            .set("session.timeout.ms", timeout.as_millis().to_string())
            .set(
                "heartbeat.interval.ms",
                (timeout.as_millis() / 5).max(100).to_string(),
            );
    }
    let consumer: StreamConsumer<SinkContext> = config
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000")
        // NB: librdkafka prefetches up to 64 MiB by default; a batch never needs that much ahead.
        .set(
            "queued.max.messages.kbytes",
            settings.prefetch_kbytes.to_string(),
        )
        .set(
            "fetch.max.bytes",
            (settings.prefetch_kbytes * 1024 / 2)
                .max(1024 * 1024)
                .to_string(),
        )
        .create_with_context(SinkContext {
            shared: shared.clone(),
        })
        .map_err(|source| ConsumerError::Create {
            group: settings.group_id.clone(),
            source,
        })?;
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| ConsumerError::Subscribe {
            topics: settings.topics.clone(),
            source,
        })?;
    tracing::info!(group = %settings.group_id, topics = ?settings.topics, "consuming");
    shared.metrics.ready.set(1);
    let limits = settings.limits;
    loop {
        let deadline = shared.pending().deadline(&limits);
        let flush_now = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = sleep_until(deadline), if deadline.is_some() => true,
            received = consumer.recv() => match received {
                Ok(message) => {
                    let mut pending = shared.pending();
                    pending.push(&shared.plan, Message {
                        topic: message.topic(),
                        partition: message.partition(),
                        offset: message.offset(),
                        key: message.key(),
                        payload: message.payload(),
                    }, &shared.metrics);
                    pending.is_full(&limits)
                }
                Err(error) => {
                    tracing::warn!(%error, "kafka consumer error");
                    false
                }
            },
        };
        if flush_now {
            let batch = shared.take_pending();
            match shared.flusher.flush(&batch, &mut shutdown).await {
                Ok(()) => store_offsets(&consumer, &batch, &shared.metrics),
                Err(abandoned) => {
                    tracing::info!(%abandoned, "flush interrupted by shutdown");
                    *shared.pending() = batch;
                    break;
                }
            }
        }
    }
    // Shutdown: a last flush with a bounded wait, then a synchronous commit.
    let batch = shared.take_pending();
    let (_stop, mut never) = watch::channel(false);
    match tokio::time::timeout(
        HANDOVER_FLUSH_TIMEOUT,
        shared.flusher.flush(&batch, &mut never),
    )
    .await
    {
        Ok(Ok(())) => store_offsets(&consumer, &batch, &shared.metrics),
        _ => tracing::warn!(
            events = batch.events,
            "could not flush before shutdown; the batch is replayed on restart"
        ),
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::info!("offsets committed on shutdown"),
        Err(error) => tracing::debug!(%error, "nothing committed on shutdown"),
    }
    shared.metrics.ready.set(0);
    consumer.unsubscribe();
    Ok(())
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// The list of partitions in `list`, for logs.
pub fn describe(list: &TopicPartitionList) -> String {
    list.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}
