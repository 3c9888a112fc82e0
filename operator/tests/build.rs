//! The pure phases (validate, build, plan) from YAML fixtures: the example and hostile pipelines.
//! The built manifests are kept as golden files under `tests/golden/` (regenerate with
//! `UPDATE_GOLDEN=1`), validated here with `kubernetes-validate --strict` and by the chart checks.
//!
//! Over 400 lines: one test per property of the built manifests (goldens, security context,
//! secrets, strategies), sharing the fixtures above them.

use std::path::{Path, PathBuf};

use cdcstar_operator::config::OperatorConfig;
use cdcstar_operator::controller::build::{self, DesiredState};
use cdcstar_operator::plan::{self, Plan, PlanError};
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;

const EXAMPLE: &str = include_str!("../../examples/shop-pipeline.yaml");

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn planned(yaml: &str) -> Plan {
    plan::plan_yaml(yaml, &OperatorConfig::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    pretty_assertions::assert_eq!(
        expected,
        actual,
        "{} differs; rerun with UPDATE_GOLDEN=1 after checking the change",
        path.display()
    );
}

/// `plan` matches the golden files `<name>.yaml` (its manifests) and `<name>.plan.txt` (its
/// rendering), which it returns.
fn plan_golden(name: &str, plan: &Plan) -> String {
    golden(&format!("{name}.yaml"), &plan.manifests_yaml().unwrap());
    let text = plan.render().unwrap();
    golden(&format!("{name}.plan.txt"), &text);
    text
}

/// The plan of fixture `<name>.yaml`, which matches its golden files, and its rendering.
fn fixture_plan_golden(name: &str) -> (Plan, String) {
    let plan = planned(&fixture(&format!("{name}.yaml")));
    let text = plan_golden(name, &plan);
    (plan, text)
}

fn deployment<'a>(desired: &'a DesiredState, name: &str) -> &'a Deployment {
    desired
        .deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no deployment {name}"))
}

fn containers(desired: &DesiredState) -> Vec<Value> {
    desired
        .deployments
        .iter()
        .flat_map(|d| {
            let value = serde_json::to_value(d).unwrap();
            value["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect()
}

#[test]
fn example_plan_matches_golden_files() {
    let plan = planned(EXAMPLE);
    plan_golden("shop-pipeline", &plan);
}

#[test]
fn redpanda_connect_plan_matches_golden_files() {
    fixture_plan_golden("redpanda-connect");
}

#[test]
fn paused_failover_plan_matches_golden_files() {
    let (plan, text) = fixture_plan_golden("paused-failover");
    assert!(
        text.contains(
            "pg_create_logical_replication_slot('shop_standby', 'pgoutput', false, false, true)"
        ),
        "{text}"
    );
    assert!(text.contains("# Paused (spec.state is paused)"), "{text}");
    for deployment in &plan.kubernetes.deployments {
        assert_eq!(deployment.spec.replicas, Some(0), "paused");
    }
}

#[test]
fn masked_and_filtered_plan_matches_golden_files() {
    fixture_plan_golden("masked-and-filtered");
}

#[test]
fn the_mask_salt_reaches_the_capture_only_as_a_secret_reference_and_the_plan_shows_the_filter() {
    let plan = planned(&fixture("masked-and-filtered.yaml"));
    let capture = deployment(&plan.kubernetes, "shop-private-capture");
    let capture = serde_json::to_value(capture).unwrap();
    let env = capture["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    let salt = env
        .iter()
        .find(|e| e["name"] == "CAPTURE_MASK_SALT")
        .expect("the capture gets the salt");
    assert!(salt.get("value").is_none(), "{salt}");
    assert_eq!(
        salt["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "shop-mask-salt", "key": "salt"})
    );
    for container in containers(&plan.kubernetes) {
        if container["name"] != "capture" {
            let names: Vec<&str> = container["env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap())
                .collect();
            assert!(!names.contains(&"CAPTURE_MASK_SALT"), "{names:?}");
        }
    }
    let text = plan.render().unwrap();
    assert!(
        text.contains(r#""public"."order" WHERE (("status" <> 'cancelled') AND ("total" >= '0'))"#),
        "{text}"
    );
}

#[test]
fn example_builds_pipeline_config_capture_sink_api_and_service() {
    let desired = planned(EXAMPLE).kubernetes;
    let names = |items: Vec<Option<String>>| items.into_iter().flatten().collect::<Vec<_>>();
    assert_eq!(
        names(
            desired
                .config_maps
                .iter()
                .map(|c| c.metadata.name.clone())
                .collect()
        ),
        ["shop-pipeline"]
    );
    assert_eq!(
        names(
            desired
                .deployments
                .iter()
                .map(|d| d.metadata.name.clone())
                .collect()
        ),
        ["shop-capture", "shop-sink", "shop-api"]
    );
    assert_eq!(
        names(
            desired
                .services
                .iter()
                .map(|s| s.metadata.name.clone())
                .collect()
        ),
        ["shop-api"]
    );
    let mounted = &desired.config_maps[0].data.as_ref().unwrap()["pipeline.yaml"];
    let round_trip: cdcstar_crds::CdcPipeline = serde_yaml::from_str(mounted).unwrap();
    let original: cdcstar_crds::CdcPipeline = serde_yaml::from_str(EXAMPLE).unwrap();
    assert_eq!(
        round_trip.spec, original.spec,
        "the mounted pipeline is the spec"
    );
    let capture = deployment(&desired, "shop-capture");
    assert_eq!(capture.spec.replicas, Some(1));
    assert_eq!(
        capture.spec.strategy.as_ref().unwrap().type_.as_deref(),
        Some("Recreate"),
        "one slot reader at a time"
    );
}

#[test]
fn every_container_is_non_root_read_only_without_privileges_with_probes() {
    for yaml in [EXAMPLE.to_owned(), fixture("redpanda-connect.yaml")] {
        let desired = planned(&yaml).kubernetes;
        for deployment in &desired.deployments {
            let pod = deployment.spec.template.spec.as_ref().unwrap();
            let pod_security = pod.security_context.as_ref().unwrap();
            assert_eq!(pod_security.run_as_non_root, Some(true));
            assert_eq!(pod.automount_service_account_token, Some(false));
            for container in &pod.containers {
                let security = container.security_context.as_ref().unwrap();
                assert_eq!(security.run_as_non_root, Some(true));
                assert_eq!(security.read_only_root_filesystem, Some(true));
                assert_eq!(security.allow_privilege_escalation, Some(false));
                assert_eq!(
                    security.capabilities.as_ref().unwrap().drop.as_deref(),
                    Some(&["ALL".to_owned()][..])
                );
                assert_eq!(
                    security.seccomp_profile.as_ref().unwrap().type_,
                    "RuntimeDefault"
                );
                assert!(container.liveness_probe.is_some() && container.readiness_probe.is_some());
            }
        }
    }
}

#[test]
fn paused_or_its_deprecated_alias_scales_capture_and_sink_to_zero_but_not_the_api() {
    use cdcstar_crds::pipeline::PipelineState;
    let mut pipeline: cdcstar_crds::CdcPipeline = serde_yaml::from_str(EXAMPLE).unwrap();
    pipeline.metadata.namespace = Some("default".into());
    pipeline.metadata.uid = Some("u".into());
    let replicas = |pipeline: &cdcstar_crds::CdcPipeline| {
        let desired =
            build::build(pipeline, &OperatorConfig::default(), Default::default()).unwrap();
        ["shop-capture", "shop-sink", "shop-api"]
            .map(|name| deployment(&desired, name).spec.replicas.unwrap())
    };
    assert_eq!(replicas(&pipeline), [1, 1, 1]);
    pipeline.spec.state = PipelineState::Paused;
    assert_eq!(replicas(&pipeline), [0, 0, 1]);
    pipeline.spec.state = PipelineState::Running;
    pipeline.spec.suspend = true;
    assert_eq!(replicas(&pipeline), [0, 0, 1]);
}

#[test]
fn a_held_capture_is_set_to_zero_replicas_and_nothing_else_changes() {
    let mut pipeline: cdcstar_crds::CdcPipeline = serde_yaml::from_str(EXAMPLE).unwrap();
    pipeline.metadata.namespace = Some("default".into());
    pipeline.metadata.uid = Some("u".into());
    let desired = build::build(&pipeline, &OperatorConfig::default(), Default::default()).unwrap();
    let mut held = desired.clone();
    held.hold_capture("shop");
    assert_eq!(deployment(&held, "shop-capture").spec.replicas, Some(0));
    let mut restored = held.clone();
    restored.deployments[0].spec.replicas = Some(1);
    assert_eq!(restored, desired);
    assert_eq!(deployment(&held, "shop-sink").spec.replicas, Some(1));
}

#[test]
fn secrets_are_only_ever_referenced() {
    const SENSITIVE: [&str; 5] = [
        "DATABASE_URL",
        "POSTGRES_DSN",
        "CLICKHOUSE_PASSWORD",
        "REDPANDA_LICENSE",
        "KAFKA_SASL_PASSWORD",
    ];
    let plan = planned(&fixture("redpanda-connect.yaml"));
    let mut seen = Vec::new();
    for container in containers(&plan.kubernetes) {
        for env in container["env"].as_array().unwrap() {
            let name = env["name"].as_str().unwrap();
            if SENSITIVE.contains(&name) {
                assert!(env.get("value").is_none(), "{name} must not carry a value");
                assert!(
                    env["valueFrom"]["secretKeyRef"]["name"].is_string(),
                    "{env}"
                );
                seen.push(name.to_owned());
            }
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "CLICKHOUSE_PASSWORD",
            "KAFKA_SASL_PASSWORD",
            "POSTGRES_DSN",
            "REDPANDA_LICENSE"
        ]
    );
    let connect = plan.kubernetes.config_maps[1].data.as_ref().unwrap()["connect.yaml"].clone();
    assert!(connect.contains("dsn: \"${POSTGRES_DSN}\""), "{connect}");
    assert!(
        connect.contains("password: \"${KAFKA_SASL_PASSWORD:}\""),
        "{connect}"
    );
    let text = plan.render().unwrap();
    assert!(!text.contains("postgresql://"), "no DSN in the plan");
}

#[test]
fn redpanda_connect_engine_gets_its_config_licence_and_no_native_leftovers() {
    let desired = planned(&fixture("redpanda-connect.yaml")).kubernetes;
    let capture = deployment(&desired, "shop-rpcn-capture");
    let container = &capture.spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("redpandadata/connect:4.67.5")
    );
    assert_eq!(
        container.args.as_deref(),
        Some(
            &[
                "run".to_owned(),
                "/etc/cdcstar/connect/connect.yaml".to_owned()
            ][..]
        )
    );
    let sink = deployment(&desired, "shop-rpcn-sink");
    assert_eq!(sink.spec.replicas, Some(0), "suspended");
    assert!(desired.obsolete.iter().any(|o| o.name == "shop-rpcn-api"));
    assert!(
        !desired
            .obsolete
            .iter()
            .any(|o| o.name == "shop-rpcn-connect")
    );
}

#[test]
fn every_variable_the_connect_config_references_has_a_default_or_a_required_env_var() {
    let desired = planned(&fixture("redpanda-connect.yaml")).kubernetes;
    let connect = desired.config_maps[1].data.as_ref().unwrap()["connect.yaml"].clone();
    let capture = serde_json::to_value(deployment(&desired, "shop-rpcn-capture")).unwrap();
    let env = capture["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let references = cdcstar_crds::redpanda_connect::env_references(&connect);
    assert!(!references.is_empty());
    for reference in references {
        let var = env.iter().find(|e| e["name"] == reference.name.as_str());
        match reference.default {
            // Without default benthos refuses to start when it is unset: the Deployment must set it
            // from a key that has to exist.
            None => {
                let var = var.unwrap_or_else(|| panic!("{} is not set", reference.name));
                assert_ne!(
                    var["valueFrom"]["secretKeyRef"]["optional"], true,
                    "{} is required",
                    reference.name
                );
            }
            // With a default, an optional key (or none at all) is fine.
            Some(_) => {
                if let Some(var) = var {
                    assert_eq!(var["valueFrom"]["secretKeyRef"]["optional"], true, "{var}");
                }
            }
        }
    }
}

#[test]
fn hostile_pipelines_are_refused_with_field_paths() {
    for (file, paths) in [
        (
            "hostile-sql-injection.yaml",
            &[
                "spec.source.schema",
                "spec.source.tables[0].name",
                "spec.clickhouse.database",
                "spec.starSchema.dimensions[0].columns[0].type",
            ][..],
        ),
        (
            "hostile-dangling-lookup.yaml",
            &[
                "spec.starSchema.facts[0].columns[2].type",
                "spec.starSchema.facts[0].lookups[0].via[0].references",
            ][..],
        ),
        ("hostile-long-name.yaml", &["metadata.name"][..]),
    ] {
        match plan::plan_yaml(&fixture(file), &OperatorConfig::default()) {
            Err(PlanError::Invalid(errors)) => {
                for path in paths {
                    assert!(
                        errors.has_path(path),
                        "{file}: no error at {path}: {errors}"
                    );
                }
            }
            Err(other) => panic!("{file}: wrong error {other}"),
            Ok(_) => panic!("{file} was accepted"),
        }
    }
}

#[test]
fn plan_refuses_unknown_fields_with_their_path() {
    let yaml = EXAMPLE.replace(
        "    replicaIdentityFull: true",
        "    replicaIdentityFul: true\n    replicaIdentityFull: true",
    );
    match plan::plan_yaml(&yaml, &OperatorConfig::default()) {
        Err(err @ PlanError::UnknownFields(_)) => {
            assert!(
                err.to_string().contains("spec.source.replicaIdentityFul"),
                "{err}"
            );
        }
        Err(other) => panic!("wrong error {other}"),
        Ok(_) => panic!("a misspelt field was planned as absent"),
    }
}

#[test]
fn plan_refuses_replicas_past_the_schema_maximum() {
    let yaml = EXAMPLE.replace("  sink:\n    replicas: 1", "  sink:\n    replicas: 100000");
    match plan::plan_yaml(&yaml, &OperatorConfig::default()) {
        Err(PlanError::Invalid(errors)) => {
            assert!(errors.has_path("spec.sink.replicas"), "{errors}");
        }
        Err(other) => panic!("wrong error {other}"),
        Ok(_) => panic!("100000 sink replicas were planned"),
    }
}

/// Runs `cdcstar-operator plan` on `yaml` with backtraces asked for; returns its stderr.
fn plan_stderr(yaml: &str) -> String {
    let dir = std::env::temp_dir().join(format!("cdcstar-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.yaml", yaml.len()));
    std::fs::write(&file, yaml).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cdcstar-operator"))
        .arg("plan")
        .arg(&file)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(!output.status.success(), "a bad pipeline was planned");
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn plan_prints_each_user_error_once_without_a_backtrace() {
    let unparsable = EXAMPLE.replace("partitions: 3", "partitions: many");
    let invalid = EXAMPLE.replace("  sink:\n    replicas: 1", "  sink:\n    replicas: 100000");
    for (yaml, cause) in [
        (unparsable, "spec.kafka.topics.partitions"),
        (invalid, "spec.sink.replicas"),
    ] {
        let stderr = plan_stderr(&yaml);
        assert_eq!(stderr.matches(cause).count(), 1, "{stderr}");
        assert!(!stderr.contains("backtrace"), "{stderr}");
        assert!(!stderr.contains("Caused by"), "{stderr}");
        assert!(stderr.starts_with("error: no plan for "), "{stderr}");
    }
}

fn kubernetes_validate() -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../.services/venv/bin/kubernetes-validate");
    assert!(
        path.exists(),
        "{} is missing: start the local services with `scripts/services.sh up` (it creates the venv)",
        path.display()
    );
    path
}

#[test]
fn built_manifests_validate_strictly_against_kubernetes() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, yaml) in [
        ("shop", EXAMPLE.to_owned()),
        ("rpcn", fixture("redpanda-connect.yaml")),
    ] {
        let plan = planned(&yaml);
        let objects = plan
            .kubernetes
            .config_maps
            .iter()
            .map(|o| serde_yaml::to_string(o).unwrap())
            .chain(
                plan.kubernetes
                    .deployments
                    .iter()
                    .map(|o| serde_yaml::to_string(o).unwrap()),
            )
            .chain(
                plan.kubernetes
                    .services
                    .iter()
                    .map(|o| serde_yaml::to_string(o).unwrap()),
            );
        for (i, object) in objects.enumerate() {
            let path = dir.path().join(format!("{name}-{i}.yaml"));
            std::fs::write(&path, object).unwrap();
            files.push(path);
        }
    }
    let output = std::process::Command::new(kubernetes_validate())
        .args(["--strict", "--kubernetes-version", "1.33.0"])
        .args(&files)
        .output()
        .expect("kubernetes-validate runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.matches(" passed for resource ").count(),
        files.len(),
        "every manifest validated: {stdout}"
    );
}

#[test]
fn one_sink_is_replaced_by_recreate_without_the_recheck_several_keep_both() {
    let sink = |yaml: &str| {
        let mut pipeline: cdcstar_crds::CdcPipeline = serde_yaml::from_str(yaml).unwrap();
        pipeline.metadata.namespace = Some("default".into());
        pipeline.metadata.uid = Some("u".into());
        let desired =
            build::build(&pipeline, &OperatorConfig::default(), Default::default()).unwrap();
        serde_json::to_value(deployment(&desired, "shop-sink")).unwrap()
    };
    let recheck_env = |sink: &Value| {
        sink["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "SINK_LOOKUP_RECHECK")
            .map(|e| e["value"].clone())
    };
    let single = sink(EXAMPLE);
    assert_eq!(single["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(recheck_env(&single), Some(Value::from("false")));

    let three = sink(&EXAMPLE.replace("  sink:\n    replicas: 1", "  sink:\n    replicas: 3"));
    assert_eq!(three["spec"]["replicas"], 3);
    assert_eq!(three["spec"]["strategy"], Value::Null, "rolling update");
    assert_eq!(recheck_env(&three), None);
}

#[test]
fn the_cluster_example_plans_replicated_and_distributed_tables_on_cluster() {
    let plan = planned(include_str!(
        "../../examples/clickhouse-cluster-pipeline.yaml"
    ));
    assert!(
        plan.clickhouse
            .iter()
            .all(|s| s.contains("ON CLUSTER `analytics`")),
        "{:#?}",
        plan.clickhouse
    );
    assert!(plan.clickhouse.iter().any(|s| s.contains(
        "CREATE TABLE IF NOT EXISTS `shop`.`order_fact` ON CLUSTER `analytics` AS \
         `shop`.`order_fact_local` ENGINE = Distributed(`analytics`, `shop`, `order_fact_local`, \
         cityHash64(`order_id`))"
    )));
    assert!(plan.clickhouse.iter().any(|s| s.contains(
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', \
         '{replica}', `lsn`, `is_deleted`) ORDER BY (`order_id`)"
    )));
}

#[test]
fn the_clickhouse_cloud_example_plans_plain_tables_and_secret_credentials() {
    let plan = planned(include_str!(
        "../../examples/clickhouse-cloud-pipeline.yaml"
    ));
    assert!(plan.clickhouse.iter().all(|s| !s.contains("ON CLUSTER")));
    assert!(
        plan.clickhouse
            .iter()
            .any(|s| s.contains("ENGINE = ReplacingMergeTree(`lsn`, `is_deleted`)"))
    );
    let sink = serde_json::to_value(deployment(&plan.kubernetes, "shop-cloud-sink")).unwrap();
    let env = sink["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    for name in ["CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"] {
        let var = env.iter().find(|e| e["name"] == name).unwrap();
        assert_eq!(
            var["valueFrom"]["secretKeyRef"]["name"], "shop-clickhouse-cloud",
            "{name}"
        );
    }
    assert_eq!(
        plan.pipeline.spec.clickhouse.url,
        "https://abc123xyz.eu-west-1.aws.clickhouse.cloud:8443"
    );
}

#[test]
fn a_component_without_resources_gets_the_operators_and_one_with_them_keeps_its_own() {
    let yaml = EXAMPLE.replace(
        "  sink:\n    replicas: 1",
        "  sink:\n    replicas: 1\n    resources:\n      requests: {cpu: \"2\", memory: 1Gi}",
    );
    let desired = planned(&yaml).kubernetes;
    let resources = |name: &str| {
        deployment(&desired, name)
            .spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .resources
            .clone()
            .unwrap()
    };
    let defaults = cdcstar_operator::config::DefaultResources::default();
    assert_eq!(resources("shop-capture"), defaults.capture);
    assert_eq!(resources("shop-api"), defaults.api);
    let sink = resources("shop-sink");
    assert_eq!(sink.requests.as_ref().unwrap()["cpu"].0, "2");
    assert!(
        sink.limits.is_none(),
        "a pipeline's own resources are taken whole"
    );
}
