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
        kind: String,
        namespace: String,
        name: String,
        source: kube::Error,
    },
    /// Deleting an obsolete child failed.
    #[error("failed to delete obsolete {kind:?} {namespace}/{name}: {}", Described(.source))]
    Delete {
        kind: ChildKind,
        namespace: String,
        name: String,
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

/// The kinds of child the operator applies: namespaced, and serialisable both ways for server-side
/// apply.
pub trait Child:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
{
}

impl Child for ConfigMap {}
impl Child for Deployment {}
impl Child for Service {}
impl Child for CronJob {}
impl Child for Job {}

/// Server-side apply of one object under the operator's field manager.
pub async fn apply_one<K: Child>(
    client: &Client,
    namespace: &str,
    object: &K,
) -> Result<K, ApplyError> {
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

/// Applies `objects` in order; returns each as the API server answered, by name.
async fn apply_each<K: Child>(
    client: &Client,
    namespace: &str,
    objects: &[K],
) -> Result<BTreeMap<String, K>, ApplyError> {
    let mut applied = BTreeMap::new();
    for object in objects {
        applied.insert(
            object.name_any(),
            apply_one(client, namespace, object).await?,
        );
    }
    Ok(applied)
}

async fn delete_if_present<K: Child>(
    client: &Client,
    namespace: &str,
    kind: ChildKind,
    name: &str,
) -> Result<(), ApplyError> {
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
    apply_each(client, namespace, &desired.config_maps).await?;
    let deployments = apply_each(client, namespace, &desired.deployments).await?;
    apply_each(client, namespace, &desired.services).await?;
    apply_each(client, namespace, &desired.cron_jobs).await?;
    let jobs = apply_each(client, namespace, &desired.jobs).await?;
    for obsolete in &desired.obsolete {
        delete_child(client, namespace, obsolete.kind, &obsolete.name).await?;
    }
    Ok(Applied { deployments, jobs })
}
