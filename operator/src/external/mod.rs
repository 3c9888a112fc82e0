//! The two databases the operator changes outside Kubernetes, behind small traits so the reconcile
//! loop can be tested against in-memory fakes and the real implementations against real services:
//! [`SourceDatabase`] (the Postgres being captured) and [`Warehouse`] (ClickHouse).
//!
//! Each trait has a connector that opens a session from what the dereference phase read out of
//! Secrets; the values travel as [`Sensitive`], whose `Debug` never prints them.

pub mod clickhouse;
pub mod postgres;

use std::fmt;

use async_trait::async_trait;
use cdcstar_crds::clickhouse_placement::Placement;

use crate::sql::{SourceObservation, WarehouseObservation, WarehouseReport};

/// A secret value read from a Secret. `Debug` and `Display` print `<redacted>`: a secret must never
/// reach a log, an event or a status.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Sensitive(value.into())
    }

    /// The value, for the one place that needs it (a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// ClickHouse user and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseCredentials {
    /// User name.
    pub username: Sensitive,
    pub password: Sensitive,
}

/// Why a database step failed. Messages never contain the DSN or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseError {
    /// The server could not be reached or refused the session.
    #[error("failed to connect: {0}")]
    Unreachable(String),
    /// Reading the current state failed.
    #[error("failed to inspect current state: {0}")]
    Inspect(String),
    /// A statement failed.
    #[error("failed to run `{statement}`: {message}")]
    Statement {
        statement: String,
        /// What the server said.
        message: String,
    },
}

/// A session on the source database.
#[async_trait]
pub trait SourceDatabase: Send + Sync {
    /// The publication's tables and row filters, which captured tables have replica identity FULL,
    /// and the slot. With `row_filter_probe` (`cdcstar_crds::postgres::row_filter_probe`), also the
    /// declared row filters as Postgres prints them, read in a transaction that is rolled back.
    async fn observe(
        &self,
        publication: &str,
        slot: &str,
        tables: &[cdcstar_crds::postgres::QualifiedTable],
        row_filter_probe: Option<&str>,
    ) -> Result<SourceObservation, DatabaseError>;

    /// Runs the statements one by one, outside an explicit transaction (a slot cannot be created in
    /// a transaction that wrote), stopping at the first failure.
    async fn execute(&self, statements: &[String]) -> Result<(), DatabaseError>;
}

/// Opens sessions on source databases.
#[async_trait]
pub trait SourceConnector: Send + Sync {
    /// Connects with the DSN read from the pipeline's Secret.
    async fn connect(&self, dsn: &Sensitive) -> Result<Box<dyn SourceDatabase>, DatabaseError>;
}

/// A session on ClickHouse.
#[async_trait]
pub trait Warehouse: Send + Sync {
    /// Whether `database` exists and the columns of its tables, read as `placement` says (from every
    /// replica of a cluster).
    async fn observe(
        &self,
        database: &str,
        placement: &Placement,
    ) -> Result<WarehouseObservation, DatabaseError>;

    /// Runs one DDL statement.
    async fn execute(&self, statement: &str) -> Result<(), DatabaseError>;

    /// What the sink of the pipeline keyed `pipeline` (`CdcPipeline::status_key`) reported in the
    /// status tables of `database` (which exist: read after the DDL ran).
    async fn report(
        &self,
        database: &str,
        pipeline: &str,
    ) -> Result<WarehouseReport, DatabaseError>;
}

/// Opens sessions on ClickHouse.
pub trait WarehouseConnector: Send + Sync {
    /// A client for `url` with optional credentials (ClickHouse's HTTP interface is stateless, so
    /// nothing is contacted before the first call).
    fn connect(&self, url: &str, credentials: Option<&WarehouseCredentials>) -> Box<dyn Warehouse>;
}
