//! Load driver and probes of `scripts/bench-pipeline.sh` (see that script for the whole benchmark).
//!
//! - `latency`: commit → visible in ClickHouse FINAL at a fixed transaction rate, and where the time
//!   goes (see [`latency`]);
//! - `max-rate`: steps of increasing row-change rates (multi-row transactions on several sessions);
//!   per step, the capture's produced-event rate (from its metrics) against the written rate, and
//!   whether the capture's backlog grew.
//! - `seed`: fills `bench_snapshot` with N rows for the snapshot rate measurement;
//! - `broker-ceiling`, `broker-round-trip`: the broker's own share (see [`broker`]).

mod broker;
mod histogram;
mod http;
mod latency;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cdcstar_capture::producer::ProducerSettings;
use clap::{Parser, Subcommand};
use tokio_postgres::{Client, NoTls};

#[derive(Debug, Parser)]
#[command(name = "cdcstar-capture-bench")]
struct Cli {
    /// Source database.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    #[command(subcommand)]
    command: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Creates the benchmark tables (and empties them).
    Setup,
    /// Fixed-rate mixed load with commit → ClickHouse FINAL latency.
    Latency {
        /// Transactions per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Seconds of load.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// ClickHouse HTTP endpoint.
        #[arg(long, env = "CLICKHOUSE_URL")]
        clickhouse_url: String,
        /// ClickHouse database of the star schema.
        #[arg(long, default_value = "bench")]
        clickhouse_database: String,
        /// The capture's metrics URL (`http://host:port/metrics`).
        #[arg(long)]
        capture_metrics: String,
        /// The sink's metrics URL (`http://host:port/metrics`).
        #[arg(long)]
        sink_metrics: String,
    },
    /// The broker's produce ceiling with the capture's producer (no Postgres, no encoding).
    BrokerCeiling {
        /// Bootstrap brokers.
        #[arg(long, env = "KAFKA_BROKERS")]
        kafka_brokers: String,
        /// Events to produce.
        #[arg(long, default_value_t = 300_000)]
        messages: u64,
        /// The capture's producer settings (`--kafka-compression`, `--kafka-linger-ms`).
        #[command(flatten)]
        producer: ProducerSettings,
    },
    /// The broker's produce -> ack and produce -> consume latency at a fixed rate.
    BrokerRoundTrip {
        /// Bootstrap brokers.
        #[arg(long, env = "KAFKA_BROKERS")]
        kafka_brokers: String,
        /// Messages per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// How long to send at that rate, seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The capture's producer settings (`--kafka-compression`, `--kafka-linger-ms`).
        #[command(flatten)]
        producer: ProducerSettings,
    },
    /// Increasing row-change rates against the capture's produced-event rate.
    MaxRate {
        /// Row changes per second of each step.
        #[arg(long, value_delimiter = ',', default_value = "25000,50000,60000")]
        steps: Vec<u64>,
        /// Seconds per step.
        #[arg(long, default_value_t = 60)]
        step_seconds: u64,
        /// The capture's metrics URL (`http://host:port/metrics`).
        #[arg(long)]
        capture_metrics: String,
    },
    /// Fills `bench_snapshot` with `rows` rows.
    Seed {
        /// How many rows the table holds afterwards.
        #[arg(long, default_value_t = 5_000_000)]
        rows: i64,
    },
}

async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| "connect to the source database")?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Mode::Setup => setup(&cli.database_url).await,
        Mode::Latency {
            rate,
            seconds,
            clickhouse_url,
            clickhouse_database,
            capture_metrics,
            sink_metrics,
        } => {
            let endpoints = latency::Endpoints {
                clickhouse_url,
                clickhouse_database,
                capture_metrics,
                sink_metrics,
            };
            latency::run(&cli.database_url, rate, seconds, endpoints).await
        }
        Mode::BrokerCeiling {
            kafka_brokers,
            messages,
            producer,
        } => broker::ceiling(&kafka_brokers, messages, producer).await,
        Mode::BrokerRoundTrip {
            kafka_brokers,
            rate,
            seconds,
            producer,
        } => broker::round_trip(&kafka_brokers, rate, seconds, producer).await,
        Mode::MaxRate {
            steps,
            step_seconds,
            capture_metrics,
        } => max_rate(&cli.database_url, &steps, step_seconds, &capture_metrics).await,
        Mode::Seed { rows } => seed(&cli.database_url, rows).await,
    }
}

async fn setup(url: &str) -> Result<()> {
    let client = connect(url).await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_event (id int8 PRIMARY KEY, seq int8 NOT NULL, \
               note text NOT NULL, amount numeric(12,2) NOT NULL, at timestamp NOT NULL DEFAULT now());
             CREATE TABLE IF NOT EXISTS bench_snapshot (id int8 PRIMARY KEY, v int8 NOT NULL, \
               note text NOT NULL);",
        )
        .await?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn pace(next_at: Instant) {
    let now = Instant::now();
    if next_at > now {
        tokio::time::sleep(next_at - now).await;
    }
}

/// Sum of `cdcstar_capture_events_total` lines for `bench_event`.
async fn produced_events(metrics_url: &str) -> Result<f64> {
    let body = http::call("GET", metrics_url, "").await?;
    Ok(body
        .lines()
        .filter(|l| {
            l.starts_with("cdcstar_capture_events_total{") && l.contains("table=\"bench_event\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

async fn max_rate(url: &str, steps: &[u64], step_seconds: u64, metrics: &str) -> Result<()> {
    const SESSIONS: usize = 4;
    // NB: 200 rows a transaction lets four sessions write over 60 000 row changes/s on 2 cores
    // beside the capture, the sink and ClickHouse (with 50, the writers topped out near 49 000/s).
    const ROWS_PER_TX: u64 = 200;
    let mut clients = Vec::new();
    for _ in 0..SESSIONS {
        clients.push(Arc::new(connect(url).await?));
    }
    let base: i64 = clients[0]
        .query_one("SELECT coalesce(max(id), 0) + 1 FROM bench_event", &[])
        .await?
        .get(0);
    let next_id = Arc::new(AtomicI64::new(base + 1_000_000_000));
    let mut best = 0u64;
    for &rate in steps {
        let written = Arc::new(AtomicI64::new(0));
        let before = produced_events(metrics).await?;
        let began = Instant::now();
        let deadline = began + Duration::from_secs(step_seconds);
        let per_session = rate as f64 / SESSIONS as f64 / ROWS_PER_TX as f64;
        let mut tasks = Vec::new();
        for client in &clients {
            let client = Arc::clone(client);
            let written = Arc::clone(&written);
            let next_id = Arc::clone(&next_id);
            tasks.push(tokio::spawn(async move {
                let interval = Duration::from_secs_f64(1.0 / per_session);
                let mut next_at = Instant::now();
                while Instant::now() < deadline {
                    // Half inserts of new rows, half updates of the rows just inserted.
                    let first = next_id.fetch_add(ROWS_PER_TX as i64 / 2, Ordering::Relaxed);
                    let last = first + ROWS_PER_TX as i64 / 2 - 1;
                    client
                        .batch_execute(&format!(
                            "BEGIN; INSERT INTO bench_event (id, seq, note, amount) \
                             SELECT g, 0, 'bulk', 1 FROM generate_series({first}, {last}) g; \
                             UPDATE bench_event SET note = 'bulk2' WHERE id BETWEEN {first} AND {last}; COMMIT"
                        ))
                        .await?;
                    written.fetch_add(ROWS_PER_TX as i64, Ordering::Relaxed);
                    next_at += interval;
                    pace(next_at).await;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let elapsed = began.elapsed().as_secs_f64();
        let written = written.load(Ordering::Relaxed) as f64;
        // Give the capture one second to catch up with what was committed last.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let produced = produced_events(metrics).await? - before;
        let backlog = written - produced;
        let kept_up = backlog <= written / elapsed;
        println!(
            "rate step {rate:>6}/s: wrote {:.0} row changes/s, capture produced {:.0}/s, backlog after 1 s: {backlog:.0} ({})",
            written / elapsed,
            produced / (elapsed + 1.0),
            if kept_up { "kept up" } else { "falling behind" }
        );
        if kept_up {
            best = best.max((written / elapsed) as u64);
        } else {
            break;
        }
        // Let any backlog drain before the next step.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    println!(
        "max sustained capture rate: {best} row changes/s (4 writer sessions, {ROWS_PER_TX} rows per transaction)"
    );
    Ok(())
}

async fn seed(url: &str, rows: i64) -> Result<()> {
    let client = connect(url).await?;
    let have: i64 = client
        .query_one("SELECT count(*) FROM bench_snapshot", &[])
        .await?
        .get(0);
    if have == rows {
        println!("bench_snapshot already holds {rows} rows");
        return Ok(());
    }
    let began = Instant::now();
    client
        .batch_execute(&format!(
            "TRUNCATE bench_snapshot; INSERT INTO bench_snapshot \
             SELECT g, g * 7, 'row ' || g FROM generate_series(1, {rows}) g; ANALYZE bench_snapshot"
        ))
        .await?;
    println!(
        "seeded bench_snapshot with {rows} rows in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}
