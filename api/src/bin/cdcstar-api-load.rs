//! `cdcstar-api-load`: runs the benchmark mix against a running API and prints its figures (see
//! `cdcstar_api::loadgen`). Exits 1 when any request failed.

use cdcstar_api::loadgen::{self, LoadArgs};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = LoadArgs::parse();
    eprintln!(
        "seeding {} rows of each kind, then {} connections for {:?} (+{:?} warm-up) against {}",
        args.seed_rows, args.connections, args.duration, args.warmup, args.api_url
    );
    let report = loadgen::run(&args).await?;
    print!("{report}");
    if report.errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}
