//! Applying a batch when ClickHouse refuses some of its rows: finding the events those rows come
//! from, so that they go to the dead-letter topic while the rest of the batch is applied.
//!
//! A batch is first applied whole, so the normal path costs nothing more. When an insert fails with
//! a code that refuses rows ([`StoreError::refuses_rows`]: a CHECK constraint, a materialised view
//! that throws on a value...), the table's columns are first compared with the rows the sink writes:
//! a table that drifted from the spec refuses every row, which is a configuration error to retry
//! and alert on ([`StoreError::SchemaDrift`]), not a reason to dead-letter the whole stream. Then
//! the batch is bisected by event: each half is applied in consumption order, a half that fails is
//! split again, and an event that fails alone is refused. With k refused events among n, that is
//! about 2·k·log2(n) applies, each half the size of the one before.
//!
//! Applying the halves in order is applying consecutive batches, which the version rules make
//! equivalent to applying the whole. An event is refused for any row its application writes: its
//! own star rows, or the fact rows that a dimension change of it propagates to. A failure of any
//! other kind (ClickHouse went away) fails the flush, which is then retried from the start.

use std::collections::HashSet;

use crate::apply::{Applier, ApplyReport};
use crate::consume::batch::Batch;
use crate::store::StoreError;

/// An event whose rows ClickHouse refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Index of the event in [`Batch::origins`].
    pub event: usize,
    /// ClickHouse's error.
    pub reason: String,
}

/// What applying a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Rows written.
    pub report: ApplyReport,
    /// Events left out, in consumption order.
    pub refused: Vec<Refused>,
}

/// Applies `batch`, leaving out the events whose rows ClickHouse refuses.
pub async fn apply_isolating(applier: &Applier, batch: &Batch) -> Result<Applied, StoreError> {
    let error = match applier.apply(&batch.changes).await {
        Ok(report) => {
            return Ok(Applied {
                report,
                refused: Vec::new(),
            });
        }
        Err(error) => error,
    };
    let mut checked_tables = HashSet::new();
    let error = confirm_refusal(applier, error, &mut checked_tables).await?;
    if batch.origins.is_empty() {
        // NB: unreachable (rows come from events), but bisecting nothing would not end.
        return Err(error);
    }
    tracing::warn!(events = batch.origins.len(), %error,
        "clickhouse refused rows of the batch; looking for the events they come from");
    let mut applied = Applied::default();
    // Ranges of events still to apply, the next one last; a range known to fail carries its error.
    let mut pending = vec![(0..batch.origins.len(), Some(error))];
    while let Some((events, known_failure)) = pending.pop() {
        let error = match known_failure {
            Some(error) => error,
            None => match applier.apply(batch.changes_of(events.clone())).await {
                Ok(report) => {
                    applied.report.add(report);
                    continue;
                }
                Err(error) => confirm_refusal(applier, error, &mut checked_tables).await?,
            },
        };
        if events.len() == 1 {
            tracing::warn!(event = ?batch.position(events.start), %error,
                "clickhouse refused the rows of an event; it goes to the dead-letter topic");
            applied.refused.push(Refused {
                event: events.start,
                reason: error.to_string(),
            });
            continue;
        }
        let middle = events.start + events.len() / 2;
        pending.push((middle..events.end, None));
        pending.push((events.start..middle, None));
    }
    Ok(applied)
}

/// `error` back when it refuses rows of a table that still takes the sink's rows; otherwise the
/// error to retry the flush with. Each table's columns are read once per batch.
async fn confirm_refusal(
    applier: &Applier,
    error: StoreError,
    checked_tables: &mut HashSet<String>,
) -> Result<StoreError, StoreError> {
    if !error.refuses_rows() {
        return Err(error);
    }
    let plan = applier.plan();
    let Some(id) = plan.table_id(error.table()) else {
        return Ok(error);
    };
    if matches!(error, StoreError::Encode { .. }) || checked_tables.contains(error.table()) {
        return Ok(error);
    }
    let drift = applier.store().insert_drift(&plan.tables[id]).await?;
    if !drift.is_empty() {
        return Err(StoreError::SchemaDrift {
            table: error.table().to_owned(),
            drift,
            refusal: error.to_string(),
        });
    }
    checked_tables.insert(error.table().to_owned());
    Ok(error)
}
