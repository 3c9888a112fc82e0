//! The partition positions beside the star tables, written off the flush path.
//!
//! A flush records the highest commit position it applied per partition here once its rows are
//! written; a background task writes what was recorded, the highest per partition, at most every
//! [`POSITION_WRITE_INTERVAL`] and one write at a time. A position is therefore never written
//! before the rows it stands for, and the flush does not wait for it: on the 1 000 tx/s
//! benchmark, a write of the positions after every batch was half of each batch's ~29 ms. After a
//! write the pipeline's watermark is read back for the sink's gauge, at most every
//! [`WATERMARK_READ_INTERVAL`].
//!
//! A crash can lose what was recorded and not written yet (at most one interval's): the watermark
//! then stays at the previous write until the partition's next event, a capture heartbeat at the
//! latest, writes it again. Shutdown and partition hand-over wait for the writes ([`PositionWriter::drain`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::metrics::{Metrics, label};
use crate::route::CommitPosition;
use crate::status_tables::StatusWriter;

/// Shortest time between two writes of the positions.
pub const POSITION_WRITE_INTERVAL: Duration = Duration::from_millis(200);

/// Wait before writing again after a failed write.
const RETRY_WAIT: Duration = Duration::from_secs(1);

/// Shortest time between two reads of the pipeline's watermark for the gauge.
pub const WATERMARK_READ_INTERVAL: Duration = Duration::from_secs(5);

/// Records applied positions and writes them in the background.
#[derive(Debug, Clone)]
pub struct PositionWriter {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    status: StatusWriter,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    /// Something was recorded, or a drain wants it written now.
    recorded: Notify,
    /// A write ended.
    written: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Recorded and not written yet: the highest per (topic, partition).
    unwritten: BTreeMap<(String, i32), CommitPosition>,
    writing: bool,
    /// A drain waits: write without the interval.
    draining: bool,
    watermark_read: Option<Instant>,
}

impl State {
    fn merge(&mut self, positions: impl IntoIterator<Item = ((String, i32), CommitPosition)>) {
        for (partition, position) in positions {
            let highest = self.unwritten.entry(partition).or_insert(position);
            *highest = (*highest).max(position);
        }
    }
}

impl PositionWriter {
    /// A writer through `status`, with its background task (on the current Tokio runtime; it ends
    /// when the last clone of the writer is dropped).
    pub fn start(status: StatusWriter, metrics: Arc<Metrics>) -> Self {
        let shared = Arc::new(Shared {
            status,
            metrics,
            state: Mutex::default(),
            recorded: Notify::new(),
            written: Notify::new(),
        });
        tokio::spawn(write_loop(Arc::downgrade(&shared)));
        PositionWriter { shared }
    }

    /// Records the positions a flush applied, `(topic, partition, position)`.
    pub fn record<'a>(&self, positions: impl IntoIterator<Item = (&'a str, i32, CommitPosition)>) {
        self.shared.state().merge(
            positions
                .into_iter()
                .map(|(topic, partition, position)| ((topic.to_owned(), partition), position)),
        );
        self.shared.recorded.notify_one();
    }

    /// Returns once everything recorded before the call is written (retrying failed writes; callers
    /// bound the wait).
    pub async fn drain(&self) {
        loop {
            let written = self.shared.written.notified();
            {
                let mut state = self.shared.state();
                if state.unwritten.is_empty() && !state.writing {
                    state.draining = false;
                    return;
                }
                state.draining = true;
            }
            self.shared.recorded.notify_one();
            written.await;
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes what is recorded, if anything; answers whether a write failed.
    async fn write_recorded(&self) -> bool {
        let positions = {
            let mut state = self.state();
            if state.unwritten.is_empty() {
                return false;
            }
            state.writing = true;
            std::mem::take(&mut state.unwritten)
        };
        let rows: Vec<(&str, i32, CommitPosition)> = positions
            .iter()
            .map(|((topic, partition), position)| (topic.as_str(), *partition, *position))
            .collect();
        let result = self
            .status
            .record_positions(&rows, chrono::Utc::now())
            .await;
        let failed = result.is_err();
        if let Err(error) = result {
            tracing::warn!(%error, "failed to write the partition positions; retrying");
            self.state().merge(positions);
        } else {
            self.refresh_status_gauges().await;
        }
        self.state().writing = false;
        self.written.notify_waiters();
        failed
    }

    /// Reads the pipeline's watermark and the last verification of each star table into their
    /// gauges, unless they were read less than [`WATERMARK_READ_INTERVAL`] ago. A failure is logged: the gauge is a view on the table, not a
    /// reason to hold the batch back.
    async fn refresh_status_gauges(&self) {
        {
            let mut state = self.state();
            if state
                .watermark_read
                .is_some_and(|at| at.elapsed() < WATERMARK_READ_INTERVAL)
            {
                return;
            }
            state.watermark_read = Some(Instant::now());
        }
        match self.status.watermark().await {
            Ok(watermark) => {
                let seconds = watermark
                    .filter(|w| w.commit_lsn > 0)
                    .map_or(0.0, |w| w.commit_time_us as f64 / 1e6);
                self.metrics.watermark_seconds.set(seconds);
            }
            Err(error) => tracing::warn!(%error, "failed to read the pipeline's watermark"),
        }
        match self.status.verifications().await {
            Ok(verifications) => {
                for row in verifications {
                    let table = label("table", row.table);
                    let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                    self.metrics
                        .verification_mismatches
                        .get_or_create(&table)
                        .set(gauge(row.mismatches));
                    self.metrics
                        .verification_skipped
                        .get_or_create(&table)
                        .set(gauge(row.skipped));
                    self.metrics
                        .verification_timestamp_seconds
                        .get_or_create(&table)
                        .set(row.verified_at_ms.div_euclid(1000));
                }
            }
            Err(error) => tracing::warn!(%error, "failed to read the last verifications"),
        }
    }
}

/// Writes what is recorded, then waits the interval (unless a drain waits), until the writer is
/// dropped.
async fn write_loop(shared: Weak<Shared>) {
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        // NB: bounded, so that a dropped writer's task ends.
        let _ = tokio::time::timeout(Duration::from_secs(1), strong.recorded.notified()).await;
        let failed = strong.write_recorded().await;
        let wait = if failed {
            RETRY_WAIT
        } else if strong.state().draining {
            Duration::ZERO
        } else {
            POSITION_WRITE_INTERVAL
        };
        drop(strong);
        tokio::time::sleep(wait).await;
    }
}
