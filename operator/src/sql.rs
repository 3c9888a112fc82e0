//! Which SQL and DDL to run, as pure functions of the spec and of what was observed on the
//! databases: only what takes the observed state to the declared one, so a second reconcile of an
//! unchanged pipeline runs nothing. The statements themselves come from `cdcstar_crds::postgres` and
//! `cdcstar_crds::clickhouse_ddl`; this module decides which of them apply.
//!
//! Postgres: `REPLICA IDENTITY FULL` where asked and not yet set; with the native engine, the
//! publication holding exactly the declared tables (created, or `SET TABLE` when its table set
//! differs) and the logical replication slot. ClickHouse: the database when absent, each table when
//! absent, `ADD COLUMN` for columns the spec gained; type changes and removed columns are reported as
//! drift, never applied; nothing is dropped outside cleanup.

use std::collections::{BTreeMap, BTreeSet};

use cdcstar_crds::clickhouse_ddl::{self, Drift};
use cdcstar_crds::clickhouse_placement::Placement;
use cdcstar_crds::pipeline::{CaptureEngine, CdcPipeline, TableSnapshotStatus};
use cdcstar_crds::postgres::{self, QualifiedTable, RowFilterState};
use cdcstar_crds::status_tables::STATUS_TABLES;
pub use cdcstar_crds::status_tables::{ValueAdjustment, Verification, Watermark};
use cdcstar_crds::validate::ValidationErrors;

/// What the operator saw on the source database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceObservation {
    /// Tables of the publication the capture reads, or `None` when it does not exist.
    pub publication_tables: Option<BTreeSet<QualifiedTable>>,
    /// `relreplident` of the captured tables that exist, by table name.
    pub replica_identity: BTreeMap<String, String>,
    /// The publication's row filters and the declared ones, both as Postgres prints them.
    pub row_filters: RowFilterState,
    /// The replication slot, when it exists.
    pub slot: Option<SlotObservation>,
    /// Initial snapshot progress the native capture records in `cdcstar.snapshot_progress`, one
    /// entry per table it has started (empty when it has not, or with another engine).
    pub snapshot: Vec<TableSnapshotStatus>,
    /// `server_version_num` (`150010` for 15.10), when read.
    pub server_version_num: Option<i32>,
}

impl SourceObservation {
    /// The server's version when it is too old for `spec.source.slot.failover` (before 17) and the
    /// native engine asks for it; `None` otherwise (also when the version is not known).
    pub fn failover_unsupported(&self, pipeline: &CdcPipeline) -> Option<i32> {
        let asked = operator_owns_replication(pipeline) && pipeline.spec.source.slot.failover;
        self.server_version_num
            .filter(|version| asked && *version < postgres::FAILOVER_MIN_SERVER_VERSION)
    }
}

/// What a pass does about the replication slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotPlan {
    /// Nothing: the slot exists, or Redpanda Connect creates its own.
    Keep,
    /// There is no slot: create one (native engine).
    Create,
    /// The slot is invalidated and `cdcstar.dev/recreate-slot` asks for a new one (value `request`,
    /// not acted on before): drop it and (native engine) create it anew.
    Recreate {
        /// The annotation's value.
        request: String,
    },
    /// `spec.source.slot.failover` on a server older than PostgreSQL 17: no slot is created (nor
    /// an invalidated one dropped), the condition says why.
    FailoverUnsupported { server_version_num: i32 },
}

/// The slot decision of a pass. A slot that is not invalidated is never dropped; an invalidated
/// one only on a new `cdcstar.dev/recreate-slot` value.
pub fn slot_plan(pipeline: &CdcPipeline, observed: &SourceObservation) -> SlotPlan {
    let refused = observed.failover_unsupported(pipeline);
    let invalidated = observed
        .slot
        .as_ref()
        .is_some_and(|slot| slot.invalidated.is_some());
    let request = pipeline.pending_slot_recreation();
    match (&observed.slot, refused, request) {
        (Some(_), None, Some(request)) if invalidated => SlotPlan::Recreate {
            request: request.to_owned(),
        },
        (Some(_), Some(version), Some(_)) if invalidated => SlotPlan::FailoverUnsupported {
            server_version_num: version,
        },
        (Some(_), _, _) => SlotPlan::Keep,
        (None, _, _) if !operator_owns_replication(pipeline) => SlotPlan::Keep,
        (None, Some(version), _) => SlotPlan::FailoverUnsupported {
            server_version_num: version,
        },
        (None, None, _) => SlotPlan::Create,
    }
}

/// A replication slot as seen in `pg_replication_slots`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotObservation {
    /// WAL bytes between the current WAL position and the slot's restart point.
    pub retained_wal_bytes: Option<i64>,
    /// Whether a consumer is connected.
    pub active: bool,
    /// Why Postgres invalidated the slot, when it did: `invalidation_reason` on PostgreSQL 17+
    /// (`wal_removed`, `idle_timeout` on 18, ...), or `wal_removed` when `wal_status` is `lost`. An
    /// invalidated slot can never stream again.
    pub invalidated: Option<String>,
    /// Whether it is a failover slot (`pg_replication_slots.failover`, PostgreSQL 17+; `None`
    /// before).
    pub failover: Option<bool>,
}

/// Whether the operator owns the publication and the slot: the native capture reads what the
/// operator creates; Redpanda Connect creates its own (the operator still removes them on delete).
pub fn operator_owns_replication(pipeline: &CdcPipeline) -> bool {
    pipeline.spec.capture.engine == CaptureEngine::Native
}

/// The statements that take the source database from `observed` to the spec, in order: replica
/// identities, then (native engine) the publication, then what `plan` ([`slot_plan`]) says of the
/// slot.
pub fn source_statements(
    pipeline: &CdcPipeline,
    observed: &SourceObservation,
    plan: &SlotPlan,
) -> Vec<String> {
    let mut statements = postgres::reconcile_replica_identity(pipeline, &observed.replica_identity);
    if operator_owns_replication(pipeline) {
        statements.extend(postgres::reconcile_publication(
            pipeline,
            observed.publication_tables.as_ref(),
            &observed.row_filters,
        ));
    }
    match plan {
        SlotPlan::Create => statements.extend(postgres::new_slot_statements(pipeline)),
        SlotPlan::Recreate { .. } => {
            statements.extend(postgres::recreate_slot_statements(pipeline))
        }
        SlotPlan::Keep | SlotPlan::FailoverUnsupported { .. } => {}
    }
    statements
}

/// What the operator saw on ClickHouse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarehouseObservation {
    /// The pipeline's database exists.
    pub database_exists: bool,
    /// Existing tables of the database: their columns (name, type) in table order.
    pub tables: BTreeMap<String, Vec<(String, String)>>,
}

/// The DDL to run and the drift left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarehousePlan {
    /// DDL, in order.
    pub statements: Vec<String>,
    /// Differences reported, never applied.
    pub drift: Vec<Drift>,
}

/// The DDL that takes ClickHouse from `observed` to the spec: the star tables, then the status
/// tables beside them.
pub fn warehouse_plan(
    pipeline: &CdcPipeline,
    observed: &WarehouseObservation,
) -> Result<WarehousePlan, ValidationErrors> {
    let mut plan = WarehousePlan::default();
    if !observed.database_exists {
        plan.statements
            .push(clickhouse_ddl::create_database(pipeline));
    }
    let existing = |name: &str| observed.tables.get(name).map(Vec::as_slice);
    let mut migrations: Vec<_> = clickhouse_ddl::table_schemas(pipeline)?
        .iter()
        .map(|table| table.migrate_from(existing(&table.name)))
        .collect();
    let database = pipeline.clickhouse_database();
    let placement = Placement::of(pipeline);
    migrations.extend(
        STATUS_TABLES
            .iter()
            .map(|table| table.migrate_from(&placement, database, existing(table.name))),
    );
    for migration in migrations {
        plan.statements.extend(migration.statements);
        plan.drift.extend(migration.drift);
    }
    Ok(plan)
}

/// What the sink reported in the status tables, for the pipeline's status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarehouseReport {
    /// The newest verification of each star table, none before `cdcstar-sink verify` ran.
    pub verifications: Vec<Verification>,
    /// Values replaced under their column's policy, per table, column and policy.
    pub value_adjustments: Vec<ValueAdjustment>,
    /// The watermark, `None` before the sink wrote any partition position.
    pub watermark: Option<Watermark>,
}
