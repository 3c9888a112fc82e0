//! The API calls each scenario expects, as data: the mock tests run them, and `api_calls.rs` takes
//! their union to check `operator/tests/api_calls.txt` (which the chart's RBAC check reads).
//!
//! Over 400 lines: the canned API exchanges of every reconcile scenario, shared by the mock-API
//! tests.

use std::collections::BTreeSet;

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::pipeline::FINALIZER;
use serde_json::{Value, json};

use super::apiserver::{ApiCall, Call, Reply, assert_json_include};
use super::fixtures::{PipelineFixture, UID, dsn_secret, to_json, with_shipment_and_phone};

/// The pipeline.
pub const PIPELINE: &str = "/apis/cdcstar.dev/v1alpha1/namespaces/default/cdcpipelines/shop";
/// Its status subresource.
pub const PIPELINE_STATUS: &str =
    "/apis/cdcstar.dev/v1alpha1/namespaces/default/cdcpipelines/shop/status";
/// The DSN Secret.
pub const DSN_SECRET: &str = "/api/v1/namespaces/default/secrets/shop-postgres";
/// The pipeline ConfigMap.
pub const PIPELINE_CONFIG_MAP: &str = "/api/v1/namespaces/default/configmaps/shop-pipeline";
/// The Redpanda Connect ConfigMap.
pub const CONNECT_CONFIG_MAP: &str = "/api/v1/namespaces/default/configmaps/shop-connect";
/// The scheduled verification's CronJob.
pub const VERIFY_CRON_JOB: &str = "/apis/batch/v1/namespaces/default/cronjobs/shop-verify";
/// Jobs.
pub const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";
/// The api Service.
pub const API_SERVICE: &str = "/api/v1/namespaces/default/services/shop-api";
/// Events.
pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
/// The leader Lease of the tests.
pub const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases/cdcstar-leader";
/// Leases (create).
pub const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases";

/// A Deployment of the pipeline.
pub fn deployment(component: &str) -> String {
    format!("/apis/apps/v1/namespaces/default/deployments/shop-{component}")
}

/// What the API server adds to an applied Deployment whose pods are all up.
pub fn deployment_ready(replicas: i32) -> Value {
    json!({
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "updatedReplicas": replicas,
        }
    })
}

/// Every container of a Deployment body is hardened.
pub fn assert_hardened(body: &Value) {
    let pod = &body["spec"]["template"]["spec"];
    assert_json_include(
        pod,
        &json!({
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        }),
        "pod",
    );
    for container in pod["containers"].as_array().expect("containers") {
        assert_json_include(
            container,
            &json!({
                "securityContext": {
                    "runAsNonRoot": true,
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            }),
            "container",
        );
        assert!(container["livenessProbe"]["httpGet"]["path"].is_string());
        assert!(container["readinessProbe"]["httpGet"]["path"].is_string());
    }
}

fn owned_by_pipeline(body: &Value) {
    assert_json_include(
        &body["metadata"]["ownerReferences"],
        &json!([{
            "apiVersion": "cdcstar.dev/v1alpha1",
            "kind": "CdcPipeline",
            "name": "shop",
            "uid": UID,
            "controller": true,
            "blockOwnerDeletion": true,
        }]),
        "ownerReferences",
    );
}

/// The apply of `component`'s Deployment: owned by the pipeline, hardened, its spec including
/// `spec`, and then checked by `also`; answered with its `spec.replicas` all ready.
fn deployment_applied(
    component: &'static str,
    spec: Value,
    also: impl FnOnce(&Value) + Send + 'static,
) -> Call {
    let replicas = spec["replicas"].as_i64().expect("spec.replicas") as i32;
    Call::apply(deployment(component))
        .check(move |body| {
            owned_by_pipeline(body);
            assert_hardened(body);
            assert_json_include(body, &json!({ "spec": spec }), component);
            also(body);
        })
        .reply(Reply::EchoWith(deployment_ready(replicas)))
}

/// A JSON patch of the pipeline's finalizers equal to `patch`, answered with `answer`.
fn finalizers_patched(patch: Value, answer: &CdcPipeline) -> Vec<Call> {
    vec![
        Call::patch(PIPELINE)
            .check(move |body| assert_eq!(body, &patch))
            .ok(to_json(answer)),
    ]
}

/// The finalizer is added to a pipeline that has none.
pub fn finalizer_added(pipeline: &CdcPipeline) -> Vec<Call> {
    finalizers_patched(
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ]),
        &pipeline.clone().finalized(),
    )
}

/// The DSN Secret is read.
pub fn secret_read() -> Vec<Call> {
    vec![Call::get(DSN_SECRET).ok(serde_json::to_value(dsn_secret()).unwrap())]
}

/// The DSN Secret does not exist.
pub fn secret_missing() -> Vec<Call> {
    vec![Call::get(DSN_SECRET).reply(Reply::NotFound)]
}

/// The children of the example (native capture, api enabled) are applied, and the obsolete Redpanda
/// Connect ConfigMap is deleted (absent: 404); `replicas` of capture and sink as expected in the
/// bodies.
pub fn children_applied(capture_and_sink_replicas: i32) -> Vec<Call> {
    let mut calls = children_reapplied(capture_and_sink_replicas);
    calls.push(Call::delete(CONNECT_CONFIG_MAP).reply(Reply::NotFound));
    calls
}

/// A server-side apply refused by RBAC, as an API server answers it.
pub fn apply_forbidden(path: &str, resource: &str, name: &str) -> Vec<Call> {
    vec![Call::apply(path).reply(Reply::Json(
        403,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!(
                "{resource} \"{name}\" is forbidden: User \"system:serviceaccount:cdcstar-system:cdcstar\" \
                 cannot create resource \"{resource}\" in API group \"\" in the namespace \"default\""
            ),
            "reason": "Forbidden",
            "details": {"name": name, "kind": resource},
            "code": 403,
        }),
    ))]
}

/// The children applied again by a pass of a pipeline whose status says the obsolete children are
/// gone already: no delete.
pub fn children_reapplied(capture_and_sink_replicas: i32) -> Vec<Call> {
    children_reapplied_with(capture_and_sink_replicas, capture_and_sink_replicas)
}

/// [`children_applied`] with the capture at `capture` replicas and the sink at `sink`.
pub fn children_applied_with(capture: i32, sink: i32) -> Vec<Call> {
    let mut calls = children_reapplied_with(capture, sink);
    calls.push(Call::delete(CONNECT_CONFIG_MAP).reply(Reply::NotFound));
    calls
}

fn children_reapplied_with(capture: i32, sink: i32) -> Vec<Call> {
    vec![
        Call::apply(PIPELINE_CONFIG_MAP)
            .check(|body| {
                owned_by_pipeline(body);
                let yaml = body["data"]["pipeline.yaml"].as_str().expect("pipeline.yaml");
                assert!(yaml.contains("kind: CdcPipeline"), "{yaml}");
                assert!(yaml.contains("connectionSecretRef"), "{yaml}");
            })
            .reply(Reply::Echo),
        deployment_applied(
            "capture",
            json!({
                "replicas": capture,
                "strategy": {"type": "Recreate"},
                "template": {"spec": {"containers": [{
                    "command": ["cdcstar-capture"],
                    "args": ["--pipeline", "/etc/cdcstar/pipeline.yaml"],
                }]}},
            }),
            |body| {
                let env = &body["spec"]["template"]["spec"]["containers"][0]["env"];
                assert!(
                    env.as_array().unwrap().contains(&json!({
                        "name": "DATABASE_URL",
                        "valueFrom": {"secretKeyRef": {"name": "shop-postgres", "key": "dsn"}},
                    })),
                    "{env}"
                );
            },
        ),
        deployment_applied(
            "sink",
            json!({
                "replicas": sink,
                "template": {"spec": {"containers": [{"command": ["cdcstar-sink"]}]}},
            }),
            |_| {},
        ),
        deployment_applied(
            "api",
            json!({
                "replicas": 1,
                "template": {"spec": {"containers": [{"command": ["cdcstar-api"], "args": ["serve"]}]}},
            }),
            |_| {},
        ),
        Call::apply(API_SERVICE)
            .check(|body| {
                owned_by_pipeline(body);
                assert_eq!(body["spec"]["ports"][0]["port"], 3002);
            })
            .reply(Reply::Echo),
    ]
    .into_iter()
    // NB: paused (the sink at zero too), not a capture held back, suspends the verification.
    .chain(verify_cron_job_applied(sink == 0))
    .collect()
}

/// The example's `spec.verify` CronJob is applied: `cdcstar-sink verify` hourly on the mounted
/// pipeline with the source's DSN, never more than one run at a time, a run with mismatches not
/// retried, and no run while the pipeline is `suspended`.
pub fn verify_cron_job_applied(suspended: bool) -> Vec<Call> {
    vec![
        Call::apply(VERIFY_CRON_JOB)
            .check(move |body| {
                owned_by_pipeline(body);
                assert_json_include(
                    body,
                    &json!({"spec": {
                        "schedule": "@hourly",
                        "concurrencyPolicy": "Forbid",
                        "suspend": suspended,
                        "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
                            "restartPolicy": "Never",
                            "containers": [{
                                "command": ["cdcstar-sink"],
                                "args": ["verify", "--pipeline", "/etc/cdcstar/pipeline.yaml"],
                            }],
                        }}}},
                    }}),
                    "verify CronJob",
                );
                let pod = &body["spec"]["jobTemplate"]["spec"]["template"];
                assert_hardened_without_probes(pod);
                let env = &pod["spec"]["containers"][0]["env"];
                assert!(
                    env.as_array().unwrap().contains(&json!({
                        "name": "DATABASE_URL",
                        "valueFrom": {"secretKeyRef": {"name": "shop-postgres", "key": "dsn"}},
                    })),
                    "{env}"
                );
            })
            .reply(Reply::Echo),
    ]
}

/// The resync Job `name` for the tables `tables` is applied; the API server answers with the Job
/// whose `status` is `job_status`.
pub fn resync_job_applied(
    name: &str,
    tables: &'static [&'static str],
    job_status: Value,
) -> Vec<Call> {
    vec![
        Call::apply(format!("{JOBS}/{name}"))
            .check(move |body| {
                owned_by_pipeline(body);
                let mut args = vec![
                    "verify",
                    "--pipeline",
                    "/etc/cdcstar/pipeline.yaml",
                    "--resync",
                ];
                for table in tables {
                    args.extend(["--table", table]);
                }
                assert_json_include(
                    body,
                    &json!({"spec": {"template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{"command": ["cdcstar-sink"], "args": args}],
                    }}}}),
                    "resync Job",
                );
                assert_hardened_without_probes(&body["spec"]["template"]);
            })
            .reply(Reply::EchoWith(json!({"status": job_status}))),
    ]
}

/// A resync Job no request keeps is deleted.
pub fn resync_job_deleted(name: &str) -> Vec<Call> {
    vec![Call::delete(format!("{JOBS}/{name}")).ok(json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200,
    }))]
}

/// The containers of a pod template (a Job's) are hardened; they have no probes to check.
fn assert_hardened_without_probes(template: &Value) {
    for container in template["spec"]["containers"]
        .as_array()
        .expect("containers")
    {
        assert_json_include(
            container,
            &json!({"securityContext": {
                "runAsNonRoot": true, "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]},
            }}),
            "container",
        );
    }
    assert_eq!(template["spec"]["automountServiceAccountToken"], false);
}

/// The status of `pipeline` is server-side applied and contains `expected`; `store` receives it.
pub fn status_applied(
    pipeline: &CdcPipeline,
    expected: Value,
    store: Option<std::sync::Arc<std::sync::Mutex<Value>>>,
) -> Vec<Call> {
    vec![
        Call::apply(PIPELINE_STATUS)
            .check(move |body| {
                assert_json_include(
                    body,
                    &json!({"apiVersion": "cdcstar.dev/v1alpha1", "kind": "CdcPipeline"}),
                    "status patch",
                );
                assert_json_include(&body["status"], &expected, "status");
                if let Some(store) = store {
                    *store.lock().unwrap() = body["status"].clone();
                }
            })
            .reply(Reply::MergedInto(to_json(pipeline))),
    ]
}

/// A merge patch of the status (reporting an object that does not deserialise).
pub fn status_merged(stored: Value, expected: Value) -> Vec<Call> {
    vec![
        Call::patch(PIPELINE_STATUS)
            .check(move |body| assert_json_include(body, &expected, "status merge"))
            .reply(Reply::MergedInto(stored)),
    ]
}

/// A Normal Event of `reason` on the pipeline whose note contains `note`.
pub fn normal(reason: &'static str, note: &'static str) -> Vec<Call> {
    event("Normal", reason, note)
}

/// A Warning Event of `reason` on the pipeline whose note contains `note`.
pub fn warning(reason: &'static str, note: &'static str) -> Vec<Call> {
    event("Warning", reason, note)
}

/// An Event of `type_` (Normal or Warning) and `reason` on the pipeline whose note contains
/// `note`.
fn event(type_: &'static str, reason: &'static str, note: &'static str) -> Vec<Call> {
    vec![
        Call::post(EVENTS)
            .check(move |body| {
                assert_json_include(
                    body,
                    &json!({
                        "type": type_,
                        "reason": reason,
                        "reportingController": "cdcstar-operator",
                        "regarding": {"kind": "CdcPipeline", "name": "shop", "namespace": "default"},
                    }),
                    "event",
                );
                let text = body["note"].as_str().unwrap_or_default();
                assert!(text.contains(note), "event note {text:?} lacks {note:?}");
            })
            .reply(Reply::Echo),
    ]
}

/// A repeated Event: kube-runtime's recorder patches the series of the one it created.
pub fn event_repeated(reason: &'static str) -> Vec<Call> {
    vec![
        Call::patch(EVENTS)
            .any_name()
            .check(move |body| {
                assert_eq!(body["reason"], reason);
                assert_eq!(body["series"]["count"], 2);
            })
            .reply(Reply::Echo),
    ]
}

/// The api of a pipeline whose `spec.api.enabled` is false is removed (absent counts as done).
pub fn api_removed() -> Vec<Call> {
    vec![
        Call::delete(deployment("api")).reply(Reply::NotFound),
        Call::delete(API_SERVICE).reply(Reply::NotFound),
    ]
}

/// Cleanup stops the capture first, then the verifier's runs (none here).
pub fn capture_deleted() -> Vec<Call> {
    vec![
        Call::delete(deployment("capture")).ok(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200,
        })),
        Call::delete(VERIFY_CRON_JOB).reply(Reply::NotFound),
    ]
}

/// The finalizer is removed after cleanup.
pub fn finalizer_removed(pipeline: &CdcPipeline) -> Vec<Call> {
    let mut released = pipeline.clone();
    released.metadata.finalizers = None;
    finalizers_patched(
        json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ]),
        &released,
    )
}

/// The Lease does not exist and is created.
pub fn lease_created() -> Vec<Call> {
    vec![
        Call::get(LEASE).reply(Reply::NotFound),
        Call::post(LEASES)
            .check(|body| {
                assert_json_include(
                    body,
                    &json!({"metadata": {"name": "cdcstar-leader"}, "spec": {"holderIdentity": "replica-a"}}),
                    "lease",
                );
            })
            .reply(Reply::Echo),
    ]
}

/// The Lease is held by another replica that renewed it just now.
pub fn lease_held_elsewhere(lease: Value) -> Vec<Call> {
    vec![Call::get(LEASE).ok(lease)]
}

/// The Lease is held by another replica that stopped renewing it, and is taken over.
pub fn lease_taken_over(lease: Value) -> Vec<Call> {
    vec![
        Call::get(LEASE).ok(lease),
        Call::put(LEASE)
            .check(|body| {
                assert_json_include(
                    body,
                    &json!({
                        "metadata": {"resourceVersion": "7"},
                        "spec": {"holderIdentity": "replica-a", "leaseTransitions": 4},
                    }),
                    "lease",
                );
            })
            .reply(Reply::Echo),
    ]
}

/// The startup check lists CdcPipelines.
pub fn startup_list() -> Vec<Call> {
    vec![Call::get("/apis/cdcstar.dev/v1alpha1/cdcpipelines").query("limit=1")]
}

/// What the controller's watches request: a list then a watch of pipelines, Deployments,
/// ConfigMaps, Services and Secret metadata, in every namespace.
pub fn watch_calls() -> BTreeSet<ApiCall> {
    let mut calls = BTreeSet::new();
    for (group, resource) in [
        ("cdcstar.dev", "cdcpipelines"),
        ("apps", "deployments"),
        ("core", "configmaps"),
        ("core", "services"),
        ("core", "secrets"),
        ("batch", "jobs"),
    ] {
        for verb in ["list", "watch"] {
            calls.insert(ApiCall {
                verb: verb.into(),
                group: group.into(),
                resource: resource.into(),
            });
        }
    }
    calls
}

/// Every call any scenario expects.
pub fn all_expected_calls() -> BTreeSet<ApiCall> {
    let pipeline = CdcPipeline::test();
    let changed = with_shipment_and_phone(CdcPipeline::test().finalized());
    let lease = json!({});
    let lists = [
        finalizer_added(&pipeline),
        secret_read(),
        secret_missing(),
        children_applied(1),
        status_applied(&pipeline, json!({}), None),
        status_merged(json!({}), json!({})),
        normal("X", ""),
        event_repeated("X"),
        api_removed(),
        resync_job_applied("shop-resync-0", &[], json!({})),
        resync_job_deleted("shop-resync-0"),
        capture_deleted(),
        finalizer_removed(&changed),
        lease_created(),
        lease_held_elsewhere(lease.clone()),
        lease_taken_over(lease),
        startup_list(),
    ];
    let mut calls: BTreeSet<ApiCall> = lists.iter().flatten().flat_map(Call::api_calls).collect();
    calls.extend(watch_calls());
    calls
}
