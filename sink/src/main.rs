//! `cdcstar-sink`: see the library docs and docs/sink.md.

use anyhow::Context as _;
use cdcstar_runtime::logging;
use cdcstar_runtime::shutdown::ShutdownSignals;
use cdcstar_sink::settings::Args;
use cdcstar_sink::verify::settings::{OutputFormat, VerifyArgs};
use clap::Parser;
use tokio::sync::watch;

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    return_freed_memory_promptly();
    if std::env::args_os().nth(1).is_some_and(|a| a == "verify") {
        verify().await;
    }
    let args = Args::parse();
    logging::init(args.log_format, "info")?;
    let (stop, shutdown) = watch::channel(false);
    let signals = ShutdownSignals::install().context("failed to listen for SIGTERM and SIGINT")?;
    signals.spawn_then(move || {
        let _ = stop.send(true);
    });
    cdcstar_sink::run(args, shutdown)
        .await
        .context("cdcstar-sink failed")
}

/// `cdcstar-sink verify ...`: prints the report and exits 0 when no mismatch remains, 1 when some
/// do, 2 when verification could not run.
async fn verify() -> ! {
    let args = VerifyArgs::parse_from(
        std::iter::once(std::ffi::OsString::from("cdcstar-sink verify"))
            .chain(std::env::args_os().skip(2)),
    );
    if let Err(error) = logging::init(args.log_format, "info") {
        eprintln!("{error}");
        std::process::exit(2);
    }
    let output = args.output;
    match cdcstar_sink::verify::run(args).await {
        Ok(report) => {
            match output {
                OutputFormat::Text => print!("{}", report.text()),
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("a report serialises")
                ),
            }
            std::process::exit(if report.remaining_mismatches() == 0 {
                0
            } else {
                1
            });
        }
        Err(error) => {
            eprintln!("cdcstar-sink verify failed: {error}");
            std::process::exit(2);
        }
    }
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
