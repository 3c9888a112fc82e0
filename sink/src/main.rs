//! `cdcstar-sink`: see the library docs and docs/sink.md.

use anyhow::Context as _;
use cdcstar_sink::settings::{Args, LogFormat};
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the system allocator: glibc's per-thread arenas (librdkafka's threads, the
/// runtime's workers) kept tens of MiB of freed batch memory resident.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(args.log_format);
    let (stop, shutdown) = watch::channel(false);
    let mut terminate = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("failed to listen for SIGINT")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: flushing and stopping"),
            _ = interrupt.recv() => tracing::info!("SIGINT: flushing and stopping"),
        }
        let _ = stop.send(true);
    });
    cdcstar_sink::run(args, shutdown)
        .await
        .context("cdcstar-sink failed")
}
