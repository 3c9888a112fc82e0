//! The load generator behind `cdcstar-api-load`: seeds customers, products and orders through the
//! API, then runs a fixed mix (by default 70 % GET by id, 20 % list with `limit=50`, 10 % POST of an
//! order with 3 items) from N concurrent keep-alive connections for a fixed time, and reports
//! requests/s, latency percentiles, errors and the API process's peak RSS (`VmHWM`).

use std::fmt;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

use crate::config::parse_duration;

/// Load generator settings.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "cdcstar-api-load",
    version,
    about = "Load generator for cdcstar-api"
)]
pub struct LoadArgs {
    /// Base URL of the running API.
    #[arg(long, env = "LOAD_API_URL", default_value = "http://127.0.0.1:3002")]
    pub api_url: String,
    /// Concurrent connections (one request in flight on each).
    #[arg(long, env = "LOAD_CONNECTIONS", default_value_t = 64)]
    pub connections: usize,
    /// Measured run time (e.g. `30s`).
    #[arg(long, env = "LOAD_DURATION", default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured warm-up before the measured run.
    #[arg(long, env = "LOAD_WARMUP", default_value = "3s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Percentage of GET by id requests (customer, product or order, evenly).
    #[arg(long, env = "LOAD_GET_PERCENT", default_value_t = 70)]
    pub get_percent: u32,
    /// Percentage of list requests with `limit=50` (customers, products or orders, evenly); the
    /// rest are POSTs of an order with 3 items.
    #[arg(long, env = "LOAD_LIST_PERCENT", default_value_t = 20)]
    pub list_percent: u32,
    /// Rows of each kind (customers, products, orders) created before the run.
    #[arg(long, env = "LOAD_SEED_ROWS", default_value_t = 200)]
    pub seed_rows: usize,
    /// PID of the API process, to report its peak RSS.
    #[arg(long, env = "LOAD_API_PID")]
    pub api_pid: Option<u32>,
}

/// A load run failure (seeding or client setup; request errors are counted, not raised).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The HTTP client could not be built.
    #[error("failed to build the http client")]
    Client(#[source] reqwest::Error),
    /// Seeding data failed.
    #[error("failed to seed {what}: {message}")]
    Seed {
        /// What was being created.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
    /// The mix percentages do not add up.
    #[error("get_percent + list_percent must be at most 100, got {0}")]
    Mix(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    List,
    Post,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Get, Kind::List, Kind::Post];

    fn label(self) -> &'static str {
        match self {
            Kind::Get => "GET by id",
            Kind::List => "list limit 50",
            Kind::Post => "POST order + 3 items",
        }
    }
}

/// Latencies (µs) and errors of one kind of request.
#[derive(Debug, Default, Clone)]
struct Samples {
    latencies_us: Vec<u32>,
    errors: u64,
}

/// The figures of a run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Connections used.
    pub connections: usize,
    /// Measured time.
    pub elapsed: Duration,
    /// Requests answered during the measured time.
    pub requests: u64,
    /// Non-2xx answers and transport errors.
    pub errors: u64,
    /// Requests per second.
    pub rate: f64,
    /// Latency percentiles over all requests: p50, p90, p99, max.
    pub latency: Percentiles,
    /// Per kind: label, count, errors, percentiles.
    pub per_kind: Vec<(&'static str, u64, u64, Percentiles)>,
    /// Peak and current RSS of the API process in KiB, when its PID was given.
    pub api_memory_kib: Option<(u64, u64)>,
    /// CPU time (user + system) the API process used during the measured run.
    pub api_cpu_seconds: Option<f64>,
    /// The first few distinct errors.
    pub sample_errors: Vec<String>,
}

/// Latency percentiles.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl Percentiles {
    fn of(sorted_us: &[u32]) -> Self {
        let at = |q: f64| {
            if sorted_us.is_empty() {
                return Duration::ZERO;
            }
            let index =
                ((sorted_us.len() as f64 * q).ceil() as usize).clamp(1, sorted_us.len()) - 1;
            Duration::from_micros(u64::from(sorted_us[index]))
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "connections: {}, measured: {:.1} s",
            self.connections,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(f, "requests: {}, errors: {}", self.requests, self.errors)?;
        writeln!(f, "throughput: {:.0} req/s", self.rate)?;
        writeln!(
            f,
            "latency: p50 {}, p90 {}, p99 {}, max {}",
            ms(self.latency.p50),
            ms(self.latency.p90),
            ms(self.latency.p99),
            ms(self.latency.max)
        )?;
        for (label, count, errors, p) in &self.per_kind {
            writeln!(
                f,
                "  {label:<22} {count:>8} req, {errors} errors, p50 {}, p99 {}",
                ms(p.p50),
                ms(p.p99)
            )?;
        }
        match self.api_memory_kib {
            Some((peak, current)) => writeln!(
                f,
                "api peak RSS (VmHWM): {:.1} MiB (current VmRSS {:.1} MiB)",
                peak as f64 / 1024.0,
                current as f64 / 1024.0
            )?,
            None => writeln!(f, "api peak RSS: unknown (pass --api-pid)")?,
        }
        if let Some(cpu) = self.api_cpu_seconds {
            let per_request_us = cpu * 1e6 / self.requests.max(1) as f64;
            writeln!(
                f,
                "api CPU: {cpu:.1} s over the run ({:.0} % of one core), {per_request_us:.0} µs per request",
                cpu * 100.0 / self.elapsed.as_secs_f64()
            )?;
        }
        for error in &self.sample_errors {
            writeln!(f, "error: {error}")?;
        }
        Ok(())
    }
}

/// Seeded ids the run picks from.
#[derive(Debug, Clone, Default)]
struct Seeded {
    customers: Vec<i64>,
    products: Vec<i64>,
    orders: Vec<i64>,
}

/// A small xorshift generator: good enough to pick requests, no dependency.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

async fn post_id(
    client: &reqwest::Client,
    url: String,
    body: Value,
    what: &'static str,
) -> Result<i64, LoadError> {
    let seed_error = |message: String| LoadError::Seed { what, message };
    let response = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|err| seed_error(err.to_string()))?;
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .map_err(|err| seed_error(err.to_string()))?;
    if !status.is_success() {
        return Err(seed_error(format!("status {status}: {answer}")));
    }
    answer["data"]["id"]
        .as_i64()
        .ok_or_else(|| seed_error(format!("no data.id in {answer}")))
}

fn order_body(rng: &mut Rng, seeded: &Seeded) -> Value {
    let items: Vec<Value> = (0..3)
        .map(|_| {
            json!({
                "productId": rng.pick(&seeded.products),
                "quantity": 1 + rng.below(5),
                "price": 9.99,
            })
        })
        .collect();
    json!({
        "customerId": rng.pick(&seeded.customers),
        "status": "pending",
        "total": 29.97,
        "items": items,
    })
}

async fn seed(client: &reqwest::Client, base: &str, rows: usize) -> Result<Seeded, LoadError> {
    let run = std::process::id();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut seeded = Seeded::default();
    for i in 0..rows {
        let customer = json!({
            "email": format!("load-{run}-{started}-{i}@example.com"),
            "name": format!("Load Customer {i}"),
            "country": "France",
            "city": "Lyon",
        });
        seeded.customers.push(
            post_id(
                client,
                format!("{base}/api/customers"),
                customer,
                "customers",
            )
            .await?,
        );
        let product =
            json!({"name": format!("Load Product {i}"), "category": "Load", "price": 9.99});
        seeded
            .products
            .push(post_id(client, format!("{base}/api/products"), product, "products").await?);
    }
    let mut rng = Rng::new(7);
    for _ in 0..rows {
        let body = order_body(&mut rng, &seeded);
        seeded
            .orders
            .push(post_id(client, format!("{base}/api/orders"), body, "orders").await?);
    }
    Ok(seeded)
}

const RESOURCES: [&str; 3] = ["customers", "products", "orders"];

/// Runs the load and reports its figures.
pub async fn run(args: &LoadArgs) -> Result<LoadReport, LoadError> {
    if args.get_percent + args.list_percent > 100 {
        return Err(LoadError::Mix(args.get_percent + args.list_percent));
    }
    let base = args.api_url.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(LoadError::Client)?;
    let seeded = std::sync::Arc::new(seed(&client, &base, args.seed_rows.max(1)).await?);

    let measure_from = Instant::now() + args.warmup;
    let until = measure_from + args.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..args.connections {
        let client = client.clone();
        let seeded = seeded.clone();
        let base = base.clone();
        let (get_percent, list_percent) = (args.get_percent as usize, args.list_percent as usize);
        tasks.spawn(async move {
            let mut rng = Rng::new(worker as u64 + 1);
            let mut samples: [Samples; 3] = Default::default();
            let mut errors = Vec::new();
            let list_offsets = seeded.customers.len().saturating_sub(50).max(1);
            loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let roll = rng.below(100);
                let resource = RESOURCES[rng.below(3)];
                let (kind, request) = if roll < get_percent {
                    let id = match resource {
                        "customers" => rng.pick(&seeded.customers),
                        "products" => rng.pick(&seeded.products),
                        _ => rng.pick(&seeded.orders),
                    };
                    (Kind::Get, client.get(format!("{base}/api/{resource}/{id}")))
                } else if roll < get_percent + list_percent {
                    let offset = rng.below(list_offsets);
                    let url = format!("{base}/api/{resource}?limit=50&offset={offset}");
                    (Kind::List, client.get(url))
                } else {
                    let body = order_body(&mut rng, &seeded);
                    (
                        Kind::Post,
                        client.post(format!("{base}/api/orders")).json(&body),
                    )
                };
                let started = Instant::now();
                let outcome = match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        match response.bytes().await {
                            Ok(_) if status.is_success() => Ok(()),
                            Ok(body) => Err(format!(
                                "{} answered {status}: {}",
                                kind.label(),
                                String::from_utf8_lossy(&body)
                            )),
                            Err(err) => Err(format!("{}: {err}", kind.label())),
                        }
                    }
                    Err(err) => Err(format!("{}: {err}", kind.label())),
                };
                if started < measure_from {
                    continue;
                }
                let sample = &mut samples[kind as usize];
                let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
                sample.latencies_us.push(micros);
                if let Err(error) = outcome {
                    sample.errors += 1;
                    if errors.len() < 3 {
                        errors.push(error);
                    }
                }
            }
            (samples, errors)
        });
    }

    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_at_start = args.api_pid.and_then(read_cpu_seconds);

    let mut merged: [Samples; 3] = Default::default();
    let mut sample_errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((samples, errors)) = joined else {
            sample_errors.push("a load task panicked".to_owned());
            continue;
        };
        for (total, part) in merged.iter_mut().zip(samples) {
            total.latencies_us.extend(part.latencies_us);
            total.errors += part.errors;
        }
        for error in errors {
            if sample_errors.len() < 5 && !sample_errors.contains(&error) {
                sample_errors.push(error);
            }
        }
    }
    let api_cpu_seconds = match (cpu_at_start, args.api_pid.and_then(read_cpu_seconds)) {
        (Some(start), Some(end)) => Some(end - start),
        _ => None,
    };
    let elapsed = args.duration;
    let mut all: Vec<u32> = Vec::new();
    let mut per_kind = Vec::new();
    for kind in Kind::ALL {
        let samples = &mut merged[kind as usize];
        samples.latencies_us.sort_unstable();
        per_kind.push((
            kind.label(),
            samples.latencies_us.len() as u64,
            samples.errors,
            Percentiles::of(&samples.latencies_us),
        ));
        all.extend_from_slice(&samples.latencies_us);
    }
    all.sort_unstable();
    let requests = all.len() as u64;
    Ok(LoadReport {
        connections: args.connections,
        elapsed,
        requests,
        errors: merged.iter().map(|s| s.errors).sum(),
        rate: requests as f64 / elapsed.as_secs_f64(),
        latency: Percentiles::of(&all),
        per_kind,
        api_memory_kib: args.api_pid.and_then(read_memory_kib),
        api_cpu_seconds,
        sample_errors,
    })
}

/// `(VmHWM, VmRSS)` of a process, in KiB, from `/proc/<pid>/status`.
pub fn read_memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// User + system CPU seconds of a process, from `/proc/<pid>/stat` (in USER_HZ = 100 ticks).
pub fn read_cpu_seconds(pid: u32) -> Option<f64> {
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // NB: the command name (field 2) may contain spaces; fields after its closing parenthesis
    // start at field 3, so utime and stime (fields 14 and 15) are at offsets 11 and 12.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let data: Vec<u32> = (1..=100).collect();
        let p = Percentiles::of(&data);
        assert_eq!(p.p50, Duration::from_micros(50));
        assert_eq!(p.p99, Duration::from_micros(99));
        assert_eq!(p.max, Duration::from_micros(100));
        assert_eq!(Percentiles::of(&[]).p50, Duration::ZERO);
    }

    #[test]
    fn own_memory_and_cpu_are_readable() {
        let (peak, current) = read_memory_kib(std::process::id()).unwrap();
        assert!(peak >= current && current > 0);
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(0_u64);
        }
        assert!(read_cpu_seconds(std::process::id()).unwrap() > 0.0);
    }
}
