//! Phase 5: make the cluster hold the desired children. Every object is written with server-side
//! apply under the one field manager `cdcstar-operator`, forced (the operator owns these objects; a
//! hand edit of a field it sets is reverted). ConfigMaps go first so new pods find them; children the
//! spec no longer asks for are deleted (already gone counts as done).

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::build::{ChildKind, DesiredState};
use crate::kube_error::Described;

/// Why a child could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Server-side apply failed.
    #[error("failed to apply {kind} {namespace}/{name}: {}", Described(.source))]
    Apply {
        /// Kind of the child.
        kind: String,
        namespace: String,
        name: String,
        /// The client error.
        source: kube::Error,
    },
    /// Deleting an obsolete child failed.
    #[error("failed to delete obsolete {kind:?} {namespace}/{name}: {}", Described(.source))]
    Delete {
        /// Kind of the child.
        kind: ChildKind,
        namespace: String,
        name: String,
        /// The client error.
        source: kube::Error,
    },
}

/// The Deployments as the API server returned them after the apply (with their current status).
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Deployments by name.
    pub deployments: BTreeMap<String, Deployment>,
    /// Jobs (a resync) by name.
    pub jobs: BTreeMap<String, Job>,
}

/// Server-side apply of one object under the operator's field manager.
pub async fn apply_one<K>(client: &Client, namespace: &str, object: &K) -> Result<K, ApplyError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = object.name_any();
    api.patch(
        &name,
        &PatchParams::apply(crate::FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| ApplyError::Apply {
        kind: K::kind(&()).into_owned(),
        namespace: namespace.to_owned(),
        name,
        source,
    })
}

async fn delete_if_present<K>(
    client: &Client,
    namespace: &str,
    kind: ChildKind,
    name: &str,
) -> Result<(), ApplyError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(source) => Err(ApplyError::Delete {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        }),
    }
}

/// Deletes a child by kind and name; absent counts as done.
pub async fn delete_child(
    client: &Client,
    namespace: &str,
    kind: ChildKind,
    name: &str,
) -> Result<(), ApplyError> {
    match kind {
        ChildKind::ConfigMap => delete_if_present::<ConfigMap>(client, namespace, kind, name).await,
        ChildKind::Deployment => {
            delete_if_present::<Deployment>(client, namespace, kind, name).await
        }
        ChildKind::Service => delete_if_present::<Service>(client, namespace, kind, name).await,
        ChildKind::CronJob => delete_if_present::<CronJob>(client, namespace, kind, name).await,
        ChildKind::Job => delete_if_present::<Job>(client, namespace, kind, name).await,
    }
}

/// Applies every desired child, then deletes the obsolete ones.
pub async fn apply(
    client: &Client,
    namespace: &str,
    desired: &DesiredState,
) -> Result<Applied, ApplyError> {
    let mut applied = Applied::default();
    for config_map in &desired.config_maps {
        apply_one(client, namespace, config_map).await?;
    }
    for deployment in &desired.deployments {
        let result = apply_one(client, namespace, deployment).await?;
        applied.deployments.insert(deployment.name_any(), result);
    }
    for service in &desired.services {
        apply_one(client, namespace, service).await?;
    }
    for cron_job in &desired.cron_jobs {
        apply_one(client, namespace, cron_job).await?;
    }
    for job in &desired.jobs {
        let result = apply_one(client, namespace, job).await?;
        applied.jobs.insert(job.name_any(), result);
    }
    for obsolete in &desired.obsolete {
        delete_child(client, namespace, obsolete.kind, &obsolete.name).await?;
    }
    Ok(applied)
}
