//! Settings of `cdcstar-sink verify`.

use std::path::PathBuf;
use std::time::Duration;

use cdcstar_source::mask::MaskSalt;
use clap::{Parser, ValueEnum};

pub use cdcstar_runtime::logging::LogFormat;

use crate::settings::ServiceArgs;

/// `cdcstar-sink verify`: compare every star table of a pipeline with Postgres, chunk by chunk, and
/// report (and with --repair re-emit) the rows that differ.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "cdcstar-sink verify",
    version,
    about = "Compare every star table of a pipeline with Postgres; exit 0 when clean, 1 when \
             mismatches remain, 2 when verification could not run"
)]
pub struct VerifyArgs {
    /// The CdcPipeline resource (YAML) whose star schema is verified.
    #[arg(long, env = "CDCSTAR_PIPELINE")]
    pub pipeline: PathBuf,

    /// Source database connection string (`postgresql://user:password@host:port/db`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Only this star table (repeatable); every table when absent.
    #[arg(long = "table")]
    pub tables: Vec<String>,

    /// Keys per chunk: each side reads at most this many rows at a time.
    #[arg(long, env = "VERIFY_CHUNK_ROWS", default_value_t = 10_000)]
    pub chunk_rows: usize,

    /// Rounds over every table.
    #[arg(long, env = "VERIFY_ROUNDS", default_value_t = 1)]
    pub rounds: usize,

    /// Pause between rounds, in seconds.
    #[arg(long, env = "VERIFY_ROUND_INTERVAL_SECONDS", default_value_t = 0)]
    pub round_interval_seconds: u64,

    /// Re-emit the rows still mismatching after the re-check to the pipeline's topics, then check
    /// them again once the sink has applied them.
    #[arg(long, env = "VERIFY_REPAIR")]
    pub repair: bool,

    /// Re-copy the selected tables first: every key, in Postgres or in ClickHouse, is re-emitted
    /// from its current Postgres row (a delete where there is none) at the current WAL position,
    /// then the rounds verify them once the sink has applied them. The pipeline keeps streaming.
    #[arg(long, env = "VERIFY_RESYNC")]
    pub resync: bool,

    /// How long a re-check waits for the watermark to pass the first observation, in seconds;
    /// keys whose re-check did not happen by then are reported as skipped, not as mismatches.
    #[arg(long, env = "VERIFY_RECHECK_TIMEOUT_SECONDS", default_value_t = 120)]
    pub recheck_timeout_seconds: u64,

    /// Re-checks of a key whose source rows keep changing before it is reported as skipped.
    #[arg(long, env = "VERIFY_RECHECK_ATTEMPTS", default_value_t = 3)]
    pub recheck_attempts: usize,

    /// The capture's mask salt (`spec.source.maskSaltSecretRef`): hashed columns are compared, and
    /// repaired, as the capture hashes them. Required when a column is masked with `hash`.
    #[arg(long, env = "CAPTURE_MASK_SALT", hide_env_values = true)]
    pub mask_salt: Option<MaskSalt>,

    /// Report format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,

    /// Where Kafka (for --repair) and ClickHouse are, when not where the pipeline says.
    #[command(flatten)]
    pub services: ServiceArgs,

    /// Log format (logs go to stderr).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl VerifyArgs {
    /// The re-check's wait for the watermark.
    pub fn recheck_timeout(&self) -> Duration {
        Duration::from_secs(self.recheck_timeout_seconds)
    }
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Lines for people.
    Text,
    /// One JSON document.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_repeatable_tables() {
        let args = VerifyArgs::try_parse_from([
            "cdcstar-sink verify",
            "--pipeline",
            "p.yaml",
            "--database-url",
            "postgresql://x@y/z",
            "--table",
            "a",
            "--table",
            "b",
            "--output",
            "json",
        ])
        .unwrap();
        assert_eq!(args.tables, ["a", "b"]);
        assert_eq!(args.chunk_rows, 10_000);
        assert_eq!(args.rounds, 1);
        assert!(!args.repair);
        assert_eq!(args.output, OutputFormat::Json);
    }
}
