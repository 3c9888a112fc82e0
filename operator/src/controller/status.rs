//! Phase 6: what the operator tells the user, in `status`. Pure functions compute the status from
//! what the other phases found (one condition per component, `Ready` summarising them, the phase,
//! the table count and the lag); [`patch_status`] writes it with server-side apply on the status
//! subresource under the operator's field manager.
//!
//! `lastTransitionTime` of a condition changes only when its status flips (True/False/Unknown);
//! a new reason or message alone keeps the time, as Kubernetes conventions ask.
//!
//! Over 400 lines: one function per condition and status field, each with the rules Kubernetes
//! conventions set for it; a third of the file is their unit tests.

use cdcstar_crds::Lsn;
use cdcstar_crds::pipeline::{
    CaptureEngine, CdcPipelineStatus, ConsistentUpTo, Phase, SlotRecreationStatus,
    TableSnapshotStatus, TableVerificationStatus, ValueAdjustmentStatus,
};
use cdcstar_crds::redpanda_connect;
use cdcstar_crds::{CdcPipeline, CdcPipelineSpec};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::sql::{ValueAdjustment, Verification, Watermark};

/// Summary condition: every component condition is True.
pub const READY: &str = "Ready";
/// The publication (and slot) on the source database.
pub const PUBLICATION: &str = "Publication";
/// The capture Deployment.
pub const CAPTURE: &str = "Capture";
/// The ClickHouse database and tables.
pub const CLICKHOUSE_SCHEMA: &str = "ClickHouseSchema";
/// The sink Deployment.
pub const SINK: &str = "Sink";
/// The api Deployment (True with reason `Disabled` when not enabled).
pub const API: &str = "Api";

/// Component conditions, in the order they are reported.
pub const COMPONENT_CONDITIONS: [&str; 5] = [PUBLICATION, CAPTURE, CLICKHOUSE_SCHEMA, SINK, API];

/// Whether the star schema is as fresh as `spec.freshnessObjective` asks (present only with one).
/// Not a component either: a pipeline catching up is ready, only late.
pub const FRESH: &str = "Fresh";

/// Values the sink replaced under their column's `onUnrepresentable` policy (True once any was).
/// Not a component: it neither makes the pipeline unready nor changes its phase. Set once the sink
/// reported any; absent before.
pub const VALUES_ADJUSTED: &str = "ValuesAdjusted";

/// Whether the last verification against Postgres (`cdcstar-sink verify`) found the star schema
/// equal: True with the rows checked, False naming the tables with mismatches and their first keys.
/// Not a component: a mismatch neither makes the pipeline unready nor changes its phase. Absent
/// until the verifier ran.
pub const VERIFIED: &str = "Verified";

/// Reasons used with a False component condition that are not failures (work in progress or by
/// design); any other False reason makes the phase `Degraded`.
pub const NON_FAILURE_REASONS: [&str; 3] = ["Progressing", PAUSED, "Pending"];

/// Reason of the capture and sink conditions of a paused pipeline.
pub const PAUSED: &str = "Paused";
/// Reason of the `Capture` condition of a paused pipeline whose slot retains more WAL than
/// `spec.source.slot.maxRetainedWal`.
pub const RETAINED_WAL_GROWING: &str = "RetainedWalGrowing";
/// Reason of the `Capture` condition while its slot keeps it from running (invalidated, or not
/// created because failover was refused).
pub const WAITING_FOR_SLOT: &str = "WaitingForSlot";

/// Condition reasons that publish a Warning Event when a condition takes them (once per
/// transition, not on every pass).
pub const WARNING_REASONS: [&str; 4] = [
    RETAINED_WAL_GROWING,
    super::source::SLOT_INVALIDATED,
    super::source::FAILOVER_UNSUPPORTED,
    super::source::SLOT_FAILOVER_MISMATCH,
];

/// The conditions of `after` that took one of [`WARNING_REASONS`] since `before`: (reason,
/// message) of each, for a Warning Event.
pub fn warnings_raised(
    before: Option<&CdcPipelineStatus>,
    after: &CdcPipelineStatus,
) -> Vec<(String, String)> {
    after
        .conditions
        .iter()
        // NB: `Ready` repeats the first failing component's reason; the component says it once.
        .filter(|c| c.type_ != READY && WARNING_REASONS.contains(&c.reason.as_str()))
        .filter(|c| {
            !before.is_some_and(|b| {
                b.conditions
                    .iter()
                    .any(|p| p.type_ == c.type_ && p.reason == c.reason)
            })
        })
        .map(|c| (c.reason.clone(), c.message.clone()))
        .collect()
}

/// A condition to set, without timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// Condition type.
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

/// Status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The component is fine.
    True,
    /// It is not.
    False,
    /// Not known (not checked this time).
    Unknown,
}

impl ConditionStatus {
    /// `True`, `False` or `Unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl ConditionUpdate {
    /// A True condition.
    pub fn ok(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        ConditionUpdate {
            type_: type_.to_owned(),
            status: ConditionStatus::True,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// A False condition.
    pub fn failed(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        ConditionUpdate {
            type_: type_.to_owned(),
            status: ConditionStatus::False,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// An Unknown condition.
    pub fn unknown(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        ConditionUpdate {
            type_: type_.to_owned(),
            status: ConditionStatus::Unknown,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Reason of the workload conditions (and Warning) when the children could not be built.
pub const BUILD_FAILED: &str = "BuildFailed";
/// Reason of the workload conditions (and Warning) when a child could not be applied or deleted.
pub const APPLY_FAILED: &str = "ApplyFailed";
/// Reasons of a component condition whose children were not (all) written.
pub const UNWRITTEN_REASONS: [&str; 2] = [APPLY_FAILED, BUILD_FAILED];

/// Whether the children the spec no longer asks for are known to be gone: the last status was
/// written for this generation, by a pass that wrote every child (and so deleted the obsolete ones).
/// A child only becomes obsolete through a spec change, which bumps the generation.
pub fn obsolete_children_removed(pipeline: &CdcPipeline) -> bool {
    let Some(status) = &pipeline.status else {
        return false;
    };
    status.observed_generation.is_some()
        && status.observed_generation == pipeline.metadata.generation
        && !status
            .conditions
            .iter()
            .any(|c| UNWRITTEN_REASONS.contains(&c.reason.as_str()))
}

/// `previous` with `updates` applied: an updated condition keeps its `lastTransitionTime` unless its
/// status flips; conditions not updated are kept as they were. Component conditions come out in
/// [`COMPONENT_CONDITIONS`] order after `Ready`, others after them.
pub fn merge_conditions(
    previous: &[Condition],
    updates: &[ConditionUpdate],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut merged: Vec<Condition> = previous.to_vec();
    for update in updates {
        let status = update.status.as_str().to_owned();
        match merged.iter_mut().find(|c| c.type_ == update.type_) {
            Some(existing) => {
                if existing.status != status {
                    existing.last_transition_time = Time(now);
                }
                existing.status = status;
                existing.reason = update.reason.clone();
                existing.message = update.message.clone();
                existing.observed_generation = generation;
            }
            None => merged.push(Condition {
                type_: update.type_.clone(),
                status,
                reason: update.reason.clone(),
                message: update.message.clone(),
                observed_generation: generation,
                last_transition_time: Time(now),
            }),
        }
    }
    let rank = |type_: &str| {
        std::iter::once(READY)
            .chain(COMPONENT_CONDITIONS)
            .position(|t| t == type_)
            .unwrap_or(usize::MAX)
    };
    merged.sort_by_key(|c| rank(&c.type_));
    merged
}

/// `status.valueAdjustments` from what the sink reported.
pub fn value_adjustments(report: &[ValueAdjustment]) -> Vec<ValueAdjustmentStatus> {
    report
        .iter()
        .map(|row| ValueAdjustmentStatus {
            table: row.table.clone(),
            column: row.column.clone(),
            policy: row.policy.clone(),
            count: i64::try_from(row.values).unwrap_or(i64::MAX),
            // NB: whole seconds, as `Time` serialises: a status read back must equal the one computed.
            last_seen: Time(
                Timestamp::from_second(row.last_seen_ms.div_euclid(1000))
                    .unwrap_or(Timestamp::UNIX_EPOCH),
            ),
        })
        .collect()
}

/// `status.verification` from the verifier's rows.
pub fn verification(report: &[Verification]) -> Vec<TableVerificationStatus> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    report
        .iter()
        .map(|row| TableVerificationStatus {
            table: row.table.clone(),
            // NB: whole seconds, as `Time` serialises: a status read back must equal the one computed.
            verified_at: Time(
                Timestamp::from_second(row.verified_at_ms.div_euclid(1000))
                    .unwrap_or(Timestamp::UNIX_EPOCH),
            ),
            rows_checked: count(row.rows_checked),
            mismatches: count(row.mismatches),
            mismatch_keys: row.mismatch_keys.clone(),
            repaired: count(row.repaired),
            skipped: count(row.skipped),
            not_verified: (!row.not_verified.is_empty()).then(|| row.not_verified.clone()),
        })
        .collect()
}

/// The `Verified` condition for `tables` (not empty): False naming each table with mismatches,
/// their count and first keys; else True with the rows checked, and the tables not verified or
/// with undecided keys named.
pub fn verified_condition(tables: &[TableVerificationStatus]) -> ConditionUpdate {
    let mismatching: Vec<String> = tables
        .iter()
        .filter(|t| t.mismatches > 0)
        .map(|t| {
            format!(
                "{}: {} mismatches (keys {})",
                t.table,
                t.mismatches,
                t.mismatch_keys.join(", ")
            )
        })
        .collect();
    let mut notes: Vec<String> = tables
        .iter()
        .filter_map(|t| {
            t.not_verified
                .as_ref()
                .map(|why| format!("{} not verified: {why}", t.table))
        })
        .collect();
    notes.extend(
        tables
            .iter()
            .filter(|t| t.skipped > 0)
            .map(|t| format!("{}: {} keys undecided", t.table, t.skipped)),
    );
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!("; {}", notes.join("; "))
    };
    if !mismatching.is_empty() {
        return ConditionUpdate::failed(
            VERIFIED,
            "Mismatches",
            format!(
                "the star schema differs from Postgres: {} (status.verification; \
                 `cdcstar-sink verify --repair` re-emits them){notes}",
                mismatching.join("; ")
            ),
        );
    }
    let rows: i64 = tables.iter().map(|t| t.rows_checked).sum();
    ConditionUpdate::ok(
        VERIFIED,
        "Equal",
        format!(
            "{rows} rows of {} tables equal to Postgres{notes}",
            tables.len()
        ),
    )
}

/// The `ValuesAdjusted` condition for `adjustments`: True naming every column and how many of its
/// values were replaced (`order_fact.order_date: 3 values clamped`), False when there are none
/// (after the rows were removed, or a status written before the sink reported any).
pub fn values_adjusted_condition(adjustments: &[ValueAdjustmentStatus]) -> ConditionUpdate {
    if adjustments.is_empty() {
        return ConditionUpdate::failed(
            VALUES_ADJUSTED,
            "NoValuesAdjusted",
            "every value fitted its column's type",
        );
    }
    let described: Vec<String> = adjustments
        .iter()
        .map(|a| {
            let what = match a.policy.as_str() {
                "clamp" => "clamped",
                "null" => "set to NULL or the type's default",
                other => other,
            };
            let values = if a.count == 1 { "value" } else { "values" };
            format!("{}.{}: {} {values} {what}", a.table, a.column, a.count)
        })
        .collect();
    ConditionUpdate::ok(
        VALUES_ADJUSTED,
        "ValuesAdjusted",
        format!(
            "{}; the column types cannot hold them (status.valueAdjustments, onUnrepresentable)",
            described.join("; ")
        ),
    )
}

/// `Ready` from the component conditions: True when all are True, else False with the reason of
/// the first that is not and a message naming each of them.
pub fn ready_condition(components: &[ConditionUpdate]) -> ConditionUpdate {
    let not_ready: Vec<&ConditionUpdate> = components
        .iter()
        .filter(|c| c.status != ConditionStatus::True)
        .collect();
    match not_ready.first() {
        None => ConditionUpdate::ok(READY, "AllComponentsReady", "every component is ready"),
        Some(first) => ConditionUpdate::failed(
            READY,
            &first.reason,
            not_ready
                .iter()
                .map(|c| format!("{}: {}", c.type_, c.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}

/// The phase the component conditions amount to.
pub fn phase(components: &[ConditionUpdate], paused: bool) -> Phase {
    if paused {
        return Phase::Paused;
    }
    if components.iter().all(|c| c.status == ConditionStatus::True) {
        return Phase::Running;
    }
    let failing = components.iter().any(|c| {
        c.status == ConditionStatus::False && !NON_FAILURE_REASONS.contains(&c.reason.as_str())
    });
    if failing {
        Phase::Degraded
    } else {
        Phase::Provisioning
    }
}

/// A WAL size for humans: `0B`, `512B`, `12KiB`, `1.5MiB`, `3.2GiB`.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{}B", bytes.max(0));
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value >= 10.0 {
        format!("{value:.0}{}", UNITS[unit])
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// Everything a successful pass found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Publication, Capture, ClickHouseSchema, Sink, Api conditions.
    pub components: Vec<ConditionUpdate>,
    /// WAL retained by the slot, when the slot exists.
    pub retained_wal_bytes: Option<i64>,
    /// Snapshot progress read from the source, when the source could be read.
    pub snapshot: Option<Vec<TableSnapshotStatus>>,
    /// Values the sink replaced, when ClickHouse could be read.
    pub value_adjustments: Option<Vec<ValueAdjustmentStatus>>,
    /// The sink's watermark, when ClickHouse could be read (inner `None`: no position written yet).
    pub watermark: Option<Option<Watermark>>,
    /// The last verification per table, when ClickHouse could be read.
    pub verification: Option<Vec<TableVerificationStatus>>,
    /// The `cdcstar.dev/recreate-slot` request acted on this pass.
    pub handled_request: Option<super::source::HandledRequest>,
}

/// The status after a pass that reached every component.
pub fn reconciled_status(
    pipeline: &CdcPipeline,
    observed: &Observed,
    now: Timestamp,
) -> CdcPipelineStatus {
    let previous = pipeline.status.clone().unwrap_or_default();
    let mut updates = vec![ready_condition(&observed.components)];
    updates.extend(observed.components.iter().cloned());
    let value_adjustments = observed
        .value_adjustments
        .clone()
        .unwrap_or(previous.value_adjustments);
    let reported_before = previous
        .conditions
        .iter()
        .any(|c| c.type_ == VALUES_ADJUSTED);
    if observed.value_adjustments.is_some() && (reported_before || !value_adjustments.is_empty()) {
        updates.push(values_adjusted_condition(&value_adjustments));
    }
    let verification = observed
        .verification
        .clone()
        .unwrap_or(previous.verification);
    if !verification.is_empty() {
        updates.push(verified_condition(&verification));
    }
    let snapshot = observed.snapshot.clone().unwrap_or(previous.snapshot);
    // Unreadable this pass: the last known point, only getting older.
    let (consistent_up_to, missing) = match observed.watermark {
        Some(watermark) => match no_consistent_point(pipeline, &snapshot, watermark) {
            None => (watermark.map(consistent_up_to), None),
            Some(why) => (None, Some(why)),
        },
        None => (
            previous.consistent_up_to,
            Some("clickhouse could not be read".to_owned()),
        ),
    };
    let freshness_seconds = consistent_up_to
        .as_ref()
        .map(|point| now.duration_since(point.time.0).as_secs().max(0));
    if let Some(objective) = pipeline.spec.freshness_objective() {
        updates.push(fresh_condition(
            objective,
            consistent_up_to.as_ref(),
            freshness_seconds,
            missing.as_deref().unwrap_or_default(),
        ));
    }
    let slot_recreation = match &observed.handled_request {
        Some(handled) => Some(SlotRecreationStatus {
            request: handled.request.clone(),
            outcome: handled.outcome.to_owned(),
            message: handled.message.clone(),
            time: Time(now),
        }),
        None => previous.slot_recreation,
    };
    CdcPipelineStatus {
        phase: Some(phase(&observed.components, pipeline.spec.paused())),
        observed_generation: pipeline.metadata.generation,
        conditions: merge_conditions(
            &previous.conditions,
            &updates,
            pipeline.metadata.generation,
            now,
        ),
        tables: Some(table_count(&pipeline.spec)),
        lag: observed.retained_wal_bytes.map(human_bytes),
        retained_wal_bytes: observed.retained_wal_bytes,
        snapshot,
        value_adjustments,
        consistent_up_to,
        freshness_seconds,
        verification,
        slot_recreation,
        // NB: the caller's, from the annotation and its Job (`super::resync`).
        resync: previous.resync,
    }
}

/// Why `watermark` is no consistent point yet, `None` when it is one:
/// - no position written, or one at zero (a partition has applied nothing);
/// - fewer partitions than the pipeline's topics have (`spec.kafka.topics.partitions` each): a topic
///   created after the sink started enters partition by partition, and a partition missing from the
///   minimum must not let the others' positions through;
/// - the initial snapshot of a table is still to come or running (the native capture with `snapshot`
///   on, and a captured table whose progress is not `Done`): snapshot rows carry no commit position,
///   so they are not behind the watermark.
pub fn no_consistent_point(
    pipeline: &CdcPipeline,
    snapshot: &[TableSnapshotStatus],
    watermark: Option<Watermark>,
) -> Option<String> {
    let capture = &pipeline.spec.capture;
    let snapshotting = pipeline.spec.source.tables.iter().find(|table| {
        !snapshot
            .iter()
            .any(|s| s.table == table.name && s.state == "Done")
    });
    if capture.snapshot
        && capture.engine == CaptureEngine::Native
        && let Some(table) = snapshotting
    {
        return Some(format!(
            "the initial snapshot of {} is not done (snapshot rows carry no commit position)",
            table.name
        ));
    }
    let expected = pipeline.data_topics().len() as u64
        * u64::try_from(pipeline.spec.kafka.topics.partitions).unwrap_or(1);
    match watermark {
        None => Some("the sink has not written a partition position yet".to_owned()),
        Some(w) if w.partitions < expected => Some(format!(
            "{} of the {expected} topic partitions have a position",
            w.partitions
        )),
        Some(w) if w.commit_lsn == 0 => Some(
            "a topic partition has not applied a change or heartbeat yet (the native capture's \
             heartbeats reach idle partitions; the Redpanda Connect engine sends no commit positions)"
                .to_owned(),
        ),
        Some(_) => None,
    }
}

/// `status.consistentUpTo` of a watermark: its time in whole seconds (as `Time` serialises, so a
/// status read back equals the one computed), rounded down, and its LSN.
pub fn consistent_up_to(watermark: Watermark) -> ConsistentUpTo {
    ConsistentUpTo {
        time: Time(
            Timestamp::from_second(watermark.commit_time_us.div_euclid(1_000_000))
                .unwrap_or(Timestamp::UNIX_EPOCH),
        ),
        lsn: Lsn(watermark.commit_lsn).to_string(),
    }
}

/// A duration for humans: `45s`, `2m05s`, `1h02m`.
pub fn human_seconds(seconds: i64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The `Fresh` condition: True while the star schema is complete up to a commit no older than
/// `objective`, False past it, Unknown while there is no consistent point.
/// `missing` says why there is no point, when there is none.
pub fn fresh_condition(
    objective: std::time::Duration,
    consistent_up_to: Option<&ConsistentUpTo>,
    freshness_seconds: Option<i64>,
    missing: &str,
) -> ConditionUpdate {
    let objective_seconds = i64::try_from(objective.as_secs()).unwrap_or(i64::MAX);
    let (Some(point), Some(age)) = (consistent_up_to, freshness_seconds) else {
        return ConditionUpdate::unknown(
            FRESH,
            "NoConsistentPoint",
            format!("no consistent point yet: {missing}"),
        );
    };
    let described = format!(
        "complete up to {} (LSN {}), {} ago; the objective is {}",
        point.time.0,
        point.lsn,
        human_seconds(age),
        human_seconds(objective_seconds)
    );
    if age <= objective_seconds {
        ConditionUpdate::ok(FRESH, "WithinObjective", described)
    } else {
        ConditionUpdate::failed(FRESH, "ObjectiveExceeded", described)
    }
}

/// The status when the pass stopped early (invalid spec, missing Secret, object being deleted):
/// `Ready` False with `reason` and `message`, the component conditions left as they were.
pub fn stopped_status(
    pipeline: &CdcPipeline,
    phase: Phase,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> CdcPipelineStatus {
    let previous = pipeline.status.clone().unwrap_or_default();
    CdcPipelineStatus {
        phase: Some(phase),
        observed_generation: pipeline.metadata.generation,
        conditions: merge_conditions(
            &previous.conditions,
            &[ConditionUpdate::failed(READY, reason, message)],
            pipeline.metadata.generation,
            now,
        ),
        tables: Some(table_count(&pipeline.spec)),
        ..previous
    }
}

fn table_count(spec: &CdcPipelineSpec) -> i32 {
    i32::try_from(spec.source.tables.len()).unwrap_or(i32::MAX)
}

/// The condition of a workload from the Deployment the apply phase got back; `paused_by` names the
/// field that pauses it (`CdcPipelineSpec::paused_by`), if any.
pub fn workload_condition(
    type_: &str,
    deployment: &Deployment,
    paused_by: Option<&str>,
) -> ConditionUpdate {
    let desired = deployment.spec.replicas.unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let current_generation = match (deployment.metadata.generation, status.observed_generation) {
        (Some(generation), Some(observed)) => observed >= generation,
        _ => false,
    };
    if let Some(field) = paused_by {
        return ConditionUpdate::failed(type_, PAUSED, format!("{field}: scaled to zero"));
    }
    if desired == 0 {
        return ConditionUpdate::ok(type_, "ScaledToZero", "0 replicas requested");
    }
    let message = format!("{available}/{desired} replicas available");
    if current_generation && available >= desired && updated >= desired {
        ConditionUpdate::ok(type_, "Available", message)
    } else {
        ConditionUpdate::failed(type_, "Progressing", message)
    }
}

/// The `Capture` condition of `pipeline`: `condition`, plus, with the Redpanda Connect engine, what
/// that engine cannot convey, so `kubectl describe` says it next to whether the capture runs; and,
/// while paused, the WAL the slot retains meanwhile, which grows with every write to the source,
/// with the reason `RetainedWalGrowing` once it exceeds `spec.source.slot.maxRetainedWal`.
pub fn capture_condition(
    pipeline: &CdcPipeline,
    mut condition: ConditionUpdate,
    retained_wal_bytes: Option<i64>,
) -> ConditionUpdate {
    if let (true, Some(retained)) = (condition.reason == PAUSED, retained_wal_bytes) {
        let slot = &pipeline.spec.source.slot;
        let limit = slot.max_retained_wal_bytes();
        let over = if retained > limit {
            condition.reason = RETAINED_WAL_GROWING.to_owned();
            format!(
                "; that is over the {} of spec.source.slot.maxRetainedWal{}: resume the pipeline, \
                 or watch the source's disk",
                human_bytes(limit),
                if slot.max_retained_wal.is_none() {
                    " (default)"
                } else {
                    ""
                }
            )
        } else {
            String::new()
        };
        condition.message = format!(
            "{}; meanwhile the slot retains {} of WAL on the source, growing with every write \
             until the pipeline resumes (nothing is lost; max_slot_wal_keep_size, if set, would \
             invalidate the slot past its limit){over}",
            condition.message,
            human_bytes(retained)
        );
    }
    if pipeline.spec.capture.engine == CaptureEngine::RedpandaConnect {
        condition.message = format!("{}; {}", condition.message, redpanda_connect::LIMITATIONS);
    }
    condition
}

/// Writes `status` with server-side apply on the status subresource.
pub async fn patch_status(
    client: &Client,
    pipeline: &CdcPipeline,
    status: &CdcPipelineStatus,
) -> Result<(), kube::Error> {
    let api: Api<CdcPipeline> = Api::namespaced(client.clone(), &pipeline.pipeline_namespace());
    let patch = json!({
        "apiVersion": CdcPipeline::api_version(&()),
        "kind": CdcPipeline::kind(&()),
        "status": status,
    });
    api.patch_status(
        &pipeline.name_any(),
        &PatchParams::apply(crate::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::SignedDuration;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_secs(seconds)
    }

    fn example() -> CdcPipeline {
        serde_yaml::from_str(include_str!("../../../examples/shop-pipeline.yaml")).unwrap()
    }

    /// The condition of `type_` in `status`.
    fn condition_of<'a>(status: &'a CdcPipelineStatus, type_: &str) -> Option<&'a Condition> {
        status.conditions.iter().find(|c| c.type_ == type_)
    }

    /// A pass that found the publication ready and read nothing else.
    fn publication_ready() -> Observed {
        Observed {
            components: vec![ConditionUpdate::ok(PUBLICATION, "Ready", "")],
            retained_wal_bytes: None,
            snapshot: None,
            value_adjustments: None,
            watermark: None,
            verification: None,
            handled_request: None,
        }
    }

    #[test]
    fn transition_time_changes_only_when_status_flips() {
        let first = merge_conditions(
            &[],
            &[ConditionUpdate::failed(CAPTURE, "Progressing", "0/1")],
            Some(1),
            at(100),
        );
        assert_eq!(first[0].last_transition_time, Time(at(100)));

        let same_status_new_message = merge_conditions(
            &first,
            &[ConditionUpdate::failed(CAPTURE, "Progressing", "0/1 still")],
            Some(2),
            at(200),
        );
        assert_eq!(
            same_status_new_message[0].last_transition_time,
            Time(at(100))
        );
        assert_eq!(same_status_new_message[0].message, "0/1 still");
        assert_eq!(same_status_new_message[0].observed_generation, Some(2));

        let flipped = merge_conditions(
            &same_status_new_message,
            &[ConditionUpdate::ok(CAPTURE, "Available", "1/1")],
            Some(2),
            at(300),
        );
        assert_eq!(flipped[0].last_transition_time, Time(at(300)));
        assert_eq!(flipped[0].status, "True");

        let unchanged = merge_conditions(
            &flipped,
            &[ConditionUpdate::ok(CAPTURE, "Available", "1/1")],
            Some(2),
            at(400),
        );
        assert_eq!(unchanged, flipped);
    }

    #[test]
    fn conditions_not_updated_are_kept_and_ready_comes_first() {
        let before = merge_conditions(
            &[],
            &[
                ConditionUpdate::ok(SINK, "Available", "1/1"),
                ConditionUpdate::ok(PUBLICATION, "Ready", "ok"),
            ],
            Some(1),
            at(1),
        );
        let after = merge_conditions(
            &before,
            &[ConditionUpdate::failed(READY, "SecretMissing", "gone")],
            Some(2),
            at(2),
        );
        let types: Vec<&str> = after.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, PUBLICATION, SINK]);
        assert_eq!(after[2].last_transition_time, Time(at(1)));
    }

    #[test]
    fn ready_names_every_component_that_is_not_ready() {
        let ready = ready_condition(&[
            ConditionUpdate::ok(PUBLICATION, "Ready", "ok"),
            ConditionUpdate::failed(CAPTURE, "Progressing", "0/1 replicas available"),
            ConditionUpdate::failed(SINK, PAUSED, "spec.state is paused"),
        ]);
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(ready.reason, "Progressing");
        assert_eq!(
            ready.message,
            "Capture: 0/1 replicas available; Sink: spec.state is paused"
        );
        let all = ready_condition(&[ConditionUpdate::ok(PUBLICATION, "Ready", "ok")]);
        assert_eq!(all.status, ConditionStatus::True);
    }

    #[test]
    fn phase_distinguishes_progress_from_failure() {
        let ok = ConditionUpdate::ok(PUBLICATION, "Ready", "");
        let progressing = ConditionUpdate::failed(CAPTURE, "Progressing", "");
        let broken = ConditionUpdate::failed(PUBLICATION, "SourceUnreachable", "");
        assert_eq!(phase(std::slice::from_ref(&ok), false), Phase::Running);
        assert_eq!(
            phase(&[ok.clone(), progressing.clone()], false),
            Phase::Provisioning
        );
        assert_eq!(phase(&[broken, progressing], false), Phase::Degraded);
        assert_eq!(phase(&[ok], true), Phase::Paused);
    }

    #[test]
    fn snapshot_progress_is_reported_when_read_and_kept_when_the_source_was_unreadable() {
        let mut pipeline = example();
        let progress = vec![TableSnapshotStatus {
            table: "customer".into(),
            state: "Running".into(),
            rows: 40,
        }];
        let observed = |snapshot| Observed {
            snapshot,
            ..publication_ready()
        };
        let read = reconciled_status(&pipeline, &observed(Some(progress.clone())), at(1));
        assert_eq!(read.snapshot, progress);

        pipeline.status = Some(read);
        let unreadable = reconciled_status(&pipeline, &observed(None), at(2));
        assert_eq!(unreadable.snapshot, progress);
    }

    #[test]
    fn values_adjusted_appears_once_the_sink_reports_some_and_is_kept_while_unreadable() {
        let mut pipeline = example();
        let observed = |value_adjustments| Observed {
            value_adjustments,
            ..publication_ready()
        };
        let condition = |status: &CdcPipelineStatus| {
            condition_of(status, VALUES_ADJUSTED).map(|c| (c.status.clone(), c.message.clone()))
        };
        let none = reconciled_status(&pipeline, &observed(Some(vec![])), at(1));
        assert_eq!(condition(&none), None, "no condition before any adjustment");

        let clamped = value_adjustments(&[ValueAdjustment {
            table: "order_fact".into(),
            column: "order_date".into(),
            policy: "clamp".into(),
            values: 1,
            last_seen_ms: 2_500,
        }]);
        assert_eq!(clamped[0].last_seen, Time(at(2)));
        let reported = reconciled_status(&pipeline, &observed(Some(clamped.clone())), at(3));
        assert_eq!(reported.value_adjustments, clamped);
        let (status, message) = condition(&reported).unwrap();
        assert_eq!(status, "True");
        assert!(
            message.starts_with("order_fact.order_date: 1 value clamped; "),
            "{message}"
        );
        assert_eq!(reported.phase, Some(Phase::Running), "not a component");

        pipeline.status = Some(reported.clone());
        let unreadable = reconciled_status(&pipeline, &observed(None), at(4));
        assert_eq!(unreadable.value_adjustments, clamped);
        assert_eq!(condition(&unreadable), condition(&reported));

        let emptied = reconciled_status(&pipeline, &observed(Some(vec![])), at(5));
        assert_eq!(emptied.value_adjustments, []);
        assert_eq!(condition(&emptied).unwrap().0, "False");
    }

    #[test]
    fn the_consistent_point_waits_for_the_snapshot_and_is_kept_while_unreadable() {
        let mut pipeline = example();
        pipeline.spec.freshness_objective = Some("1m".into());
        let tables = pipeline.source_table_names();
        let progress = |done: usize| {
            tables
                .iter()
                .enumerate()
                .map(|(i, table)| TableSnapshotStatus {
                    table: table.clone(),
                    state: if i < done { "Done" } else { "Running" }.into(),
                    rows: 1,
                })
                .collect::<Vec<_>>()
        };
        let watermark = Watermark {
            commit_lsn: 0x10,
            commit_time_us: 100_900_000,
            partitions: 12,
        };
        let observed = |snapshot, watermark| Observed {
            snapshot,
            watermark,
            ..publication_ready()
        };
        let fresh = |status: &CdcPipelineStatus| {
            let c = condition_of(status, FRESH).unwrap();
            (c.status.clone(), c.reason.clone())
        };

        let running = reconciled_status(
            &pipeline,
            &observed(Some(progress(3)), Some(Some(watermark))),
            at(130),
        );
        assert_eq!(
            running.consistent_up_to, None,
            "a table is still snapshotting"
        );
        assert_eq!(
            fresh(&running),
            ("Unknown".into(), "NoConsistentPoint".into())
        );

        let done = reconciled_status(
            &pipeline,
            &observed(Some(progress(4)), Some(Some(watermark))),
            at(130),
        );
        let point = done.consistent_up_to.clone().unwrap();
        assert_eq!((&point.time, point.lsn.as_str()), (&Time(at(100)), "0/10"));
        assert_eq!(done.freshness_seconds, Some(30));
        assert_eq!(done.phase, Some(Phase::Running));
        assert_eq!(fresh(&done), ("True".into(), "WithinObjective".into()));

        // ClickHouse unreadable: the last point, older now, past the objective.
        pipeline.status = Some(done);
        let unreadable = reconciled_status(&pipeline, &observed(None, None), at(190));
        assert_eq!(unreadable.consistent_up_to, Some(point));
        assert_eq!(unreadable.freshness_seconds, Some(90));
        assert_eq!(
            fresh(&unreadable),
            ("False".into(), "ObjectiveExceeded".into())
        );
        assert_eq!(unreadable.phase, Some(Phase::Running), "not a component");

        // A watermark at zero (a partition not applied yet), or over fewer partitions than the
        // topics have (4 topics of 3), is no point.
        for (partial, why) in [
            (
                Watermark {
                    commit_lsn: 0,
                    ..watermark
                },
                "has not applied",
            ),
            (
                Watermark {
                    partitions: 11,
                    ..watermark
                },
                "11 of the 12 topic partitions have a position",
            ),
        ] {
            let status =
                reconciled_status(&pipeline, &observed(None, Some(Some(partial))), at(200));
            assert_eq!(status.consistent_up_to, None);
            assert_eq!(status.freshness_seconds, None);
            let fresh = condition_of(&status, FRESH).unwrap();
            assert!(fresh.message.contains(why), "{}", fresh.message);
        }
    }

    #[test]
    fn verified_appears_once_the_verifier_ran_and_names_the_mismatching_keys() {
        let pipeline = example();
        let observed = |verification| Observed {
            verification,
            ..publication_ready()
        };
        let condition = |status: &CdcPipelineStatus| {
            condition_of(status, VERIFIED)
                .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        };
        let never = reconciled_status(&pipeline, &observed(Some(vec![])), at(1));
        assert_eq!(condition(&never), None, "absent until the verifier ran");

        let row = |table: &str, mismatches: u64, keys: &[&str]| Verification {
            table: table.into(),
            verified_at_ms: 1_500,
            rows_checked: 100,
            mismatches,
            mismatch_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ..Verification::default()
        };
        let found = verification(&[
            row("customer_dim", 2, &["7", "9999"]),
            row("order_fact", 0, &[]),
        ]);
        let status = reconciled_status(&pipeline, &observed(Some(found.clone())), at(2));
        assert_eq!(status.verification, found);
        assert_eq!(
            found[0].verified_at,
            Time(Timestamp::from_second(1).unwrap())
        );
        let (state, reason, message) = condition(&status).unwrap();
        assert_eq!((state.as_str(), reason.as_str()), ("False", "Mismatches"));
        assert!(
            message.contains("customer_dim: 2 mismatches (keys 7, 9999)"),
            "{message}"
        );
        assert!(!message.contains("order_fact"), "{message}");

        // ClickHouse unreadable: the last result stays.
        let mut pipeline = pipeline;
        pipeline.status = Some(status);
        let kept = reconciled_status(&pipeline, &observed(None), at(3));
        assert_eq!(kept.verification, found);

        let clean = verification(&[row("customer_dim", 0, &[]), row("order_fact", 0, &[])]);
        let status = reconciled_status(&pipeline, &observed(Some(clean)), at(4));
        let (state, reason, message) = condition(&status).unwrap();
        assert_eq!((state.as_str(), reason.as_str()), ("True", "Equal"));
        assert_eq!(message, "200 rows of 2 tables equal to Postgres");
        assert_eq!(status.phase, Some(Phase::Running), "not a component");
    }

    #[test]
    fn without_an_objective_there_is_no_fresh_condition() {
        let pipeline = example();
        let status = reconciled_status(&pipeline, &publication_ready(), at(1));
        assert!(status.conditions.iter().all(|c| c.type_ != FRESH));
        assert_eq!(human_seconds(59), "59s");
        assert_eq!(human_seconds(125), "2m05s");
        assert_eq!(human_seconds(3720), "1h02m");
    }

    #[test]
    fn wal_sizes_read_like_humans_write_them() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1023), "1023B");
        assert_eq!(human_bytes(1536), "1.5KiB");
        assert_eq!(human_bytes(12 * 1024 * 1024), "12MiB");
        assert_eq!(
            human_bytes(3 * 1024 * 1024 * 1024 + 200 * 1024 * 1024),
            "3.2GiB"
        );
    }

    #[test]
    fn a_paused_capture_says_how_much_wal_its_slot_retains_and_warns_past_the_limit() {
        let mut pipeline = example();
        let paused =
            ConditionUpdate::failed(CAPTURE, PAUSED, "spec.state is paused: scaled to zero");
        let described = capture_condition(&pipeline, paused.clone(), Some(512 << 20));
        assert_eq!(described.reason, PAUSED);
        assert!(
            described.message.starts_with(
                "spec.state is paused: scaled to zero; meanwhile the slot retains 512MiB of WAL \
                 on the source, growing"
            ),
            "{}",
            described.message
        );
        // Past the default 1Gi: a warning reason, naming the limit.
        let over = capture_condition(&pipeline, paused.clone(), Some(3 << 30));
        assert_eq!(over.reason, RETAINED_WAL_GROWING);
        assert!(
            over.message.contains("retains 3.0GiB of WAL on the source")
                && over.message.ends_with(
                    "past its limit); that is over the 1.0GiB of \
                     spec.source.slot.maxRetainedWal (default): resume the pipeline, or watch the \
                     source's disk"
                ),
            "{}",
            over.message
        );
        // A limit of its own.
        pipeline.spec.source.slot.max_retained_wal = Some("10Gi".into());
        assert_eq!(
            capture_condition(&pipeline, paused.clone(), Some(3 << 30)).reason,
            PAUSED
        );
        let over = capture_condition(&pipeline, paused.clone(), Some(11 << 30));
        assert_eq!(over.reason, RETAINED_WAL_GROWING);
        assert!(
            over.message
                .contains("over the 10GiB of spec.source.slot.maxRetainedWal:")
        );
        assert_eq!(capture_condition(&pipeline, paused.clone(), None), paused);
        // A running capture's condition is left alone whatever the slot retains.
        let running = ConditionUpdate::ok(CAPTURE, "Available", "1/1 replicas available");
        assert_eq!(
            capture_condition(&pipeline, running.clone(), Some(50 << 30)),
            running
        );
    }

    #[test]
    fn a_warning_is_raised_once_when_a_condition_takes_a_warning_reason() {
        let status = |reason: &str| CdcPipelineStatus {
            conditions: merge_conditions(
                &[],
                &[ConditionUpdate::failed(CAPTURE, reason, "m")],
                Some(1),
                at(1),
            ),
            ..CdcPipelineStatus::default()
        };
        let paused = status(PAUSED);
        let growing = status(RETAINED_WAL_GROWING);
        assert!(warnings_raised(None, &paused).is_empty());
        assert_eq!(
            warnings_raised(Some(&paused), &growing),
            [(RETAINED_WAL_GROWING.to_owned(), "m".to_owned())]
        );
        assert_eq!(warnings_raised(None, &growing).len(), 1);
        // Still growing on the next pass: no second Event.
        assert!(warnings_raised(Some(&growing), &growing).is_empty());
    }

    #[test]
    fn redpanda_connect_capture_condition_names_what_the_engine_cannot_convey() {
        let mut pipeline = example();
        let running = ConditionUpdate::ok(CAPTURE, "Available", "1/1 replicas available");
        assert_eq!(
            capture_condition(&pipeline, running.clone(), Some(1 << 30)),
            running
        );
        pipeline.spec.capture.engine = CaptureEngine::RedpandaConnect;
        let described = capture_condition(&pipeline, running, None);
        assert_eq!(described.status, ConditionStatus::True);
        assert!(described.message.starts_with("1/1 replicas available; "));
        for gap in ["TRUNCATE", "old key", "commit time"] {
            assert!(described.message.contains(gap), "{}", described.message);
        }
    }
}
