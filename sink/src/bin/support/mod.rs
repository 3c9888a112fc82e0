//! What the sink's benchmark binaries share: the sink process they start and stop, its memory and CPU
//! from /proc, and its metrics.

use std::process::Child;

/// A child process killed when dropped (a benchmark that fails leaves no sink running).
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Memory and CPU of process `pid` so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessSample {
    /// Resident set now, KiB.
    pub rss_kib: u64,
    /// Highest resident set so far, KiB.
    pub peak_rss_kib: u64,
    /// User and system CPU seconds.
    pub cpu_seconds: f64,
}

/// Samples `/proc/<pid>`; `None` once the process is gone.
pub fn sample(pid: u32) -> Option<ProcessSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |field: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields after the command: state is 0, utime is 11, stime is 12 (clock ticks, 100 per second).
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ProcessSample {
        rss_kib: kib("VmRSS:")?,
        peak_rss_kib: kib("VmHWM:")?,
        cpu_seconds: ticks / 100.0,
    })
}

/// The sink's `/metrics` text, or `None` while it does not answer.
pub async fn metrics_text(metrics_addr: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(metrics_addr).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    Some(body)
}

/// The sum of the samples of the metric whose lines start with `prefix` (a name, optionally with
/// the opening of its labels).
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        // NB: not `sum()`: an empty f64 sum is -0.0, printed "-0 statements".
        .fold(0.0, |total, sample| total + sample)
}

/// The sink's ClickHouse statements of the row paths from its metrics `text`, a kind a line: how
/// many, per batch, and the seconds until ClickHouse answered them (the sink's own CPU is apart).
pub fn statement_report(text: &str) -> String {
    let batches = metric_sum(text, "cdcstar_sink_apply_seconds_count ").max(1.0);
    ["insert", "select", "insert_select"]
        .iter()
        .map(|kind| {
            let labels = format!("{{kind=\"{kind}\"}}");
            let count = metric_sum(text, &format!("cdcstar_sink_clickhouse_statements_total{labels}"));
            let seconds = metric_sum(
                text,
                &format!("cdcstar_sink_clickhouse_statement_seconds_total{labels}"),
            );
            format!(
                "  {kind:<13} {count:>6.0} statements = {:>5.1} per batch, {seconds:>7.2} s ({:.1} ms each)\n",
                count / batches,
                1000.0 * seconds / count.max(1.0)
            )
        })
        .collect()
}

/// A loopback address for the sink's metrics port.
pub fn free_local_addr() -> std::io::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// The `cdcstar-sink` binary built beside this benchmark, started on `pipeline` (written to a file in
/// the temporary directory) with its metrics on a free loopback port and `extra` arguments; its log
/// level from `BENCH_SINK_LOG` (default `warn`). Returns the process and its metrics address.
pub fn start_sink(
    pipeline: &cdcstar_crds::CdcPipeline,
    kafka_brokers: &str,
    clickhouse_url: &str,
    extra: &[String],
) -> anyhow::Result<(Killed, String)> {
    use anyhow::Context;
    let file = std::env::temp_dir().join(format!("{}.yaml", pipeline.pipeline_name()));
    std::fs::write(&file, serde_yaml::to_string(pipeline)?)?;
    let metrics_addr = free_local_addr()?;
    let binary = std::env::current_exe()?.with_file_name("cdcstar-sink");
    anyhow::ensure!(binary.is_file(), "{} not built", binary.display());
    let child = std::process::Command::new(&binary)
        .arg("--pipeline")
        .arg(&file)
        .args(["--kafka-brokers", kafka_brokers])
        .args(["--clickhouse-url", clickhouse_url])
        .args(["--metrics-addr", &metrics_addr])
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SINK_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("start cdcstar-sink")?;
    Ok((Killed(child), metrics_addr))
}

/// Gives `pipeline` topics and a ClickHouse database of its own named `<purpose>_<pid>`, creates the
/// database and its tables from the crds DDL, and returns the name and a store on that database.
pub async fn private_pipeline(
    pipeline: &mut cdcstar_crds::CdcPipeline,
    purpose: &str,
    clickhouse_url: &str,
) -> anyhow::Result<(String, cdcstar_sink::store::Store)> {
    use anyhow::Context;
    let name = format!("{purpose}_{}", std::process::id());
    pipeline.metadata.name = Some(name.replace('_', "-"));
    pipeline.spec.kafka.topics.prefix = Some(name.clone());
    pipeline.spec.clickhouse.database = name.clone();
    let store = cdcstar_sink::store::Store::new(&cdcstar_sink::store::StoreConfig {
        url: clickhouse_url.to_owned(),
        database: name.clone(),
        user: std::env::var("CLICKHOUSE_USER").ok(),
        password: std::env::var("CLICKHOUSE_PASSWORD").ok(),
    });
    for statement in cdcstar_crds::clickhouse_ddl::install_statements(pipeline)
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        let query = store
            .client()
            .query(&statement)
            .with_option("database", "default");
        query.execute().await.with_context(|| statement.clone())?;
    }
    Ok((name, store))
}
