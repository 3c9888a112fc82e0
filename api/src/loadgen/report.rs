//! The figures of a load run and how they print: throughput, latency percentiles (overall and
//! per kind), errors, the API's peak RSS, and where the machine's CPU went during the run.

use std::fmt;
use std::time::Duration;

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
    /// The percentiles of latencies in µs, sorted ascending.
    pub fn of(sorted_us: &[u32]) -> Self {
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

/// The figures of one kind of request.
#[derive(Debug, Clone)]
pub struct KindReport {
    /// How the kind is named.
    pub label: &'static str,
    /// Requests answered during the measured time.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Their latency.
    pub latency: Percentiles,
}

/// CPU seconds used during the measured run, by whom.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// Cores of the machine.
    pub cores: usize,
    /// The whole machine's busy time (every core, every process).
    pub machine: Option<f64>,
    /// The API process (when its PID was given).
    pub api: Option<f64>,
    /// Every process named `postgres` (the server's backends and its background workers).
    pub postgres: f64,
    pub load_generator: Option<f64>,
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
    /// Latency percentiles over all requests.
    pub latency: Percentiles,
    /// Per kind of request.
    pub per_kind: Vec<KindReport>,
    /// Peak and current RSS of the API process in KiB, when its PID was given.
    pub api_memory_kib: Option<(u64, u64)>,
    /// Where the CPU went during the measured run.
    pub cpu: CpuUse,
    /// The first few distinct errors.
    pub sample_errors: Vec<String>,
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

impl LoadReport {
    /// CPU time per answered request, in µs.
    fn per_request_us(&self, seconds: f64) -> f64 {
        seconds * 1e6 / self.requests.max(1) as f64
    }

    /// A share of one core over the measured time, in %.
    fn percent_of_a_core(&self, seconds: f64) -> f64 {
        seconds * 100.0 / self.elapsed.as_secs_f64()
    }

    fn write_cpu(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpu = &self.cpu;
        let mut parts = Vec::new();
        let mut accounted = cpu.postgres;
        if let Some(api) = cpu.api {
            parts.push(("api", api));
            accounted += api;
        }
        parts.push(("postgres", cpu.postgres));
        if let Some(load) = cpu.load_generator {
            parts.push(("load generator", load));
            accounted += load;
        }
        if let Some(machine) = cpu.machine {
            parts.push(("other", (machine - accounted).max(0.0)));
            let idle = (cpu.cores as f64 * self.elapsed.as_secs_f64() - machine).max(0.0);
            parts.push(("idle", idle));
        }
        let shares: Vec<String> = parts
            .iter()
            .map(|(who, seconds)| format!("{who} {:.0} %", self.percent_of_a_core(*seconds)))
            .collect();
        writeln!(
            f,
            "cpu ({} cores = {} %): {}",
            cpu.cores,
            cpu.cores * 100,
            shares.join(", ")
        )?;
        let per_request: Vec<String> = parts
            .iter()
            .filter(|(who, _)| *who != "idle")
            .map(|(who, seconds)| format!("{who} {:.0} µs", self.per_request_us(*seconds)))
            .collect();
        writeln!(f, "cpu per request: {}", per_request.join(", "))
    }
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
        for kind in &self.per_kind {
            writeln!(
                f,
                "  {:<22} {:>8} req, {} errors, p50 {}, p99 {}",
                kind.label,
                kind.requests,
                kind.errors,
                ms(kind.latency.p50),
                ms(kind.latency.p99)
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
        self.write_cpu(f)?;
        for error in &self.sample_errors {
            writeln!(f, "error: {error}")?;
        }
        Ok(())
    }
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
    fn cpu_shares_add_up_to_the_machine() {
        let report = LoadReport {
            connections: 1,
            elapsed: Duration::from_secs(10),
            requests: 50_000,
            errors: 0,
            rate: 5_000.0,
            latency: Percentiles::default(),
            per_kind: Vec::new(),
            api_memory_kib: None,
            cpu: CpuUse {
                cores: 2,
                machine: Some(18.0),
                api: Some(8.0),
                postgres: 7.0,
                load_generator: Some(1.5),
            },
            sample_errors: Vec::new(),
        };
        let text = report.to_string();
        assert!(
            text.contains(
                "cpu (2 cores = 200 %): api 80 %, postgres 70 %, load generator 15 %, other 15 %, idle 20 %"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "cpu per request: api 160 µs, postgres 140 µs, load generator 30 µs, other 30 µs"
            ),
            "{text}"
        );
    }
}
