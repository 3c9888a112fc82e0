//! Behind the finalizer: what Kubernetes cannot garbage-collect when a pipeline is deleted. The
//! capture Deployment is deleted first (so nothing reconnects to the slot), then the slot's reader
//! is terminated, the slot and the publication dropped, and the ClickHouse tables dropped only when
//! `spec.clickhouse.dropTablesOnDelete` is set. Objects already gone count as done. The remaining
//! children are garbage-collected through their owner references once the finalizer is removed.
//!
//! When cleanup cannot finish (the DSN Secret was deleted first, the database is down), the status
//! says why (`phase: Deleting`, `Ready` False with reason `CleanupBlocked`) and the finalizer stays,
//! retried with backoff: a slot left behind would retain WAL until the source disk fills.

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::pipeline::Phase;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::build::{ChildKind, Component};
use super::dereference::{self, Purpose};
use super::{Context, Error, apply, report_stopped, schema, source, status};

/// Removes the pipeline's footprint outside Kubernetes.
pub async fn cleanup(pipeline: &CdcPipeline, ctx: &Context) -> Result<Action, Error> {
    match remove_footprint(pipeline, ctx).await {
        Ok(note) => {
            ctx.publish(
                &pipeline.object_ref(&()),
                EventType::Normal,
                "CleanedUp",
                note,
            )
            .await;
            Ok(Action::await_change())
        }
        Err(error) => {
            let status = status::stopped_status(
                pipeline,
                Phase::Deleting,
                "CleanupBlocked",
                &format!("cleanup cannot finish, the finalizer stays until it does: {error}"),
                Timestamp::now(),
            );
            report_stopped(ctx, pipeline, &status).await;
            Err(error)
        }
    }
}

async fn remove_footprint(pipeline: &CdcPipeline, ctx: &Context) -> Result<String, Error> {
    let namespace = pipeline.pipeline_namespace();
    apply::delete_child(
        &ctx.client,
        &namespace,
        ChildKind::Deployment,
        &Component::Capture.child_name(&pipeline.pipeline_name()),
    )
    .await?;
    // NB: and whatever else writes: the verifier's runs (a repair or a resync re-emits rows).
    let verifier_runs = std::iter::once((
        ChildKind::CronJob,
        Component::Verify.child_name(&pipeline.pipeline_name()),
    ))
    .chain(
        pipeline
            .status
            .as_ref()
            .and_then(|s| s.resync.as_ref())
            .and_then(|r| r.job.clone())
            .map(|job| (ChildKind::Job, job)),
    );
    for (kind, name) in verifier_runs {
        apply::delete_child(&ctx.client, &namespace, kind, &name).await?;
    }
    let secrets = dereference::dereference(&ctx.client, pipeline, Purpose::Cleanup).await?;
    let mut note = source::cleanup_source(ctx.source.as_ref(), &secrets.source_dsn, pipeline)
        .await?
        .describe(pipeline);
    if pipeline.spec.clickhouse.drop_tables_on_delete {
        let dropped = schema::drop_tables(
            ctx.warehouse.as_ref(),
            secrets.warehouse_credentials.as_ref(),
            pipeline,
        )
        .await?;
        note.push_str(&format!(
            "; dropped {} tables in clickhouse database {} and its rows of the status tables",
            dropped.len(),
            pipeline.clickhouse_database()
        ));
    } else {
        note.push_str("; clickhouse tables kept (dropTablesOnDelete is false)");
    }
    Ok(note)
}
