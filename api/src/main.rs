//! `cdcstar-api`: parses the command line and runs the chosen command (see `cdcstar_api::config`).

use std::io::Write;

use anyhow::Context;
use cdcstar_api::config::{Cli, Command};
use cdcstar_api::{db, docs, server, telemetry};
use clap::Parser;

/// mimalloc rather than the system allocator: the API allocates many small, short-lived buffers per
/// request (headers, rows, JSON), where glibc's malloc cost ~8 % of the API's CPU under `make bench-api`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cdcstar_runtime::logging::init(cli.log_format, telemetry::DEFAULT_FILTER)?;
    match cli.command.clone().unwrap_or(Command::Serve) {
        Command::Serve => server::run(&cli.database, &cli.server, &cli.clickhouse).await?,
        Command::InitDb { drop } => {
            let report = db::init_db(&cli.database.database_url, drop)
                .await
                .context("init-db failed")?;
            print_out(&report.to_string())?;
        }
        Command::Openapi => {
            let json = docs::openapi_json().context("failed to render the openapi document")?;
            print_out(&json)?;
        }
    }
    Ok(())
}

/// Writes to standard output, failing (not panicking) when it is closed.
fn print_out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("failed to write to standard output")
}
