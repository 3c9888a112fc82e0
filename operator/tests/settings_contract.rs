//! The contract between the Deployments the operator builds and the binaries they run: every env
//! var and flag the operator sets for a container is one that binary's own command line reads
//! (its clap definition, not a copied list), the values parse, and every port the manifests name
//! (container port, probes, the api's Service) is one the binary listens on with those settings.
//! A sink that listened on another port than its probes (it read `SINK_METRICS_ADDR` while the
//! Deployment set `METRICS_PORT`) fails here.

use std::collections::{BTreeMap, BTreeSet};

use cdcstar_crds::CdcPipeline;
use cdcstar_operator::config::OperatorConfig;
use cdcstar_operator::controller::build;
use clap::{CommandFactory, Parser};
use k8s_openapi::api::core::v1::{Container, EnvVar};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

const EXAMPLE: &str = include_str!("../../examples/shop-pipeline.yaml");

/// The example with every optional Secret reference set, so that every env var the operator can
/// set appears.
fn pipeline_with_every_reference() -> CdcPipeline {
    let mut pipeline: CdcPipeline = serde_yaml::from_str(EXAMPLE).unwrap();
    pipeline.metadata.namespace = Some("default".into());
    pipeline.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    pipeline.spec.kafka.auth_secret_ref =
        Some(serde_json::from_value(serde_json::json!({"name": "kafka-auth"})).unwrap());
    pipeline.spec.clickhouse.credentials_secret_ref =
        Some(serde_json::from_value(serde_json::json!({"name": "clickhouse"})).unwrap());
    pipeline.spec.source.mask_salt_secret_ref =
        Some(serde_json::from_value(serde_json::json!({"name": "salt", "key": "salt"})).unwrap());
    pipeline
}

/// `--long` of every argument of `command` (and its subcommands) by the env var it reads.
fn flags_by_env(command: &clap::Command) -> BTreeMap<String, String> {
    let mut flags = BTreeMap::new();
    for argument in command.get_arguments() {
        if let (Some(env), Some(long)) = (argument.get_env(), argument.get_long()) {
            flags.insert(env.to_string_lossy().into_owned(), long.to_owned());
        }
    }
    for subcommand in command.get_subcommands() {
        flags.extend(flags_by_env(subcommand));
    }
    flags
}

/// The command line the container's env and args amount to, each env var turned into the flag
/// that reads it (a value from a Secret or the Downward API stands in as a placeholder). Panics,
/// naming it, on an env var the binary does not read.
fn command_line(container: &Container, binary: &clap::Command) -> Vec<String> {
    let flags = flags_by_env(binary);
    let mut argv = vec![binary.get_name().to_owned()];
    argv.extend(container.args.clone().unwrap_or_default());
    for EnvVar {
        name,
        value,
        value_from,
    } in container.env.clone().unwrap_or_default()
    {
        let long = flags.get(&name).unwrap_or_else(|| {
            panic!(
                "container {} sets {name}, which {} does not read; it reads {:?}",
                container.name,
                binary.get_name(),
                flags.keys().collect::<Vec<_>>()
            )
        });
        let value = match (value, value_from) {
            (Some(value), _) => value,
            (None, Some(_)) => "postgresql://user@db/app".to_owned(),
            (None, None) => String::new(),
        };
        argv.push(format!("--{long}={value}"));
    }
    argv
}

/// The container's command line (see [`command_line`]) as binary `P` parses it with its own clap
/// `Args`, and that command line.
fn parsed<P: Parser>(container: &Container) -> (P, Vec<String>) {
    let argv = command_line(container, &P::command());
    let args = P::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    (args, argv)
}

/// Every port number the container's manifests name: container ports, and probe ports (by number
/// or through a named container port).
fn named_ports(container: &Container) -> BTreeSet<i32> {
    let ports: BTreeMap<String, i32> = container
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect();
    let mut named: BTreeSet<i32> = ports.values().copied().collect();
    for probe in [&container.liveness_probe, &container.readiness_probe]
        .into_iter()
        .flatten()
    {
        match probe.http_get.as_ref().map(|get| &get.port) {
            Some(IntOrString::Int(port)) => {
                named.insert(*port);
            }
            Some(IntOrString::String(name)) => {
                named.insert(*ports.get(name).unwrap_or_else(|| {
                    panic!("{}: probe names an undeclared port {name}", container.name)
                }));
            }
            None => {}
        }
    }
    named
}

fn container<'a>(desired: &'a build::DesiredState, name: &str) -> &'a Container {
    desired
        .deployments
        .iter()
        .flat_map(|d| &d.spec.template.spec.as_ref().unwrap().containers)
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn desired() -> build::DesiredState {
    build::build(
        &pipeline_with_every_reference(),
        &OperatorConfig::default(),
        Default::default(),
    )
    .unwrap()
}

/// The settings of the probed binary `P` run by container `name` (see [`parsed`]), and its command
/// line, once checked that the container names exactly the one port `P` listens on with them:
/// `listens(settings)`.
fn parsed_listening_where_probed<P: Parser>(
    name: &str,
    listens: impl FnOnce(&P) -> u16,
) -> (P, Vec<String>) {
    let desired = desired();
    let container = container(&desired, name);
    let (args, argv) = parsed::<P>(container);
    let port = BTreeSet::from([i32::from(listens(&args))]);
    assert_eq!(named_ports(container), port, "{argv:?}");
    (args, argv)
}

#[test]
fn the_sink_reads_every_setting_it_is_given_and_listens_where_it_is_probed() {
    let (args, _) = parsed_listening_where_probed::<cdcstar_sink::settings::Args>("sink", |args| {
        args.metrics_addr.port()
    });
    assert!(
        args.group_instance_id.is_some(),
        "a restarted sink takes its partitions back at once"
    );
}

#[test]
fn the_native_capture_reads_every_setting_it_is_given_and_listens_where_it_is_probed() {
    let (args, argv) = parsed_listening_where_probed::<cdcstar_capture::settings::CaptureArgs>(
        "capture",
        |args| args.metrics_port,
    );
    assert!(
        args.mask_salt.is_some(),
        "the salt Secret reaches the capture: {argv:?}"
    );
}

#[test]
fn the_api_reads_every_setting_it_is_given_and_its_service_and_probes_reach_it() {
    let desired = desired();
    let api = container(&desired, "api");
    let (cli, _) = parsed::<cdcstar_api::config::Cli>(api);
    assert!(matches!(
        cli.command,
        Some(cdcstar_api::config::Command::Serve)
    ));
    let listens = BTreeSet::from([
        i32::from(cli.server.port),
        i32::from(cli.server.metrics_port),
    ]);
    let named = named_ports(api);
    assert!(named.is_subset(&listens), "{named:?} vs {listens:?}");
    let service = desired.services.first().expect("the api Service");
    for port in service.spec.as_ref().unwrap().ports.iter().flatten() {
        let target = match &port.target_port {
            Some(IntOrString::Int(port)) => *port,
            Some(IntOrString::String(name)) => api
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port)
                .unwrap_or_else(|| panic!("service targets undeclared port {name}")),
            None => port.port,
        };
        assert!(
            listens.contains(&target),
            "service port {target} not served"
        );
    }
}

#[test]
fn an_env_var_no_binary_reads_is_caught() {
    let desired = desired();
    let mut sink = container(&desired, "sink").clone();
    sink.env.get_or_insert_default().push(EnvVar {
        name: "METRICS_PORT".into(),
        value: Some("9090".into()),
        value_from: None,
    });
    let result =
        std::panic::catch_unwind(|| command_line(&sink, &cdcstar_sink::settings::Args::command()));
    assert!(result.is_err(), "METRICS_PORT is not a setting of the sink");
}

#[test]
fn the_verifier_runs_read_every_setting_they_are_given() {
    use cdcstar_crds::pipeline::VerifySpec;
    use cdcstar_crds::verification::RESYNC_ANNOTATION;
    use cdcstar_sink::verify::settings::VerifyArgs;
    let mut pipeline = pipeline_with_every_reference();
    pipeline.spec.verify = Some(VerifySpec {
        schedule: "@hourly".into(),
        repair: true,
        chunk_rows: Some(5000),
        resources: None,
    });
    pipeline.metadata.annotations = Some(
        [(
            RESYNC_ANNOTATION.to_owned(),
            "customer_dim,order_fact".to_owned(),
        )]
        .into_iter()
        .collect(),
    );
    let desired = build::build(&pipeline, &OperatorConfig::default(), Default::default()).unwrap();
    let scheduled = &desired.cron_jobs[0]
        .spec
        .job_template
        .spec
        .as_ref()
        .unwrap()
        .template;
    let resync = &desired.jobs[0].spec.as_ref().unwrap().template;
    let mut verifiers = Vec::new();
    for template in [scheduled, resync] {
        let mut container = template.spec.as_ref().unwrap().containers[0].clone();
        assert_eq!(
            container.command.as_deref(),
            Some(&["cdcstar-sink".to_owned()][..])
        );
        // `cdcstar-sink verify ARGS` is `VerifyArgs` over ARGS (sink/src/main.rs).
        let args = container.args.take().unwrap();
        assert_eq!(args[0], "verify", "{args:?}");
        container.args = Some(args[1..].to_vec());
        verifiers.push(parsed::<VerifyArgs>(&container).0);
    }
    let (scheduled, resync) = (&verifiers[0], &verifiers[1]);
    assert!(scheduled.repair && !scheduled.resync);
    assert_eq!(scheduled.chunk_rows, 5000);
    assert!(scheduled.tables.is_empty());
    assert!(resync.resync);
    assert_eq!(resync.tables, ["customer_dim", "order_fact"]);
    for args in &verifiers {
        assert!(
            args.mask_salt.is_some(),
            "hashed columns are compared as hashed"
        );
        assert!(args.services.kafka_auth_dir.is_some() || !args.repair && !args.resync);
    }
}
