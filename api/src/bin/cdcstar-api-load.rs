//! `cdcstar-api-load`: runs the benchmark mix against a running API and prints its figures (see
//! `cdcstar_api::loadgen`). Exits 1 when any request failed.

use anyhow::Context;
use cdcstar_api::loadgen::{self, LoadArgs};
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = LoadArgs::parse();
    // NB: one thread by default (`--threads`): the generator shares the machine's cores with the
    // API and Postgres, and a current-thread runtime is its cheapest way to drive the connections.
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .context("failed to start the async runtime")?;
    eprintln!(
        "seeding {} rows of each kind, then {} connections for {:?} (+{:?} warm-up) against {}",
        args.seed_rows, args.connections, args.duration, args.warmup, args.api_url
    );
    let report = runtime.block_on(loadgen::run(&args))?;
    print!("{report}");
    if report.errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}
