//! Logs: `tracing` to standard error, filtered by `RUST_LOG` (each binary gives its default), as text
//! or as one JSON object per line. Text is coloured only when standard error is a terminal (and
//! `NO_COLOR` is unset), so log files and a cluster's log collector get plain lines.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// How logs are written: the `--log-format` flag (`LOG_FORMAT`) of every binary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: the event's fields at the top level beside `timestamp`, `level`,
    /// `target` and `span` (the innermost span, when there is one).
    Json,
}

/// Colour on a terminal, unless `NO_COLOR` is set to something.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The global subscriber was already installed.
#[derive(Debug, thiserror::Error)]
#[error("failed to install the log subscriber: {0}")]
pub struct LoggingError(String);

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is unset or invalid.
pub fn init(format: LogFormat, default_filter: &str) -> Result<(), LoggingError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(colour()).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|error| LoggingError(error.to_string()))
}
