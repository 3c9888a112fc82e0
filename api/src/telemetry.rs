//! Logging: `tracing` to standard error, filtered by `RUST_LOG` (default [`DEFAULT_FILTER`]), as
//! text or as one JSON object per line (`--log-format json`), coloured only on a terminal (and
//! without `NO_COLOR`): a log file or a pod's log stays plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter when `RUST_LOG` is unset: info, without Postgres' notices (e.g. "relation already
/// exists, skipping" from migrations).
pub const DEFAULT_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// The global subscriber could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("failed to install the log subscriber: {0}")]
pub struct TelemetryError(String);

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    installed.map_err(|err| TelemetryError(err.to_string()))
}
