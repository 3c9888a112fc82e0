//! Where the source database is, and the settings every session on it runs with: the capture's
//! sessions (ordinary and replication) and the verifier's read the same text forms of every value.

use std::str::FromStr;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

/// Session settings applied to every connection opened to the source, so every value's text form is
/// the same whether it comes from pgoutput or from a query (a snapshot's, the verifier's).
pub const SESSION_OPTIONS: &str =
    "-c datestyle=ISO,MDY -c timezone=UTC -c intervalstyle=postgres -c extra_float_digits=1";

/// Errors talking to the source database.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The connection string could not be read.
    #[error("invalid database url: {0}")]
    Url(String),
    /// A statement failed.
    #[error("failed to {action}: {source}")]
    Sql {
        /// What was being done.
        action: String,
        source: tokio_postgres::Error,
    },
    /// The database state does not allow the capture to run.
    #[error("{0}")]
    State(String),
}

impl SourceError {
    /// The [`SourceError::Sql`] of a statement that failed while doing `action`, for `map_err`.
    pub fn sql(action: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SourceError {
        let action = action.into();
        move |source| SourceError::Sql { action, source }
    }
}

/// Where the source database is, parsed from a `postgresql://` URL or a key-value string.
#[derive(Debug, Clone)]
pub struct DatabaseAddress {
    config: Config,
}

impl DatabaseAddress {
    /// Parses `url`; TLS is not supported yet, so `sslmode=require` is refused.
    pub fn parse(url: &str) -> Result<Self, SourceError> {
        let mut config = Config::from_str(url).map_err(|err| SourceError::Url(err.to_string()))?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(SourceError::Url(
                "sslmode=require is not supported by the native capture yet; use sslmode=disable or prefer"
                    .into(),
            ));
        }
        config.options(SESSION_OPTIONS);
        config.application_name("cdcstar-capture");
        Ok(Self { config })
    }

    /// First host (TCP name or Unix socket directory).
    pub fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(Host::Tcp(name)) => name.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        }
    }

    /// First port (5432 when absent).
    pub fn port(&self) -> u16 {
        self.config.get_ports().first().copied().unwrap_or(5432)
    }

    /// User name (`postgres` when absent).
    pub fn user(&self) -> String {
        self.config.get_user().unwrap_or("postgres").to_owned()
    }

    /// Password, empty when absent.
    pub fn password(&self) -> String {
        self.config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default()
    }

    /// Database name (the user name when absent, as libpq does).
    pub fn database(&self) -> String {
        self.config
            .get_dbname()
            .map(str::to_owned)
            .unwrap_or_else(|| self.user())
    }

    /// Opens an ordinary SQL session; its connection task runs in the background.
    pub async fn connect(&self) -> Result<Client, SourceError> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(SourceError::sql(format!("connect to {}", self.describe())))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!(error = %err, "source database connection ended");
            }
        });
        Ok(client)
    }

    /// `host:port/database` for messages (never the password).
    pub fn describe(&self) -> String {
        format!("{}:{}/{}", self.host(), self.port(), self.database())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_reads_every_part_of_the_url() {
        let address = DatabaseAddress::parse(
            "postgresql://alice:s3cret@db.example:6543/shop?sslmode=disable",
        )
        .unwrap();
        assert_eq!(address.host(), "db.example");
        assert_eq!(address.port(), 6543);
        assert_eq!(address.user(), "alice");
        assert_eq!(address.password(), "s3cret");
        assert_eq!(address.database(), "shop");
        assert_eq!(address.describe(), "db.example:6543/shop");
    }

    #[test]
    fn address_refuses_tls_and_garbage() {
        assert!(DatabaseAddress::parse("postgresql://a@h/db?sslmode=require").is_err());
        assert!(DatabaseAddress::parse("postgresql://a@h:notaport/db").is_err());
    }
}
