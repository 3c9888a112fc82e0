//! `cdcstar-mock-broker`: librdkafka's mock cluster as a local broker for benchmarks (a dev binary,
//! never shipped: docker/Dockerfile builds only the four service binaries).
//!
//! tansu, the tests' broker, drains ~4-5k messages/s and acknowledges ~29k produce/s on the 2-core
//! machine, so every benchmark measured tansu. The mock cluster keeps everything in memory and speaks
//! enough of the protocol for the pipeline: produce (idempotent too), fetch, metadata, consumer groups
//! with offset commits. It has no CreateTopics: topics named with `--topic` are created at start, and
//! [`cdcstar_runtime::kafka::ensure_topics`] lets the broker auto-create the others (it says so).
//! Never test durability or exactly-once semantics on it: it loses everything when it stops.
//!
//! It prints `bootstrap HOST:PORT` on standard output once the brokers listen, then `brokers` and
//! the address of every mock broker its metadata names, and runs until SIGTERM or SIGINT. The mock
//! brokers listen on ports the kernel picks; with `--port`, the process also listens on that fixed
//! port and forwards each connection to the first broker, which then advertises its own address:
//! clients bootstrap through the fixed port and talk to the brokers directly, so the forwarding
//! carries only the first metadata requests. A client that reaches the host only through forwarded
//! ports (the demo's pods, in network namespaces of their own) needs every address of `brokers`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cdcstar_runtime::logging::{self, LogFormat};
use cdcstar_runtime::shutdown::ShutdownSignals;
use clap::Parser;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer as _};
use tokio::net::{TcpListener, TcpStream};

/// librdkafka's mock Kafka cluster on loopback, for benchmarks.
#[derive(Debug, Parser)]
#[command(name = "cdcstar-mock-broker")]
struct Args {
    /// Fixed port to accept bootstrap connections on (127.0.0.1), forwarded to the first mock
    /// broker; 0: none, the printed bootstrap address is the mock broker's own.
    #[arg(long, env = "CDCSTAR_MOCK_BROKER_PORT", default_value_t = 0)]
    port: u16,
    /// Number of mock brokers.
    #[arg(long, default_value_t = 1)]
    brokers: i32,
    /// Topics to create at start, `NAME` or `NAME:PARTITIONS` (repeatable).
    #[arg(long = "topic", value_name = "NAME[:PARTITIONS]")]
    topics: Vec<String>,
    /// Partitions of a `--topic` that does not give its own.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Milliseconds a new consumer group waits for more members before its first rebalance
    /// (librdkafka's mock default is 3000; Kafka's `group.initial.rebalance.delay.ms`).
    #[arg(long, default_value_t = 0)]
    group_initial_rebalance_delay_ms: i32,
    /// How log lines are written to standard error: text, or one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn topic_spec(spec: &str, default_partitions: i32) -> Result<(&str, i32)> {
    match spec.rsplit_once(':') {
        Some((name, partitions)) => {
            let partitions: i32 = partitions
                .parse()
                .with_context(|| format!("--topic {spec}: partitions must be a number"))?;
            if name.is_empty() || partitions < 1 {
                bail!("--topic {spec}: needs a name and at least one partition");
            }
            Ok((name, partitions))
        }
        None if spec.is_empty() => bail!("--topic needs a name"),
        None => Ok((spec, default_partitions)),
    }
}

/// Forwards one bootstrap connection to the mock broker.
async fn forward(mut client: TcpStream, broker: String) {
    match TcpStream::connect(&broker).await {
        Ok(mut upstream) => {
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(%error, "bootstrap connection closed");
            }
        }
        Err(error) => tracing::warn!(%error, %broker, "cannot reach the mock broker"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(error) = logging::init(args.log_format, "info") {
        eprintln!("cdcstar-mock-broker: {error}");
        return ExitCode::FAILURE;
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let signals = ShutdownSignals::install().context("install signal handlers")?;
    let topics = args
        .topics
        .iter()
        .map(|spec| topic_spec(spec, args.partitions))
        .collect::<Result<Vec<_>>>()?;
    // NB: the fixed port is claimed before the mock brokers' listeners, which take ports the kernel
    // picks: taken after them, it could be one of theirs.
    let listener = if args.port == 0 {
        None
    } else {
        Some(
            TcpListener::bind(("127.0.0.1", args.port))
                .await
                .with_context(|| {
                    format!("listen on 127.0.0.1:{} (is the port taken?)", args.port)
                })?,
        )
    };
    // NB: the cluster is owned by this client (librdkafka's `test.mock.num.brokers`), which must
    // outlive it: both live until the end of this function.
    let owner: BaseProducer = ClientConfig::new()
        .set("test.mock.num.brokers", args.brokers.to_string())
        .create()
        .context("start the mock cluster")?;
    let cluster = owner
        .client()
        .mock_cluster()
        .context("the client did not start a mock cluster")?;
    tune(&owner, args.group_initial_rebalance_delay_ms)?;
    for (name, partitions) in &topics {
        cluster
            .create_topic(name, *partitions, 1)
            .with_context(|| format!("create topic {name}"))?;
    }
    let brokers = cluster.bootstrap_servers();
    let first = brokers
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();

    let bootstrap = match &listener {
        Some(_) => format!("127.0.0.1:{}", args.port),
        None => brokers.clone(),
    };
    tracing::info!(
        %bootstrap,
        mock_brokers = %brokers,
        topics = ?topics,
        "mock cluster ready (in memory: everything is lost when it stops)"
    );
    let advertised = advertised_brokers(&owner)?.join(",");
    // NB: a reader may stop reading after the line it needs: the broker keeps running without it.
    let _ = writeln!(
        std::io::stdout(),
        "bootstrap {bootstrap}\nbrokers {advertised}"
    );

    let accept = async {
        let Some(listener) = listener else {
            return std::future::pending::<()>().await;
        };
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    tokio::spawn(forward(client, first.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    tokio::select! {
        _ = signals.requested() => {}
        () = accept => {}
    }
    drop(cluster);
    drop(owner);
    tracing::info!("stopped");
    Ok(())
}

/// The address of every broker the cluster's metadata names: the mock brokers and the controller
/// broker 0 that [`tune`] adds (which `bootstrap_servers` does not list).
fn advertised_brokers(owner: &BaseProducer) -> Result<Vec<String>> {
    let metadata = owner
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .context("read the mock cluster's metadata")?;
    let mut brokers: Vec<String> = metadata
        .brokers()
        .iter()
        .map(|broker| format!("{}:{}", broker.host(), broker.port()))
        .collect();
    brokers.sort();
    Ok(brokers)
}

/// Two mock settings that rdkafka's `MockCluster` does not wrap:
///
/// - a consumer group's first rebalance delay (3 s by default, which a benchmark would count as the
///   sink's time);
/// - a broker with id 0: the mock's metadata names broker 0 as the controller but numbers its brokers
///   from 1, so an admin request (CreateTopics) waits for a controller until it times out, a minute
///   later. With broker 0 present it fails at once as unsupported, and `ensure_topics` falls back to
///   the broker's automatic topic creation.
#[allow(unsafe_code)] // FFI calls on a pointer librdkafka owns, valid while `owner` lives
fn tune(owner: &BaseProducer, group_initial_rebalance_delay_ms: i32) -> Result<()> {
    // SAFETY: `owner` was created with `test.mock.num.brokers`, so it owns a mock cluster that lives
    // as long as `owner`; both functions post a command to the cluster's own thread and wait for it.
    let added = unsafe {
        let cluster = rdkafka::bindings::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
        if cluster.is_null() {
            bail!("the client has no mock cluster");
        }
        rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(
            cluster,
            group_initial_rebalance_delay_ms,
        );
        rdkafka::bindings::rd_kafka_mock_broker_add(cluster, 0)
    };
    if added != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        bail!("cannot add the controller broker 0 to the mock cluster: {added:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_specs() {
        assert_eq!(topic_spec("a", 3).unwrap(), ("a", 3));
        assert_eq!(topic_spec("a.b:5", 3).unwrap(), ("a.b", 5));
        assert!(topic_spec("a:0", 3).is_err());
        assert!(topic_spec(":2", 3).is_err());
        assert!(topic_spec("a:x", 3).is_err());
    }
}
