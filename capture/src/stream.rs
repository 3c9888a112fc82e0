//! The streaming loop: reads the replication stream, turns each row change into an envelope on its
//! table's topic, passes each heartbeat message on as a `heartbeat` envelope to every partition, and
//! confirms to the slot the position the broker has acknowledged everything up to.
//!
//! Over 400 lines: the streaming loop's reads, delivery bookkeeping, heartbeats and slot
//! confirmation interlock; the confirm-what-was-acknowledged rule needs them side by side.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cdcstar_crds::envelope::{Envelope, Lsn, Metadata, Operation};
use cdcstar_source::mask::ColumnRules;
use pgwire_replication::{PgWireError, ReplicationClient, ReplicationEvent};
use tokio_util::sync::CancellationToken;

use crate::acks::TxId;
use crate::metrics::{CaptureMetrics, TableLabel, TableOperation};
use crate::pgoutput::{self, LogicalMessage};
use crate::producer::EventProducer;
use crate::row::{Change, ChangePosition, RelationCache, RowBuilder, RowError, commit_time_text};
use crate::source::heartbeat_time;

/// Errors that stop the streaming loop (the process then exits and resumes from the slot).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The replication connection failed.
    #[error("replication stream failed: {0}")]
    Replication(#[from] PgWireError),
    /// The server ended the stream.
    #[error("replication stream ended unexpectedly")]
    Ended,
    /// A message could not be decoded.
    #[error("failed to decode a pgoutput message at {lsn}: {source}")]
    Decode {
        /// Where the message is.
        lsn: Lsn,
        source: pgoutput::DecodeError,
    },
    /// A change could not be turned into an envelope.
    #[error("failed to build the event of the change at {lsn}: {source}")]
    Row {
        /// Where the change is.
        lsn: Lsn,
        source: RowError,
    },
    /// A change arrived outside a transaction.
    #[error("change at {0} arrived outside a transaction")]
    OutsideTransaction(Lsn),
    /// The producer refused an event.
    #[error("failed to produce to {topic}: {source}")]
    Produce {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
    /// The broker did not acknowledge an event.
    #[error("{0}")]
    Delivery(String),
    /// The producer could not flush on shutdown.
    #[error("failed to flush the producer on shutdown: {0}")]
    Flush(String),
}

/// Where the changes of one captured table go, and what of its rows leaves the capture.
#[derive(Debug, Clone)]
pub struct TableRoute {
    /// Topic of the table's events.
    pub topic: String,
    /// Column whose value keys the events.
    pub primary_key: String,
    /// The columns excluded and masked.
    pub columns: Arc<ColumnRules>,
    /// The table's row filter (`cdcstar_crds::postgres::row_filter_sql`): the publication applies
    /// it to the stream, the snapshot's queries apply it to existing rows.
    pub row_filter: Option<String>,
}

/// The captured tables of a pipeline, by name, in one schema.
#[derive(Debug, Clone)]
pub struct Routes {
    /// Schema of the captured tables.
    pub schema: String,
    /// Table name → route.
    pub tables: HashMap<String, TableRoute>,
}

impl Routes {
    /// The route of `schema.table`, `None` when the pipeline does not capture it.
    pub fn get(&self, schema: &str, table: &str) -> Option<&TableRoute> {
        if schema == self.schema {
            self.tables.get(table)
        } else {
            None
        }
    }
}

#[derive(Debug)]
struct OpenTransaction {
    id: TxId,
    commit_lsn: Lsn,
    commit_time: String,
    commit_time_micros: i64,
    next_seq: u32,
}

/// The streaming loop's state.
pub struct Streamer {
    client: ReplicationClient,
    producer: Arc<EventProducer>,
    metrics: Arc<CaptureMetrics>,
    routes: Arc<Routes>,
    /// Every topic of the pipeline, once each: where heartbeats go.
    topics: Vec<String>,
    relations: RelationCache,
    open: Option<OpenTransaction>,
    confirmed: Lsn,
    status_interval: Duration,
}

cdcstar_runtime::debug_fields!(Streamer { confirmed, open });

impl Streamer {
    /// A loop over `client`, which started at `confirmed`.
    pub fn new(
        client: ReplicationClient,
        producer: Arc<EventProducer>,
        metrics: Arc<CaptureMetrics>,
        routes: Arc<Routes>,
        confirmed: Lsn,
        status_interval: Duration,
    ) -> Self {
        metrics.confirmed_lsn.set(confirmed.0 as i64);
        let mut topics: Vec<String> = routes.tables.values().map(|r| r.topic.clone()).collect();
        topics.sort();
        topics.dedup();
        Self {
            client,
            producer,
            metrics,
            routes,
            topics,
            relations: RelationCache::default(),
            open: None,
            confirmed,
            status_interval,
        }
    }

    /// Streams until `shutdown` is cancelled (then flushes and confirms) or an error occurs.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), StreamError> {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let progress = Arc::clone(self.producer.progress());
        self.metrics.set_ready();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                event = self.client.recv() => match event? {
                    Some(event) => self.handle(event).await?,
                    None => return Err(StreamError::Ended),
                },
                _ = progress.notified() => {}
                _ = tick.tick() => {}
            }
            self.confirm()?;
        }
        self.finish().await
    }

    async fn handle(&mut self, event: ReplicationEvent) -> Result<(), StreamError> {
        match event {
            ReplicationEvent::Begin {
                final_lsn,
                commit_time_micros,
                ..
            } => self.begin(Lsn(final_lsn.as_u64()), commit_time_micros),
            ReplicationEvent::Commit { end_lsn, .. } => self.commit(Lsn(end_lsn.as_u64())),
            ReplicationEvent::Message {
                transactional,
                lsn,
                prefix,
                content,
            } => {
                if !transactional {
                    self.outside_transaction(Lsn(lsn.as_u64()), &prefix, &content)
                        .await?;
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => self.tracker_idle(Lsn(wal_end.as_u64())),
            ReplicationEvent::XLogData {
                wal_start, data, ..
            } => self.data(Lsn(wal_start.as_u64()), &data).await?,
            ReplicationEvent::StoppedAt { .. } => return Err(StreamError::Ended),
        }
        Ok(())
    }

    fn begin(&mut self, commit_lsn: Lsn, commit_time_micros: i64) {
        let id = lock(self.producer.tracker()).begin(commit_time_micros);
        self.open = Some(OpenTransaction {
            id,
            commit_lsn,
            commit_time: commit_time_text(commit_time_micros),
            commit_time_micros,
            next_seq: 0,
        });
    }

    fn commit(&mut self, end_lsn: Lsn) {
        if let Some(open) = self.open.take() {
            self.metrics
                .commit_to_read_seconds
                .observe(seconds_since_commit(open.commit_time_micros));
            lock(self.producer.tracker()).commit(open.id, end_lsn);
        }
    }

    fn tracker_idle(&mut self, lsn: Lsn) {
        lock(self.producer.tracker()).idle_position(lsn);
    }

    /// A non-transactional logical decoding message at `lsn`: its position may be confirmed, and a
    /// heartbeat (the capture's own, or another capture's on the same database) is passed on as a
    /// `heartbeat` envelope to every partition of every topic of the pipeline.
    async fn outside_transaction(
        &mut self,
        lsn: Lsn,
        prefix: &str,
        content: &[u8],
    ) -> Result<(), StreamError> {
        if self.open.is_none()
            && let Some(unix_micros) = heartbeat_time(prefix, content)
        {
            self.heartbeat(lsn, unix_micros).await?;
        }
        self.tracker_idle(lsn);
        Ok(())
    }

    /// Sends a `heartbeat` at `lsn`, written at `unix_micros`: every transaction committed before it
    /// was read from the stream, and its events enqueued, before it; each partition delivers them
    /// before the heartbeat.
    async fn heartbeat(&mut self, lsn: Lsn, unix_micros: i64) -> Result<(), StreamError> {
        let envelope = Envelope {
            metadata: Metadata {
                table: String::new(),
                operation: Operation::Heartbeat,
                lsn: Some(lsn),
                commit_lsn: Some(lsn),
                tx_seq: None,
                commit_time: Some(commit_time_text(
                    unix_micros.saturating_sub(crate::pgoutput::PG_EPOCH_OFFSET_MICROS),
                )),
                unchanged_toast: Vec::new(),
                old_key: None,
            },
            payload: serde_json::Map::new(),
        };
        let payload = serde_json::to_vec(&envelope).expect("an envelope always serialises");
        let mut sent = 0;
        for topic in &self.topics {
            sent += self
                .producer
                .send_heartbeat(topic, &payload)
                .await
                .map_err(|source| StreamError::Produce {
                    topic: topic.clone(),
                    source,
                })?;
        }
        self.metrics.heartbeat_envelopes.inc_by(sent as u64);
        self.metrics.sent_commit_time(unix_micros);
        tracing::debug!(%lsn, partitions = sent, "heartbeat sent");
        Ok(())
    }

    /// Everything but Begin, Commit and Message (which the client decodes itself).
    async fn data(&mut self, lsn: Lsn, data: &Bytes) -> Result<(), StreamError> {
        let message =
            pgoutput::decode(data).map_err(|source| StreamError::Decode { lsn, source })?;
        match message {
            LogicalMessage::Begin(begin) => {
                self.begin(Lsn(begin.final_lsn), begin.commit_time_micros)
            }
            LogicalMessage::Commit(commit) => self.commit(Lsn(commit.end_lsn)),
            LogicalMessage::Message(message) => {
                if !message.transactional {
                    self.outside_transaction(Lsn(message.lsn), &message.prefix, &message.content)
                        .await?;
                }
            }
            LogicalMessage::Relation(relation) => {
                tracing::debug!(table = %relation.name, columns = relation.columns.len(), "relation");
                self.relations.update(relation);
            }
            LogicalMessage::Type { .. } | LogicalMessage::Origin { .. } => {}
            LogicalMessage::Truncate { relation_ids, .. } => {
                self.truncate(lsn, &relation_ids).await?
            }
            LogicalMessage::Insert { relation_id, new } => {
                self.change(lsn, relation_id, |builder, position| {
                    builder.insert(&new, position)
                })
                .await?
            }
            LogicalMessage::Update {
                relation_id,
                old,
                new,
            } => {
                self.change(lsn, relation_id, |builder, position| {
                    builder.update(old.as_ref(), &new, position)
                })
                .await?
            }
            LogicalMessage::Delete { relation_id, old } => {
                self.change(lsn, relation_id, |builder, position| {
                    builder.delete(&old, position)
                })
                .await?
            }
        }
        Ok(())
    }

    /// A TRUNCATE of captured tables: one `truncate` envelope per table (empty payload, the
    /// message's LSN) sent to every partition of the table's topic; the sink deletes every row of
    /// the table written below that LSN.
    async fn truncate(&mut self, lsn: Lsn, relation_ids: &[u32]) -> Result<(), StreamError> {
        for id in relation_ids {
            let Ok(relation) = self.relations.get(*id) else {
                tracing::warn!(relation_id = id, %lsn, "TRUNCATE of an unknown relation ignored");
                continue;
            };
            let Some(route) = self.routes.get(&relation.namespace, &relation.name) else {
                continue;
            };
            let open = self
                .open
                .as_mut()
                .ok_or(StreamError::OutsideTransaction(lsn))?;
            let envelope = Envelope {
                metadata: Metadata {
                    table: relation.name.clone(),
                    operation: Operation::Truncate,
                    lsn: Some(lsn),
                    commit_lsn: Some(open.commit_lsn),
                    tx_seq: Some(open.next_seq),
                    commit_time: Some(open.commit_time.clone()),
                    unchanged_toast: Vec::new(),
                    old_key: None,
                },
                payload: serde_json::Map::new(),
            };
            open.next_seq += 1;
            let tx = open.id;
            tracing::info!(table = %relation.name, %lsn, "TRUNCATE propagated");
            self.metrics
                .truncates
                .get_or_create(&TableLabel {
                    table: relation.name.clone(),
                })
                .inc();
            let payload = serde_json::to_vec(&envelope).expect("an envelope always serialises");
            let topic = route.topic.clone();
            let commit_time = open.commit_time_micros;
            self.producer
                .send_stream_to_every_partition(&topic, &payload, tx)
                .await
                .map_err(|source| StreamError::Produce { topic, source })?;
            self.metrics.sent_commit_time(
                commit_time.saturating_add(crate::pgoutput::PG_EPOCH_OFFSET_MICROS),
            );
        }
        Ok(())
    }

    async fn change(
        &mut self,
        lsn: Lsn,
        relation_id: u32,
        build: impl FnOnce(&mut RowBuilder<'_>, ChangePosition) -> Result<Change, RowError>,
    ) -> Result<(), StreamError> {
        let open = self
            .open
            .as_mut()
            .ok_or(StreamError::OutsideTransaction(lsn))?;
        let position = ChangePosition {
            lsn,
            commit_lsn: open.commit_lsn,
            tx_seq: open.next_seq,
            commit_time: open.commit_time.clone(),
        };
        open.next_seq += 1;
        let tx = open.id;
        let commit_time = open.commit_time_micros;
        let relation = self
            .relations
            .get(relation_id)
            .map_err(|source| StreamError::Row { lsn, source })?;
        let Some(route) = self.routes.get(&relation.namespace, &relation.name) else {
            tracing::debug!(table = %relation.name, "change of a table the pipeline does not capture");
            return Ok(());
        };
        let mut builder = RowBuilder::new(relation, &route.primary_key, &route.columns);
        let change =
            build(&mut builder, position).map_err(|source| StreamError::Row { lsn, source })?;
        for warning in &builder.warnings {
            tracing::warn!(column = %warning.column, reason = %warning.reason, %lsn, "value kept as text");
            self.metrics.conversion_warnings.inc();
        }
        let payload = serde_json::to_vec(&change.envelope).expect("an envelope always serialises");
        let topic = route.topic.clone();
        self.metrics
            .events
            .get_or_create(&TableOperation {
                table: change.envelope.metadata.table.clone(),
                operation: change.envelope.metadata.operation.as_str().to_owned(),
            })
            .inc();
        self.producer
            .send_stream(&topic, change.key.as_deref(), &payload, tx)
            .await
            .map_err(|source| StreamError::Produce { topic, source })?;
        self.metrics
            .sent_commit_time(commit_time.saturating_add(crate::pgoutput::PG_EPOCH_OFFSET_MICROS));
        Ok(())
    }

    /// Reports the acknowledged position to the slot; fails once a delivery failed.
    fn confirm(&mut self) -> Result<(), StreamError> {
        let (confirmable, failure, in_flight, acknowledged) = {
            let mut tracker = lock(self.producer.tracker());
            (
                tracker.confirmable(),
                tracker.failure().map(str::to_owned),
                tracker.in_flight(),
                tracker.take_acknowledged_commits(),
            )
        };
        for commit_time_micros in acknowledged {
            self.metrics
                .commit_to_ack_seconds
                .observe(seconds_since_commit(commit_time_micros));
        }
        self.metrics.in_flight.set(in_flight as i64);
        if let Some(reason) = failure {
            return Err(StreamError::Delivery(reason));
        }
        if confirmable > self.confirmed {
            self.confirmed = confirmable;
            self.client
                .update_applied_lsn(pgwire_replication::Lsn::from_u64(confirmable.0));
            self.metrics.confirmed_lsn.set(confirmable.0 as i64);
        }
        Ok(())
    }

    /// Graceful end: wait for every delivery, confirm, let the status update reach the server, stop.
    async fn finish(mut self) -> Result<(), StreamError> {
        tracing::info!("flushing the producer before shutdown");
        let producer = Arc::clone(&self.producer);
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30)))
            .await
            .map_err(|err| StreamError::Flush(err.to_string()))?
            .map_err(|err| StreamError::Flush(err.to_string()))?;
        self.confirm()?;
        // NB: the client sends a raised position within `status_interval`; stopping earlier would
        // drop the last update and replay (harmlessly, at least once) the last transactions.
        tokio::time::sleep(self.status_interval + Duration::from_millis(300)).await;
        tracing::info!(confirmed = %self.confirmed, "stopping replication");
        self.client.shutdown().await?;
        Ok(())
    }
}

/// Seconds from a commit timestamp (Postgres epoch microseconds) to now; 0 when the clocks disagree.
fn seconds_since_commit(pg_micros: i64) -> f64 {
    let commit_unix = pg_micros.saturating_add(crate::pgoutput::PG_EPOCH_OFFSET_MICROS);
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.as_micros() as i64);
    (now_unix - commit_unix).max(0) as f64 / 1e6
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
