//! [`SourceDatabase`] on a real PostgreSQL server through `tokio-postgres`.
//!
//! NB: connections are made without TLS (`sslmode=disable` or `prefer`); a DSN that requires TLS fails
//! with a clear connection error.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::{DatabaseError, Sensitive, SourceConnector, SourceDatabase};
use cdcstar_crds::pipeline::TableSnapshotStatus;
use cdcstar_crds::postgres::{self, QualifiedTable, RowFilterState, SNAPSHOT_PROGRESS_QUERY};

use crate::sql::{SlotObservation, SourceObservation};

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to Postgres servers with `tokio-postgres`.
#[derive(Debug, Clone, Default)]
pub struct PostgresConnector;

#[async_trait]
impl SourceConnector for PostgresConnector {
    async fn connect(&self, dsn: &Sensitive) -> Result<Box<dyn SourceDatabase>, DatabaseError> {
        let connecting = tokio_postgres::connect(dsn.expose(), NoTls);
        let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| {
                DatabaseError::Unreachable(format!(
                    "no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| DatabaseError::Unreachable(error_text(&e)))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error_text(&error), "source database connection closed");
            }
        });
        Ok(Box::new(PostgresSource { client }))
    }
}

/// An open session on the source database.
#[derive(Debug)]
pub struct PostgresSource {
    client: tokio_postgres::Client,
}

/// The server's message with its detail, without the connection string.
fn error_text(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(inner) = source {
                text.push_str(": ");
                text.push_str(&inner.to_string());
                source = inner.source();
            }
            text
        }
    }
}

/// The capture's lowercase progress state (`running`, `done`) as the status reports it (`Running`, `Done`).
fn snapshot_state(state: String) -> String {
    let mut chars = state.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => state,
    }
}

fn inspect(error: tokio_postgres::Error) -> DatabaseError {
    DatabaseError::Inspect(error_text(&error))
}

impl PostgresSource {
    async fn publication(
        &self,
        publication: &str,
    ) -> Result<postgres::PublishedTables, DatabaseError> {
        let rows = self
            .client
            .query(postgres::PUBLICATION_TABLES_QUERY, &[&publication])
            .await
            .map_err(inspect)?;
        Ok(postgres::published_tables(
            rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))),
        ))
    }

    /// The declared row filters as Postgres prints them: the probe publication is created in a
    /// transaction that is always rolled back, so nothing stays behind.
    async fn probe_row_filters(
        &self,
        probe: &str,
    ) -> Result<BTreeMap<QualifiedTable, String>, DatabaseError> {
        self.client.batch_execute("BEGIN").await.map_err(inspect)?;
        let probed = match self.client.batch_execute(probe).await {
            Ok(()) => self
                .publication(postgres::ROW_FILTER_PROBE_PUBLICATION)
                .await
                .map(|(_, filters)| filters),
            Err(error) => Err(DatabaseError::Inspect(format!(
                "Postgres refuses the declared row filters: {}",
                error_text(&error)
            ))),
        };
        self.client
            .batch_execute("ROLLBACK")
            .await
            .map_err(inspect)?;
        probed
    }
}

#[async_trait]
impl SourceDatabase for PostgresSource {
    async fn observe(
        &self,
        publication: &str,
        slot: &str,
        tables: &[QualifiedTable],
        row_filter_probe: Option<&str>,
    ) -> Result<SourceObservation, DatabaseError> {
        let exists = self
            .client
            .query_opt(postgres::PUBLICATION_EXISTS_QUERY, &[&publication])
            .await
            .map_err(inspect)?
            .is_some();
        let mut row_filters = RowFilterState::default();
        let publication_tables = if exists {
            let (published, filters) = self.publication(publication).await?;
            row_filters.published = filters;
            Some(published)
        } else {
            None
        };
        if let Some(probe) = row_filter_probe {
            row_filters.declared = self.probe_row_filters(probe).await?;
        }

        let mut replica_identity = BTreeMap::new();
        let schemas: BTreeSet<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
        for schema in schemas {
            let names: Vec<&str> = tables
                .iter()
                .filter(|t| t.schema == schema)
                .map(|t| t.name.as_str())
                .collect();
            let rows = self
                .client
                .query(postgres::REPLICA_IDENTITY_QUERY, &[&schema, &names])
                .await
                .map_err(inspect)?;
            for row in rows {
                replica_identity.insert(row.get::<_, String>(0), row.get::<_, String>(1));
            }
        }

        let slot_observation = self
            .client
            .query_opt(
                // NB: invalidation_reason and failover exist from PostgreSQL 17 on; read through
                // to_jsonb so the same query runs on 15 and 16, where they are NULL.
                "SELECT active, pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::bigint, \
                        wal_status, to_jsonb(s) ->> 'invalidation_reason', to_jsonb(s) ->> 'failover' \
                 FROM pg_catalog.pg_replication_slots s WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(inspect)?
            .map(|row| SlotObservation {
                active: row.get(0),
                retained_wal_bytes: row.get(1),
                invalidated: row.get::<_, Option<String>>(3).or_else(|| {
                    (row.get::<_, Option<String>>(2).as_deref() == Some("lost"))
                        .then(|| "wal_removed".to_owned())
                }),
                failover: row
                    .get::<_, Option<String>>(4)
                    .map(|text| text == "true"),
            });
        let server_version_num: i32 = self
            .client
            .query_one(postgres::SERVER_VERSION_QUERY, &[])
            .await
            .map_err(inspect)?
            .get(0);

        // NB: the capture creates this table when it starts its first snapshot.
        let snapshot = self.client.query(SNAPSHOT_PROGRESS_QUERY, &[&slot]).await;
        let snapshot = match snapshot {
            Ok(rows) => rows
                .iter()
                .map(|row| TableSnapshotStatus {
                    table: row.get(0),
                    state: snapshot_state(row.get(1)),
                    rows: row.get(3),
                })
                .collect(),
            // The table does not exist yet: no snapshot has started.
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Vec::new(),
            Err(e) => return Err(inspect(e)),
        };

        Ok(SourceObservation {
            publication_tables,
            row_filters,
            replica_identity,
            slot: slot_observation,
            snapshot,
            server_version_num: Some(server_version_num),
        })
    }

    async fn execute(&self, statements: &[String]) -> Result<(), DatabaseError> {
        for statement in statements {
            self.client
                .batch_execute(statement)
                .await
                .map_err(|e| DatabaseError::Statement {
                    statement: statement.clone(),
                    message: error_text(&e),
                })?;
        }
        Ok(())
    }
}
