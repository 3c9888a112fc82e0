//! Logging: the runtime's one format (`cdcstar_runtime::logging`), with the operator's default filter.

/// The filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";
