//! The command line of `cdcstar-operator`: `run` (the default: the controller), `crd` (print the
//! CustomResourceDefinition) and `plan FILE` (print what a pipeline would cause, touching nothing).
//! Every setting of `run` is a flag with an environment fallback (the Helm chart sets the env).

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

use crate::config::{DefaultImages, OperatorConfig};
use crate::leader::LeaseTiming;
use crate::telemetry::LogFormat;

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
}

/// Settings of the controller.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Port of `/metrics`, `/health` and `/ready`.
    #[arg(long, env, default_value_t = 9090, global = true)]
    pub metrics_port: u16,
    /// Log format.
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
