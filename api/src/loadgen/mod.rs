//! The load generator behind `cdcstar-api-load`: seeds customers, products and orders through the
//! API, then runs a fixed mix (by default 70 % GET by id, 20 % list with `limit=50`, 10 % POST of an
//! order with 3 items) from N concurrent keep-alive connections for a fixed time, and reports
//! requests/s, latency percentiles, errors, the API process's peak RSS (`VmHWM`) and where the
//! machine's CPU went (the API, Postgres, the generator itself, anything else).
//!
//! - [`connection`]: one HTTP/1.1 connection on hyper's client, no pool;
//! - [`mix`]: the requests of the mix, rendered once from the seeded ids;
//! - [`procfs`]: memory and CPU figures from `/proc`;
//! - [`report`]: the figures and how they print.
//!
//! Over 400 lines: seeding, the request mix, the connection loop and the report of one benchmark
//! run, read top to bottom.

pub mod connection;
pub mod mix;
pub mod procfs;
pub mod report;

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::{HeaderValue, Method, Uri};
use serde_json::{Value, json};

use self::connection::{Connection, ConnectionError, Target};
use self::mix::{Kind, Mix, Rng, Seeded, order_body};
use self::report::{CpuUse, KindReport, LoadReport, Percentiles};
use crate::config::parse_duration;

/// Load generator settings.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "cdcstar-api-load",
    version,
    about = "Load generator for cdcstar-api"
)]
pub struct LoadArgs {
    /// Base URL of the running API (`http://host:port`).
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
    /// PID of the API process, to report its peak RSS and CPU time.
    #[arg(long, env = "LOAD_API_PID")]
    pub api_pid: Option<u32>,
    /// Threads of the generator's runtime. One is plenty, and leaves the most CPU to the API and
    /// Postgres when they share the machine.
    #[arg(long, env = "LOAD_THREADS", default_value_t = 1)]
    pub threads: usize,
}

/// A load run failure (bad settings, seeding, or connecting; request errors are counted, not
/// raised).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The API URL is not `http://host[:port]` or does not resolve.
    #[error("invalid api url {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A request path could not be built.
    #[error("invalid request path {0}")]
    Path(String),
    /// The API could not be reached.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
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

/// The API's address and `Host` header from an `http://host[:port]` URL.
fn target_of(url: &str) -> Result<Target, LoadError> {
    let invalid = |reason: &str| LoadError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let authority = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// is supported"))?
        .trim_end_matches('/');
    if authority.contains('/') {
        return Err(invalid("no path expected after host:port"));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr: SocketAddr = with_port
        .to_socket_addrs()
        .map_err(|err| invalid(&err.to_string()))?
        .next()
        .ok_or_else(|| invalid("the host resolves to no address"))?;
    let host = HeaderValue::from_str(authority).map_err(|err| invalid(&err.to_string()))?;
    Ok(Target { addr, host })
}

/// POSTs `body` and answers the `data.id` of the created row.
async fn post_id(
    connection: &mut Connection,
    path: &str,
    body: &Value,
    what: &'static str,
) -> Result<i64, LoadError> {
    let seed_error = |message: String| LoadError::Seed { what, message };
    let uri = Uri::try_from(path).map_err(|err| LoadError::Path(format!("{path}: {err}")))?;
    let (status, bytes) = connection
        .send(Method::POST, uri, Some(Bytes::from(body.to_string())))
        .await
        .map_err(|err| seed_error(error_chain(&err)))?;
    let answer: Value =
        serde_json::from_slice(&bytes).map_err(|err| seed_error(err.to_string()))?;
    if !status.is_success() {
        return Err(seed_error(format!("status {status}: {answer}")));
    }
    answer["data"]["id"]
        .as_i64()
        .ok_or_else(|| seed_error(format!("no data.id in {answer}")))
}

async fn seed(target: &Target, rows: usize) -> Result<Seeded, LoadError> {
    let mut connection = Connection::open(target).await?;
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
        seeded
            .customers
            .push(post_id(&mut connection, "/api/customers", &customer, "customers").await?);
        let product =
            json!({"name": format!("Load Product {i}"), "category": "Load", "price": 9.99});
        seeded
            .products
            .push(post_id(&mut connection, "/api/products", &product, "products").await?);
    }
    let mut rng = Rng::new(7);
    for _ in 0..rows {
        let body = order_body(&mut rng, &seeded);
        seeded
            .orders
            .push(post_id(&mut connection, "/api/orders", &body, "orders").await?);
    }
    Ok(seeded)
}

/// An error with its causes, on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Latencies (µs) and errors of one kind of request.
#[derive(Debug, Default, Clone)]
struct Samples {
    latencies_us: Vec<u32>,
    errors: u64,
}

/// What one connection measured.
#[derive(Debug, Default)]
struct WorkerOutcome {
    samples: [Samples; 3],
    /// A connection that could not be (re)opened, which ended the worker.
    connect_failures: u64,
    errors: Vec<String>,
}

impl WorkerOutcome {
    fn record(&mut self, kind: Kind, started: Instant, outcome: Result<(), String>) {
        let sample = &mut self.samples[kind as usize];
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        sample.latencies_us.push(micros);
        if let Err(error) = outcome {
            sample.errors += 1;
            self.keep_error(error);
        }
    }

    fn connect_failed(&mut self, err: &ConnectionError) {
        self.connect_failures += 1;
        self.keep_error(error_chain(err));
    }

    fn keep_error(&mut self, error: String) {
        if self.errors.len() < 3 {
            self.errors.push(error);
        }
    }
}

/// When the measured window opens and closes.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    until: Instant,
}

/// One connection's loop: the next request of the mix, then wait for its answer, until the end
/// of the window. A broken connection is reopened once; when that fails the worker stops.
async fn worker(target: Target, mix: Arc<Mix>, seed: u64, window: Window) -> WorkerOutcome {
    let mut outcome = WorkerOutcome::default();
    let mut rng = Rng::new(seed);
    let mut connection = match Connection::open(&target).await {
        Ok(connection) => Some(connection),
        Err(err) => {
            outcome.connect_failed(&err);
            None
        }
    };
    while let Some(open) = connection.as_mut() {
        if Instant::now() >= window.until {
            break;
        }
        let planned = mix.next(&mut rng);
        let started = Instant::now();
        let answer = match open.send(planned.method, planned.uri, planned.body).await {
            Ok((status, _)) if status.is_success() => Ok(()),
            Ok((status, body)) => Err(format!(
                "{} answered {status}: {}",
                planned.kind.label(),
                String::from_utf8_lossy(&body)
            )),
            Err(err) => Err(format!("{}: {}", planned.kind.label(), error_chain(&err))),
        };
        if started >= window.measure_from {
            outcome.record(planned.kind, started, answer);
        }
        if open.is_closed() {
            connection = match Connection::open(&target).await {
                Ok(reopened) => Some(reopened),
                Err(err) => {
                    outcome.connect_failed(&err);
                    None
                }
            };
        }
    }
    outcome
}

/// CPU counters at one instant.
struct CpuSnapshot {
    machine: Option<f64>,
    api: Option<f64>,
    postgres: HashMap<u32, f64>,
    load_generator: Option<f64>,
}

impl CpuSnapshot {
    fn take(api_pid: Option<u32>) -> Self {
        Self {
            machine: procfs::machine_busy_seconds(),
            api: api_pid.and_then(procfs::read_cpu_seconds),
            postgres: procfs::cpu_seconds_by_name("postgres"),
            load_generator: procfs::read_cpu_seconds(std::process::id()),
        }
    }

    fn since(&self, start: &CpuSnapshot) -> CpuUse {
        let delta = |end: Option<f64>, start: Option<f64>| Some(end? - start?);
        CpuUse {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            machine: delta(self.machine, start.machine),
            api: delta(self.api, start.api),
            postgres: procfs::cpu_seconds_since(&start.postgres, &self.postgres),
            load_generator: delta(self.load_generator, start.load_generator),
        }
    }
}

/// Runs the load and reports its figures.
pub async fn run(args: &LoadArgs) -> Result<LoadReport, LoadError> {
    let target = target_of(&args.api_url)?;
    let seeded = seed(&target, args.seed_rows.max(1)).await?;
    let mix = Arc::new(Mix::new(args.get_percent, args.list_percent, &seeded)?);

    let measure_from = Instant::now() + args.warmup;
    let window = Window {
        measure_from,
        until: measure_from + args.duration,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for seed in 1..=args.connections as u64 {
        tasks.spawn(worker(target.clone(), mix.clone(), seed, window));
    }

    tokio::time::sleep_until(window.measure_from.into()).await;
    let cpu_at_start = CpuSnapshot::take(args.api_pid);
    tokio::time::sleep_until(window.until.into()).await;
    let cpu = CpuSnapshot::take(args.api_pid).since(&cpu_at_start);

    let mut merged: [Samples; 3] = Default::default();
    let mut connect_failures = 0;
    let mut sample_errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok(outcome) = joined else {
            sample_errors.push("a load task panicked".to_owned());
            continue;
        };
        for (total, part) in merged.iter_mut().zip(outcome.samples) {
            total.latencies_us.extend(part.latencies_us);
            total.errors += part.errors;
        }
        connect_failures += outcome.connect_failures;
        for error in outcome.errors {
            if sample_errors.len() < 5 && !sample_errors.contains(&error) {
                sample_errors.push(error);
            }
        }
    }
    let elapsed = args.duration;
    let mut all: Vec<u32> = Vec::new();
    let mut per_kind = Vec::new();
    for kind in Kind::ALL {
        let samples = &mut merged[kind as usize];
        samples.latencies_us.sort_unstable();
        per_kind.push(KindReport {
            label: kind.label(),
            requests: samples.latencies_us.len() as u64,
            errors: samples.errors,
            latency: Percentiles::of(&samples.latencies_us),
        });
        all.extend_from_slice(&samples.latencies_us);
    }
    all.sort_unstable();
    let requests = all.len() as u64;
    // NB: a connection that could not be (re)opened counts as an error even if it sent nothing.
    let errors = merged.iter().map(|s| s.errors).sum::<u64>() + connect_failures;
    Ok(LoadReport {
        connections: args.connections,
        elapsed,
        requests,
        errors,
        rate: requests as f64 / elapsed.as_secs_f64(),
        latency: Percentiles::of(&all),
        per_kind,
        api_memory_kib: args.api_pid.and_then(procfs::read_memory_kib),
        cpu,
        sample_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_give_an_address_and_a_host_header() {
        let target = target_of("http://127.0.0.1:3992/").unwrap();
        assert_eq!(target.addr, "127.0.0.1:3992".parse().unwrap());
        assert_eq!(target.host, "127.0.0.1:3992");
        let default_port = target_of("http://127.0.0.1").unwrap();
        assert_eq!(default_port.addr.port(), 80);
        assert!(matches!(
            target_of("https://127.0.0.1:3992"),
            Err(LoadError::Url { .. })
        ));
        assert!(matches!(
            target_of("http://127.0.0.1:3992/api"),
            Err(LoadError::Url { .. })
        ));
    }
}
