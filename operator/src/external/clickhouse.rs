//! [`Warehouse`] on a real ClickHouse server through the `clickhouse` crate (HTTP interface).

use std::collections::BTreeMap;

use async_trait::async_trait;
use cdcstar_crds::clickhouse_placement::Placement;
use cdcstar_crds::status_tables;
use serde::Deserialize;

use super::{DatabaseError, Warehouse, WarehouseConnector, WarehouseCredentials};
use crate::sql::{ValueAdjustment, Verification, WarehouseObservation, WarehouseReport, Watermark};

/// Connects to ClickHouse over HTTP.
#[derive(Debug, Clone, Default)]
pub struct ClickHouseConnector;

impl WarehouseConnector for ClickHouseConnector {
    fn connect(&self, url: &str, credentials: Option<&WarehouseCredentials>) -> Box<dyn Warehouse> {
        let mut client = clickhouse::Client::default().with_url(url);
        if let Some(credentials) = credentials {
            client = client
                .with_user(credentials.username.expose())
                .with_password(credentials.password.expose());
        }
        Box::new(ClickHouseWarehouse { client })
    }
}

/// A ClickHouse client.
#[derive(Clone)]
pub struct ClickHouseWarehouse {
    client: clickhouse::Client,
}

cdcstar_runtime::debug_fields!(ClickHouseWarehouse {});

impl ClickHouseWarehouse {
    /// The rows a status-table query (`sql`, with a `{pipeline:String}` parameter) answers for
    /// `pipeline`.
    async fn pipeline_rows<T>(&self, sql: &str, pipeline: &str) -> Result<Vec<T>, DatabaseError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        self.client
            .query(sql)
            .param("pipeline", pipeline)
            .fetch_all::<T>()
            .await
            .map_err(classify)
    }

    /// Whether `database` exists.
    async fn database_exists(&self, database: &str) -> Result<bool, DatabaseError> {
        let databases = self
            .client
            .query("SELECT count() AS count FROM system.databases WHERE name = ?")
            .bind(database)
            .fetch_all::<CountRow>()
            .await
            .map_err(classify)?;
        Ok(databases.first().is_some_and(|row| row.count > 0))
    }
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct ColumnRow {
    table: String,
    name: String,
    column_type: String,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct CountRow {
    count: u64,
}

/// Transport failures mean the server is unreachable; anything the server answered is a statement
/// or inspection error.
fn is_transport(error: &clickhouse::error::Error) -> bool {
    matches!(
        error,
        clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut
    )
}

/// A failed read: unreachable, or an inspection error.
fn classify(error: clickhouse::error::Error) -> DatabaseError {
    if is_transport(&error) {
        DatabaseError::Unreachable(error.to_string())
    } else {
        DatabaseError::Inspect(error.to_string())
    }
}

#[async_trait]
impl Warehouse for ClickHouseWarehouse {
    async fn observe(
        &self,
        database: &str,
        placement: &Placement,
    ) -> Result<WarehouseObservation, DatabaseError> {
        let database_exists = self.database_exists(database).await?;
        let mut tables: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        if database_exists {
            let columns = self
                .client
                .query(&placement.columns_query())
                .bind(database)
                .fetch_all::<ColumnRow>()
                .await
                .map_err(classify)?;
            for column in columns {
                tables
                    .entry(column.table)
                    .or_default()
                    .push((column.name, column.column_type));
            }
        }
        Ok(WarehouseObservation {
            database_exists,
            tables,
        })
    }

    async fn report(
        &self,
        database: &str,
        pipeline: &str,
    ) -> Result<WarehouseReport, DatabaseError> {
        let value_adjustments = self
            .pipeline_rows::<ValueAdjustment>(
                &status_tables::value_adjustments_query(database),
                pipeline,
            )
            .await?;
        let watermark = self
            .pipeline_rows::<Watermark>(&status_tables::watermark_query(database), pipeline)
            .await?
            .into_iter()
            .next();
        let verifications = self
            .pipeline_rows::<Verification>(&status_tables::verifications_query(database), pipeline)
            .await?;
        Ok(WarehouseReport {
            verifications,
            value_adjustments,
            watermark,
        })
    }

    async fn execute(&self, statement: &str) -> Result<(), DatabaseError> {
        self.client.query(statement).execute().await.map_err(|e| {
            if is_transport(&e) {
                DatabaseError::Unreachable(e.to_string())
            } else {
                DatabaseError::Statement {
                    statement: statement.to_owned(),
                    message: e.to_string(),
                }
            }
        })
    }
}
