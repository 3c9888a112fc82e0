//! `cdcstar-sink`: see the library docs and docs/sink.md.

use anyhow::Context as _;
use cdcstar_runtime::logging;
use cdcstar_runtime::shutdown::ShutdownSignals;
use cdcstar_sink::settings::Args;
use cdcstar_sink::verify::settings::{OutputFormat, VerifyArgs};
use clap::Parser;
use tokio::sync::watch;

/// glibc's malloc with at most this many arenas. By default it makes up to eight per core, one per
/// thread that allocates while the others' are busy (the runtime's workers and blocking threads,
/// librdkafka's), and each keeps the freed memory of the batches built on its thread. On
/// `make bench-sink` (1 000 000 events, 20 000-event batches, runs alternating in one hour), the
/// sink's peak RSS was 59 MiB with two arenas against 77-84 MiB with mimalloc returning freed memory
/// at once, for the same throughput and CPU per event (docs/sink.md, "Batching and fetching").
const MALLOC_ARENAS: libc::c_int = 2;

/// Caps glibc's arenas, unless `MALLOC_ARENA_MAX` already chose (glibc reads it itself). Called
/// before any thread starts: a thread takes its arena at its first allocation. Answers whether glibc
/// accepted the cap.
fn limit_malloc_arenas() -> bool {
    std::env::var_os("MALLOC_ARENA_MAX").is_some() || cap_malloc_arenas()
}

/// Sets glibc's `M_ARENA_MAX` to [`MALLOC_ARENAS`]; answers whether glibc accepted it.
#[allow(unsafe_code)] // an FFI call into the C library
fn cap_malloc_arenas() -> bool {
    // SAFETY: mallopt only sets a parameter of the allocator; any value is valid for M_ARENA_MAX.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) == 1 }
}

fn main() -> anyhow::Result<()> {
    let arenas_limited = limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?
        .block_on(run(arenas_limited))
}

async fn run(arenas_limited: bool) -> anyhow::Result<()> {
    if std::env::args_os().nth(1).is_some_and(|a| a == "verify") {
        verify().await;
    }
    let args = Args::parse();
    logging::init(args.log_format, "info")?;
    if !arenas_limited {
        tracing::warn!(
            arenas = MALLOC_ARENAS,
            "the C library refused the malloc arena limit; memory may stay higher than documented"
        );
    }
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
    fn the_c_library_accepts_the_arena_limit() {
        // NB: the cap itself, not `limit_malloc_arenas`, which skips it when the environment chose.
        assert!(cap_malloc_arenas());
    }
}
