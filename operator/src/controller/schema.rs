//! Phase 3b: the ClickHouse schema. Observes the database's tables and columns, runs the DDL
//! `crate::sql` derives (create what is missing, add columns), and reports drift it leaves alone;
//! then reads what the sink reported in the status tables beside the star tables.

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::clickhouse_ddl::{self, Drift};
use cdcstar_crds::clickhouse_placement::Placement;
use cdcstar_crds::status_tables;
use cdcstar_crds::validate::ValidationErrors;

use crate::external::{DatabaseError, WarehouseConnector, WarehouseCredentials};
use crate::sql::{self, WarehouseReport};

use super::status::{CLICKHOUSE_SCHEMA, ConditionUpdate};

/// What the pass did on ClickHouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaReport {
    /// DDL run, in order (empty when everything was in place).
    pub executed: Vec<String>,
    /// Differences left alone.
    pub drift: Vec<Drift>,
    /// What the sink reported in the status tables.
    pub report: WarehouseReport,
}

/// Why the schema could not be brought to the spec.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// ClickHouse failed.
    #[error("clickhouse: {0}")]
    Database(#[from] DatabaseError),
    /// The star schema does not validate (caught earlier by the validate phase; kept for safety).
    #[error("invalid star schema: {0}")]
    Invalid(#[from] ValidationErrors),
}

/// Brings the ClickHouse schema to the spec.
pub async fn reconcile_schema(
    connector: &dyn WarehouseConnector,
    credentials: Option<&WarehouseCredentials>,
    pipeline: &CdcPipeline,
) -> Result<SchemaReport, SchemaError> {
    let warehouse = connector.connect(&pipeline.spec.clickhouse.url, credentials);
    let observed = warehouse
        .observe(pipeline.clickhouse_database(), &Placement::of(pipeline))
        .await?;
    let plan = sql::warehouse_plan(pipeline, &observed)?;
    for statement in &plan.statements {
        warehouse.execute(statement).await?;
    }
    let report = warehouse
        .report(pipeline.clickhouse_database(), &pipeline.status_key())
        .await?;
    Ok(SchemaReport {
        executed: plan.statements,
        drift: plan.drift,
        report,
    })
}

/// Drops every star table, then deletes the pipeline's rows from the status tables (only called
/// when `dropTablesOnDelete` is set). Returns the star tables' `DROP` statements.
pub async fn drop_tables(
    connector: &dyn WarehouseConnector,
    credentials: Option<&WarehouseCredentials>,
    pipeline: &CdcPipeline,
) -> Result<Vec<String>, SchemaError> {
    let warehouse = connector.connect(&pipeline.spec.clickhouse.url, credentials);
    let drops = clickhouse_ddl::drop_statements(pipeline)?;
    for statement in drops
        .iter()
        .chain(&status_tables::delete_statements(pipeline))
    {
        warehouse.execute(statement).await?;
    }
    Ok(drops)
}

/// The `ClickHouseSchema` condition after a pass.
pub fn schema_condition(
    pipeline: &CdcPipeline,
    result: &Result<SchemaReport, SchemaError>,
) -> ConditionUpdate {
    let database = pipeline.clickhouse_database();
    let tables = pipeline.spec.star_schema.dimensions.len() + pipeline.spec.star_schema.facts.len();
    match result {
        Ok(report) if report.drift.is_empty() => ConditionUpdate::ok(
            CLICKHOUSE_SCHEMA,
            if report.executed.is_empty() {
                "UpToDate"
            } else {
                "Applied"
            },
            format!("{tables} tables in database {database} match the spec"),
        ),
        Ok(report) => ConditionUpdate::ok(
            CLICKHOUSE_SCHEMA,
            "Drift",
            format!(
                "{tables} tables in database {database}; left alone: {}",
                report
                    .drift
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        Err(SchemaError::Database(DatabaseError::Unreachable(message))) => ConditionUpdate::failed(
            CLICKHOUSE_SCHEMA,
            "ClickHouseUnreachable",
            format!(
                "clickhouse at {} unreachable: {message}",
                pipeline.spec.clickhouse.url
            ),
        ),
        Err(error) => ConditionUpdate::failed(CLICKHOUSE_SCHEMA, "DdlFailed", error.to_string()),
    }
}
