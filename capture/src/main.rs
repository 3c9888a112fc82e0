//! `cdcstar-capture`: see the library documentation.

use anyhow::Context;
use cdcstar_capture::settings::CaptureArgs;
use cdcstar_runtime::logging;
use cdcstar_runtime::shutdown::ShutdownSignals;
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = CaptureArgs::parse();
    logging::init(args.log_format, "info")?;
    let signals = ShutdownSignals::install().context("failed to listen for SIGTERM and SIGINT")?;
    let shutdown = CancellationToken::new();
    signals.spawn_then({
        let shutdown = shutdown.clone();
        move || shutdown.cancel()
    });
    cdcstar_capture::app::run(args, shutdown)
        .await
        .context("capture failed")
}
