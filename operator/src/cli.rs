//! The command line of `cdcstar-operator`: `run` (the default: the controller), `crd` (print the
//! CustomResourceDefinition), `plan FILE` (print what a pipeline would cause, touching nothing), and
//! `provision FILE` / `deprovision FILE` (the database phases once, without Kubernetes).
//! Every setting of `run` is a flag with an environment fallback (the Helm chart sets the env).

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

use crate::config::{DefaultImages, DefaultResources, OperatorConfig, ResourcesJson};
use crate::external::{Sensitive, WarehouseCredentials};
use crate::leader::LeaseTiming;
use crate::provision::SecretValues;
pub use cdcstar_runtime::logging::LogFormat;

/// Kubernetes operator for CdcPipeline resources.
#[derive(Debug, Clone, Parser)]
#[command(name = "cdcstar-operator", version, about)]
pub struct Cli {
    /// What to do; `run` when absent.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of `run`.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the controller (the default).
    Run,
    /// Print the CdcPipeline CustomResourceDefinition (YAML).
    Crd,
    /// Print every SQL statement, DDL and Kubernetes manifest the operator would apply for a
    /// CdcPipeline file, without contacting anything.
    Plan {
        /// The CdcPipeline YAML file (`-` for standard input).
        file: PathBuf,
        /// Print only the Kubernetes manifests (a YAML stream for `kubectl apply --dry-run`).
        #[arg(long)]
        manifests_only: bool,
    },
    /// Run the reconcile's database phases once, without Kubernetes: create or update the
    /// publication, replica identities and slot in Postgres and the star tables in ClickHouse.
    Provision(DatabaseArgs),
    /// Run the finalizer's database cleanup once, without Kubernetes: drop the slot and the
    /// publication (and the star tables when `dropTablesOnDelete` is set).
    Deprovision(DatabaseArgs),
}

/// The pipeline and the Secret values the database phases need (the controller reads them from the
/// Secrets the pipeline references).
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// The CdcPipeline YAML file (`-` for standard input).
    pub file: PathBuf,
    /// The source DSN (the value of `spec.source.connectionSecretRef`).
    #[arg(long, env = "SOURCE_DSN", hide_env_values = true)]
    pub source_dsn: String,
    /// ClickHouse user (the `username` of `spec.clickhouse.credentialsSecretRef`).
    #[arg(long, env = "CLICKHOUSE_USER", requires = "clickhouse_password")]
    pub clickhouse_user: Option<String>,
    /// ClickHouse password.
    #[arg(
        long,
        env = "CLICKHOUSE_PASSWORD",
        hide_env_values = true,
        requires = "clickhouse_user"
    )]
    pub clickhouse_password: Option<String>,
}

impl DatabaseArgs {
    /// The values the controller would have read out of the Secrets.
    pub fn secret_values(&self) -> SecretValues {
        SecretValues {
            source_dsn: Sensitive::new(&self.source_dsn),
            warehouse_credentials: self
                .clickhouse_user
                .as_ref()
                .zip(self.clickhouse_password.as_ref())
                .map(|(user, password)| WarehouseCredentials {
                    username: Sensitive::new(user),
                    password: Sensitive::new(password),
                }),
        }
    }
}

/// Settings of the controller.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Port of `/metrics`, `/health` and `/ready`.
    #[arg(long, env, default_value_t = 9090, global = true)]
    pub metrics_port: u16,
    /// How log lines are written to standard error: text, or one JSON object per line.
    #[arg(long, env, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Namespace whose CdcPipelines are reconciled; empty for every namespace.
    #[arg(long, env, default_value = "", global = true)]
    pub watch_namespace: String,
    /// Image of the native capture when a pipeline does not set one.
    #[arg(long, env, default_value_t = DefaultImages::default().capture, global = true)]
    pub capture_image: String,
    /// Image of the sink when a pipeline does not set one.
    #[arg(long, env, default_value_t = DefaultImages::default().sink, global = true)]
    pub sink_image: String,
    /// Image of the api when a pipeline does not set one.
    #[arg(long, env, default_value_t = DefaultImages::default().api, global = true)]
    pub api_image: String,
    /// Compute resources (JSON) of the native capture when a pipeline does not set them.
    #[arg(long, env, default_value_t = ResourcesJson(DefaultResources::default().capture), global = true)]
    pub capture_resources: ResourcesJson,
    /// Compute resources (JSON) of the sink when a pipeline does not set them.
    #[arg(long, env, default_value_t = ResourcesJson(DefaultResources::default().sink), global = true)]
    pub sink_resources: ResourcesJson,
    /// Compute resources (JSON) of the api when a pipeline does not set them.
    #[arg(long, env, default_value_t = ResourcesJson(DefaultResources::default().api), global = true)]
    pub api_resources: ResourcesJson,
    /// Compute resources (JSON) of the verify and resync Jobs when a pipeline does not set them.
    #[arg(long, env, default_value_t = ResourcesJson(DefaultResources::default().verify), global = true)]
    pub verify_resources: ResourcesJson,
    /// Seconds between two checks of a healthy pipeline (refreshes the lag, repairs drift).
    #[arg(long, env, default_value_t = 60, global = true)]
    pub resync_seconds: u64,
    /// Elect a leader through a Lease so only one replica reconciles.
    #[arg(
        long, env, global = true,
        action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env, default_value = "cdcstar-operator-leader", global = true)]
    pub lease_name: String,
    /// Namespace of the Lease; defaults to the client's namespace (the pod's own).
    #[arg(long, env, global = true)]
    pub lease_namespace: Option<String>,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env, default_value_t = 15, global = true)]
    pub lease_duration_seconds: u64,
    /// This replica's identity in the Lease and in Events; defaults to the host name.
    #[arg(long, env, global = true)]
    pub pod_name: Option<String>,
}

impl RunArgs {
    /// The operator settings these flags describe.
    pub fn operator_config(&self) -> OperatorConfig {
        OperatorConfig {
            images: DefaultImages {
                capture: self.capture_image.clone(),
                sink: self.sink_image.clone(),
                api: self.api_image.clone(),
            },
            resources: DefaultResources {
                capture: self.capture_resources.0.clone(),
                sink: self.sink_resources.0.clone(),
                api: self.api_resources.0.clone(),
                verify: self.verify_resources.0.clone(),
            },
            resync_interval: std::time::Duration::from_secs(self.resync_seconds.max(1)),
        }
    }

    /// Lease timing: renew deadline at 2/3 of the duration, retries every 2 s (or faster for very
    /// short leases).
    pub fn lease_timing(&self) -> LeaseTiming {
        let duration = std::time::Duration::from_secs(self.lease_duration_seconds.max(3));
        LeaseTiming {
            lease_duration: duration,
            renew_deadline: duration * 2 / 3,
            retry_period: (duration / 5).min(std::time::Duration::from_secs(2)),
        }
    }
}

/// The CRD as YAML, from the Rust types: the same bytes as `crdgen` writes to
/// `crds/cdcpipeline.yaml`.
pub fn crd_yaml() -> String {
    cdcstar_crds::crd::crd_yaml()
}

/// Where `plan` reads from.
pub fn plan_input(file: &PathBuf) -> std::io::Result<String> {
    if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_is_the_default_and_flags_work_without_subcommand() {
        let cli = Cli::try_parse_from(["cdcstar-operator", "--metrics-port", "8081"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.metrics_port, 8081);
        let cli = Cli::try_parse_from([
            "cdcstar-operator",
            "run",
            "--leader-election",
            "false",
            "--sink-image",
            "sink:x",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Run)));
        assert!(!cli.run.leader_election);
        assert_eq!(cli.run.operator_config().images.sink, "sink:x");
    }

    #[test]
    fn component_resources_default_to_the_sizing_and_take_json() {
        let cli = Cli::try_parse_from(["cdcstar-operator"]).unwrap();
        assert_eq!(
            cli.run.operator_config().resources,
            crate::config::DefaultResources::default()
        );
        let cli = Cli::try_parse_from([
            "cdcstar-operator",
            "--sink-resources",
            r#"{"requests": {"cpu": "2", "memory": "1Gi"}}"#,
        ])
        .unwrap();
        let sink = cli.run.operator_config().resources.sink;
        assert_eq!(sink.requests.unwrap()["cpu"].0, "2");
        assert!(sink.limits.is_none());
        let refused = Cli::try_parse_from(["cdcstar-operator", "--capture-resources", "cpu=1"])
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("expected a resources object as JSON"),
            "{refused}"
        );
    }

    #[test]
    fn crd_subcommand_prints_the_committed_crd() {
        let committed = include_str!("../../crds/cdcpipeline.yaml");
        assert_eq!(crd_yaml(), committed);
    }

    #[test]
    fn plan_takes_a_file() {
        let cli = Cli::try_parse_from(["cdcstar-operator", "plan", "p.yaml"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Plan {
                manifests_only: false,
                ..
            })
        ));
    }
}
