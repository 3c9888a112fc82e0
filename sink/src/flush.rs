//! Flushing a batch: dead letters first (acknowledged by the broker), then the row changes into
//! ClickHouse, then the events whose rows ClickHouse refused into the dead-letter topic too, then
//! the values replaced under their column's policy into the status tables beside the star tables,
//! each retried on failure until it succeeds or the process stops. Only after all of them does the
//! caller store the batch's offsets. The highest commit position applied per partition is then
//! handed to [`positions`], which writes it in the background.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::apply::Applier;
use crate::consume::batch::Batch;
use crate::dead_letters::isolate::{Applied, apply_isolating};
use crate::dead_letters::letter::DeadLetter;
use crate::dead_letters::producer::DeadLetterProducer;
use crate::flush::positions::PositionWriter;
use crate::metrics::{Metrics, label};
use crate::retry::{Abandoned, retry_until_shutdown};
use crate::status_tables::StatusWriter;

pub mod positions;

/// Writes batches.
#[derive(Debug, Clone)]
pub struct Flusher {
    applier: Applier,
    dead_letters: DeadLetterProducer,
    status: StatusWriter,
    metrics: Arc<Metrics>,
    positions: PositionWriter,
}

impl Flusher {
    /// A flusher writing rows with `applier`, poison events to `dead_letters` and its reports with
    /// `status`.
    pub fn new(
        applier: Applier,
        dead_letters: DeadLetterProducer,
        status: StatusWriter,
        metrics: Arc<Metrics>,
    ) -> Self {
        Flusher {
            applier,
            dead_letters,
            positions: PositionWriter::start(status.clone(), metrics.clone()),
            status,
            metrics,
        }
    }

    /// Applies `batch`; returns only when everything is durable, or when `shutdown` interrupts the
    /// retries (then nothing may be committed).
    pub async fn flush(
        &self,
        batch: &Batch,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Abandoned> {
        if batch.is_empty() {
            return Ok(());
        }
        if !batch.dead_letters.is_empty() {
            retry_until_shutdown("dead-letter delivery", &self.metrics, shutdown, || {
                self.dead_letters.send_all(&batch.dead_letters)
            })
            .await?;
            self.count_dead_letters(&batch.dead_letters);
        }
        let started = Instant::now();
        let Applied { report, refused } =
            retry_until_shutdown("clickhouse write", &self.metrics, shutdown, || async {
                let result = apply_isolating(&self.applier, batch).await;
                self.metrics.ready.set(i64::from(result.is_ok()));
                result
            })
            .await?;
        if !refused.is_empty() {
            let letters = retry_until_shutdown(
                "refused rows' dead letters",
                &self.metrics,
                shutdown,
                || async {
                    let letters = self
                        .dead_letters
                        .refused_letters(batch, &refused)
                        .await
                        .map_err(|e| e.to_string())?;
                    self.dead_letters
                        .send_all(&letters)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>(letters)
                },
            )
            .await?;
            self.count_dead_letters(&letters);
        }
        // NB: after the rows: a count never precedes the rows it counts. A batch replayed before its
        // offsets were stored is counted again (docs/sink.md).
        if !batch.adjusted.is_empty() {
            let at = chrono::Utc::now();
            retry_until_shutdown("value adjustments", &self.metrics, shutdown, || async {
                let result = self
                    .status
                    .record_adjustments(self.applier.plan(), &batch.adjusted, at)
                    .await;
                self.metrics.ready.set(i64::from(result.is_ok()));
                result
            })
            .await?;
        }
        // NB: after the rows too: a position never runs ahead of the rows it stands for. A replay
        // records a lower or equal one, which the table's version keeps below the higher.
        self.positions.record(
            batch
                .positions
                .iter()
                .map(|(&(topic, partition), &position)| {
                    (batch.topics[topic].as_str(), partition, position)
                }),
        );
        let elapsed = started.elapsed();
        self.metrics.apply_seconds.observe(elapsed.as_secs_f64());
        self.metrics.batch_events.observe(batch.events as f64);
        let plan = self.applier.plan();
        for (id, rows) in report.rows_written.iter().enumerate() {
            if *rows > 0 {
                self.metrics
                    .rows_written
                    .get_or_create(&label("table", plan.tables[id].name.as_str()))
                    .inc_by(*rows as u64);
            }
        }
        self.metrics
            .rows_propagated
            .inc_by(report.propagated as u64);
        self.metrics.rows_rechecked.inc_by(report.rechecked as u64);
        self.metrics
            .rows_unresolved
            .inc_by(report.unresolved as u64);
        let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        for commit_time in &batch.commit_times {
            self.metrics
                .end_to_end_lag_seconds
                .observe((now - commit_time).max(0.0));
        }
        tracing::debug!(
            events = batch.events,
            dead_letters = batch.dead_letters.len(),
            rows = report.rows_written.iter().sum::<usize>(),
            propagated = report.propagated,
            rechecked = report.rechecked,
            unresolved = report.unresolved,
            bytes = report.bytes,
            elapsed_ms = elapsed.as_millis() as u64,
            "batch applied"
        );
        Ok(())
    }

    fn count_dead_letters(&self, letters: &[DeadLetter]) {
        for letter in letters {
            self.metrics
                .events_dead_lettered
                .get_or_create(&vec![
                    ("table", letter.table.clone()),
                    ("reason", letter.kind.to_owned()),
                ])
                .inc();
        }
    }

    /// Returns once the positions of the batches flushed so far are written (callers bound the
    /// wait): before a hand-over or a shutdown.
    pub async fn positions_written(&self) {
        self.positions.drain().await;
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
