//! Load driver and probes of `scripts/bench-pipeline.sh` (see that script for the whole benchmark).
//!
//! - `latency`: mixed inserts/updates/deletes at a fixed transaction rate into `bench_event`; every
//!   insert and update stamps the row with a global sequence number. A poller asks ClickHouse for the
//!   newest sequence visible (`max(seq) ... FINAL`) and matches it with the commit time of that
//!   sequence: commit → visible latency, reported as p50/p95/p99.
//! - `max-rate`: steps of increasing row-change rates (multi-row transactions on several sessions);
//!   per step, the capture's produced-event rate (from its metrics) against the written rate, and
//!   whether the capture's backlog grew.
//! - `seed`: fills `bench_snapshot` with N rows for the snapshot rate measurement.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;
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
    },
    /// Increasing row-change rates against the capture's produced-event rate.
    MaxRate {
        /// Row changes per second of each step.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "2000,5000,10000,20000,40000"
        )]
        steps: Vec<u64>,
        /// Seconds per step.
        #[arg(long, default_value_t = 15)]
        step_seconds: u64,
        /// The capture's metrics URL (`http://host:port/metrics`).
        #[arg(long)]
        capture_metrics: String,
    },
    /// Fills `bench_snapshot` with `rows` rows.
    Seed {
        /// Rows.
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
        } => {
            latency(
                &cli.database_url,
                rate,
                seconds,
                &clickhouse_url,
                &clickhouse_database,
            )
            .await
        }
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

/// Sends `query` to ClickHouse over plain HTTP/1.0; returns the body.
async fn clickhouse(url: &str, database: &str, query: &str) -> Result<String> {
    let rest = url
        .strip_prefix("http://")
        .context("CLICKHOUSE_URL must be http://")?;
    let host = rest.trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let request = format!(
        "POST /?database={database} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n{query}",
        query.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!(
            "clickhouse answered {}: {body}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.trim().to_owned())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn latency(url: &str, rate: u64, seconds: u64, ch_url: &str, ch_db: &str) -> Result<()> {
    let client = connect(url).await?;
    let start_seq: i64 = client
        .query_one("SELECT coalesce(max(seq), 0) FROM bench_event", &[])
        .await?
        .get(0);
    let next_id: i64 = client
        .query_one("SELECT coalesce(max(id), 0) + 1 FROM bench_event", &[])
        .await?
        .get(0);
    // (seq, commit instant) of every insert/update, in commit order.
    let commits: Arc<Mutex<VecDeque<(i64, Instant)>>> = Arc::default();
    let done = Arc::new(AtomicI64::new(0));
    let poller = {
        let commits = Arc::clone(&commits);
        let done = Arc::clone(&done);
        let (ch_url, ch_db) = (ch_url.to_owned(), ch_db.to_owned());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0u32;
            loop {
                let visible =
                    match clickhouse(&ch_url, &ch_db, "SELECT max(seq) FROM bench_dim FINAL").await
                    {
                        Ok(text) => text.parse::<i64>().unwrap_or(0),
                        Err(err) => {
                            errors += 1;
                            if errors % 20 == 1 {
                                eprintln!("clickhouse probe failed: {err:#}");
                            }
                            0
                        }
                    };
                let seen_at = Instant::now();
                let mut commits = commits.lock().await;
                while commits.front().is_some_and(|(seq, _)| *seq <= visible) {
                    let (_, at) = commits.pop_front().expect("front exists");
                    samples.push(seen_at.duration_since(at).as_secs_f64() * 1000.0);
                }
                let finished = done.load(Ordering::Acquire);
                if finished != 0 && (commits.is_empty() || visible >= finished) {
                    return (samples, commits.len());
                }
                drop(commits);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let began = Instant::now();
    let mut seq = start_seq;
    let mut id = next_id;
    let mut live: Vec<i64> = Vec::new();
    let mut transactions = 0u64;
    let (mut inserts, mut updates, mut deletes) = (0u64, 0u64, 0u64);
    let deadline = began + Duration::from_secs(seconds);
    let mut next_at = began;
    while Instant::now() < deadline {
        seq += 1;
        let pick = seq % 10;
        if pick < 5 || live.len() < 100 {
            client
                .execute(
                    "INSERT INTO bench_event (id, seq, note, amount) VALUES ($1, $2, 'new', 12.5)",
                    &[&id, &seq],
                )
                .await?;
            live.push(id);
            id += 1;
            inserts += 1;
        } else if pick < 9 {
            let target = live[(seq as usize * 7919) % live.len()];
            client
                .execute(
                    "UPDATE bench_event SET seq = $2, note = 'updated' WHERE id = $1",
                    &[&target, &seq],
                )
                .await?;
            updates += 1;
        } else {
            let index = (seq as usize * 104_729) % live.len();
            let target = live.swap_remove(index);
            client
                .execute("DELETE FROM bench_event WHERE id = $1", &[&target])
                .await?;
            deletes += 1;
            transactions += 1;
            next_at += interval;
            pace(next_at).await;
            continue;
        }
        commits.lock().await.push_back((seq, Instant::now()));
        transactions += 1;
        next_at += interval;
        pace(next_at).await;
    }
    let elapsed = began.elapsed().as_secs_f64();
    // The newest stamped sequence: the poller ends once it is visible (or the backlog drains).
    let last_stamped = commits.lock().await.back().map(|(s, _)| *s).unwrap_or(seq);
    done.store(last_stamped.max(1), Ordering::Release);
    let drain_started = Instant::now();
    let (mut samples, left) = tokio::time::timeout(Duration::from_secs(120), poller)
        .await
        .context("changes still not visible 120 s after the load ended")??;
    samples.sort_by(f64::total_cmp);
    println!(
        "latency load: {transactions} transactions in {elapsed:.1} s = {:.0} tx/s \
         ({inserts} inserts, {updates} updates, {deletes} deletes)",
        transactions as f64 / elapsed
    );
    println!(
        "commit -> visible in ClickHouse FINAL over {} changes: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.95),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "backlog after the load: drained in {:.1} s, {left} changes never seen",
        drain_started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn pace(next_at: Instant) {
    let now = Instant::now();
    if next_at > now {
        tokio::time::sleep(next_at - now).await;
    }
}

/// Sum of `cdcstar_capture_events_total` lines for `bench_event`.
async fn produced_events(metrics_url: &str) -> Result<f64> {
    let rest = metrics_url
        .strip_prefix("http://")
        .context("metrics URL must be http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    stream
        .write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
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
    const ROWS_PER_TX: u64 = 50;
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
