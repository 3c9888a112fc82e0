//! The reconcile loop against a mocked API server: every call asserted and answered in order, the
//! databases replaced by in-memory fakes.
//!
//! Over 400 lines: one mock-API scenario per reconcile path (create, update, failure kinds,
//! deletion); each states its API calls in order.

mod common;

use std::sync::{Arc, Mutex};

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::pipeline::{RECREATE_SLOT_ANNOTATION, TableSnapshotStatus};
use cdcstar_crds::{clickhouse_ddl, postgres, status_tables};
use cdcstar_operator::config::OperatorConfig;
use cdcstar_operator::controller::{self, Context, Error};
use cdcstar_operator::metrics::Metrics;
use cdcstar_operator::sql::{SlotObservation, SourceObservation, ValueAdjustment, Watermark};
use common::apiserver::{Call, Handle, mock_client, scenario};
use common::fakes::{FakeSource, FakeWarehouse};
use common::fixtures::{
    PipelineFixture, SECRET_DSN, source_in_place, to_json, warehouse_in_place,
    with_shipment_and_phone,
};
use common::scenarios::*;
use k8s_openapi::jiff::Timestamp;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};

struct Harness {
    ctx: Arc<Context>,
    handle: Handle,
    source: FakeSource,
    warehouse: FakeWarehouse,
}

fn harness() -> Harness {
    let (client, handle) = mock_client();
    let source = FakeSource::default();
    let warehouse = FakeWarehouse::default();
    let ctx = Arc::new(Context::new(
        client,
        OperatorConfig::default(),
        Arc::new(source.clone()),
        Arc::new(warehouse.clone()),
        Arc::new(Metrics::default()),
        Reporter {
            controller: "cdcstar-operator".into(),
            instance: Some("test".into()),
        },
    ));
    Harness {
        ctx,
        handle,
        source,
        warehouse,
    }
}

impl Harness {
    /// Both databases hold what `pipeline` needs already, the slot retaining `retained_wal_bytes`.
    fn in_place(&self, pipeline: &CdcPipeline, retained_wal_bytes: i64) {
        self.source_observed(pipeline, source_in_place(pipeline, retained_wal_bytes));
    }

    /// ClickHouse holds what `pipeline` needs already, and the source is as `observation` says.
    fn source_observed(&self, pipeline: &CdcPipeline, observation: SourceObservation) {
        self.source.with(|s| s.observation = observation);
        self.warehouse
            .with(|w| w.observation = warehouse_in_place(pipeline));
    }
}

/// Neither database ran a statement.
fn assert_nothing_executed(source: &FakeSource, warehouse: &FakeWarehouse) {
    assert!(source.executed().is_empty());
    assert!(warehouse.executed().is_empty());
}

/// The pass stopped before any database: no connection to the source, nothing run on ClickHouse.
fn assert_no_database_touched(source: &FakeSource, warehouse: &FakeWarehouse) {
    assert!(
        source.with(|s| s.dsns.is_empty()),
        "no connection without a DSN"
    );
    assert!(warehouse.executed().is_empty());
}

/// `pipeline` as the API server holds it once a pass wrote the status in `written`.
fn stored(pipeline: &CdcPipeline, written: &Mutex<Value>) -> CdcPipeline {
    let mut stored = pipeline.clone();
    stored.status = Some(serde_json::from_value(written.lock().unwrap().clone()).unwrap());
    stored
}

async fn reconcile(pipeline: &CdcPipeline, ctx: &Arc<Context>) -> Result<Action, Error> {
    controller::reconcile(
        Arc::new(DeserializeGuard(Ok(pipeline.clone()))),
        ctx.clone(),
    )
    .await
}

/// Runs one reconcile of `pipeline` while the mocked apiserver answers `calls` in order.
async fn reconcile_scenario(
    handle: Handle,
    ctx: &Arc<Context>,
    pipeline: &CdcPipeline,
    calls: Vec<Call>,
) -> Result<Action, Error> {
    scenario(handle, calls, reconcile(pipeline, ctx)).await
}

/// Reconciles `pipeline` twice while the mocked apiserver answers: the first pass writes a status
/// containing `expected` (capture and sink at one replica); the second, of `pipeline` as stored with
/// that status, only applies the children again (no status, no events).
async fn reconcile_twice_unchanged(
    handle: Handle,
    ctx: &Arc<Context>,
    pipeline: &CdcPipeline,
    expected: Value,
) {
    let written = Arc::new(Mutex::new(Value::Null));
    let calls = concat(vec![
        pass_with_status(pipeline, 1, expected, Some(written.clone())),
        pass_again(),
    ]);
    let passes = async {
        reconcile(pipeline, ctx).await?;
        reconcile(&stored(pipeline, &written), ctx).await
    };
    scenario(handle, calls, passes).await.unwrap();
}

/// The six component conditions of a status in the order the operator writes them, each
/// `{"type": T, "status": "True"}` with the fields `changed` gives for T added or replacing.
fn conditions(changed: Value) -> Value {
    const TYPES: [&str; 6] = [
        "Ready",
        "Publication",
        "Capture",
        "ClickHouseSchema",
        "Sink",
        "Api",
    ];
    let mut changed = changed
        .as_object()
        .cloned()
        .expect("fields by condition type");
    let list = TYPES
        .iter()
        .map(|type_| {
            let mut condition = json!({"type": type_, "status": "True"});
            if let Some(Value::Object(fields)) = changed.remove(*type_) {
                condition.as_object_mut().unwrap().extend(fields);
            }
            condition
        })
        .collect();
    assert!(changed.is_empty(), "not a condition type: {changed:?}");
    Value::Array(list)
}

fn all_ready_conditions() -> Value {
    conditions(json!({
        "Ready": {"reason": "AllComponentsReady"},
        "Capture": {"reason": "Available"},
        "Sink": {"reason": "Available"},
        "Api": {"reason": "Available"},
    }))
}

/// A pass up to its status: the DSN Secret read, the children applied (capture and sink with
/// `replicas`), and the status of `pipeline` applied, containing `expected` (kept in `store`).
fn pass_with_status(
    pipeline: &CdcPipeline,
    replicas: i32,
    expected: Value,
    store: Option<Arc<Mutex<Value>>>,
) -> Vec<Call> {
    pass_with(children_applied(replicas), pipeline, expected, store)
}

/// The start of a later pass that finds its children in place: the DSN Secret read and the
/// children (capture and sink at one replica) applied again.
fn pass_again() -> Vec<Call> {
    concat(vec![secret_read(), children_reapplied(1)])
}

/// A pass up to its status with the `children` calls of its own: the DSN Secret read, `children`,
/// and the status of `pipeline` applied, containing `expected` (kept in `store`).
fn pass_with(
    children: Vec<Call>,
    pipeline: &CdcPipeline,
    expected: Value,
    store: Option<Arc<Mutex<Value>>>,
) -> Vec<Call> {
    concat(vec![
        secret_read(),
        children,
        status_applied(pipeline, expected, store),
    ])
}

/// The status of `pipeline` applied in `phase`, with Ready False for `reason`.
fn not_ready(pipeline: &CdcPipeline, phase: &str, reason: &str) -> Vec<Call> {
    status_applied(
        pipeline,
        json!({
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "False", "reason": reason}],
        }),
        None,
    )
}

/// The status of `pipeline` failed for want of Secret `secret` (named by `field`), and the
/// Warning saying so.
fn failed_for_missing_secret(
    pipeline: &CdcPipeline,
    secret: &'static str,
    field: &str,
) -> Vec<Call> {
    concat(vec![
        status_applied(
            pipeline,
            json!({
                "phase": "Failed",
                "conditions": [{
                    "type": "Ready", "status": "False", "reason": "SecretMissing",
                    "message": format!("secret default/{secret} referenced by {field} not found"),
                }],
            }),
            None,
        ),
        warning("SecretMissing", secret),
    ])
}

/// A deletion's cleanup: the capture stopped, the DSN Secret read, the Event saying what was
/// cleaned up (`note`), the finalizer removed.
fn cleaned_up(pipeline: &CdcPipeline, note: &'static str) -> Vec<Call> {
    concat(vec![
        capture_deleted(),
        secret_read(),
        normal("CleanedUp", note),
        finalizer_removed(pipeline),
    ])
}

fn concat(parts: Vec<Vec<Call>>) -> Vec<Call> {
    parts.into_iter().flatten().collect()
}

#[tokio::test]
async fn new_pipeline_gets_finalizer_then_children_status_and_events() {
    let h = harness();
    let pipeline = CdcPipeline::test();
    let finalized = pipeline.clone().finalized();
    let calls = concat(vec![
        finalizer_added(&pipeline),
        pass_with_status(
            &finalized,
            1,
            json!({
                "phase": "Running",
                "observedGeneration": 1,
                "tables": 4,
                "conditions": all_ready_conditions(),
            }),
            None,
        ),
        normal("SourceUpdated", "ran 7 statements"),
        normal("SchemaUpdated", "ran 9 DDL statements"),
    ]);
    let ctx = h.ctx.clone();
    let (first, second) = scenario(h.handle, calls, async move {
        let first = reconcile(&pipeline, &ctx).await;
        let second = reconcile(&finalized, &ctx).await;
        (first, second)
    })
    .await;
    assert_eq!(first.unwrap(), Action::await_change());
    assert_eq!(
        second.unwrap(),
        Action::requeue(OperatorConfig::default().resync_interval)
    );
    let stored = CdcPipeline::test();
    assert_eq!(h.source.executed(), postgres::install_statements(&stored));
    assert_eq!(
        h.warehouse.executed(),
        clickhouse_ddl::install_statements(&stored).unwrap()
    );
    assert_eq!(h.source.with(|s| s.dsns.clone()), [SECRET_DSN]);
}

#[tokio::test]
async fn spec_change_alters_publication_and_adds_table_and_column_keeping_transition_times() {
    let h = harness();
    let before = CdcPipeline::test().finalized();
    h.in_place(&before, 2048);
    // The status a previous pass wrote, all True since an hour ago.
    let earlier = "2026-01-01T10:00:00Z";
    let mut changed = with_shipment_and_phone(before.clone()).generation(2);
    let mut previous: Value = json!({
        "phase": "Running", "observedGeneration": 1, "tables": 4,
        "conditions": all_ready_conditions(),
    });
    for condition in previous["conditions"].as_array_mut().unwrap() {
        condition["lastTransitionTime"] = json!(earlier);
        condition["message"] = json!("earlier");
        condition["reason"] = condition
            .get("reason")
            .cloned()
            .unwrap_or(json!("UpToDate"));
    }
    changed.status = Some(serde_json::from_value(previous).unwrap());

    let calls = concat(vec![
        pass_with_status(
            &changed,
            1,
            json!({
                "phase": "Running",
                "observedGeneration": 2,
                "tables": 5,
                "lag": "2.0KiB",
                "retainedWalBytes": 2048,
                "conditions": conditions(json!({
                    "Ready": {"lastTransitionTime": earlier},
                    "Publication": {"reason": "Updated", "lastTransitionTime": earlier,
                     "message": "publication cdcstar_shop publishes 5 tables, slot cdcstar_shop exists (updated)"},
                    "Capture": {"lastTransitionTime": earlier},
                    "ClickHouseSchema": {"reason": "Applied", "lastTransitionTime": earlier},
                    "Sink": {"lastTransitionTime": earlier},
                    "Api": {"lastTransitionTime": earlier},
                })),
            }),
            None,
        ),
        normal("SourceUpdated", "ran 2 statements"),
        normal("SchemaUpdated", "ran 2 DDL statements"),
    ]);
    let result = reconcile_scenario(h.handle, &h.ctx, &changed, calls).await;
    result.unwrap();

    let tables = postgres::declared_tables(&changed);
    assert_eq!(
        h.source.executed(),
        [
            "ALTER TABLE \"public\".\"shipment\" REPLICA IDENTITY FULL".to_owned(),
            format!(
                "ALTER PUBLICATION \"cdcstar_shop\" SET TABLE {}",
                tables
                    .iter()
                    .map(|t| t.quoted())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ]
    );
    let ddl = h.warehouse.executed();
    assert_eq!(ddl.len(), 2, "{ddl:#?}");
    assert_eq!(
        ddl[0],
        "ALTER TABLE `local`.`customer_dim` ADD COLUMN IF NOT EXISTS `phone` Nullable(String)"
    );
    assert!(
        ddl[1].starts_with("CREATE TABLE IF NOT EXISTS `local`.`shipment_dim`"),
        "{}",
        ddl[1]
    );
    assert!(
        ddl.iter().all(|s| !s.contains("DROP")),
        "nothing is dropped: {ddl:#?}"
    );
}

#[tokio::test]
async fn missing_secret_sets_a_condition_naming_it_and_warns() {
    let h = harness();
    let pipeline = CdcPipeline::test().finalized();
    let calls = concat(vec![
        secret_missing(),
        failed_for_missing_secret(
            &pipeline,
            "shop-postgres",
            "spec.source.connectionSecretRef",
        ),
    ]);
    let result = reconcile_scenario(h.handle, &h.ctx, &pipeline, calls).await;
    let error = result.unwrap_err();
    assert_eq!(error.kind(), "secret_missing");
    assert_no_database_touched(&h.source, &h.warehouse);
    // The next attempt waits: per-object exponential backoff.
    let object = Arc::new(DeserializeGuard(Ok(CdcPipeline::test())));
    let first = controller::error_policy(object.clone(), &error, h.ctx.clone());
    let second = controller::error_policy(object, &error, h.ctx.clone());
    assert_eq!(first, Action::requeue(std::time::Duration::from_secs(5)));
    assert_eq!(second, Action::requeue(std::time::Duration::from_secs(10)));
}

#[tokio::test]
async fn a_missing_mask_salt_secret_stops_the_pass_before_any_database_is_touched() {
    let h = harness();
    let mut pipeline = CdcPipeline::test().finalized();
    pipeline.spec.source.tables[0].mask = vec![cdcstar_crds::pipeline::ColumnMask {
        column: "email".into(),
        with: cdcstar_crds::pipeline::MaskKind::Hash,
    }];
    pipeline.spec.source.mask_salt_secret_ref = Some(cdcstar_crds::pipeline::SecretKeyRef {
        name: "shop-mask-salt".into(),
        key: "salt".into(),
    });
    let calls = concat(vec![
        secret_read(),
        vec![
            Call::get("/api/v1/namespaces/default/secrets/shop-mask-salt")
                .reply(common::apiserver::Reply::NotFound),
        ],
        failed_for_missing_secret(&pipeline, "shop-mask-salt", "spec.source.maskSaltSecretRef"),
    ]);
    let error = reconcile_scenario(h.handle, &h.ctx, &pipeline, calls)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "secret_missing");
    assert_no_database_touched(&h.source, &h.warehouse);
}

/// One pass with Postgres unreachable (and ClickHouse too when `clickhouse_down`): the status is
/// degraded with the component `conditions`, the `events` are sent, then the Warning that the
/// source failed, and the pass fails on the source.
async fn pass_with_databases_down(
    clickhouse_down: bool,
    conditions: Value,
    events: Vec<Vec<Call>>,
) {
    let h = harness();
    h.source.with(|s| s.unreachable = true);
    h.warehouse.with(|w| w.unreachable = clickhouse_down);
    let pipeline = CdcPipeline::test().finalized();
    let status = json!({"phase": "Degraded", "conditions": conditions});
    let mut calls = pass_with_status(&pipeline, 1, status, None);
    calls.extend(concat(events));
    calls.extend(warning("SourceFailed", "Connection refused"));
    let result = reconcile_scenario(h.handle, &h.ctx, &pipeline, calls).await;
    assert_eq!(result.unwrap_err().kind(), "source");
}

#[tokio::test]
async fn unreachable_postgres_degrades_and_warns_but_applies_the_rest() {
    pass_with_databases_down(
        false,
        conditions(json!({
            "Ready": {"status": "False", "reason": "SourceUnreachable"},
            "Publication": {"status": "False", "reason": "SourceUnreachable",
             "message": "source database failed to connect: error connecting to server: Connection refused (os error 111)"},
        })),
        vec![normal("SchemaUpdated", "ran 9 DDL statements")],
    )
    .await;
}

#[tokio::test]
async fn paused_scales_capture_and_sink_to_zero_and_warns_once_the_retained_wal_passes_the_limit() {
    let h = harness();
    let pipeline = CdcPipeline::test().finalized().paused();
    h.in_place(&pipeline, 512 << 20);
    let written = Arc::new(Mutex::new(Value::Null));
    let calls = concat(vec![
        pass_with_status(
            &pipeline,
            0,
            json!({
                "phase": "Paused",
                "lag": "512MiB",
                "conditions": conditions(json!({
                    "Ready": {"status": "False", "reason": "Paused"},
                    "Publication": {"reason": "UpToDate"},
                    "Capture": {"status": "False", "reason": "Paused",
                     "message": "spec.state is paused: scaled to zero; meanwhile the slot retains 512MiB \
                                 of WAL on the source, growing with every write until the pipeline resumes \
                                 (nothing is lost; max_slot_wal_keep_size, if set, would invalidate the slot \
                                 past its limit)"},
                    "ClickHouseSchema": {"reason": "UpToDate"},
                    "Sink": {"status": "False", "reason": "Paused"},
                })),
            }),
            Some(written.clone()),
        ),
        // The WAL grew past the default 1Gi: the reason changes and one Warning is published.
        pass_with(
            children_reapplied(0),
            &pipeline,
            json!({
                "phase": "Paused",
                "lag": "5.0GiB",
                "conditions": conditions(json!({
                    "Ready": {"status": "False", "reason": "RetainedWalGrowing"},
                    "Capture": {"status": "False", "reason": "RetainedWalGrowing"},
                    "Sink": {"status": "False", "reason": "Paused"},
                })),
            }),
            Some(written.clone()),
        ),
        warning(
            "RetainedWalGrowing",
            "that is over the 1.0GiB of spec.source.slot.maxRetainedWal (default)",
        ),
        // Still over it on the next pass: no second Warning.
        pass_with(
            children_reapplied(0),
            &pipeline,
            json!({"phase": "Paused", "lag": "5.1GiB"}),
            Some(written.clone()),
        ),
    ]);
    let ctx = h.ctx.clone();
    let source = h.source.clone();
    let result = scenario(h.handle, calls, async move {
        reconcile(&pipeline, &ctx).await?;
        source.with(|s| s.observation = source_in_place(&pipeline, 5 << 30));
        reconcile(&stored(&pipeline, &written), &ctx).await?;
        source.with(|s| s.observation = source_in_place(&pipeline, (51 << 30) / 10));
        reconcile(&stored(&pipeline, &written), &ctx).await
    })
    .await;
    result.unwrap();
    assert_nothing_executed(&h.source, &h.warehouse);
}

#[tokio::test]
async fn the_deprecated_suspend_pauses_too_and_says_which_field_did() {
    let h = harness();
    let pipeline = CdcPipeline::test().finalized().suspended();
    h.in_place(&pipeline, 4096);
    let calls = pass_with_status(
        &pipeline,
        0,
        json!({
            "phase": "Paused",
            "conditions": conditions(json!({
                "Ready": {"status": "False", "reason": "Paused"},
                "Capture": {"status": "False", "reason": "Paused"},
                "Sink": {"status": "False", "reason": "Paused",
                 "message": "spec.suspend is true (deprecated alias of spec.state: paused): scaled to zero"},
            })),
        }),
        None,
    );
    reconcile_scenario(h.handle, &h.ctx, &pipeline, calls)
        .await
        .unwrap();
}

/// A pass that holds the capture at zero replicas (the sink at one) and writes a Degraded status,
/// the component conditions with the fields `changed` gives.
fn held_capture_pass(pipeline: &CdcPipeline, changed: Value) -> Vec<Call> {
    pass_with(
        children_applied_with(0, 1),
        pipeline,
        json!({"phase": "Degraded", "conditions": conditions(changed)}),
        None,
    )
}

/// `source_in_place` with the slot invalidated by Postgres.
fn invalidated_slot(pipeline: &CdcPipeline) -> SourceObservation {
    let mut observation = source_in_place(pipeline, 0);
    observation.slot = Some(SlotObservation {
        retained_wal_bytes: None,
        active: false,
        invalidated: Some("wal_removed".into()),
        failover: None,
    });
    observation
}

#[tokio::test]
async fn an_invalidated_slot_holds_the_capture_at_zero_and_is_kept_without_a_request() {
    let h = harness();
    let pipeline = CdcPipeline::test().finalized();
    h.source_observed(&pipeline, invalidated_slot(&pipeline));
    let calls = concat(vec![
        held_capture_pass(
            &pipeline,
            json!({
                "Ready": {"status": "False", "reason": "SlotInvalidated"},
                "Publication": {"status": "False", "reason": "SlotInvalidated"},
                "Capture": {"status": "False", "reason": "WaitingForSlot",
                 "message": "held at zero replicas: replication slot cdcstar_shop is invalidated \
                             (see the Publication condition)"},
            }),
        ),
        warning(
            "SlotInvalidated",
            "kubectl annotate cdcpipeline shop cdcstar.dev/recreate-slot=",
        ),
    ]);
    // The pass succeeds: a condition and one Warning, not an error retried with backoff.
    let action = reconcile_scenario(h.handle, &h.ctx, &pipeline, calls)
        .await
        .unwrap();
    assert_eq!(
        action,
        Action::requeue(OperatorConfig::default().resync_interval)
    );
    assert!(h.source.executed().is_empty(), "{:?}", h.source.executed());
}

#[tokio::test]
async fn a_recreate_request_replaces_the_invalidated_slot_and_is_recorded_once() {
    let h = harness();
    let mut pipeline = CdcPipeline::test().finalized();
    pipeline.metadata.annotations = Some(
        [(RECREATE_SLOT_ANNOTATION.to_owned(), "1".to_owned())]
            .into_iter()
            .collect(),
    );
    h.source_observed(&pipeline, invalidated_slot(&pipeline));
    let written = Arc::new(Mutex::new(Value::Null));
    let calls = concat(vec![
        pass_with_status(
            &pipeline,
            1,
            json!({
                "conditions": conditions(json!({
                    "Publication": {"reason": "SlotRecreated"},
                    "Capture": {"reason": "Available"},
                })),
                "slotRecreation": {"request": "1", "outcome": "Recreated"},
            }),
            Some(written.clone()),
        ),
        normal(
            "SlotRecreateRequest",
            "Recreated \"1\": dropped the invalidated",
        ),
        normal("SourceUpdated", "ran 4 statements"),
        // The next pass finds the new slot, and the same value again asks for nothing.
        pass_with(
            children_reapplied(1),
            &pipeline,
            json!({
                "conditions": conditions(json!({"Publication": {"reason": "UpToDate"}})),
                "slotRecreation": {"request": "1", "outcome": "Recreated"},
            }),
            Some(written.clone()),
        ),
    ]);
    let ctx = h.ctx.clone();
    let source = h.source.clone();
    let stored_pipeline = pipeline.clone();
    let last = written.clone();
    scenario(h.handle, calls, async move {
        reconcile(&stored_pipeline, &ctx).await?;
        source.with(|s| s.observation = source_in_place(&stored_pipeline, 0));
        let recorded = stored(&stored_pipeline, &last);
        assert_eq!(recorded.pending_slot_recreation(), None);
        reconcile(&recorded, &ctx).await
    })
    .await
    .unwrap();
    assert_eq!(
        h.source.executed(),
        postgres::recreate_slot_statements(&pipeline)
    );
    let message =
        &serde_json::from_value::<cdcstar_crds::CdcPipelineStatus>(written.lock().unwrap().clone())
            .unwrap()
            .slot_recreation
            .unwrap()
            .message;
    assert!(
        message.contains("cdcstar-sink verify --repair"),
        "{message}"
    );
}

#[tokio::test]
async fn failover_on_postgres_15_is_refused_with_a_condition_not_a_failing_pass() {
    let h = harness();
    let mut pipeline = CdcPipeline::test().finalized();
    pipeline.spec.source.slot.failover = true;
    let mut observation = source_in_place(&pipeline, 0);
    observation.slot = None;
    h.source_observed(&pipeline, observation);
    let calls = concat(vec![
        held_capture_pass(
            &pipeline,
            json!({
                "Ready": {"status": "False", "reason": "FailoverUnsupported"},
                "Publication": {"status": "False", "reason": "FailoverUnsupported",
                 "message": "spec.source.slot.failover needs PostgreSQL 17 or later (failover slots), \
                             and the server is 15.10 (server_version_num 150010): slot cdcstar_shop is not \
                             created and the capture is held at zero replicas; remove \
                             spec.source.slot.failover, or upgrade the server and configure its standby \
                             (docs/operator.md, \"Failover slots\")"},
                "Capture": {"status": "False", "reason": "WaitingForSlot"},
            }),
        ),
        warning("FailoverUnsupported", "needs PostgreSQL 17"),
    ]);
    reconcile_scenario(h.handle, &h.ctx, &pipeline, calls)
        .await
        .unwrap();
    assert!(h.source.executed().is_empty(), "{:?}", h.source.executed());
}

#[tokio::test]
async fn second_reconcile_of_an_unchanged_pipeline_writes_no_status_and_no_events() {
    let h = harness();
    let pipeline = CdcPipeline::test().finalized();
    h.in_place(&pipeline, 512);
    // Second pass: children applied again (a no-op for the API server), nothing else; the Redpanda
    // Connect ConfigMap the first pass found absent is not deleted again.
    reconcile_twice_unchanged(
        h.handle,
        &h.ctx,
        &pipeline,
        json!({"phase": "Running", "lag": "512B"}),
    )
    .await;
    assert_nothing_executed(&h.source, &h.warehouse);
}

#[tokio::test]
async fn values_the_sink_adjusted_reach_the_status_with_a_condition_naming_the_columns() {
    let h = harness();
    let pipeline = CdcPipeline::test().finalized();
    h.source
        .with(|s| s.observation = source_in_place(&pipeline, 512));
    h.warehouse.with(|w| {
        w.observation = warehouse_in_place(&pipeline);
        w.report.value_adjustments = vec![
            ValueAdjustment {
                table: "order_fact".into(),
                column: "order_date".into(),
                policy: "clamp".into(),
                values: 3,
                last_seen_ms: 1_767_225_601_500,
            },
            ValueAdjustment {
                table: "orderitem_fact".into(),
                column: "quantity".into(),
                policy: "null".into(),
                values: 1,
                last_seen_ms: 1_767_225_600_000,
            },
        ];
    });
    let mut conditions = all_ready_conditions();
    conditions.as_array_mut().unwrap().push(json!({
        "type": "ValuesAdjusted", "status": "True", "reason": "ValuesAdjusted",
        "message": "order_fact.order_date: 3 values clamped; orderitem_fact.quantity: 1 value set to \
                    NULL or the type's default; the column types cannot hold them \
                    (status.valueAdjustments, onUnrepresentable)",
    }));
    // The same report again in the second pass: nothing to write.
    reconcile_twice_unchanged(
        h.handle,
        &h.ctx,
        &pipeline,
        json!({
            "phase": "Running",
            "conditions": conditions,
            "valueAdjustments": [
                {"table": "order_fact", "column": "order_date", "policy": "clamp", "count": 3,
                 "lastSeen": "2026-01-01T00:00:01Z"},
                {"table": "orderitem_fact", "column": "quantity", "policy": "null", "count": 1,
                 "lastSeen": "2026-01-01T00:00:00Z"},
            ],
        }),
    )
    .await;
    assert_eq!(
        h.warehouse.with(|w| w.reports_read.clone()),
        vec![("local".to_owned(), "default/shop".to_owned()); 2]
    );
}

/// Every captured table's snapshot done, as the capture records it.
fn snapshot_done(pipeline: &CdcPipeline) -> Vec<TableSnapshotStatus> {
    pipeline
        .spec
        .source
        .tables
        .iter()
        .map(|t| TableSnapshotStatus {
            table: t.name.clone(),
            state: "Done".into(),
            rows: 1,
        })
        .collect()
}

/// One pass of `pipeline` (objective 30s) whose watermark was committed `age` seconds ago: the
/// status the operator writes, and the pass's requeue.
async fn pass_with_watermark_aged(age: i64, fresh: Value) -> (Value, Action) {
    let h = harness();
    let mut pipeline = CdcPipeline::test().finalized();
    pipeline.spec.freshness_objective = Some("30s".into());
    let committed = Timestamp::now().as_second() - age;
    h.source.with(|s| {
        s.observation = source_in_place(&pipeline, 512);
        s.observation.snapshot = snapshot_done(&pipeline);
    });
    h.warehouse.with(|w| {
        w.observation = warehouse_in_place(&pipeline);
        w.report.watermark = Some(Watermark {
            commit_lsn: 0x16_B374_D848,
            commit_time_us: committed * 1_000_000 + 250_000,
            partitions: 12,
        });
    });
    let mut conditions = all_ready_conditions();
    conditions.as_array_mut().unwrap().push(fresh);
    let written = Arc::new(Mutex::new(Value::Null));
    let calls = pass_with_status(
        &pipeline,
        1,
        json!({
            "phase": "Running",
            "conditions": conditions,
            "consistentUpTo": {
                "lsn": "16/B374D848",
                "time": Timestamp::from_second(committed).unwrap().to_string(),
            },
        }),
        Some(written.clone()),
    );
    let action = reconcile_scenario(h.handle, &h.ctx, &pipeline, calls)
        .await
        .unwrap();
    let status = written.lock().unwrap().clone();
    (status, action)
}

#[tokio::test]
async fn the_watermark_reaches_the_status_and_a_stale_one_fails_the_freshness_objective() {
    let (status, action) = pass_with_watermark_aged(
        95,
        json!({"type": "Fresh", "status": "False", "reason": "ObjectiveExceeded"}),
    )
    .await;
    let freshness = status["freshnessSeconds"].as_i64().unwrap();
    assert!((95..=97).contains(&freshness), "{status}");
    let message = status["conditions"][6]["message"].as_str().unwrap();
    assert!(
        message.contains("(LSN 16/B374D848), 1m3")
            && message.ends_with("ago; the objective is 30s"),
        "{message}"
    );
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(30)));
}

#[tokio::test]
async fn a_recent_watermark_meets_the_freshness_objective() {
    let (status, _) = pass_with_watermark_aged(
        3,
        json!({"type": "Fresh", "status": "True", "reason": "WithinObjective"}),
    )
    .await;
    let freshness = status["freshnessSeconds"].as_i64().unwrap();
    assert!((3..=5).contains(&freshness), "{status}");
}

#[tokio::test]
async fn delete_drops_slot_publication_and_tables_then_removes_the_finalizer() {
    let h = harness();
    h.source.with(|state| {
        state.observation.slot = Some(SlotObservation::default());
        state.observation.publication_tables = Some(Default::default());
    });
    let mut pipeline = CdcPipeline::test().finalized().deleting();
    pipeline.spec.clickhouse.drop_tables_on_delete = true;
    let calls = cleaned_up(
        &pipeline,
        "dropped replication slot cdcstar_shop; dropped publication cdcstar_shop; dropped 4 tables \
             in clickhouse database local and its rows of the status tables",
    );
    let result = reconcile_scenario(h.handle, &h.ctx, &pipeline, calls).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert_eq!(h.source.executed(), postgres::cleanup_statements(&pipeline));
    let mut expected = clickhouse_ddl::drop_statements(&pipeline).unwrap();
    expected.extend(status_tables::delete_statements(&pipeline));
    assert_eq!(h.warehouse.executed(), expected);
}

#[tokio::test]
async fn delete_keeps_tables_unless_asked() {
    let h = harness();
    let pipeline = CdcPipeline::test().finalized().deleting();
    let calls = cleaned_up(&pipeline, "clickhouse tables kept");
    let result = reconcile_scenario(h.handle, &h.ctx, &pipeline, calls).await;
    result.unwrap();
    assert_eq!(h.source.executed(), postgres::cleanup_statements(&pipeline));
    assert!(h.warehouse.executed().is_empty());
}

#[tokio::test]
async fn delete_without_the_dsn_secret_keeps_the_finalizer_and_says_why() {
    let h = harness();
    let pipeline = CdcPipeline::test().finalized().deleting();
    let calls = concat(vec![
        capture_deleted(),
        secret_missing(),
        not_ready(&pipeline, "Deleting", "CleanupBlocked"),
        warning("SecretMissing", "shop-postgres"),
    ]);
    let result = reconcile_scenario(h.handle, &h.ctx, &pipeline, calls).await;
    assert_eq!(result.unwrap_err().kind(), "secret_missing");
    assert!(h.source.executed().is_empty());
}

#[tokio::test]
async fn hostile_spec_is_refused_with_field_paths_before_touching_anything() {
    let h = harness();
    let mut pipeline = CdcPipeline::test().finalized();
    pipeline.spec.source.tables[0].name = "customer\"; DROP TABLE customer; --".into();
    let calls = concat(vec![
        not_ready(&pipeline, "Failed", "InvalidSpec"),
        warning("InvalidSpec", "spec.source.tables[0].name"),
    ]);
    let result = reconcile_scenario(h.handle, &h.ctx, &pipeline, calls).await;
    assert_eq!(result.unwrap_err().kind(), "invalid_spec");
    assert_no_database_touched(&h.source, &h.warehouse);
}

#[tokio::test]
async fn malformed_object_gets_a_condition_and_a_warning_instead_of_wedging() {
    let h = harness();
    let mut stored = to_json(&CdcPipeline::test().finalized());
    stored["spec"]["source"]["tables"] = json!("customer,product");
    let stored_json = stored.clone();
    let guarded: DeserializeGuard<CdcPipeline> = serde_json::from_value(stored).unwrap();
    assert!(guarded.0.is_err());
    let calls = concat(vec![
        status_merged(
            stored_json,
            json!({"status": {
                "phase": "Failed",
                "conditions": [{"type": "Ready", "status": "False", "reason": "InvalidObject"}],
            }}),
        ),
        warning("InvalidObject", "Expected a sequence"),
    ]);
    let ctx = h.ctx.clone();
    let result = scenario(h.handle, calls, async move {
        controller::reconcile(Arc::new(guarded), ctx).await
    })
    .await;
    assert_eq!(result.unwrap_err().kind(), "invalid_object");
}

#[tokio::test]
async fn repeated_failure_patches_the_warning_event_series() {
    let h = harness();
    let pipeline = CdcPipeline::test().finalized();
    let failed = json!({"phase": "Failed"});
    let calls = concat(vec![
        secret_missing(),
        status_applied(&pipeline, failed.clone(), None),
        warning("SecretMissing", "shop-postgres"),
        secret_missing(),
        status_applied(&pipeline, failed, None),
        event_repeated("SecretMissing"),
    ]);
    let ctx = h.ctx.clone();
    let (first, second) = scenario(h.handle, calls, async move {
        (
            reconcile(&pipeline, &ctx).await,
            reconcile(&pipeline, &ctx).await,
        )
    })
    .await;
    assert!(first.is_err() && second.is_err());
}

#[tokio::test]
async fn disabled_api_is_not_run_and_any_previous_one_is_removed() {
    let h = harness();
    let mut pipeline = CdcPipeline::test().finalized();
    pipeline.spec.api.enabled = false;
    h.in_place(&pipeline, 0);
    let mut children = children_applied(1);
    // No api Deployment or Service applied: drop them (indexes 3 and 4), keep the verify CronJob
    // and the connect ConfigMap's delete, then the api's deletes.
    let obsolete = children.split_off(5);
    children.truncate(3);
    let calls = concat(vec![
        secret_read(),
        children,
        obsolete,
        api_removed(),
        status_applied(
            &pipeline,
            json!({
                "phase": "Running",
                "conditions": conditions(json!({"Api": {"reason": "Disabled"}})),
            }),
            None,
        ),
    ]);
    let result = reconcile_scenario(h.handle, &h.ctx, &pipeline, calls).await;
    result.unwrap();
}

#[tokio::test]
async fn refused_apply_still_writes_a_status_naming_the_refusal_and_warns_without_kube_dumps() {
    let h = harness();
    let pipeline = CdcPipeline::test().finalized();
    let calls = concat(vec![
        secret_read(),
        apply_forbidden(PIPELINE_CONFIG_MAP, "configmaps", "shop-pipeline"),
        status_applied(
            &pipeline,
            json!({
                "phase": "Degraded",
                "conditions": conditions(json!({
                    "Ready": {"status": "False"},
                    "Capture": {"status": "False", "reason": "ApplyFailed",
                     "message": "failed to apply ConfigMap default/shop-pipeline: 403 Forbidden: configmaps \"shop-pipeline\" is forbidden: User \"system:serviceaccount:cdcstar-system:cdcstar\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""},
                    "Sink": {"status": "False", "reason": "ApplyFailed"},
                    "Api": {"status": "False", "reason": "ApplyFailed"},
                })),
            }),
            None,
        ),
        normal("SourceUpdated", "ran 7 statements"),
        normal("SchemaUpdated", "ran 9 DDL statements"),
        warning(
            "ApplyFailed",
            "failed to apply ConfigMap default/shop-pipeline: 403 Forbidden: configmaps",
        ),
    ]);
    let result = reconcile_scenario(h.handle, &h.ctx, &pipeline, calls).await;
    let error = result.unwrap_err();
    assert_eq!(error.kind(), "apply");
    assert!(!error.to_string().contains("Status {"), "{error}");
}

#[tokio::test]
async fn postgres_and_clickhouse_both_down_each_get_a_warning() {
    pass_with_databases_down(
        true,
        conditions(json!({
            "Ready": {"status": "False"},
            "Publication": {"status": "False", "reason": "SourceUnreachable"},
            "ClickHouseSchema": {"status": "False"},
        })),
        vec![warning("ClickHouseFailed", "connection refused")],
    )
    .await;
}

#[tokio::test]
async fn cleanup_says_which_of_slot_and_publication_did_not_exist() {
    let h = harness();
    h.source.with(|state| {
        state.observation.publication_tables = Some(Default::default());
    });
    let pipeline = CdcPipeline::test().finalized().deleting();
    let calls = cleaned_up(
        &pipeline,
        "replication slot cdcstar_shop did not exist; dropped publication cdcstar_shop",
    );
    let result = reconcile_scenario(h.handle, &h.ctx, &pipeline, calls).await;
    assert_eq!(result.unwrap(), Action::await_change());
}

/// The example, in place on both databases, whose `cdcstar.dev/resync` annotation is `value`.
fn resync_requested(value: &str) -> (Harness, CdcPipeline) {
    let h = harness();
    let mut pipeline = CdcPipeline::test().finalized();
    pipeline.metadata.annotations = Some(
        [(
            cdcstar_crds::verification::RESYNC_ANNOTATION.to_owned(),
            value.to_owned(),
        )]
        .into_iter()
        .collect(),
    );
    h.in_place(&pipeline, 0);
    (h, pipeline)
}

#[tokio::test]
async fn a_requested_resync_is_a_job_run_once_and_removed_with_its_request() {
    use cdcstar_operator::controller::build::resync_job_name;
    // The example has `spec.verify` (hourly): its CronJob is among the children.
    let (h, pipeline) = resync_requested("customer_dim");
    let job = resync_job_name("shop", "customer_dim");
    let written = Arc::new(Mutex::new(Value::Null));
    let calls = concat(vec![
        pass_again(),
        resync_job_applied(
            &job,
            &["customer_dim"],
            json!({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}),
        ),
        // The CronJob is desired, so only the connect ConfigMap is obsolete.
        vec![
            common::apiserver::Call::delete(CONNECT_CONFIG_MAP)
                .reply(common::apiserver::Reply::NotFound),
        ],
        status_applied(
            &pipeline,
            json!({"resync": {
                "request": "customer_dim", "tables": ["customer_dim"], "job": job, "state": "Succeeded",
            }}),
            Some(written.clone()),
        ),
        // The annotation removed: the Job goes, and so does status.resync.
        pass_again(),
        resync_job_deleted(&job),
        status_applied(
            &pipeline,
            json!({"phase": "Running"}),
            Some(written.clone()),
        ),
    ]);
    let ctx = h.ctx.clone();
    let last = written.clone();
    let result = scenario(h.handle, calls, async move {
        reconcile(&pipeline, &ctx).await?;
        let mut done = stored(&pipeline, &last);
        done.metadata.annotations = None;
        reconcile(&done, &ctx).await
    })
    .await;
    result.unwrap();
    assert!(
        written.lock().unwrap().get("resync").is_none(),
        "{:#}",
        written.lock().unwrap()
    );
}

#[tokio::test]
async fn a_resync_request_naming_no_star_table_is_reported_and_runs_nothing() {
    let (h, pipeline) = resync_requested("customers; DROP");
    let calls = concat(vec![
        secret_read(),
        children_applied(1),
        warning("ResyncInvalid", "is not a star table of spec.starSchema"),
        status_applied(
            &pipeline,
            json!({"phase": "Running", "resync": {"state": "Invalid"}}),
            None,
        ),
    ]);
    reconcile_scenario(h.handle, &h.ctx, &pipeline, calls)
        .await
        .unwrap();
}
