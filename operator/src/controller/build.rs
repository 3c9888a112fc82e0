//! Phase 4 (pure): the Kubernetes objects a pipeline needs, built from the spec and the operator's
//! defaults, with no client: a ConfigMap holding the pipeline (mounted into capture and sink), the
//! Redpanda Connect configuration when that engine is used, the capture, sink and (when enabled) api
//! Deployments, and the api's Service. It also names the children that must go (the api when it was
//! disabled, the Redpanda Connect ConfigMap after a switch to the native engine).
//!
//! Secrets never enter these objects by value: containers read them through `secretKeyRef` env vars
//! or a Secret volume. Every container runs as non-root with a read-only root filesystem, no
//! privilege escalation, no capabilities and the runtime's default seccomp profile; every object
//! carries the pipeline as controlling owner, so deleting the pipeline garbage-collects them.
//!
//! What each container receives (the contract with the component binaries):
//!
//! | component | command | env |
//! | --- | --- | --- |
//! | native capture | `cdcstar-capture --pipeline /etc/cdcstar/pipeline.yaml` | `DATABASE_URL`, `METRICS_PORT`, `CAPTURE_MASK_SALT` (with `spec.source.maskSaltSecretRef`), `KAFKA_AUTH_DIR`¹ |
//! | Redpanda Connect | image entrypoint `run /etc/cdcstar/connect/connect.yaml` | `POSTGRES_DSN`, `REDPANDA_LICENSE`, `KAFKA_SASL_*`³, `KAFKA_CA_CRT`³ |
//! | sink | `cdcstar-sink --pipeline /etc/cdcstar/pipeline.yaml` | `CLICKHOUSE_USER`², `CLICKHOUSE_PASSWORD`², `SINK_METRICS_ADDR`, `SINK_GROUP_INSTANCE_ID` (the pod name), `SINK_LOOKUP_RECHECK=false` with one replica (then replaced with `Recreate`), `KAFKA_AUTH_DIR`¹ |
//! | api | `cdcstar-api serve` | `DATABASE_URL`, `PORT`, `METRICS_PORT`, `AUTO_INIT_DB`, `CLICKHOUSE_URL`, `CLICKHOUSE_DATABASE`, `CLICKHOUSE_USER`², `CLICKHOUSE_PASSWORD`² |
//!
//! ¹ when `spec.kafka.authSecretRef` is set; ² when `spec.clickhouse.credentialsSecretRef` is set;
//! ³ optional `secretKeyRef`s to the keys of `spec.kafka.authSecretRef`, when it is set (the
//! configuration gives each a default, see `cdcstar_crds::redpanda_connect`).
//!
//! Over 400 lines: every object the operator applies (ConfigMaps, three Deployments, Service, their
//! env and volumes) from one context, so names, labels and settings cannot drift apart.

use std::collections::BTreeMap;

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::pipeline::VerifySpec;
use cdcstar_crds::pipeline::{CaptureEngine, SecretKeyRef, WorkloadSpec};
use cdcstar_crds::redpanda_connect::{self, BrokerTransport, SecretSource};
use cdcstar_crds::verification::{ResyncRequest, resync_request};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use crate::config::OperatorConfig;

/// Directory where the pipeline ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/cdcstar";
/// File name of the pipeline inside the ConfigMap and the mount.
pub const PIPELINE_FILE: &str = "pipeline.yaml";
/// Directory where the Redpanda Connect ConfigMap is mounted.
pub const CONNECT_DIR: &str = "/etc/cdcstar/connect";
/// File name of the Redpanda Connect configuration.
pub const CONNECT_FILE: &str = "connect.yaml";
/// Directory where the Kafka auth Secret is mounted (one file per key).
pub const KAFKA_AUTH_DIR: &str = "/etc/cdcstar/kafka-auth";
/// Port of `/health`, `/ready` and `/metrics` of the capture and the sink.
pub const COMPONENT_HTTP_PORT: i32 = 9090;
/// Port of the api.
pub const API_PORT: i32 = 3002;
/// Port of the api's `/metrics`.
pub const API_METRICS_PORT: i32 = 9102;
/// Port of Redpanda Connect's HTTP server (`/ping`, `/ready`, `/metrics`).
pub const CONNECT_HTTP_PORT: i32 = 4195;
/// User and group every container runs as (the distroless `nonroot` user).
pub const RUN_AS_USER: i64 = 65532;
/// Annotation on pod templates holding a hash of the configuration they mount, so pods roll when it
/// changes.
pub const CONFIG_HASH_ANNOTATION: &str = "cdcstar.dev/config-hash";

/// A workload of a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// Reads changes from Postgres and publishes CDC events.
    Capture,
    /// Maintains the star schema from the events.
    Sink,
    /// The demo OLTP REST service.
    Api,
    /// The scheduled verification (a CronJob running `cdcstar-sink verify`).
    Verify,
    /// A requested resync (a Job running `cdcstar-sink verify --resync`).
    Resync,
}

impl Component {
    /// Every component.
    pub const ALL: [Component; 5] = [
        Component::Capture,
        Component::Sink,
        Component::Api,
        Component::Verify,
        Component::Resync,
    ];

    /// `capture`, `sink`, `api`, `verify` or `resync`.
    pub fn suffix(self) -> &'static str {
        match self {
            Component::Capture => "capture",
            Component::Sink => "sink",
            Component::Api => "api",
            Component::Verify => "verify",
            Component::Resync => "resync",
        }
    }

    /// Name of the component's Deployment (and Service) for pipeline `pipeline`.
    pub fn child_name(self, pipeline: &str) -> String {
        format!("{pipeline}-{}", self.suffix())
    }
}

/// Name of the ConfigMap holding the pipeline.
pub fn pipeline_config_map_name(pipeline: &str) -> String {
    format!("{pipeline}-pipeline")
}

/// Name of the ConfigMap holding the Redpanda Connect configuration.
pub fn connect_config_map_name(pipeline: &str) -> String {
    format!("{pipeline}-connect")
}

/// Kind of a child object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChildKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Deployment.
    Deployment,
    /// A Service.
    Service,
    /// A CronJob.
    CronJob,
    /// A Job.
    Job,
}

/// A child the pipeline no longer needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObsoleteChild {
    pub kind: ChildKind,
    /// Its name in the pipeline's namespace.
    pub name: String,
}

/// Everything the pipeline needs in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    /// ConfigMaps, applied first so pods find them.
    pub config_maps: Vec<ConfigMap>,
    /// Deployments: capture, sink, then api when enabled.
    pub deployments: Vec<Deployment>,
    /// Services: the api's when enabled.
    pub services: Vec<Service>,
    /// The scheduled verification, with `spec.verify`.
    pub cron_jobs: Vec<CronJob>,
    /// The requested resync, while the `cdcstar.dev/resync` annotation asks for one.
    pub jobs: Vec<Job>,
    /// Children to delete because the spec no longer asks for them.
    pub obsolete: Vec<ObsoleteChild>,
}

impl DesiredState {
    /// Sets the capture Deployment of pipeline `name` to zero replicas: its slot keeps it from
    /// running (invalidated, or not created), and a capture that cannot start would crash loop.
    pub fn hold_capture(&mut self, name: &str) {
        let capture = Component::Capture.child_name(name);
        for deployment in &mut self.deployments {
            if deployment.metadata.name.as_deref() == Some(capture.as_str()) {
                deployment.spec.replicas = Some(0);
            }
        }
    }
}

/// Why the desired objects could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The pipeline lacks a metadata field every child needs.
    #[error("cdcpipeline has no metadata.{0}")]
    MissingMetadata(&'static str),
    /// `redpandaConnect` engine without its settings.
    #[error("spec.capture.redpandaConnect is required when spec.capture.engine is redpandaConnect")]
    MissingRedpandaConnect,
    /// The pipeline could not be serialised.
    #[error("failed to serialise {what}: {source}")]
    Serialize {
        /// What was serialised.
        what: &'static str,
        source: serde_yaml::Error,
    },
}

/// The objects `pipeline` needs; `transport` is what the Kafka auth Secret says about TLS (only the
/// Redpanda Connect configuration needs it: the other components read the Secret themselves).
pub fn build(
    pipeline: &CdcPipeline,
    config: &OperatorConfig,
    transport: BrokerTransport,
) -> Result<DesiredState, BuildError> {
    let ctx = BuildContext::new(pipeline)?;
    let spec = &pipeline.spec;
    let pipeline_yaml = mounted_pipeline_yaml(pipeline)?;
    let mut desired = DesiredState::default();
    desired.config_maps.push(ctx.config_map(
        &pipeline_config_map_name(&ctx.name),
        PIPELINE_FILE,
        &pipeline_yaml,
    ));

    match spec.capture.engine {
        CaptureEngine::Native => {
            desired
                .deployments
                .push(ctx.native_capture(config, &pipeline_yaml));
            desired.obsolete.push(ObsoleteChild {
                kind: ChildKind::ConfigMap,
                name: connect_config_map_name(&ctx.name),
            });
        }
        CaptureEngine::RedpandaConnect => {
            let connect_yaml = redpanda_connect::config_yaml(pipeline, transport);
            desired.config_maps.push(ctx.config_map(
                &connect_config_map_name(&ctx.name),
                CONNECT_FILE,
                &connect_yaml,
            ));
            desired
                .deployments
                .push(ctx.redpanda_connect_capture(&connect_yaml)?);
        }
    }
    desired.deployments.push(ctx.sink(config, &pipeline_yaml));
    match &spec.verify {
        Some(verify) => desired.cron_jobs.push(ctx.verify_cron_job(config, verify)),
        None => desired.obsolete.push(ObsoleteChild {
            kind: ChildKind::CronJob,
            name: Component::Verify.child_name(&ctx.name),
        }),
    }
    if let Some(Ok(request)) = resync_request(pipeline) {
        desired.jobs.push(ctx.resync_job(config, &request));
    }
    let api_name = Component::Api.child_name(&ctx.name);
    if spec.api.enabled {
        desired.deployments.push(ctx.api(config));
        desired.services.push(ctx.api_service());
    } else {
        desired.obsolete.push(ObsoleteChild {
            kind: ChildKind::Deployment,
            name: api_name.clone(),
        });
        desired.obsolete.push(ObsoleteChild {
            kind: ChildKind::Service,
            name: api_name,
        });
    }
    Ok(desired)
}

/// The pipeline as its components read it: apiVersion, kind, name, namespace and spec (no status,
/// no server-managed metadata, so the file only changes when the spec does).
pub fn mounted_pipeline_yaml(pipeline: &CdcPipeline) -> Result<String, BuildError> {
    let mut mounted = CdcPipeline::new(&pipeline.pipeline_name(), pipeline.spec.clone());
    mounted.metadata.namespace = Some(pipeline.pipeline_namespace());
    serde_yaml::to_string(&mounted).map_err(|source| BuildError::Serialize {
        what: "the pipeline",
        source,
    })
}

/// FNV-1a, 64 bits, hex: a stable content hash for the config annotation (std's hasher is not
/// guaranteed stable across releases, which would roll every pod after an operator upgrade).
pub fn content_hash(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

struct BuildContext<'a> {
    pipeline: &'a CdcPipeline,
    name: String,
    namespace: String,
    owner: OwnerReference,
}

/// What differs between the Deployments.
struct Workload {
    component: Component,
    image: String,
    command: Option<Vec<String>>,
    args: Vec<String>,
    env: Vec<EnvVar>,
    replicas: i32,
    port: i32,
    liveness_path: &'static str,
    readiness_path: &'static str,
    resources: Option<ResourceRequirements>,
    volumes: Vec<(Volume, VolumeMount)>,
    config_hash: Option<String>,
    /// Only one pod at a time, replaced with `Recreate` (a replication slot has one reader; a single
    /// sink runs without the lookup re-check).
    single_instance: bool,
}

impl Workload {
    /// `binary`, a cdcstar binary, run on the mounted pipeline file (its pods replaced when the file
    /// changes) and probed on the `cdcstar_runtime::probes` port it serves on
    /// [`COMPONENT_HTTP_PORT`]; one replica, alone, no env or volumes yet.
    fn pipeline_binary(
        component: Component,
        binary: &str,
        image: &str,
        resources: &ResourceRequirements,
        pipeline_yaml: &str,
    ) -> Self {
        Workload {
            component,
            image: image.to_owned(),
            command: Some(vec![binary.to_owned()]),
            args: pipeline_args(),
            env: Vec::new(),
            replicas: 1,
            port: COMPONENT_HTTP_PORT,
            liveness_path: "/health",
            readiness_path: "/ready",
            resources: Some(resources.clone()),
            volumes: Vec::new(),
            config_hash: Some(content_hash(&[pipeline_yaml])),
            single_instance: true,
        }
    }
}

fn env_value(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn env_from_secret(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: optional.then_some(true),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The pod's own name, as the Downward API gives it.
fn env_pod_name(name: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn env_from_key_ref(name: &str, reference: &SecretKeyRef) -> EnvVar {
    env_from_secret(name, &reference.name, &reference.key, false)
}

/// Volume `name` holding ConfigMap `config_map`.
fn config_map_volume(name: &str, config_map: String) -> Volume {
    Volume {
        name: name.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map,
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// `volume` with its read-only mount at `path`.
fn mounted_read_only(volume: Volume, path: &str) -> (Volume, VolumeMount) {
    let mount = VolumeMount {
        name: volume.name.clone(),
        mount_path: path.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    (volume, mount)
}

fn http_probe(path: &str, initial_delay: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        timeout_seconds: Some(3),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// The security context of every container.
pub fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

fn replicas(workload: &WorkloadSpec, suspended: bool) -> i32 {
    if suspended {
        0
    } else {
        workload.replicas.unwrap_or(1)
    }
}

impl<'a> BuildContext<'a> {
    fn new(pipeline: &'a CdcPipeline) -> Result<Self, BuildError> {
        let name = pipeline
            .metadata
            .name
            .clone()
            .ok_or(BuildError::MissingMetadata("name"))?;
        let namespace = pipeline
            .metadata
            .namespace
            .clone()
            .ok_or(BuildError::MissingMetadata("namespace"))?;
        let mut owner = pipeline
            .controller_owner_ref(&())
            .ok_or(BuildError::MissingMetadata("uid"))?;
        // Foreground deletion of the pipeline waits for its children.
        owner.block_owner_deletion = Some(true);
        Ok(BuildContext {
            pipeline,
            name,
            namespace,
            owner,
        })
    }

    fn labels(&self, component: Option<Component>) -> BTreeMap<String, String> {
        let mut labels = self.selector(component);
        labels.insert("app.kubernetes.io/part-of".into(), "cdcstar".into());
        labels.insert(
            "app.kubernetes.io/managed-by".into(),
            crate::FIELD_MANAGER.into(),
        );
        if let Some(component) = component {
            labels.insert(
                "app.kubernetes.io/component".into(),
                component.suffix().into(),
            );
        }
        labels
    }

    fn selector(&self, component: Option<Component>) -> BTreeMap<String, String> {
        let app = match component {
            Some(component) => format!("cdcstar-{}", component.suffix()),
            None => "cdcstar".to_owned(),
        };
        BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), app),
            ("app.kubernetes.io/instance".to_owned(), self.name.clone()),
        ])
    }

    fn metadata(&self, name: String, component: Option<Component>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component)),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    fn config_map(&self, name: &str, file: &str, contents: &str) -> ConfigMap {
        ConfigMap {
            metadata: self.metadata(name.to_owned(), None),
            data: Some(BTreeMap::from([(file.to_owned(), contents.to_owned())])),
            ..ConfigMap::default()
        }
    }

    /// The volumes of a workload that reads the pipeline file and, when it talks to the `broker`
    /// and the spec names a Kafka auth Secret, that Secret (then `KAFKA_AUTH_DIR` joins `env`).
    fn pipeline_volumes(&self, broker: bool, env: &mut Vec<EnvVar>) -> Vec<(Volume, VolumeMount)> {
        let mut volumes = vec![mounted_read_only(
            config_map_volume("pipeline", pipeline_config_map_name(&self.name)),
            CONFIG_DIR,
        )];
        if broker && let Some(auth) = &self.pipeline.spec.kafka.auth_secret_ref {
            env.push(env_value("KAFKA_AUTH_DIR", KAFKA_AUTH_DIR));
            let secret = Volume {
                name: "kafka-auth".to_owned(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(auth.name.clone()),
                    default_mode: Some(0o440),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            };
            volumes.push(mounted_read_only(secret, KAFKA_AUTH_DIR));
        }
        volumes
    }

    fn native_capture(&self, config: &OperatorConfig, pipeline_yaml: &str) -> Deployment {
        let spec = &self.pipeline.spec;
        let mut env = vec![
            env_from_key_ref("DATABASE_URL", &spec.source.connection_secret_ref),
            env_value("METRICS_PORT", COMPONENT_HTTP_PORT.to_string()),
        ];
        if let Some(salt) = &spec.source.mask_salt_secret_ref {
            // NB: the salt of `mask: hash` only ever travels as a Secret reference.
            env.push(env_from_key_ref("CAPTURE_MASK_SALT", salt));
        }
        let volumes = self.pipeline_volumes(true, &mut env);
        let native = &spec.capture.native;
        self.deployment(Workload {
            env,
            volumes,
            replicas: if spec.paused() { 0 } else { 1 },
            ..Workload::pipeline_binary(
                Component::Capture,
                "cdcstar-capture",
                native.image.as_ref().unwrap_or(&config.images.capture),
                native
                    .resources
                    .as_ref()
                    .unwrap_or(&config.resources.capture),
                pipeline_yaml,
            )
        })
    }

    fn redpanda_connect_capture(&self, connect_yaml: &str) -> Result<Deployment, BuildError> {
        let spec = &self.pipeline.spec;
        let rpcn = spec
            .capture
            .redpanda_connect
            .as_ref()
            .ok_or(BuildError::MissingRedpandaConnect)?;
        let mut env = vec![
            env_from_key_ref(
                redpanda_connect::DSN_ENV.name,
                &spec.source.connection_secret_ref,
            ),
            env_from_key_ref(redpanda_connect::LICENSE_ENV.name, &rpcn.license_secret_ref),
        ];
        if let Some(auth) = &spec.kafka.auth_secret_ref {
            for var in redpanda_connect::KAFKA_AUTH_ENV {
                if let SecretSource::KafkaAuth(key) = var.source {
                    env.push(env_from_secret(var.name, &auth.name, key, true));
                }
            }
        }
        let volumes = vec![mounted_read_only(
            config_map_volume("connect", connect_config_map_name(&self.name)),
            CONNECT_DIR,
        )];
        Ok(self.deployment(Workload {
            component: Component::Capture,
            image: rpcn.image.clone(),
            command: None,
            args: vec!["run".to_owned(), format!("{CONNECT_DIR}/{CONNECT_FILE}")],
            env,
            replicas: if spec.paused() { 0 } else { 1 },
            port: CONNECT_HTTP_PORT,
            liveness_path: "/ping",
            readiness_path: "/ready",
            resources: rpcn.resources.clone(),
            volumes,
            config_hash: Some(content_hash(&[connect_yaml])),
            single_instance: true,
        }))
    }

    fn sink(&self, config: &OperatorConfig, pipeline_yaml: &str) -> Deployment {
        let spec = &self.pipeline.spec;
        let mut env = vec![
            env_value(
                "SINK_METRICS_ADDR",
                format!("0.0.0.0:{COMPONENT_HTTP_PORT}"),
            ),
            // NB: static membership: a container restarted in the same pod takes its partitions back
            // at once instead of after the session timeout.
            env_pod_name("SINK_GROUP_INSTANCE_ID"),
        ];
        // One replica, replaced by stopping it first (Recreate), has no other replica to race with:
        // the lookup re-check would only cost statements (docs/sink.md, "Several replicas").
        let single_instance = spec.sink.replicas.unwrap_or(1) == 1;
        if single_instance {
            env.push(env_value("SINK_LOOKUP_RECHECK", "false"));
        }
        env.extend(self.clickhouse_credentials_env());
        let volumes = self.pipeline_volumes(true, &mut env);
        self.deployment(Workload {
            env,
            volumes,
            replicas: replicas(&spec.sink, spec.paused()),
            single_instance,
            ..Workload::pipeline_binary(
                Component::Sink,
                "cdcstar-sink",
                spec.sink.image.as_ref().unwrap_or(&config.images.sink),
                spec.sink
                    .resources
                    .as_ref()
                    .unwrap_or(&config.resources.sink),
                pipeline_yaml,
            )
        })
    }

    /// `CLICKHOUSE_USER` and `CLICKHOUSE_PASSWORD` from `spec.clickhouse.credentialsSecretRef`,
    /// when it is set (read by the sink and by the api's star-schema view).
    fn clickhouse_credentials_env(&self) -> Vec<EnvVar> {
        let Some(credentials) = &self.pipeline.spec.clickhouse.credentials_secret_ref else {
            return Vec::new();
        };
        vec![
            env_from_secret(
                "CLICKHOUSE_USER",
                &credentials.name,
                &credentials.username_key,
                false,
            ),
            env_from_secret(
                "CLICKHOUSE_PASSWORD",
                &credentials.name,
                &credentials.password_key,
                false,
            ),
        ]
    }

    fn api(&self, config: &OperatorConfig) -> Deployment {
        let spec = &self.pipeline.spec;
        let workload = &spec.api.workload;
        let mut env = vec![
            env_from_key_ref("DATABASE_URL", &spec.source.connection_secret_ref),
            env_value("PORT", API_PORT.to_string()),
            env_value("METRICS_PORT", API_METRICS_PORT.to_string()),
            env_value("AUTO_INIT_DB", "true"),
            // NB: the test client page's read-only view of the star schema (`/api/star/{table}`).
            env_value("CLICKHOUSE_URL", spec.clickhouse.url.clone()),
            env_value("CLICKHOUSE_DATABASE", spec.clickhouse.database.clone()),
        ];
        env.extend(self.clickhouse_credentials_env());
        self.deployment(Workload {
            component: Component::Api,
            image: workload
                .image
                .clone()
                .unwrap_or_else(|| config.images.api.clone()),
            command: Some(vec!["cdcstar-api".to_owned()]),
            args: vec!["serve".to_owned()],
            env,
            // NB: `state: paused` pauses the pipeline, not the application writing to the source.
            replicas: replicas(workload, false),
            port: API_PORT,
            liveness_path: "/health",
            readiness_path: "/ready",
            resources: workload
                .resources
                .clone()
                .or_else(|| Some(config.resources.api.clone())),
            volumes: Vec::new(),
            config_hash: None,
            single_instance: false,
        })
    }

    fn api_service(&self) -> Service {
        let name = Component::Api.child_name(&self.name);
        Service {
            metadata: self.metadata(name, Some(Component::Api)),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".to_owned()),
                selector: Some(self.selector(Some(Component::Api))),
                ports: Some(vec![ServicePort {
                    name: Some("http".to_owned()),
                    port: API_PORT,
                    target_port: Some(IntOrString::String("http".to_owned())),
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn deployment(&self, workload: Workload) -> Deployment {
        let name = workload.component.child_name(&self.name);
        let container = Container {
            ports: Some(vec![ContainerPort {
                name: Some("http".to_owned()),
                container_port: workload.port,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            }]),
            liveness_probe: Some(http_probe(workload.liveness_path, 10)),
            readiness_probe: Some(http_probe(workload.readiness_path, 2)),
            ..hardened_container(
                workload.component,
                workload.image,
                workload.command,
                workload.args,
                workload.env,
                workload.resources,
            )
        };
        let annotations = workload
            .config_hash
            .map(|hash| BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_owned(), hash)]));
        Deployment {
            metadata: self.metadata(name, Some(workload.component)),
            spec: DeploymentSpec {
                replicas: Some(workload.replicas),
                selector: LabelSelector {
                    match_labels: Some(self.selector(Some(workload.component))),
                    ..LabelSelector::default()
                },
                strategy: workload.single_instance.then(|| DeploymentStrategy {
                    type_: Some("Recreate".to_owned()),
                    ..DeploymentStrategy::default()
                }),
                template: self.pod_template(
                    workload.component,
                    container,
                    workload.volumes,
                    annotations,
                    None,
                ),
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        }
    }

    /// A pod of `component` running `container` hardened, with `/tmp` and `volumes` mounted.
    fn pod_template(
        &self,
        component: Component,
        mut container: Container,
        volumes: Vec<(Volume, VolumeMount)>,
        annotations: Option<BTreeMap<String, String>>,
        restart_policy: Option<&str>,
    ) -> PodTemplateSpec {
        let mut pod_volumes = vec![Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        }];
        let mut mounts = vec![VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        }];
        for (volume, mount) in volumes {
            pod_volumes.push(volume);
            mounts.push(mount);
        }
        container.volume_mounts = Some(mounts);
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(self.labels(Some(component))),
                annotations,
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                automount_service_account_token: Some(false),
                enable_service_links: Some(false),
                restart_policy: restart_policy.map(str::to_owned),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(RUN_AS_USER),
                    run_as_group: Some(RUN_AS_USER),
                    fs_group: Some(RUN_AS_USER),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".to_owned(),
                        ..SeccompProfile::default()
                    }),
                    ..PodSecurityContext::default()
                }),
                containers: vec![container],
                volumes: Some(pod_volumes),
                ..PodSpec::default()
            }),
        }
    }

    /// The pod of a `cdcstar-sink verify` run (`component` Verify or Resync) with `flags` after the
    /// pipeline; `broker`: it produces to the topics (`--repair`, `--resync`).
    fn verifier_pod(
        &self,
        config: &OperatorConfig,
        component: Component,
        flags: Vec<String>,
        broker: bool,
        resources: Option<ResourceRequirements>,
    ) -> PodTemplateSpec {
        let spec = &self.pipeline.spec;
        let mut env = vec![env_from_key_ref(
            "DATABASE_URL",
            &spec.source.connection_secret_ref,
        )];
        if let Some(salt) = &spec.source.mask_salt_secret_ref {
            // NB: the verifier reads, compares and re-emits masked columns as the capture does.
            env.push(env_from_key_ref("CAPTURE_MASK_SALT", salt));
        }
        env.extend(self.clickhouse_credentials_env());
        let volumes = self.pipeline_volumes(broker, &mut env);
        let mut args = vec!["verify".to_owned()];
        args.extend(pipeline_args());
        args.extend(flags);
        let container = hardened_container(
            component,
            spec.sink
                .image
                .clone()
                .unwrap_or_else(|| config.images.sink.clone()),
            Some(vec!["cdcstar-sink".to_owned()]),
            args,
            env,
            resources.or_else(|| Some(config.resources.verify.clone())),
        );
        self.pod_template(component, container, volumes, None, Some("Never"))
    }

    /// `spec.verify`: a CronJob running the verifier; one run at a time, none while the pipeline is
    /// suspended (its watermark would not move), a run with mismatches a failed Job not retried.
    fn verify_cron_job(&self, config: &OperatorConfig, verify: &VerifySpec) -> CronJob {
        let mut flags = Vec::new();
        if verify.repair {
            flags.push("--repair".to_owned());
        }
        if let Some(rows) = verify.chunk_rows {
            flags.extend(["--chunk-rows".to_owned(), rows.to_string()]);
        }
        let pod = self.verifier_pod(
            config,
            Component::Verify,
            flags,
            verify.repair,
            verify.resources.clone(),
        );
        CronJob {
            metadata: self.metadata(
                Component::Verify.child_name(&self.name),
                Some(Component::Verify),
            ),
            spec: CronJobSpec {
                schedule: verify.schedule.clone(),
                suspend: Some(self.pipeline.spec.paused()),
                concurrency_policy: Some("Forbid".to_owned()),
                successful_jobs_history_limit: Some(3),
                failed_jobs_history_limit: Some(3),
                job_template: JobTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(self.labels(Some(Component::Verify))),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(JobSpec {
                        // NB: exit 1 means mismatches found; the next scheduled run tries again.
                        backoff_limit: Some(0),
                        template: pod,
                        ..JobSpec::default()
                    }),
                },
                ..CronJobSpec::default()
            },
            ..CronJob::default()
        }
    }

    /// The Job of a resync request: `cdcstar-sink verify --resync` over the requested tables,
    /// named after the request so that each value runs once (a Job's template cannot change).
    fn resync_job(&self, config: &OperatorConfig, request: &ResyncRequest) -> Job {
        let mut flags = vec!["--resync".to_owned()];
        for table in &request.tables {
            flags.extend(["--table".to_owned(), table.clone()]);
        }
        let pod = self.verifier_pod(
            config,
            Component::Resync,
            flags,
            true,
            self.pipeline
                .spec
                .verify
                .as_ref()
                .and_then(|v| v.resources.clone()),
        );
        let mut metadata = self.metadata(
            resync_job_name(&self.name, &request.value),
            Some(Component::Resync),
        );
        metadata.annotations = Some(BTreeMap::from([(
            RESYNC_REQUEST_ANNOTATION.to_owned(),
            request.value.clone(),
        )]));
        Job {
            metadata,
            spec: Some(JobSpec {
                // NB: a resync is idempotent (every row re-emitted at a newer position): a failed
                // attempt is simply run again.
                backoff_limit: Some(2),
                template: pod,
                ..JobSpec::default()
            }),
            ..Job::default()
        }
    }
}

/// On a resync Job: the request (the annotation's value) it runs.
pub const RESYNC_REQUEST_ANNOTATION: &str = "cdcstar.dev/resync-request";

/// The Job name of resync request `value` of pipeline `pipeline`: `<pipeline>-resync-<hash>`, the
/// pipeline's name shortened so the whole fits a label value.
pub fn resync_job_name(pipeline: &str, value: &str) -> String {
    let hash = content_hash(&[pipeline, value]);
    let suffix = format!("-{}-{}", Component::Resync.suffix(), &hash[..8]);
    let keep = pipeline.len().min(63 - suffix.len());
    format!("{}{suffix}", pipeline[..keep].trim_end_matches('-'))
}

/// A container hardened like every other (see [`restricted_security_context`]).
fn hardened_container(
    component: Component,
    image: String,
    command: Option<Vec<String>>,
    args: Vec<String>,
    env: Vec<EnvVar>,
    resources: Option<ResourceRequirements>,
) -> Container {
    Container {
        name: component.suffix().to_owned(),
        image: Some(image),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command,
        args: Some(args),
        env: Some(env),
        resources,
        security_context: Some(restricted_security_context()),
        ..Container::default()
    }
}

fn pipeline_args() -> Vec<String> {
    vec![
        "--pipeline".to_owned(),
        format!("{CONFIG_DIR}/{PIPELINE_FILE}"),
    ]
}
