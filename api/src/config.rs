//! Command line and environment settings: every setting is a `--flag` with an environment
//! fallback, defaults as in the reference app (port 3002, its `DATABASE_URL`).

use std::net::IpAddr;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};

/// The reference app's default `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str =
    "postgresql://postgres:postgres@localhost:5434/sqlalchemy_db";

/// The shop REST service (customers, products, orders, order items) whose rows cdcstar captures.
#[derive(Debug, Clone, Parser)]
#[command(name = "cdcstar-api", version, about)]
pub struct Cli {
    /// What to do; `serve` when absent.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Database settings.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// HTTP server settings (used by `serve`).
    #[command(flatten)]
    pub server: ServerArgs,
    /// The star-schema view's ClickHouse (used by `serve`).
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    /// How log lines are written to standard error: text, or one JSON object per line.
    #[arg(long, env, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the HTTP API (the default).
    Serve,
    /// Create the database if needed and apply the migrations; prints what it did.
    InitDb {
        /// Drop the shop tables (and the migration history) first. Deletes every row; asks nothing.
        #[arg(long)]
        drop: bool,
    },
    /// Print the OpenAPI document (JSON) on standard output.
    Openapi,
}

/// Database connection settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL.
    #[arg(long, env, default_value = DEFAULT_DATABASE_URL, global = true, hide_env_values = true)]
    pub database_url: String,
    /// Most connections the pool opens.
    #[arg(long, env, default_value_t = 16, global = true)]
    pub db_max_connections: u32,
    /// How long a request waits for a pooled connection before answering 503 (e.g. `5s`, `500ms`).
    #[arg(long, env, default_value = "5s", value_parser = parse_duration, global = true)]
    pub db_acquire_timeout: Duration,
}

/// HTTP server settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Address the API and the metrics listen on.
    #[arg(long, env, default_value = "0.0.0.0", global = true)]
    pub host: IpAddr,
    /// Port of the API.
    #[arg(long, env, default_value_t = 3002, global = true)]
    pub port: u16,
    /// Port of the Prometheus `/metrics` endpoint (kept off the public API).
    #[arg(long, env, default_value_t = 9102, global = true)]
    pub metrics_port: u16,
    /// Apply the migrations (creating the database if needed) before serving.
    #[arg(
        long, env, global = true,
        action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub auto_init_db: bool,
    /// Longest a request may take before it is answered 408 (e.g. `30s`).
    #[arg(long, env, default_value = "30s", value_parser = parse_duration, global = true)]
    pub request_timeout: Duration,
    /// Origins allowed by CORS, comma separated; `*` allows any origin.
    #[arg(
        long,
        env,
        value_delimiter = ',',
        default_value = "http://localhost:3001",
        global = true
    )]
    pub cors_origins: Vec<String>,
    /// How long in-flight requests may run after SIGTERM/SIGINT before the server stops anyway.
    #[arg(long, env, default_value = "20s", value_parser = parse_duration, global = true)]
    pub shutdown_grace: Duration,
}

/// Where the read-only star-schema view (`GET /api/star/{table}`, shown by the test client page at
/// `/client`) reads the pipeline's ClickHouse tables. Without a URL the view answers 404.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP URL of the pipeline's star schema (e.g. `http://clickhouse:8123`); unset or
    /// empty disables the star view.
    #[arg(long, env, global = true)]
    pub clickhouse_url: Option<String>,
    /// ClickHouse database holding the star tables.
    #[arg(long, env, default_value = "local", global = true)]
    pub clickhouse_database: String,
    /// ClickHouse user (the server's default user when unset).
    #[arg(long, env, global = true)]
    pub clickhouse_user: Option<String>,
    /// ClickHouse password.
    #[arg(long, env, global = true, hide_env_values = true)]
    pub clickhouse_password: Option<String>,
}

pub use cdcstar_runtime::logging::LogFormat;

/// Parses `250ms`, `5s`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 500ms, 5s or 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {text:?}: use ms, s or m"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("invalid duration {text:?}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn defaults_match_the_reference() {
        let cli = Cli::try_parse_from(["cdcstar-api"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.server.port, 3002);
        assert_eq!(cli.server.cors_origins, ["http://localhost:3001"]);
        assert_eq!(cli.server.request_timeout, Duration::from_secs(30));
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "cdcstar-api",
            "init-db",
            "--drop",
            "--database-url",
            "postgresql://x/y",
            "--auto-init-db",
            "--cors-origins",
            "http://a:1,http://b:2",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::InitDb { drop: true })));
        assert_eq!(cli.database.database_url, "postgresql://x/y");
        assert!(cli.server.auto_init_db);
        assert_eq!(cli.server.cors_origins, ["http://a:1", "http://b:2"]);
        assert_eq!(cli.log_format, LogFormat::Json);
        Cli::try_parse_from(["cdcstar-api", "--auto-init-db", "false", "serve"]).unwrap();
    }
}
