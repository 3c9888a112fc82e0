//! The capture's ordinary SQL sessions on the source database: connection settings that make text
//! output deterministic, the slot's state, the publication (for local runs with `--create-slot`),
//! heartbeats and the retained-WAL measurement.

use std::collections::BTreeMap;
use std::str::FromStr;

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::envelope::Lsn;
use cdcstar_crds::postgres::{self, QualifiedTable, RowFilterState};
pub use cdcstar_crds::postgres::{quote_ident, quote_literal};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

/// Session settings applied to every connection the capture opens, so every value's text form is
/// the same whether it comes from pgoutput or from a snapshot query.
pub const SESSION_OPTIONS: &str =
    "-c datestyle=ISO,MDY -c timezone=UTC -c intervalstyle=postgres -c extra_float_digits=1";

/// Prefix of the capture's logical decoding messages.
pub const HEARTBEAT_PREFIX: &str = "cdcstar";
/// What a heartbeat message's content starts with; the time it was written follows.
pub const HEARTBEAT_CONTENT: &str = "heartbeat ";

/// The time a heartbeat message with `prefix` and `content` was written, microseconds since the Unix
/// epoch; `None` for any other message (another prefix, or a heartbeat of an earlier version without
/// its time).
pub fn heartbeat_time(prefix: &str, content: &[u8]) -> Option<i64> {
    if prefix != HEARTBEAT_PREFIX {
        return None;
    }
    std::str::from_utf8(content.strip_prefix(HEARTBEAT_CONTENT.as_bytes())?)
        .ok()?
        .parse()
        .ok()
}

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
        /// The database's answer.
        source: tokio_postgres::Error,
    },
    /// The database state does not allow the capture to run.
    #[error("{0}")]
    State(String),
}

fn sql_error(action: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SourceError {
    let action = action.into();
    move |source| SourceError::Sql { action, source }
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
            .map_err(sql_error(format!("connect to {}", self.describe())))?;
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

/// What the server says about the pipeline's slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    /// Output plugin (`pgoutput` expected).
    pub plugin: String,
    /// Position confirmed by the consumer.
    pub confirmed_flush: Lsn,
}

/// The slot's state, `None` when it does not exist.
pub async fn slot_state(client: &Client, slot: &str) -> Result<Option<SlotState>, SourceError> {
    let row = client
        .query_opt(
            "SELECT plugin::text, confirmed_flush_lsn::text FROM pg_replication_slots \
             WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .await
        .map_err(sql_error(format!("read replication slot {slot}")))?;
    let Some(row) = row else { return Ok(None) };
    let plugin: Option<String> = row.get(0);
    let confirmed: Option<String> = row.get(1);
    let confirmed_flush = confirmed
        .as_deref()
        .unwrap_or("0/0")
        .parse()
        .map_err(|err| SourceError::State(format!("slot {slot}: {err}")))?;
    Ok(Some(SlotState {
        plugin: plugin.unwrap_or_default(),
        confirmed_flush,
    }))
}

/// Takes the publication and the tables' replica identity to what `pipeline` declares (creates the
/// publication, sets its tables, sets `REPLICA IDENTITY FULL` when asked), with the same statements
/// the operator runs (`cdcstar_crds::postgres`).
pub async fn ensure_publication(
    client: &Client,
    pipeline: &CdcPipeline,
) -> Result<(), SourceError> {
    let publication = pipeline.publication_name();
    let exists = client
        .query_opt(postgres::PUBLICATION_EXISTS_QUERY, &[&publication])
        .await
        .map_err(sql_error(format!("read publication {publication}")))?
        .is_some();
    let mut filters = RowFilterState::default();
    let current = if exists {
        let (tables, published) = publication_tables(client, &publication).await?;
        filters.published = published;
        Some(tables)
    } else {
        None
    };
    if let Some(probe) = postgres::row_filter_probe(pipeline) {
        // Postgres's own print of the declared filters, from a publication that never commits.
        client
            .batch_execute("BEGIN")
            .await
            .map_err(sql_error("begin the row filter probe"))?;
        let probed = match client.batch_execute(&probe).await {
            Ok(()) => publication_tables(client, postgres::ROW_FILTER_PROBE_PUBLICATION).await,
            Err(source) => Err(SourceError::Sql {
                action: "check the declared row filters".into(),
                source,
            }),
        };
        client
            .batch_execute("ROLLBACK")
            .await
            .map_err(sql_error("end the row filter probe"))?;
        filters.declared = probed?.1;
    }
    let schema = &pipeline.spec.source.schema;
    let tables = pipeline.source_table_names();
    let identities: BTreeMap<String, String> = client
        .query(postgres::REPLICA_IDENTITY_QUERY, &[schema, &tables])
        .await
        .map_err(sql_error("read replica identities"))?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let statements = postgres::reconcile_replica_identity(pipeline, &identities)
        .into_iter()
        .chain(postgres::reconcile_publication(
            pipeline,
            current.as_ref(),
            &filters,
        ));
    for statement in statements {
        client
            .batch_execute(&statement)
            .await
            .map_err(sql_error(format!("run {statement}")))?;
        tracing::info!(%statement, "publication setup");
    }
    Ok(())
}

/// The tables of `publication`, and the row filters of those that have one.
async fn publication_tables(
    client: &Client,
    publication: &str,
) -> Result<postgres::PublishedTables, SourceError> {
    let rows = client
        .query(postgres::PUBLICATION_TABLES_QUERY, &[&publication])
        .await
        .map_err(sql_error(format!(
            "list tables of publication {publication}"
        )))?;
    Ok(postgres::published_tables(
        rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))),
    ))
}

/// The tables of `tables` that publication `publication` does not publish.
pub async fn tables_missing_from_publication(
    client: &Client,
    publication: &str,
    schema: &str,
    tables: &[String],
) -> Result<Vec<String>, SourceError> {
    let (published, _) = publication_tables(client, publication).await?;
    Ok(tables
        .iter()
        .filter(|t| !published.contains(&QualifiedTable::new(schema, t.as_str())))
        .cloned()
        .collect())
}

/// Writes a non-transactional heartbeat message to the WAL, its content [`HEARTBEAT_CONTENT`]
/// followed by the server's clock in microseconds since the Unix epoch (read back by
/// [`heartbeat_time`]); returns its LSN.
pub async fn emit_heartbeat(client: &Client) -> Result<Lsn, SourceError> {
    let row = client
        .query_one(
            "SELECT pg_logical_emit_message(false, $1, \
             $2 || (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)::text",
            &[&HEARTBEAT_PREFIX, &HEARTBEAT_CONTENT],
        )
        .await
        .map_err(sql_error("emit heartbeat message"))?;
    let text: String = row.get(0);
    text.parse()
        .map_err(|err| SourceError::State(format!("heartbeat: {err}")))
}

/// WAL bytes slot `slot` retains: `pg_current_wal_lsn() - confirmed_flush_lsn`.
pub async fn retained_wal_bytes(client: &Client, slot: &str) -> Result<Option<i64>, SourceError> {
    let row = client
        .query_opt(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 FROM pg_replication_slots \
             WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .await
        .map_err(sql_error(format!("measure WAL retained by slot {slot}")))?;
    Ok(row.and_then(|row| row.get(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_message_carries_its_time_and_others_do_not() {
        assert_eq!(
            heartbeat_time("cdcstar", b"heartbeat 1767225600000001"),
            Some(1_767_225_600_000_001)
        );
        assert_eq!(
            heartbeat_time("cdcstar", b"heartbeat"),
            None,
            "older capture"
        );
        assert_eq!(heartbeat_time("other", b"heartbeat 1"), None);
        assert_eq!(heartbeat_time("cdcstar", b"heartbeat soon"), None);
    }

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
