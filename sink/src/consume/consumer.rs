//! The consume loop: read messages into a batch and flush it in a background task, one flush at a
//! time and in order, storing the batch's offsets only after the flush succeeded
//! (`enable.auto.offset.store=false`; librdkafka's auto-commit then commits what was stored).
//!
//! Adaptive batching: while a flush is in flight the loop keeps reading into the next batch (up to
//! its limits); as soon as no flush is in flight and the consumer has nothing more immediately
//! available (or the batch is full, or its first event is older than the wait limit), the batch is
//! flushed. A trickle of events is therefore written one poll at a time, and a burst fills big
//! batches while the previous insert runs. With a minimum interval, a trickle waits for it after
//! the previous flush began (fewer, larger inserts).
//!
//! On partition revoke and on shutdown the in-flight flush is awaited, the pending batch is flushed
//! and the offsets committed synchronously, so the next owner of a partition starts where this one
//! stopped; if that cannot finish, nothing more is stored and the next owner replays, which the
//! version rules make harmless.
//!
//! Over 400 lines: the loop, the rebalance hand-over and the consumer's creation share the pending
//! batch and the in-flight flush, which are this module's state.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cdcstar_crds::star_model::StarModel;
use futures::future::OptionFuture;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};

use crate::consume::batch::{Batch, BatchLimits, Message};
use crate::consume::fetch::FetchSettings;
use crate::flush::Flusher;
use crate::metrics::Metrics;
use cdcstar_runtime::kafka::KafkaConnection;

/// How long a flush on partition revoke or shutdown may take before giving up (and replaying).
pub const HANDOVER_FLUSH_TIMEOUT: Duration = Duration::from_secs(20);

/// Errors that stop the consumer.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The consumer could not be created.
    #[error("failed to create kafka consumer for group {group}: {source}")]
    Create {
        group: String,
        /// The client's error.
        source: KafkaError,
    },
    /// The subscription failed.
    #[error("failed to subscribe to topics {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        /// The client's error.
        source: KafkaError,
    },
    /// A flush task panicked: its batch was not applied, so no later offset may be stored; the
    /// process stops and its replacement replays from the committed offsets.
    #[error("a batch flush failed unexpectedly: {0}")]
    FlushTask(#[from] JoinError),
}

/// What the consumer loop shares with librdkafka's callbacks and the flush tasks.
struct Shared {
    plan: Arc<StarModel>,
    flusher: Flusher,
    metrics: Arc<Metrics>,
    pending: Mutex<Batch>,
    /// Held by whoever flushes a batch until its offsets are stored: one flush at a time, in
    /// consumption order (a batch's versions are computed from what the previous one wrote).
    flushing: Arc<tokio::sync::Mutex<()>>,
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

    /// Flushes `batch` whatever the shutdown signal says (retrying until it is applied; callers
    /// bound the wait) and stores its offsets once it is. Answers whether it was applied.
    async fn flush_and_store<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
        batch: &Batch,
    ) -> bool {
        let (_stop, mut never) = watch::channel(false);
        let applied = self.flusher.flush(batch, &mut never).await.is_ok();
        if applied {
            store_offsets(consumer, batch, &self.metrics);
        }
        applied
    }

    /// From inside a librdkafka callback: waits for the in-flight flush (which stores its own
    /// offsets), flushes the pending batch, stores its offsets and commits synchronously.
    fn hand_over(&self, consumer: &BaseConsumer<SinkContext>) {
        let flushed = match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| {
                    handle.block_on(async {
                        tokio::time::timeout(HANDOVER_FLUSH_TIMEOUT, async {
                            let _gate = self.flushing.lock().await;
                            let batch = self.take_pending();
                            let applied = self.flush_and_store(consumer, &batch).await;
                            // The positions of what this replica applied, before another takes over.
                            self.flusher.positions_written().await;
                            (batch.events, applied)
                        })
                        .await
                    })
                })
            }
            _ => Ok((self.take_pending().events, false)),
        };
        match flushed {
            Ok((_, true)) => {}
            Ok((events, false)) => tracing::warn!(
                events,
                "could not flush before the partitions were revoked; their next owner replays them"
            ),
            Err(_) => tracing::warn!(
                "flushing took too long when the partitions were revoked; their next owner replays them"
            ),
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
    if batch.is_empty() {
        return;
    }
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
    pub group_id: String,
    pub topics: Vec<String>,
    /// Partitions of those topics (the prefetch budget is divided across them).
    pub partitions: usize,
    pub limits: BatchLimits,
    /// Consumer session timeout (librdkafka's default when `None`).
    pub session_timeout: Option<Duration>,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// Prefetch budget and fetch wait.
    pub fetch: FetchSettings,
}

/// A batch flush running in the background; yields the batch back when shutdown interrupted it.
type InFlight = JoinHandle<Option<Batch>>;

/// Consumes until `shutdown` turns true, then flushes and commits.
pub async fn consume(
    connection: &KafkaConnection,
    settings: &ConsumerSettings,
    plan: Arc<StarModel>,
    flusher: Flusher,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConsumerError> {
    let shared = Arc::new(Shared {
        plan,
        flusher,
        metrics,
        pending: Mutex::new(Batch::default()),
        flushing: Arc::new(tokio::sync::Mutex::new(())),
    });
    let consumer = Arc::new(create_consumer(connection, settings, shared.clone())?);
    tracing::info!(group = %settings.group_id, topics = ?settings.topics,
        partitions = settings.partitions,
        partition_prefetch_kbytes = settings.fetch.partition_kbytes(settings.partitions),
        "consuming");
    shared.metrics.ready.set(1);
    let limits = settings.limits;
    let mut in_flight: Option<InFlight> = None;
    let mut interrupted = None;
    let mut last_flush: Option<tokio::time::Instant> = None;
    loop {
        let (full, has_pending) = {
            let pending = shared.pending();
            (pending.is_full(&limits), !pending.is_empty())
        };
        // While a flush may start but the minimum interval since the last one began still runs:
        // when it ends. Read only then, so that draining a backlog costs no clock reads or timers.
        let may_flush = in_flight.is_none() && has_pending;
        let interval_ends = last_flush
            .map(|at| at + limits.min_interval)
            .filter(|ends| may_flush && *ends > tokio::time::Instant::now());
        let idle = may_flush && interval_ends.is_none();
        let ran_dry = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            finished = wait_in_flight(&mut in_flight) => {
                in_flight = None;
                if let Some(batch) = finished? {
                    // Interrupted by shutdown: flushed again below.
                    interrupted = Some(batch);
                    break;
                }
                false
            }
            received = consumer.recv(), if !full => {
                match received {
                    Ok(message) => shared.pending().push(&shared.plan, Message {
                        topic: message.topic(),
                        partition: message.partition(),
                        offset: message.offset(),
                        key: message.key(),
                        payload: message.payload(),
                    }, &shared.metrics),
                    Err(error) => tracing::warn!(%error, "kafka consumer error"),
                }
                false
            }
            // Polled only when nothing was immediately available above.
            () = std::future::ready(()), if idle => true,
            _ = OptionFuture::from(interval_ends.map(tokio::time::sleep_until)), if interval_ends.is_some() => true,
        };
        if in_flight.is_none() && (ran_dry || shared.pending().is_due(&limits)) {
            last_flush = Some(tokio::time::Instant::now());
            in_flight = Some(spawn_flush(&shared, &consumer, &shutdown).await);
        }
    }
    // Shutdown: the in-flight batch (if interrupted) and the pending one, in order, each with a
    // bounded wait, then a synchronous commit.
    let mut batches: Vec<Batch> = interrupted.into_iter().collect();
    if let Some(handle) = in_flight.take() {
        batches.extend(handle.await?);
    }
    batches.push(shared.take_pending());
    for batch in batches {
        let applied = tokio::time::timeout(
            HANDOVER_FLUSH_TIMEOUT,
            shared.flush_and_store(&*consumer, &batch),
        )
        .await
        .unwrap_or(false);
        if !applied {
            // NB: a later batch's offsets would skip this one: stop storing.
            tracing::warn!(
                events = batch.events,
                "could not flush before shutdown; the rest is replayed on restart"
            );
            break;
        }
    }
    if tokio::time::timeout(HANDOVER_FLUSH_TIMEOUT, shared.flusher.positions_written())
        .await
        .is_err()
    {
        tracing::warn!("could not write the partition positions before shutdown");
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::info!("offsets committed on shutdown"),
        Err(error) => tracing::debug!(%error, "nothing committed on shutdown"),
    }
    shared.metrics.ready.set(0);
    consumer.unsubscribe();
    Ok(())
}

fn create_consumer(
    connection: &KafkaConnection,
    settings: &ConsumerSettings,
    shared: Arc<Shared>,
) -> Result<StreamConsumer<SinkContext>, ConsumerError> {
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
    settings.fetch.apply(&mut config, settings.partitions);
    let consumer: StreamConsumer<SinkContext> = config
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000")
        .create_with_context(SinkContext { shared })
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
    Ok(consumer)
}

/// Starts flushing the pending batch in the background; the task stores the batch's offsets once
/// it is applied, and hands the batch back if shutdown interrupts it.
async fn spawn_flush(
    shared: &Arc<Shared>,
    consumer: &Arc<StreamConsumer<SinkContext>>,
    shutdown: &watch::Receiver<bool>,
) -> InFlight {
    // NB: taken before the task starts, so a hand-over that runs meanwhile waits for this batch.
    let gate = shared.flushing.clone().lock_owned().await;
    let batch = shared.take_pending();
    let (shared, consumer, mut shutdown) = (shared.clone(), consumer.clone(), shutdown.clone());
    tokio::spawn(async move {
        let _gate = gate;
        match shared.flusher.flush(&batch, &mut shutdown).await {
            Ok(()) => {
                store_offsets(&*consumer, &batch, &shared.metrics);
                None
            }
            Err(abandoned) => {
                tracing::info!(%abandoned, "flush interrupted by shutdown");
                Some(batch)
            }
        }
    })
}

/// The end of the in-flight flush (never, when there is none).
async fn wait_in_flight(in_flight: &mut Option<InFlight>) -> Result<Option<Batch>, JoinError> {
    match in_flight {
        Some(handle) => handle.await,
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
