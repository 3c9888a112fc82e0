//! Logging: the runtime's one format (`cdcstar_runtime::logging`), with the api's default filter.

/// The filter when `RUST_LOG` is unset: info, without Postgres' notices (e.g. "relation already
/// exists, skipping" from migrations).
pub const DEFAULT_FILTER: &str = "info,sqlx::postgres::notice=warn";
