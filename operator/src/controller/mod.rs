//! The reconcile loop of `CdcPipeline`: wiring ([`run`]), the shared [`Context`], and the
//! orchestration of the phases, one module each:
//!
//! 1. [`validate`] (pure) — the spec can be built;
//! 2. [`dereference`] — the referenced Secrets exist and hold their keys;
//! 3. [`source`] and [`schema`] — the publication/slot on Postgres, the ClickHouse tables;
//! 4. [`build`] (pure) — the desired ConfigMaps, Deployments, Service, the verification CronJob
//!    and the requested resync's Job ([`resync`]);
//! 5. [`apply`] — server-side apply of those children;
//! 6. [`status`] — conditions, phase, tables and lag on the status subresource.
//!
//! [`cleanup`] runs behind the finalizer when the pipeline is deleted. Every reconcile error becomes
//! a Warning Event and a failure metric labelled by its kind; [`error_policy`] retries each object
//! with its own exponential backoff.
//!
//! Over 400 lines: the reconcile orchestration, its error kinds and the finalizer in one place, so
//! the order of the phases reads top to bottom.

pub mod apply;
pub mod build;
pub mod cleanup;
pub mod dereference;
pub mod resync;
pub mod schema;
pub mod source;
pub mod status;
pub mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdcstar_crds::pipeline::{FINALIZER, Phase};
use cdcstar_crds::validate::ValidationErrors;
use cdcstar_crds::verification::resync_request;
use cdcstar_crds::{CdcPipeline, CdcPipelineStatus};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{PartialObjectMeta, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, Predicate, PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use crate::config::OperatorConfig;
use crate::external::{SourceConnector, WarehouseConnector};
use crate::kube_error::Described;
use crate::metrics::Metrics;
use build::Component;
use dereference::{DereferenceError, Purpose};
use schema::SchemaError;
use source::SourceError;
use status::ConditionUpdate;

/// Label selector of the children the operator manages (narrows the watches of owned kinds).
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=cdcstar-operator";

/// First retry delay after a failure; doubled on each further failure of the same object.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Shortest re-check interval a freshness objective brings a healthy pipeline to.
pub const MIN_FRESHNESS_RECHECK: Duration = Duration::from_secs(5);

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stored object does not match the schema of this operator's types.
    #[error("cdcpipeline {namespace}/{name} cannot be read: {message}")]
    InvalidObject {
        namespace: String,
        name: String,
        /// The deserialisation error.
        message: String,
    },
    /// The spec breaks a rule.
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] ValidationErrors),
    /// A referenced Secret or key is missing, or Secrets cannot be read.
    #[error(transparent)]
    Dereference(#[from] DereferenceError),
    /// The source database could not be brought to the spec.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The ClickHouse schema could not be brought to the spec.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The desired children could not be built.
    #[error(transparent)]
    Build(#[from] build::BuildError),
    /// A child could not be applied or deleted.
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    /// The status could not be written.
    #[error("failed to patch status: {}", Described(.0))]
    Status(#[source] kube::Error),
    /// The finalizer could not be added or removed.
    #[error("failed to update the finalizer: {}", Described(.0))]
    Finalizer(#[source] kube::Error),
}

/// The `error` label values of the failure metric, one per kind of [`Error`].
pub mod error_kind {
    #![allow(missing_docs)]
    pub const INVALID_OBJECT: &str = "invalid_object";
    pub const INVALID_SPEC: &str = "invalid_spec";
    pub const SECRET_MISSING: &str = "secret_missing";
    pub const SECRET_READ: &str = "secret_read";
    pub const SOURCE: &str = "source";
    pub const CLICKHOUSE: &str = "clickhouse";
    pub const BUILD: &str = "build";
    pub const APPLY: &str = "apply";
    pub const STATUS: &str = "status";
    pub const FINALIZER: &str = "finalizer";
    /// Every kind: the metric starts at 0 for each, so an alert on its increase sees the first
    /// failure of a kind too.
    pub const ALL: [&str; 10] = [
        INVALID_OBJECT,
        INVALID_SPEC,
        SECRET_MISSING,
        SECRET_READ,
        SOURCE,
        CLICKHOUSE,
        BUILD,
        APPLY,
        STATUS,
        FINALIZER,
    ];
}

impl Error {
    /// Short kind, the `error` label of the failure metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidObject { .. } => error_kind::INVALID_OBJECT,
            Error::InvalidSpec(_) => error_kind::INVALID_SPEC,
            Error::Dereference(e) if e.is_missing_reference() => error_kind::SECRET_MISSING,
            Error::Dereference(_) => error_kind::SECRET_READ,
            Error::Source(_) => error_kind::SOURCE,
            Error::Schema(_) => error_kind::CLICKHOUSE,
            Error::Build(_) => error_kind::BUILD,
            Error::Apply(_) => error_kind::APPLY,
            Error::Status(_) => error_kind::STATUS,
            Error::Finalizer(_) => error_kind::FINALIZER,
        }
    }

    /// Reason of the Warning Event.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidObject { .. } => "InvalidObject",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Dereference(e) if e.is_missing_reference() => "SecretMissing",
            Error::Dereference(_) => "SecretReadFailed",
            Error::Source(_) => "SourceFailed",
            Error::Schema(_) => "ClickHouseFailed",
            Error::Build(_) => status::BUILD_FAILED,
            Error::Apply(_) => status::APPLY_FAILED,
            Error::Status(_) => "StatusPatchFailed",
            Error::Finalizer(_) => "FinalizerFailed",
        }
    }

    fn from_finalizer(error: finalizer::Error<Error>) -> Self {
        match error {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => {
                Error::Finalizer(e)
            }
            finalizer::Error::UnnamedObject => {
                Error::Build(build::BuildError::MissingMetadata("name"))
            }
            finalizer::Error::InvalidFinalizer => Error::Finalizer(kube::Error::Api(
                kube::core::Status::failure("invalid finalizer name", "Invalid").boxed(),
            )),
        }
    }
}

/// Per-object failure counts driving the exponential backoff.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// The delay before retrying `key` after one more failure: 5s, 10s, 20s ... up to 5 min.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        let factor = 2u32.saturating_pow(count.saturating_sub(1).min(16));
        BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
    }

    /// Forgets the failures of `key` after a success.
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    /// Opens sessions on source databases.
    pub source: Arc<dyn SourceConnector>,
    /// Opens sessions on ClickHouse.
    pub warehouse: Arc<dyn WarehouseConnector>,
    /// Publishes Events.
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Per-object backoff.
    pub backoff: Backoff,
}

cdcstar_runtime::debug_fields!(Context { config });

impl Context {
    /// A context publishing events as `reporter`.
    pub fn new(
        client: Client,
        config: OperatorConfig,
        source: Arc<dyn SourceConnector>,
        warehouse: Arc<dyn WarehouseConnector>,
        metrics: Arc<Metrics>,
        reporter: Reporter,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            source,
            warehouse,
            metrics,
            backoff: Backoff::default(),
        }
    }

    async fn publish(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1000)),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, reference).await {
            tracing::warn!(%error, reason, "failed to publish event");
        }
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

fn backoff_key(meta: &kube::api::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn invalid_object_reference(invalid: &InvalidObject) -> ObjectReference {
    ObjectReference {
        api_version: Some(CdcPipeline::api_version(&()).into_owned()),
        kind: Some(CdcPipeline::kind(&()).into_owned()),
        name: invalid.metadata.name.clone(),
        namespace: invalid.metadata.namespace.clone(),
        uid: invalid.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// Reconciles one pipeline (or reports one that cannot be read).
pub async fn reconcile(
    object: Arc<DeserializeGuard<CdcPipeline>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let key = backoff_key(object.meta());
    let (result, reference) = match &object.0 {
        Ok(pipeline) => {
            let reference = pipeline.object_ref(&());
            let span = tracing::info_span!("reconcile", pipeline = %key);
            let result = reconcile_pipeline(Arc::new(pipeline.clone()), &ctx)
                .instrument(span)
                .await;
            (result, reference)
        }
        Err(invalid) => (
            report_invalid(invalid, &ctx).await,
            invalid_object_reference(invalid),
        ),
    };
    ctx.metrics.reconciled(started.elapsed());
    match &result {
        Ok(_) => ctx.backoff.reset(&key),
        Err(error) => {
            tracing::warn!(pipeline = %key, %error, "reconcile failed");
            ctx.metrics.failed(error.kind());
            ctx.publish(
                &reference,
                EventType::Warning,
                error.reason(),
                error.to_string(),
            )
            .await;
        }
    }
    result
}

/// Requeue delay after a failure, per object, exponential.
pub fn error_policy(
    object: Arc<DeserializeGuard<CdcPipeline>>,
    _error: &Error,
    ctx: Arc<Context>,
) -> Action {
    Action::requeue(ctx.backoff.next_delay(&backoff_key(object.meta())))
}

/// A stored object that does not deserialise: say so in its status (a merge patch that needs
/// nothing from the broken spec), and fail so the Warning Event names the problem.
async fn report_invalid(invalid: &InvalidObject, ctx: &Context) -> Result<Action, Error> {
    let namespace = invalid.metadata.namespace.clone().unwrap_or_default();
    let name = invalid.metadata.name.clone().unwrap_or_default();
    let message = truncate(
        format!("the object cannot be read: {}", invalid.error),
        1000,
    );
    let api: Api<CdcPipeline> = Api::namespaced(ctx.client.clone(), &namespace);
    let now = Timestamp::now();
    let patch = json!({
        "status": {
            "phase": Phase::Failed,
            "observedGeneration": invalid.metadata.generation,
            "conditions": [{
                "type": status::READY,
                "status": "False",
                "reason": "InvalidObject",
                "message": message,
                "lastTransitionTime": now.to_string(),
                "observedGeneration": invalid.metadata.generation,
            }],
        }
    });
    if let Err(error) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(%error, pipeline = %name, "failed to report the invalid object in its status");
    }
    Err(Error::InvalidObject {
        namespace,
        name,
        message: invalid.error.clone(),
    })
}

async fn reconcile_pipeline(pipeline: Arc<CdcPipeline>, ctx: &Context) -> Result<Action, Error> {
    let api: Api<CdcPipeline> = Api::namespaced(ctx.client.clone(), &pipeline.pipeline_namespace());
    finalizer::finalizer(&api, FINALIZER, pipeline, |event| async move {
        match event {
            FinalizerEvent::Apply(pipeline) => apply_pipeline(&pipeline, ctx).await,
            FinalizerEvent::Cleanup(pipeline) => cleanup::cleanup(&pipeline, ctx).await,
        }
    })
    .await
    .map_err(Error::from_finalizer)
}

/// Writes the status unless it is already what the object holds.
async fn write_status(
    ctx: &Context,
    pipeline: &CdcPipeline,
    status: &CdcPipelineStatus,
) -> Result<(), Error> {
    if pipeline.status.as_ref() == Some(status) {
        return Ok(());
    }
    status::patch_status(&ctx.client, pipeline, status)
        .await
        .map_err(Error::Status)
}

/// Writes the status of a pass that stopped early; a failure to write it is logged, so that the
/// error that stopped the pass is the one reported.
async fn report_stopped(ctx: &Context, pipeline: &CdcPipeline, status: &CdcPipelineStatus) {
    if let Err(error) = write_status(ctx, pipeline, status).await {
        tracing::warn!(%error, "failed to report the failure in the status");
    }
}

/// The phases for a live pipeline.
async fn apply_pipeline(pipeline: &CdcPipeline, ctx: &Context) -> Result<Action, Error> {
    let now = Timestamp::now();
    if let Err(errors) = validate::validate(pipeline) {
        let status = status::stopped_status(
            pipeline,
            Phase::Failed,
            "InvalidSpec",
            &truncate(errors.to_string(), 4000),
            now,
        );
        report_stopped(ctx, pipeline, &status).await;
        return Err(Error::InvalidSpec(errors));
    }

    let secrets = match dereference::dereference(&ctx.client, pipeline, Purpose::Reconcile).await {
        Ok(secrets) => secrets,
        Err(error) => {
            if error.is_missing_reference() {
                let status = status::stopped_status(
                    pipeline,
                    Phase::Failed,
                    "SecretMissing",
                    &error.to_string(),
                    now,
                );
                report_stopped(ctx, pipeline, &status).await;
            }
            return Err(error.into());
        }
    };

    let source = source::reconcile_source(ctx.source.as_ref(), &secrets.source_dsn, pipeline).await;
    let schema = schema::reconcile_schema(
        ctx.warehouse.as_ref(),
        secrets.warehouse_credentials.as_ref(),
        pipeline,
    )
    .await;

    // NB: a capture whose slot is invalidated (or was not created) would only crash loop: it is
    // held at zero until the slot is back.
    let capture_held = source
        .as_ref()
        .ok()
        .and_then(|report| report.capture_held(pipeline));
    let name = pipeline.pipeline_name();

    // NB: a pass whose children cannot be written still reports what it saw (publication, schema)
    // and why the workloads are missing, so READY and PHASE are never blank or stale.
    let applied = match build::build(pipeline, &ctx.config, secrets.broker_transport) {
        Ok(mut desired) => {
            if status::obsolete_children_removed(pipeline) {
                desired.obsolete.clear();
            }
            let resync_job = desired.jobs.first().map(|job| job.name_any());
            desired
                .obsolete
                .extend(resync::replaced_job(pipeline, resync_job.as_deref()));
            if capture_held.is_some() {
                desired.hold_capture(&name);
            }
            apply::apply(&ctx.client, &pipeline.pipeline_namespace(), &desired)
                .await
                .map_err(Error::Apply)
        }
        Err(error) => Err(Error::Build(error)),
    };

    let paused_by = pipeline.spec.paused_by();
    let workload = |component: Component, type_: &str, pausable: bool| match &applied {
        Ok(applied) => applied
            .deployments
            .get(&component.child_name(&name))
            .map(|d| status::workload_condition(type_, d, paused_by.filter(|_| pausable)))
            .unwrap_or_else(|| ConditionUpdate::unknown(type_, "NotApplied", "not applied yet")),
        Err(error) => ConditionUpdate::failed(type_, error.reason(), error.to_string()),
    };
    let capture = match (&capture_held, paused_by) {
        (Some(why), None) => {
            ConditionUpdate::failed(status::CAPTURE, status::WAITING_FOR_SLOT, why)
        }
        _ => workload(Component::Capture, status::CAPTURE, true),
    };
    let api_condition = if pipeline.spec.api.enabled {
        workload(Component::Api, status::API, false)
    } else {
        ConditionUpdate::ok(status::API, "Disabled", "spec.api.enabled is false")
    };
    let retained_wal_bytes = source
        .as_ref()
        .ok()
        .and_then(|report| report.observed.slot.as_ref())
        .and_then(|slot| slot.retained_wal_bytes);
    let components = vec![
        source::publication_condition(pipeline, &source),
        status::capture_condition(pipeline, capture, retained_wal_bytes),
        schema::schema_condition(pipeline, &schema),
        workload(Component::Sink, status::SINK, true),
        api_condition,
    ];
    let snapshot = source
        .as_ref()
        .ok()
        .map(|report| report.observed.snapshot.clone());
    let value_adjustments = schema
        .as_ref()
        .ok()
        .map(|report| status::value_adjustments(&report.report.value_adjustments));
    let watermark = schema.as_ref().ok().map(|report| report.report.watermark);
    let verification = schema
        .as_ref()
        .ok()
        .map(|report| status::verification(&report.report.verifications));
    let resync_request = resync_request(pipeline);
    let resync_job = applied
        .as_ref()
        .ok()
        .and_then(|applied| applied.jobs.values().next());
    let handled_request = source
        .as_ref()
        .ok()
        .and_then(|report| report.handled_request.clone());
    let mut status = status::reconciled_status(
        pipeline,
        &status::Observed {
            components,
            retained_wal_bytes,
            snapshot,
            value_adjustments,
            watermark,
            verification,
            handled_request,
        },
        now,
    );
    status.resync = resync::resync_status(resync_request.as_ref(), resync_job);
    if let Some(Err(invalid)) = &resync_request
        && pipeline.status.as_ref().and_then(|s| s.resync.as_ref()) != status.resync.as_ref()
    {
        ctx.publish(
            &pipeline.object_ref(&()),
            EventType::Warning,
            "ResyncInvalid",
            format!("{}: {}", invalid.path, invalid.message),
        )
        .await;
    }
    write_status(ctx, pipeline, &status).await?;

    let reference = pipeline.object_ref(&());
    for (reason, message) in status::warnings_raised(pipeline.status.as_ref(), &status) {
        ctx.publish(&reference, EventType::Warning, &reason, message)
            .await;
    }
    if let Some(handled) = source
        .as_ref()
        .ok()
        .and_then(|r| r.handled_request.as_ref())
    {
        ctx.publish(
            &reference,
            EventType::Normal,
            "SlotRecreateRequest",
            format!(
                "{} {:?}: {}",
                handled.outcome, handled.request, handled.message
            ),
        )
        .await;
    }
    // What each database pass ran, unless it ran nothing or failed.
    for (reason, ran, what) in [
        (
            "SourceUpdated",
            source.as_ref().map_or(0, |report| report.executed.len()),
            "statements on the source database",
        ),
        (
            "SchemaUpdated",
            schema.as_ref().map_or(0, |report| report.executed.len()),
            "DDL statements on clickhouse",
        ),
    ] {
        if ran > 0 {
            ctx.publish(
                &reference,
                EventType::Normal,
                reason,
                format!("ran {ran} {what}"),
            )
            .await;
        }
    }
    let mut failures = [
        source.err().map(Error::Source),
        schema.err().map(Error::Schema),
        applied.err(),
    ]
    .into_iter()
    .flatten();
    match failures.next() {
        // NB: with a freshness objective, `Fresh` is re-evaluated at least that often.
        None => Ok(Action::requeue(pipeline.spec.freshness_objective().map_or(
            ctx.config.resync_interval,
            |objective| {
                let resync = ctx.config.resync_interval;
                objective.min(resync).max(MIN_FRESHNESS_RECHECK.min(resync))
            },
        ))),
        Some(first) => {
            // The first failure is returned, and `reconcile` makes it the Warning Event; every
            // other one of the same pass gets its own here, so none is hidden behind another.
            for other in failures {
                ctx.publish(
                    &reference,
                    EventType::Warning,
                    other.reason(),
                    other.to_string(),
                )
                .await;
            }
            Err(first)
        }
    }
}

/// The pipelines in `store` whose spec refers to the Secret `namespace/name`.
pub fn pipelines_referencing(
    store: &Store<DeserializeGuard<CdcPipeline>>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<DeserializeGuard<CdcPipeline>>> {
    store
        .state()
        .iter()
        .filter_map(|object| object.0.as_ref().ok())
        .filter(|pipeline| {
            pipeline.namespace().as_deref() == Some(namespace)
                && referenced_secrets(pipeline).contains(&name)
        })
        .map(|pipeline| ObjectRef::new(&pipeline.name_any()).within(&pipeline.pipeline_namespace()))
        .collect()
}

/// Names of the Secrets a pipeline refers to.
pub fn referenced_secrets(pipeline: &CdcPipeline) -> Vec<&str> {
    let spec = &pipeline.spec;
    let mut names = vec![spec.source.connection_secret_ref.name.as_str()];
    if let Some(credentials) = &spec.clickhouse.credentials_secret_ref {
        names.push(&credentials.name);
    }
    if let Some(rpcn) = &spec.capture.redpanda_connect {
        names.push(&rpcn.license_secret_ref.name);
    }
    if let Some(auth) = &spec.kafka.auth_secret_ref {
        names.push(&auth.name);
    }
    if let Some(salt) = &spec.source.mask_salt_secret_ref {
        names.push(&salt.name);
    }
    names
}

/// An Api over every namespace, or over one.
fn scoped_api<K>((client, namespace): (Client, Option<String>)) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client, &namespace),
        None => Api::all(client),
    }
}

/// Runs the controller until `shutdown` resolves: watches pipelines (reacting to spec, finalizer
/// and deletion changes, not to its own status writes), the children it owns, and the metadata of
/// Secrets, mapped to the pipelines referring to them.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let scoped =
        |client: &Client| -> (Client, Option<String>) { (client.clone(), namespace.clone()) };
    let pipelines: Api<DeserializeGuard<CdcPipeline>> = scoped_api(scoped(&client));
    let (reader, writer) = reflector::store();
    let pipeline_changes = watcher(pipelines, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            // NB: annotations too: a resync and a slot's recreation are asked for with one.
            predicates::generation
                .combine(predicates::finalizers)
                .combine(predicates::annotations),
            PredicateConfig::default(),
        );
    let secret_store = reader.clone();
    let secrets = watcher(
        scoped_api::<PartialObjectMeta<Secret>>(scoped(&client)),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .touched_objects();
    let owned = || {
        watcher::Config::default()
            .labels(MANAGED_BY_SELECTOR)
            .any_semantic()
    };
    Controller::for_stream(pipeline_changes, reader)
        .owns(scoped_api::<Deployment>(scoped(&client)), owned())
        .owns(scoped_api::<ConfigMap>(scoped(&client)), owned())
        .owns(scoped_api::<Service>(scoped(&client)), owned())
        // NB: a resync Job's end updates `status.resync` at once.
        .owns(scoped_api::<Job>(scoped(&client)), owned())
        .watches_stream(secrets, move |secret: PartialObjectMeta<Secret>| {
            pipelines_referencing(
                &secret_store,
                secret.metadata.namespace.as_deref().unwrap_or_default(),
                secret.metadata.name.as_deref().unwrap_or_default(),
            )
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(pipeline = %object, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile attempt did not complete"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_object_and_resets() {
        let backoff = Backoff::default();
        assert_eq!(backoff.next_delay("ns/a"), Duration::from_secs(5));
        assert_eq!(backoff.next_delay("ns/a"), Duration::from_secs(10));
        assert_eq!(backoff.next_delay("ns/a"), Duration::from_secs(20));
        assert_eq!(backoff.next_delay("ns/b"), Duration::from_secs(5));
        for _ in 0..20 {
            backoff.next_delay("ns/a");
        }
        assert_eq!(backoff.next_delay("ns/a"), BACKOFF_MAX);
        backoff.reset("ns/a");
        assert_eq!(backoff.next_delay("ns/a"), Duration::from_secs(5));
    }
}
