//! Phase 3a: the source database. Observes the publication, replica identities and slot, runs the
//! statements `crate::sql` derives from the difference, and reports the WAL the slot retains.

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::postgres;

use crate::external::{DatabaseError, Sensitive, SourceConnector, SourceDatabase};
use crate::sql::{self, SourceObservation};

use super::status::{ConditionUpdate, PUBLICATION};

/// What the pass did on the source database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    /// What was seen before any change.
    pub observed: SourceObservation,
    /// Statements run, in order (empty when everything was in place).
    pub executed: Vec<String>,
}

/// Why the source database could not be brought to the spec.
#[derive(Debug, thiserror::Error)]
#[error("source database: {0}")]
pub struct SourceError(#[from] pub DatabaseError);

/// The pipeline's publication, slot and tables as the source database has them; with
/// `probe_row_filters`, also the declared row filters as Postgres prints them (not for cleanup,
/// which must work whatever the filters say).
async fn observe(
    database: &dyn SourceDatabase,
    pipeline: &CdcPipeline,
    probe_row_filters: bool,
) -> Result<SourceObservation, DatabaseError> {
    let probe = probe_row_filters
        .then(|| postgres::row_filter_probe(pipeline))
        .flatten();
    database
        .observe(
            &postgres::effective_publication_name(pipeline),
            &pipeline.slot_name(),
            &postgres::declared_tables(pipeline),
            probe.as_deref(),
        )
        .await
}

/// Brings the source database to the spec.
pub async fn reconcile_source(
    connector: &dyn SourceConnector,
    dsn: &Sensitive,
    pipeline: &CdcPipeline,
) -> Result<SourceReport, SourceError> {
    let database = connector.connect(dsn).await?;
    let observed = observe(database.as_ref(), pipeline, true).await?;
    let executed = sql::source_statements(pipeline, &observed);
    database.execute(&executed).await?;
    Ok(SourceReport { observed, executed })
}

/// What cleanup found on the source database before it dropped anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceCleanup {
    /// The replication slot existed (and was dropped).
    pub slot_existed: bool,
    /// The publication existed (and was dropped).
    pub publication_existed: bool,
}

impl SourceCleanup {
    /// What the cleanup Event says of the source, naming only what was really there.
    pub fn describe(&self, pipeline: &CdcPipeline) -> String {
        let slot = pipeline.slot_name();
        let publication = postgres::effective_publication_name(pipeline);
        let part = |existed: bool, what: &str, name: &str| {
            if existed {
                format!("dropped {what} {name}")
            } else {
                format!("{what} {name} did not exist")
            }
        };
        format!(
            "{}; {}",
            part(self.slot_existed, "replication slot", &slot),
            part(self.publication_existed, "publication", &publication)
        )
    }
}

/// Removes the publication and the slot (terminating the slot's reader first), and says which of
/// them existed. Each statement is a no-op when its object is already gone.
pub async fn cleanup_source(
    connector: &dyn SourceConnector,
    dsn: &Sensitive,
    pipeline: &CdcPipeline,
) -> Result<SourceCleanup, SourceError> {
    let database = connector.connect(dsn).await?;
    let observed = observe(database.as_ref(), pipeline, false).await?;
    database
        .execute(&postgres::cleanup_statements(pipeline))
        .await?;
    Ok(SourceCleanup {
        slot_existed: observed.slot.is_some(),
        publication_existed: observed.publication_tables.is_some(),
    })
}

/// The reason of the `Publication` condition when Postgres invalidated the slot.
pub const SLOT_INVALIDATED: &str = "SlotInvalidated";

/// The `Publication` condition after a pass.
pub fn publication_condition(
    pipeline: &CdcPipeline,
    result: &Result<SourceReport, SourceError>,
) -> ConditionUpdate {
    let report = match result {
        Ok(report) => report,
        Err(SourceError(error)) => {
            let reason = match error {
                DatabaseError::Unreachable(_) => "SourceUnreachable",
                DatabaseError::Inspect(_) => "SourceInspectionFailed",
                DatabaseError::Statement { .. } => "SourceStatementFailed",
            };
            return ConditionUpdate::failed(
                PUBLICATION,
                reason,
                format!("source database {error}"),
            );
        }
    };
    let tables = pipeline.spec.source.tables.len();
    let publication = postgres::effective_publication_name(pipeline);
    let slot = pipeline.slot_name();
    if let Some(reason) = report
        .observed
        .slot
        .as_ref()
        .and_then(|s| s.invalidated.as_ref())
    {
        return ConditionUpdate::failed(
            PUBLICATION,
            SLOT_INVALIDATED,
            format!(
                "Postgres invalidated replication slot {slot} ({reason}): the WAL it needs is gone, \
                 so the capture cannot resume from it and changes since its last confirmed position \
                 are lost to it. Resync: drop the slot (SELECT pg_drop_replication_slot('{slot}')) \
                 and its snapshot progress (DELETE FROM cdcstar.snapshot_progress WHERE slot = \
                 '{slot}'); the operator creates the slot again and the capture snapshots every \
                 table, whose rows replace the star tables' at newer versions. To keep it from \
                 happening again, raise max_slot_wal_keep_size (and idle_replication_slot_timeout \
                 on PostgreSQL 18) or alert on the retained WAL"
            ),
        );
    }
    if sql::operator_owns_replication(pipeline) {
        let verb = if report.executed.is_empty() {
            "up to date"
        } else {
            "updated"
        };
        ConditionUpdate::ok(
            PUBLICATION,
            if report.executed.is_empty() {
                "UpToDate"
            } else {
                "Updated"
            },
            format!(
                "publication {publication} publishes {tables} tables, slot {slot} exists ({verb})"
            ),
        )
    } else if let Some(published) = &report.observed.publication_tables {
        let missing: Vec<String> = postgres::declared_tables(pipeline)
            .into_iter()
            .filter(|table| !published.contains(table))
            .map(|table| table.name)
            .collect();
        if !missing.is_empty() && pipeline.spec.capture.snapshot && report.observed.slot.is_some() {
            // NB: Redpanda Connect snapshots only when it creates the slot; it will add these
            // tables to its publication and stream their changes, never their existing rows.
            return ConditionUpdate::ok(
                PUBLICATION,
                "TablesAddedWithoutSnapshot",
                format!(
                    "Redpanda Connect's slot {slot} already exists, so the added tables {} get \
                     their changes but no snapshot of their existing rows; to backfill, touch the \
                     rows (e.g. UPDATE each table SET its primary key = itself) or switch to engine \
                     native, which snapshots tables added later",
                    missing.join(", ")
                ),
            );
        }
        ConditionUpdate::ok(
            PUBLICATION,
            "CreatedByRedpandaConnect",
            format!("Redpanda Connect's publication {publication} and slot {slot} exist"),
        )
    } else {
        ConditionUpdate::failed(
            PUBLICATION,
            "Pending",
            format!(
                "waiting for Redpanda Connect to create publication {publication} and slot {slot}"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use cdcstar_crds::pipeline::CaptureEngine;
    use cdcstar_crds::postgres::QualifiedTable;

    use super::*;
    use crate::sql::SlotObservation;

    fn redpanda_connect_report(published: &[&str]) -> Result<SourceReport, SourceError> {
        Ok(SourceReport {
            observed: SourceObservation {
                publication_tables: Some(
                    published
                        .iter()
                        .map(|t| QualifiedTable::new("public".to_owned(), (*t).to_owned()))
                        .collect(),
                ),
                slot: Some(SlotObservation::default()),
                ..SourceObservation::default()
            },
            executed: Vec::new(),
        })
    }

    #[test]
    fn an_invalidated_slot_fails_the_publication_condition_with_the_resync_steps() {
        let pipeline: CdcPipeline =
            serde_yaml::from_str(include_str!("../../../examples/shop-pipeline.yaml")).unwrap();
        let report = |invalidated: Option<&str>| {
            Ok(SourceReport {
                observed: SourceObservation {
                    slot: Some(SlotObservation {
                        invalidated: invalidated.map(str::to_owned),
                        ..SlotObservation::default()
                    }),
                    ..SourceObservation::default()
                },
                executed: Vec::new(),
            })
        };
        assert_eq!(
            publication_condition(&pipeline, &report(None)).reason,
            "UpToDate"
        );
        let lost = publication_condition(&pipeline, &report(Some("wal_removed")));
        assert_eq!(lost.reason, SLOT_INVALIDATED);
        assert_eq!(
            lost.status,
            crate::controller::status::ConditionStatus::False
        );
        assert!(
            lost.message.contains("(wal_removed)")
                && lost
                    .message
                    .contains("pg_drop_replication_slot('cdcstar_shop')"),
            "{}",
            lost.message
        );
    }

    #[test]
    fn a_table_added_to_an_existing_redpanda_connect_slot_says_it_gets_no_snapshot() {
        let mut pipeline: CdcPipeline =
            serde_yaml::from_str(include_str!("../../../examples/shop-pipeline.yaml")).unwrap();
        pipeline.spec.capture.engine = CaptureEngine::RedpandaConnect;
        let all = ["customer", "product", "order", "orderitem"];
        let settled = publication_condition(&pipeline, &redpanda_connect_report(&all));
        assert_eq!(settled.reason, "CreatedByRedpandaConnect");
        let added = publication_condition(&pipeline, &redpanda_connect_report(&all[..3]));
        assert_eq!(added.reason, "TablesAddedWithoutSnapshot");
        assert!(added.message.contains("orderitem"), "{}", added.message);
        assert!(added.message.contains("no snapshot"), "{}", added.message);
    }
}
