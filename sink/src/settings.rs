//! Command-line and environment settings of the sink, and how they combine with the pipeline file:
//! the pipeline says what to do; flags and environment variables may override where the services are
//! (for local runs and tests).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cdcstar_crds::CdcPipeline;
use cdcstar_runtime::kafka::{KafkaConnection, KafkaSetupError};
use clap::{ArgAction, Parser};

use crate::consume::batch::BatchLimits;
use crate::consume::fetch::FetchSettings;
use crate::store::StoreConfig;

pub use cdcstar_runtime::logging::LogFormat;

/// Where the sink and the verifier reach Kafka and ClickHouse: the pipeline's spec, unless these
/// override it.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    /// Bootstrap brokers, comma-separated; overrides spec.kafka.brokers.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Directory of the mounted Kafka auth Secret (one file per key).
    #[arg(long, env = "KAFKA_AUTH_DIR")]
    pub kafka_auth_dir: Option<PathBuf>,

    /// ClickHouse HTTP endpoint; overrides spec.clickhouse.url.
    #[arg(long, env = "CLICKHOUSE_URL")]
    pub clickhouse_url: Option<String>,

    /// ClickHouse user.
    #[arg(long, env = "CLICKHOUSE_USER")]
    pub clickhouse_user: Option<String>,

    /// ClickHouse password.
    #[arg(long, env = "CLICKHOUSE_PASSWORD", hide_env_values = true)]
    pub clickhouse_password: Option<String>,

    /// ClickHouse database; overrides spec.clickhouse.database.
    #[arg(long, env = "CLICKHOUSE_DATABASE")]
    pub clickhouse_database: Option<String>,
}

impl ServiceArgs {
    /// The Kafka connection: these brokers or the spec's, with the mounted auth Secret if any.
    pub fn kafka(&self, pipeline: &CdcPipeline) -> Result<KafkaConnection, KafkaSetupError> {
        KafkaConnection::configured(
            self.kafka_brokers.as_deref(),
            &pipeline.spec.kafka.brokers,
            self.kafka_auth_dir.as_deref(),
        )
    }

    /// The ClickHouse connection: this endpoint, database and credentials, or the spec's.
    pub fn store_config(&self, pipeline: &CdcPipeline) -> StoreConfig {
        StoreConfig {
            url: self
                .clickhouse_url
                .clone()
                .unwrap_or_else(|| pipeline.spec.clickhouse.url.clone()),
            database: self
                .clickhouse_database
                .clone()
                .unwrap_or_else(|| pipeline.clickhouse_database().to_owned()),
            user: self.clickhouse_user.clone(),
            password: self.clickhouse_password.clone(),
        }
    }
}

/// `cdcstar-sink`: consume the CDC topics of a pipeline and maintain its ClickHouse star schema.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "cdcstar-sink",
    version,
    about,
    after_help = "Verification: `cdcstar-sink verify --help` (compare the star schema with Postgres)."
)]
pub struct Args {
    /// The CdcPipeline resource (YAML) the sink serves; the operator mounts it.
    #[arg(long, env = "CDCSTAR_PIPELINE")]
    pub pipeline: PathBuf,

    /// Where Kafka and ClickHouse are, when not where the pipeline says.
    #[command(flatten)]
    pub services: ServiceArgs,

    /// Consumer group; defaults to the pipeline's sink group `cdcstar-<namespace>-<name>-sink`.
    #[arg(long, env = "SINK_GROUP_ID")]
    pub group_id: Option<String>,

    /// Largest batch, in events. Batches adapt to the load: one is flushed as soon as the previous
    /// flush is done and the consumer has nothing more immediately available; this bounds it (and
    /// the sink's memory) when a backlog is drained.
    #[arg(long, env = "SINK_BATCH_EVENTS", default_value_t = 20_000)]
    pub batch_events: usize,

    /// Flush a batch when its messages reach this many bytes.
    #[arg(long, env = "SINK_BATCH_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub batch_bytes: usize,

    /// Flush a batch (once the previous flush is done) at the latest this many milliseconds after
    /// its first event, even when more events keep arriving.
    #[arg(long, env = "SINK_BATCH_WAIT_MS", default_value_t = 200)]
    pub batch_wait_ms: u64,

    /// Least milliseconds from the start of one flush to the start of the next when events trickle
    /// in: each flush is at least one insert, and every insert is a part that ClickHouse merges
    /// later. A full batch, or one older than the wait above, is flushed without waiting.
    #[arg(long, env = "SINK_BATCH_MIN_INTERVAL_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub batch_min_interval_ms: u64,

    /// Most kilobytes of messages fetched ahead of the batch being built, in total over all the
    /// partitions of the topics (divided into librdkafka's per-partition
    /// `queued.max.messages.kbytes`); bounds the sink's memory.
    #[arg(long, env = "SINK_PREFETCH_KBYTES", default_value_t = 2 * 1024)]
    pub prefetch_kbytes: usize,

    /// Longest time the broker may hold a fetch request that finds no new data
    /// (`fetch.wait.max.ms`); some brokers hold every fetch this long, so it bounds latency.
    #[arg(long, env = "SINK_FETCH_WAIT_MS", default_value_t = 10)]
    pub fetch_wait_ms: u64,

    /// Static group membership (`group.instance.id`), e.g. the pod name of a StatefulSet: a restarted
    /// replica takes its partitions back at once instead of waiting for the session timeout.
    #[arg(long, env = "SINK_GROUP_INSTANCE_ID")]
    pub group_instance_id: Option<String>,

    /// Kafka consumer session timeout in milliseconds: how long the group waits for a crashed
    /// replica before giving its partitions to the others (librdkafka's default, 45 s, when unset).
    #[arg(long, env = "SINK_SESSION_TIMEOUT_MS")]
    pub session_timeout_ms: Option<u64>,

    /// Re-read written fact rows and fix lookups that changed concurrently. Needed when several
    /// replicas share the topics; a single replica may turn it off.
    #[arg(long, env = "SINK_LOOKUP_RECHECK", default_value_t = true, action = ArgAction::Set)]
    pub lookup_recheck: bool,

    /// Create the data and dead-letter topics when missing (local runs; the operator does it
    /// otherwise).
    #[arg(long, env = "SINK_CREATE_TOPICS")]
    pub create_topics: bool,

    /// Create the ClickHouse database and tables when missing (local runs; the operator does it
    /// otherwise).
    #[arg(long, env = "SINK_CREATE_TABLES")]
    pub create_tables: bool,

    /// Address of /health, /ready and /metrics.
    #[arg(long, env = "SINK_METRICS_ADDR", default_value = "0.0.0.0:9464")]
    pub metrics_addr: SocketAddr,

    /// How log lines are written to standard error: text, or one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Args {
    /// The batch limits.
    pub fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_events: self.batch_events.max(1),
            max_bytes: self.batch_bytes.max(1),
            max_wait: Duration::from_millis(self.batch_wait_ms),
            min_interval: Duration::from_millis(self.batch_min_interval_ms),
        }
    }

    /// The prefetch budget and fetch wait.
    pub fn fetch(&self) -> FetchSettings {
        FetchSettings {
            prefetch_kbytes: self.prefetch_kbytes.max(1),
            prefetch_messages: self.batch_events.max(1),
            fetch_wait: Duration::from_millis(self.fetch_wait_ms),
        }
    }
}
