//! Graceful shutdown: every binary stops on SIGTERM (what Kubernetes sends) and SIGINT (Ctrl-C), logs
//! which one it got, and then finishes its work in flight its own way: the signal raises the binary's
//! own stop (a cancellation token, a `watch` flag), and [`raised`] is the future a `watch` flag's
//! readers wait on.

use std::future::Future;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;

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

    /// Spawns the wait for the first signal ([`requested`](Self::requested)), which then calls `stop`.
    pub fn spawn_then(self, stop: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
        tokio::spawn(async move {
            self.requested().await;
            stop();
        })
    }
}

/// Resolves once `flag` is true, or once its sender is gone. `Send + Sync + 'static`, which kube's
/// `graceful_shutdown_on` requires (hence no `async fn`).
#[allow(clippy::manual_async_fn)]
pub fn raised(mut flag: watch::Receiver<bool>) -> impl Future<Output = ()> + Send + Sync + 'static {
    async move {
        let _ = flag.wait_for(|raised| *raised).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn raised_waits_for_the_flag_or_its_sender_gone() {
        let (raise, flag) = watch::channel(false);
        let waiting = tokio::spawn(raised(flag.clone()));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        raise.send(true).unwrap();
        waiting.await.unwrap();
        drop(raise);
        let (dropped, flag) = watch::channel(false);
        drop(dropped);
        raised(flag).await;
    }
}
