//! `cdcstar-sink`: see the library docs and docs/sink.md.

use std::io::IsTerminal;

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

/// `mi_option_purge_delay` in the `mi_option_e` enum of mimalloc v3's `mimalloc.h` (the version
/// `libmimalloc-sys` builds by default; its Rust bindings do not name this option).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc v3 keeps freed memory resident for 1 s (10 s in its arenas) before returning it to the
/// OS; the memory of a flushed batch is then still counted while the next one is built. Purging at
/// once took ~30 MiB off the sink's peak RSS draining a backlog, for a few more `madvise` calls.
#[allow(unsafe_code)] // an FFI call; the safe `mimalloc` crate does not expose options
fn return_freed_memory_promptly() {
    // SAFETY: mi_option_set only stores an option value; any value is valid for this option.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// Logs to standard error, coloured only on a terminal (and without `NO_COLOR`): a log file or a pod's
/// log stays plain text.
fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    return_freed_memory_promptly();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)] // reads the option back through the same FFI
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reading an option has no preconditions.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // mimalloc v3's documented default for purge_delay: the index names that option.
            assert_eq!(get(), 1000);
        }
        return_freed_memory_promptly();
        assert_eq!(get(), 0);
    }
}
