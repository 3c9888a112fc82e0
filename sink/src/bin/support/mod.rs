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
        .sum()
}

/// A loopback address for the sink's metrics port.
pub fn free_local_addr() -> std::io::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}
