//! Command-line and environment settings of `cdcstar-capture`, and the pipeline file they point to.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cdcstar_crds::{CdcPipeline, PipelineDocumentError, parse_pipeline};
use cdcstar_runtime::pipeline_file::{self, UnreadablePipelineFile};
use cdcstar_source::mask::MaskSalt;
use clap::Parser;

use crate::producer::ProducerSettings;

pub use cdcstar_runtime::logging::LogFormat;

/// Reads a pipeline's publication through its replication slot and produces CDC events to Kafka.
#[derive(Debug, Clone, Parser)]
#[command(name = "cdcstar-capture", version, about)]
pub struct CaptureArgs {
    /// The CdcPipeline (YAML, as applied to Kubernetes) whose tables are captured.
    #[arg(long, env = "CDCSTAR_PIPELINE")]
    pub pipeline: PathBuf,

    /// Source database connection string (`postgresql://user:password@host:port/db`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Bootstrap brokers, comma-separated; overrides `spec.kafka.brokers`.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Directory holding the Kafka auth Secret's keys (one file per key).
    #[arg(long, env = "KAFKA_AUTH_DIR")]
    pub kafka_auth_dir: Option<PathBuf>,

    /// Create the publication (and add missing tables to it) and the replication slot when
    /// missing. In Kubernetes the operator does this; use it for local runs.
    #[arg(long, env = "CAPTURE_CREATE_SLOT")]
    pub create_slot: bool,

    /// Interface of the `/metrics`, `/health` and `/ready` endpoints.
    #[arg(long, env = "METRICS_HOST", default_value = "0.0.0.0")]
    pub metrics_host: IpAddr,

    /// Port of the `/metrics`, `/health` and `/ready` endpoints (0: any free port).
    #[arg(long, env = "METRICS_PORT", default_value_t = 9465)]
    pub metrics_port: u16,

    /// Seconds between heartbeats written to the WAL (and retained-WAL measurements).
    #[arg(long, env = "CAPTURE_HEARTBEAT_SECONDS", default_value_t = 10)]
    pub heartbeat_seconds: u64,

    /// Do not write heartbeat messages (the retained WAL is still measured).
    #[arg(long, env = "CAPTURE_NO_HEARTBEAT")]
    pub no_heartbeat: bool,

    /// Milliseconds between standby status updates that carry a newly confirmed position.
    #[arg(long, env = "CAPTURE_STATUS_INTERVAL_MS", default_value_t = 1000)]
    pub status_interval_ms: u64,

    /// Salt of the columns masked with `hash` (the HMAC-SHA256 key). The operator sets it from the
    /// Secret `spec.source.maskSaltSecretRef` names; never printed.
    #[arg(long, env = "CAPTURE_MASK_SALT", hide_env_values = true)]
    pub mask_salt: Option<MaskSalt>,

    /// Rows per snapshot batch.
    #[arg(long, env = "CAPTURE_SNAPSHOT_BATCH_SIZE", default_value_t = 10_000)]
    pub snapshot_batch_size: usize,

    /// Producer compression and linger.
    #[command(flatten)]
    pub producer: ProducerSettings,

    /// How log lines are written to standard error: text, or one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl CaptureArgs {
    /// Where the metrics server listens.
    pub fn metrics_address(&self) -> SocketAddr {
        SocketAddr::new(self.metrics_host, self.metrics_port)
    }

    /// Heartbeat period.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat_seconds.max(1))
    }

    /// Standby status period.
    pub fn status_interval(&self) -> Duration {
        Duration::from_millis(self.status_interval_ms.max(10))
    }
}

/// Why the pipeline file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PipelineFileError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] UnreadablePipelineFile),
    /// The file is not a valid CdcPipeline.
    #[error("pipeline file {path} is not a valid CdcPipeline: {source}")]
    Invalid {
        path: String,
        /// The YAML error, or every violated rule with its field path.
        source: PipelineDocumentError,
    },
}

/// Reads a CdcPipeline from a YAML file and validates it.
pub fn load_pipeline(path: &Path) -> Result<CdcPipeline, PipelineFileError> {
    let text = pipeline_file::read(path)?;
    parse_pipeline(&text).map_err(|source| PipelineFileError::Invalid {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::producer_config;

    fn example() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/shop-pipeline.yaml")
    }

    #[test]
    fn the_shop_example_loads() {
        let pipeline = load_pipeline(&example()).unwrap();
        assert_eq!(pipeline.spec.source.tables.len(), 4);
        assert_eq!(pipeline.slot_name(), "cdcstar_shop");
    }

    #[test]
    fn a_bad_file_names_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, "apiVersion: cdcstar.dev/v1alpha1\nkind: CdcPipeline\nmetadata: {name: x}\nspec: {source: 3}\n").unwrap();
        let err = load_pipeline(&path).unwrap_err().to_string();
        assert!(err.contains("not a valid CdcPipeline"), "{err}");
        assert!(load_pipeline(&dir.path().join("missing.yaml")).is_err());
    }

    #[test]
    fn flags_parse_with_defaults() {
        let args = CaptureArgs::try_parse_from([
            "cdcstar-capture",
            "--pipeline",
            "p.yaml",
            "--database-url",
            "postgresql://u@h/db",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(args.snapshot_batch_size, 10_000);
        assert_eq!(args.heartbeat_interval(), Duration::from_secs(10));
        assert!(!args.create_slot);
        assert!(!args.producer.idempotence);
    }

    #[test]
    fn the_delivery_mode_decides_idempotence_and_requests_in_flight() {
        let connection = cdcstar_runtime::kafka::KafkaConnection::new(&["broker:9092"]);
        let parse = |extra: &[&str]| {
            let mut argv = vec![
                "cdcstar-capture",
                "--pipeline",
                "p.yaml",
                "--database-url",
                "postgresql://u@h/db",
            ];
            argv.extend_from_slice(extra);
            CaptureArgs::try_parse_from(argv).unwrap().producer
        };

        let single = producer_config(&connection, &parse(&[]));
        assert_eq!(single.get("acks"), Some("all"));
        assert_eq!(single.get("enable.idempotence"), Some("false"));
        assert_eq!(
            single.get("max.in.flight.requests.per.connection"),
            Some("1")
        );
        assert_eq!(single.get("partitioner"), Some("murmur2_random"));
        assert_eq!(single.get("queue.buffering.max.kbytes"), Some("16384"));
        assert_eq!(single.get("batch.size"), Some("131072"));
        let budget = producer_config(
            &connection,
            &parse(&["--kafka-queue-mib", "4", "--kafka-batch-kib", "512"]),
        );
        assert_eq!(budget.get("queue.buffering.max.kbytes"), Some("4096"));
        assert_eq!(budget.get("batch.size"), Some("524288"));

        for flags in [
            &["--kafka-idempotence"][..],
            &["--kafka-idempotence", "true"],
        ] {
            let idempotent = producer_config(&connection, &parse(flags));
            assert_eq!(idempotent.get("acks"), Some("all"));
            assert_eq!(idempotent.get("enable.idempotence"), Some("true"));
            assert_eq!(
                idempotent.get("max.in.flight.requests.per.connection"),
                None
            );
        }
    }
}
