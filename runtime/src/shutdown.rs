//! Graceful shutdown: every binary stops on SIGTERM (what Kubernetes sends) and SIGINT (Ctrl-C), logs
//! which one it got, and then finishes its work in flight its own way.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The handlers for both signals, installed at once so a signal arriving early is not lost.
#[derive(Debug)]
pub struct ShutdownSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl ShutdownSignals {
    /// Installs the handlers (call inside the runtime, before the work starts).
    pub fn install() -> std::io::Result<Self> {
        Ok(ShutdownSignals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the first of the two signals, logs it, and returns its name.
    pub async fn requested(mut self) -> &'static str {
        let name = tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        };
        tracing::info!(
            signal = name,
            "shutdown requested: finishing the work in flight"
        );
        name
    }
}
