//! Phase 3a: the source database. Observes the publication, replica identities and slot, runs the
//! statements `crate::sql` derives from the difference, and reports the WAL the slot retains.
//!
//! Over 400 lines: observing, reconciling and the conditions derived from the same report belong
//! together; almost half of the file tests the conditions.

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::postgres;

use crate::external::{DatabaseError, Sensitive, SourceConnector, SourceDatabase};
use crate::sql::{self, SlotPlan, SourceObservation};

use super::status::{ConditionUpdate, PUBLICATION};

/// What the pass did on the source database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    /// What was seen before any change.
    pub observed: SourceObservation,
    /// Statements run, in order (empty when everything was in place).
    pub executed: Vec<String>,
    /// What the pass decided about the slot.
    pub slot_plan: SlotPlan,
    /// The `cdcstar.dev/recreate-slot` request this pass acted on, with its outcome.
    pub handled_request: Option<HandledRequest>,
}

/// A `cdcstar.dev/recreate-slot` request acted on, for `status.slotRecreation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandledRequest {
    /// The annotation's value.
    pub request: String,
    /// `Recreated`, `NotInvalidated` or `SlotMissing`.
    pub outcome: &'static str,
    /// What was done and what is left to the user.
    pub message: String,
}

impl SourceReport {
    /// Why the capture must not run this pass (it is held at zero replicas instead of crash
    /// looping): its slot is invalidated and not replaced, or there is none because failover was
    /// refused.
    pub fn capture_held(&self, pipeline: &CdcPipeline) -> Option<String> {
        let slot = pipeline.slot_name();
        match (&self.slot_plan, &self.observed.slot) {
            (SlotPlan::Recreate { .. }, _) => None,
            (_, Some(observed)) if observed.invalidated.is_some() => Some(format!(
                "held at zero replicas: replication slot {slot} is invalidated (see the \
                 Publication condition)"
            )),
            (SlotPlan::FailoverUnsupported { .. }, None) => Some(format!(
                "held at zero replicas: replication slot {slot} is not created, failover is \
                 refused (see the Publication condition)"
            )),
            _ => None,
        }
    }
}

/// What was done about a pending `cdcstar.dev/recreate-slot` request, once the statements ran;
/// `None` while it waits (failover refused) or when there is none.
fn handled_request(
    pipeline: &CdcPipeline,
    observed: &SourceObservation,
    plan: &SlotPlan,
) -> Option<HandledRequest> {
    let request = pipeline.pending_slot_recreation()?.to_owned();
    let slot = pipeline.slot_name();
    let (outcome, message) = match (plan, &observed.slot) {
        (SlotPlan::FailoverUnsupported { .. }, _) => return None,
        (SlotPlan::Recreate { .. }, Some(old)) => (
            "Recreated",
            format!(
                "dropped the invalidated replication slot {slot} ({}) and created it anew; {}",
                old.invalidated.as_deref().unwrap_or("invalidated"),
                RECREATED_NEXT_STEPS
            ),
        ),
        (_, None) => (
            "SlotMissing",
            format!("there was no replication slot {slot}; it is created as usual"),
        ),
        (_, Some(_)) => (
            "NotInvalidated",
            format!(
                "replication slot {slot} is not invalidated, so it was kept (a healthy slot is \
                 never dropped)"
            ),
        ),
    };
    Some(HandledRequest {
        request,
        outcome,
        message,
    })
}

/// What a recreated slot means for the data, said in the condition and `status.slotRecreation`.
pub const RECREATED_NEXT_STEPS: &str = "the capture snapshots every table again (status.snapshot), \
     which brings back rows inserted since the slot was lost; rows updated or deleted in Postgres in \
     that gap keep their old state in ClickHouse (a snapshot row never replaces a newer version), \
     so run `cdcstar-sink verify --repair` once the snapshot is done (docs/sink.md#verification): \
     it re-emits the rows that differ and deletes those Postgres no longer has";

/// Why the source database could not be brought to the spec.
#[derive(Debug, thiserror::Error)]
#[error("source database: {0}")]
pub struct SourceError(#[from] pub DatabaseError);

/// A session on the source database, and the pipeline's publication, slot and tables as that
/// database has them; with a `row_filter_probe` ([`postgres::row_filter_probe`]), also the
/// declared row filters as Postgres prints them (not for cleanup, which must work whatever the
/// filters say).
async fn connect_and_observe(
    connector: &dyn SourceConnector,
    dsn: &Sensitive,
    pipeline: &CdcPipeline,
    row_filter_probe: Option<&str>,
) -> Result<(Box<dyn SourceDatabase>, SourceObservation), DatabaseError> {
    let database = connector.connect(dsn).await?;
    let observed = database
        .observe(
            &postgres::effective_publication_name(pipeline),
            &pipeline.slot_name(),
            &postgres::declared_tables(pipeline),
            row_filter_probe,
        )
        .await?;
    Ok((database, observed))
}

/// Brings the source database to the spec.
pub async fn reconcile_source(
    connector: &dyn SourceConnector,
    dsn: &Sensitive,
    pipeline: &CdcPipeline,
) -> Result<SourceReport, SourceError> {
    let probe = postgres::row_filter_probe(pipeline);
    let (database, observed) =
        connect_and_observe(connector, dsn, pipeline, probe.as_deref()).await?;
    let slot_plan = sql::slot_plan(pipeline, &observed);
    let executed = sql::source_statements(pipeline, &observed, &slot_plan);
    database.execute(&executed).await?;
    let handled_request = handled_request(pipeline, &observed, &slot_plan);
    Ok(SourceReport {
        observed,
        executed,
        slot_plan,
        handled_request,
    })
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
    let (database, observed) = connect_and_observe(connector, dsn, pipeline, None).await?;
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
/// The reason of the `Publication` condition when the pass replaced an invalidated slot.
pub const SLOT_RECREATED: &str = "SlotRecreated";
/// The reason of the `Publication` condition when failover is asked of a server older than 17.
pub const FAILOVER_UNSUPPORTED: &str = "FailoverUnsupported";
/// The reason of the `Publication` condition when the slot's failover flag differs from the spec.
pub const SLOT_FAILOVER_MISMATCH: &str = "SlotFailoverMismatch";

/// `150010` as `15.10`, `170002` as `17.2`.
fn version_text(server_version_num: i32) -> String {
    format!(
        "{}.{}",
        server_version_num / 10_000,
        server_version_num % 10_000
    )
}

/// The `Publication` condition about the slot itself, when the slot (not the publication) is what
/// the user must act on: refused failover, invalidated, recreated, or a failover flag that differs.
fn slot_condition(pipeline: &CdcPipeline, report: &SourceReport) -> Option<ConditionUpdate> {
    let slot = pipeline.slot_name();
    let name = pipeline.pipeline_name();
    if let SlotPlan::Recreate { request } = &report.slot_plan {
        return Some(ConditionUpdate::ok(
            PUBLICATION,
            SLOT_RECREATED,
            format!(
                "replication slot {slot} was invalidated and is created anew on request \
                 {}={request:?}; {RECREATED_NEXT_STEPS}",
                cdcstar_crds::pipeline::RECREATE_SLOT_ANNOTATION
            ),
        ));
    }
    let failover_refused = report
        .observed
        .failover_unsupported(pipeline)
        .map(|version| {
            format!(
                "spec.source.slot.failover needs PostgreSQL 17 or later (failover slots), and the \
             server is {} (server_version_num {version})",
                version_text(version)
            )
        });
    if let Some(reason) = report
        .observed
        .slot
        .as_ref()
        .and_then(|s| s.invalidated.as_ref())
    {
        let waits = failover_refused
            .as_ref()
            .map(|refused| format!(" (a request waits: {refused})"))
            .unwrap_or_default();
        return Some(ConditionUpdate::failed(
            PUBLICATION,
            SLOT_INVALIDATED,
            format!(
                "Postgres invalidated replication slot {slot} ({reason}): the WAL it needs is gone, \
                 so the capture cannot resume from it (it is held at zero replicas) and changes \
                 since its last confirmed position are lost to it. Resync: kubectl annotate \
                 cdcpipeline {name} {}=\"$(date +%s)\" --overwrite; the operator drops the slot, \
                 creates it anew and the capture snapshots every table again; then run \
                 `cdcstar-sink verify --repair` for the rows updated or deleted meanwhile \
                 (docs/operator.md, \"The way back from an invalidated slot\"){waits}. To keep it \
                 from happening again, raise max_slot_wal_keep_size (and \
                 idle_replication_slot_timeout on PostgreSQL 18) or alert on the retained WAL",
                cdcstar_crds::pipeline::RECREATE_SLOT_ANNOTATION
            ),
        ));
    }
    if let Some(refused) = failover_refused {
        let what = if report.observed.slot.is_some() {
            format!("the existing slot {slot} is not a failover slot")
        } else {
            format!("slot {slot} is not created and the capture is held at zero replicas")
        };
        return Some(ConditionUpdate::failed(
            PUBLICATION,
            FAILOVER_UNSUPPORTED,
            format!(
                "{refused}: {what}; remove spec.source.slot.failover, or upgrade the server and \
                 configure its standby (docs/operator.md, \"Failover slots\")"
            ),
        ));
    }
    let declared = pipeline.spec.source.slot.failover;
    let observed = report.observed.slot.as_ref().and_then(|s| s.failover)?;
    (sql::operator_owns_replication(pipeline) && observed != declared).then(|| {
        ConditionUpdate::failed(
            PUBLICATION,
            SLOT_FAILOVER_MISMATCH,
            format!(
                "replication slot {slot} has failover {observed} and spec.source.slot.failover is \
                 {declared}; an existing slot is not altered: with the pipeline paused, run \
                 ALTER_REPLICATION_SLOT {slot} (FAILOVER {declared}) on a replication connection \
                 (psql \"dbname=... replication=database\"), or set spec.source.slot.failover to \
                 {observed}"
            ),
        )
    })
}

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
    if let Some(condition) = slot_condition(pipeline, report) {
        return condition;
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
            slot_plan: SlotPlan::Keep,
            handled_request: None,
        })
    }

    fn shop() -> CdcPipeline {
        serde_yaml::from_str(include_str!("../../../examples/shop-pipeline.yaml")).unwrap()
    }

    /// The pure part of a pass: the plan and the request's outcome from what was observed.
    fn pass(pipeline: &CdcPipeline, observed: SourceObservation) -> SourceReport {
        let slot_plan = sql::slot_plan(pipeline, &observed);
        SourceReport {
            executed: sql::source_statements(pipeline, &observed, &slot_plan),
            handled_request: handled_request(pipeline, &observed, &slot_plan),
            observed,
            slot_plan,
        }
    }

    /// The publication and identities of `shop()` in place, no slot, on PostgreSQL 17.
    fn in_place() -> SourceObservation {
        let pipeline = shop();
        let tables = cdcstar_crds::postgres::declared_tables(&pipeline);
        SourceObservation {
            replica_identity: tables
                .iter()
                .map(|t| (t.name.clone(), "f".into()))
                .collect(),
            publication_tables: Some(tables.into_iter().collect()),
            server_version_num: Some(170_002),
            ..SourceObservation::default()
        }
    }

    fn slot(invalidated: Option<&str>, failover: Option<bool>) -> SourceObservation {
        SourceObservation {
            slot: Some(SlotObservation {
                invalidated: invalidated.map(str::to_owned),
                failover,
                ..SlotObservation::default()
            }),
            ..in_place()
        }
    }

    fn requested(mut pipeline: CdcPipeline, value: &str) -> CdcPipeline {
        pipeline.metadata.annotations = Some(
            [(
                cdcstar_crds::pipeline::RECREATE_SLOT_ANNOTATION.to_owned(),
                value.to_owned(),
            )]
            .into_iter()
            .collect(),
        );
        pipeline
    }

    #[test]
    fn an_invalidated_slot_fails_the_publication_condition_with_the_resync_steps() {
        let pipeline = shop();
        let healthy = pass(&pipeline, slot(None, Some(false)));
        assert_eq!(
            publication_condition(&pipeline, &Ok(healthy.clone())).reason,
            "UpToDate"
        );
        assert_eq!(healthy.capture_held(&pipeline), None);
        let lost = pass(&pipeline, slot(Some("wal_removed"), Some(false)));
        // Without a request nothing is dropped, and the capture is held instead of crash looping.
        assert_eq!(lost.slot_plan, SlotPlan::Keep);
        assert!(lost.executed.is_empty(), "{:?}", lost.executed);
        assert!(
            lost.capture_held(&pipeline)
                .unwrap()
                .contains("invalidated")
        );
        let condition = publication_condition(&pipeline, &Ok(lost));
        assert_eq!(condition.reason, SLOT_INVALIDATED);
        assert_eq!(
            condition.status,
            crate::controller::status::ConditionStatus::False
        );
        assert!(
            condition.message.contains("(wal_removed)")
                && condition
                    .message
                    .contains("kubectl annotate cdcpipeline shop cdcstar.dev/recreate-slot=")
                && condition.message.contains("cdcstar-sink verify --repair"),
            "{}",
            condition.message
        );
    }

    #[test]
    fn a_recreate_request_replaces_an_invalidated_slot_once_and_never_a_healthy_one() {
        let pipeline = requested(shop(), "2026-12-05");
        let recreated = pass(&pipeline, slot(Some("idle_timeout"), Some(false)));
        assert_eq!(
            recreated.slot_plan,
            SlotPlan::Recreate {
                request: "2026-12-05".into()
            }
        );
        assert_eq!(
            recreated.executed,
            cdcstar_crds::postgres::recreate_slot_statements(&pipeline)
        );
        assert_eq!(recreated.capture_held(&pipeline), None);
        let handled = recreated.handled_request.clone().unwrap();
        assert_eq!(
            (handled.request.as_str(), handled.outcome),
            ("2026-12-05", "Recreated")
        );
        assert!(
            handled.message.contains("(idle_timeout)"),
            "{}",
            handled.message
        );
        assert!(
            handled.message.contains("verify --repair"),
            "{}",
            handled.message
        );
        let condition = publication_condition(&pipeline, &Ok(recreated));
        assert_eq!(
            (condition.status, condition.reason.as_str()),
            (
                crate::controller::status::ConditionStatus::True,
                SLOT_RECREATED
            )
        );

        // The same value again (recorded in the status) does nothing more.
        let mut done = pipeline.clone();
        done.status = Some(cdcstar_crds::CdcPipelineStatus {
            slot_recreation: Some(cdcstar_crds::pipeline::SlotRecreationStatus {
                request: "2026-12-05".into(),
                outcome: "Recreated".into(),
                message: String::new(),
                time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
            }),
            ..Default::default()
        });
        let again = pass(&done, slot(Some("idle_timeout"), Some(false)));
        assert_eq!(again.slot_plan, SlotPlan::Keep);
        assert!(again.executed.is_empty());
        assert_eq!(again.handled_request, None);

        // A healthy slot is kept whatever the request says, and the request is answered.
        let healthy = pass(&pipeline, slot(None, Some(false)));
        assert_eq!(healthy.slot_plan, SlotPlan::Keep);
        assert!(healthy.executed.is_empty());
        assert_eq!(healthy.handled_request.unwrap().outcome, "NotInvalidated");
        // No slot at all: created as usual (progress reset first).
        let missing = pass(&pipeline, in_place());
        assert_eq!(missing.slot_plan, SlotPlan::Create);
        assert_eq!(
            missing.executed,
            cdcstar_crds::postgres::new_slot_statements(&pipeline)
        );
        assert_eq!(missing.handled_request.unwrap().outcome, "SlotMissing");
    }

    #[test]
    fn failover_on_a_server_before_17_creates_no_slot_and_says_why() {
        let mut pipeline = shop();
        pipeline.spec.source.slot.failover = true;
        let on_15 = SourceObservation {
            server_version_num: Some(150_010),
            ..in_place()
        };
        let refused = pass(&pipeline, on_15.clone());
        assert_eq!(
            refused.slot_plan,
            SlotPlan::FailoverUnsupported {
                server_version_num: 150_010
            }
        );
        assert!(
            !refused
                .executed
                .iter()
                .any(|s| s.contains("replication_slot")),
            "{:?}",
            refused.executed
        );
        assert!(
            refused
                .capture_held(&pipeline)
                .unwrap()
                .contains("failover")
        );
        let condition = publication_condition(&pipeline, &Ok(refused));
        assert_eq!(condition.reason, FAILOVER_UNSUPPORTED);
        assert!(
            condition
                .message
                .contains("server is 15.10 (server_version_num 150010)")
                && condition
                    .message
                    .contains("slot cdcstar_shop is not created"),
            "{}",
            condition.message
        );
        // On 17 it is created with failover.
        let on_17 = in_place();
        let created = pass(&pipeline, on_17);
        assert_eq!(created.slot_plan, SlotPlan::Create);
        assert!(
            created
                .executed
                .last()
                .unwrap()
                .contains("false, false, true)")
        );
        // An existing (non-failover) slot on 15 keeps streaming; the condition still refuses.
        let existing = pass(
            &pipeline,
            SourceObservation {
                slot: Some(SlotObservation::default()),
                ..on_15
            },
        );
        assert_eq!(existing.capture_held(&pipeline), None);
        assert!(
            publication_condition(&pipeline, &Ok(existing))
                .message
                .contains("the existing slot cdcstar_shop is not a failover slot")
        );
    }

    #[test]
    fn a_slot_whose_failover_differs_from_the_spec_is_reported_with_the_remedy() {
        let mut pipeline = shop();
        pipeline.spec.source.slot.failover = true;
        let report = pass(&pipeline, slot(None, Some(false)));
        assert!(
            report.executed.is_empty(),
            "an existing slot is not altered"
        );
        let condition = publication_condition(&pipeline, &Ok(report));
        assert_eq!(condition.reason, SLOT_FAILOVER_MISMATCH);
        assert!(
            condition
                .message
                .contains("ALTER_REPLICATION_SLOT cdcstar_shop (FAILOVER true)"),
            "{}",
            condition.message
        );
        let matching = pass(&pipeline, slot(None, Some(true)));
        assert_eq!(
            publication_condition(&pipeline, &Ok(matching)).reason,
            "UpToDate"
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
