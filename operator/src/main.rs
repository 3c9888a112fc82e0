//! `cdcstar-operator`: see the library for everything; this only parses the command line.

use std::process::ExitCode;

use anyhow::Context as _;
use cdcstar_operator::cli::{Cli, Command, crd_yaml, plan_input};
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
            telemetry::init(cli.run.log_format);
            let runtime =
                tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
            runtime.block_on(app::run(cli.run))?;
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
    }
    Ok(())
}
