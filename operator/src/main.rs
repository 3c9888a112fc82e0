//! `cdcstar-operator`: see the library for everything; this only parses the command line.

use std::process::ExitCode;

use anyhow::Context as _;
use cdcstar_crds::CdcPipeline;
use cdcstar_operator::cli::{Cli, Command, DatabaseArgs, RunArgs, crd_yaml, plan_input};
use cdcstar_operator::provision::{self, SecretValues};
use cdcstar_operator::{app, plan, telemetry};
use clap::Parser;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // NB: `{:#}` prints each cause of the chain once, and no backtrace: an error returned here
            // is the user's (a bad file, an unreachable cluster); a bug panics, and a panic keeps its
            // backtrace under RUST_BACKTRACE.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            cdcstar_runtime::logging::init(cli.run.log_format, telemetry::DEFAULT_FILTER)?;
            block_on(app::run(cli.run))??;
        }
        Command::Crd => print!("{}", crd_yaml()),
        Command::Plan {
            file,
            manifests_only,
        } => {
            let yaml =
                plan_input(&file).with_context(|| format!("failed to read {}", file.display()))?;
            let plan = plan::plan_yaml(&yaml, &cli.run.operator_config())
                .with_context(|| format!("no plan for {}", file.display()))?;
            let text = if manifests_only {
                plan.manifests_yaml()
            } else {
                plan.render()
            }
            .context("failed to render the plan")?;
            print!("{text}");
        }
        Command::Provision(args) => {
            let (pipeline, secrets) = database_phase_input(&args, &cli.run)?;
            let lines = block_on(provision::provision(&pipeline, &secrets))?
                .context("provisioning failed")?;
            if lines.is_empty() {
                println!("provision: everything was in place");
            }
            for line in lines {
                println!("provision: {line}");
            }
        }
        Command::Deprovision(args) => {
            let (pipeline, secrets) = database_phase_input(&args, &cli.run)?;
            let note = block_on(provision::deprovision(&pipeline, &secrets))?
                .context("deprovisioning failed")?;
            println!("deprovision: {note}");
        }
    }
    Ok(())
}

/// The pipeline, validated as `plan` validates it, and the Secret values of a database phase.
fn database_phase_input(
    args: &DatabaseArgs,
    run: &RunArgs,
) -> anyhow::Result<(CdcPipeline, SecretValues)> {
    let yaml = plan_input(&args.file)
        .with_context(|| format!("failed to read {}", args.file.display()))?;
    let plan = plan::plan_yaml(&yaml, &run.operator_config())
        .with_context(|| format!("no plan for {}", args.file.display()))?;
    Ok((plan.pipeline, args.secret_values()))
}

fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    Ok(runtime.block_on(future))
}
