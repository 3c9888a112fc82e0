//! Leader election, the startup check and the controller's watches against the mocked API server,
//! and the list of API calls the chart's RBAC must cover (`api_calls.txt`).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cdcstar_operator::app::{RunError, check_crd_installed};
use cdcstar_operator::config::OperatorConfig;
use cdcstar_operator::controller::{self, Context};
use cdcstar_operator::leader::{LeaseError, LeaseLock, LeaseTiming};
use cdcstar_operator::metrics::Metrics;
use common::apiserver::{ApiCall, Call, Reply, mock_client, scenario};
use common::fakes::{FakeSource, FakeWarehouse};
use common::scenarios::*;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::runtime::events::Reporter;
use serde_json::json;

fn lease_lock(client: kube::Client) -> LeaseLock {
    LeaseLock::new(
        Api::namespaced(client, "default"),
        "cdcstar-leader",
        "replica-a",
        LeaseTiming::default(),
    )
}

/// Whether replica-a leads after one try to acquire or renew the lease, the mocked apiserver
/// answering `calls`.
async fn try_to_lead(calls: Vec<Call>) -> Result<bool, LeaseError> {
    let (client, handle) = mock_client();
    let lock = lease_lock(client);
    scenario(
        handle,
        calls,
        async move { lock.try_acquire_or_renew().await },
    )
    .await
}

fn lease(holder: &str, renewed: Timestamp) -> serde_json::Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "cdcstar-leader", "namespace": "default", "resourceVersion": "7"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "leaseTransitions": 3,
        }
    })
}

#[tokio::test]
async fn first_replica_creates_the_lease_and_leads() {
    assert!(try_to_lead(lease_created()).await.unwrap());
}

#[tokio::test]
async fn a_fresh_lease_of_another_replica_is_respected() {
    let calls = lease_held_elsewhere(lease("replica-b", Timestamp::now()));
    assert!(
        !try_to_lead(calls).await.unwrap(),
        "two replicas must never both lead"
    );
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_with_compare_and_swap() {
    let stale = Timestamp::now() - SignedDuration::from_secs(60);
    let calls = lease_taken_over(lease("replica-b", stale));
    assert!(try_to_lead(calls).await.unwrap());
}

#[tokio::test]
async fn losing_the_compare_and_swap_means_not_leading() {
    let stale = Timestamp::now() - SignedDuration::from_secs(60);
    let mut calls = lease_taken_over(lease("replica-b", stale));
    let put = calls.pop().unwrap();
    calls.push(Call::put(put.path.clone()).reply(Reply::Json(
        409,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "reason": "Conflict", "code": 409, "message": "the object has been modified"}),
    )));
    assert!(!try_to_lead(calls).await.unwrap());
}

#[tokio::test]
async fn startup_fails_clearly_when_the_crd_is_not_installed() {
    let (client, handle) = mock_client();
    let calls = vec![
        Call::get("/apis/cdcstar.dev/v1alpha1/cdcpipelines")
            .query("limit=1")
            .reply(Reply::NotFound),
    ];
    let result = scenario(handle, calls, async move {
        check_crd_installed(&client, None).await
    })
    .await;
    let error = result.unwrap_err();
    assert!(matches!(error, RunError::CrdMissing));
    assert!(
        error
            .to_string()
            .contains("cdcstar-operator crd | kubectl apply")
    );
}

#[tokio::test]
async fn startup_check_passes_when_pipelines_can_be_listed() {
    let (client, handle) = mock_client();
    let calls: Vec<Call> = startup_list()
        .into_iter()
        .map(|call| {
            call.ok(json!({
                "apiVersion": "cdcstar.dev/v1alpha1", "kind": "CdcPipelineList",
                "metadata": {"resourceVersion": "1"}, "items": [],
            }))
        })
        .collect();
    scenario(handle, calls, async move {
        check_crd_installed(&client, None).await
    })
    .await
    .unwrap();
}

/// The controller lists then watches pipelines, its children and Secret metadata; requests come in
/// any order, so they are answered by kind until all were seen, then the controller is shut down.
#[tokio::test]
async fn controller_watches_pipelines_children_and_secret_metadata() {
    let (client, mut handle) = mock_client();
    let ctx = Arc::new(Context::new(
        client,
        OperatorConfig::default(),
        Arc::new(FakeSource::default()),
        Arc::new(FakeWarehouse::default()),
        Arc::new(Metrics::default()),
        Reporter {
            controller: "cdcstar-operator".into(),
            instance: None,
        },
    ));
    let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(ctx, None, async move {
        let _ = stopping.await;
    }));
    let expected = watch_calls();
    let mut seen = BTreeSet::new();
    let mut open_watches = Vec::new();
    while seen != expected {
        let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "watches never requested; missing {:?}",
                    expected.difference(&seen)
                )
            })
            .expect("client alive");
        let query = request.uri().query().unwrap_or_default().to_owned();
        let call = ApiCall::of(request.method(), request.uri().path(), &query);
        assert!(
            expected.contains(&call),
            "unexpected call {call}: {}",
            request.uri()
        );
        if call.resource == "secrets" {
            let accept = request
                .headers()
                .get("accept")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            assert!(
                accept.contains("as=PartialObjectMetadata"),
                "secrets must be watched as metadata only, so no value is cached: {accept}"
            );
        }
        if call.verb == "list" {
            let body = serde_json::to_vec(&json!({
                "apiVersion": "v1", "kind": "List",
                "metadata": {"resourceVersion": "1"}, "items": [],
            }))
            .unwrap();
            send.send_response(
                http::Response::builder()
                    .status(200)
                    .body(kube::client::Body::from(body))
                    .unwrap(),
            );
        } else {
            // A watch stays open until the test ends.
            open_watches.push(send);
        }
        seen.insert(call);
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), controller)
        .await
        .expect("the controller stops on shutdown")
        .unwrap();
    drop(open_watches);
}

/// `operator/tests/api_calls.txt` lists exactly the calls the mock tests expect (the union of the
/// scenarios in `common/scenarios.rs`). Regenerate with `UPDATE_API_CALLS=1`.
#[test]
fn api_calls_file_lists_every_call_the_mock_tests_make() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api_calls.txt");
    let calls = all_expected_calls();
    let mut text = String::from(
        "# Every Kubernetes API call the operator makes, as `verb group resource` (group `core` for \"\").\n\
         # Generated from the mock-apiserver tests (operator/tests/common/scenarios.rs):\n\
         #   UPDATE_API_CALLS=1 cargo test -p cdcstar-operator --test leader_and_startup\n",
    );
    for call in &calls {
        text.push_str(&format!("{call}\n"));
    }
    if std::env::var_os("UPDATE_API_CALLS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    pretty_assertions::assert_eq!(
        committed,
        text,
        "tests/api_calls.txt is stale: rerun with UPDATE_API_CALLS=1"
    );
}
