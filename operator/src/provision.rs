//! `cdcstar-operator provision FILE` and `deprovision FILE`: the reconcile's two database phases
//! (source and schema) and the finalizer's database cleanup, run once without Kubernetes.
//!
//! They are the operator's own phase functions, not a copy: the local kubelet harness
//! (`scripts/kubelet.py`, behind `make demo` and the end-to-end test) provisions with them before it
//! runs the Deployments `plan` prints, so what runs locally is what a cluster would run. The Secret
//! values the controller would dereference come from the command line or its environment instead.

use cdcstar_crds::CdcPipeline;

use crate::controller::{schema, source};
use crate::external::clickhouse::ClickHouseConnector;
use crate::external::postgres::PostgresConnector;
use crate::external::{Sensitive, WarehouseCredentials};

/// What the controller would read out of the pipeline's Secrets.
#[derive(Debug, Clone)]
pub struct SecretValues {
    /// The value of `spec.source.connectionSecretRef`.
    pub source_dsn: Sensitive,
    /// The values of `spec.clickhouse.credentialsSecretRef`, when the pipeline has one.
    pub warehouse_credentials: Option<WarehouseCredentials>,
}

/// Why provisioning or its cleanup stopped. The phase's message already holds its causes, so it is
/// not chained again as a source (which `{:#}` would print twice).
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The source phase failed.
    #[error("{0}")]
    Source(source::SourceError),
    /// The schema phase failed.
    #[error("{0}")]
    Schema(schema::SchemaError),
    /// Both phases failed.
    #[error("{0}; {1}")]
    Both(source::SourceError, schema::SchemaError),
}

impl From<source::SourceError> for ProvisionError {
    fn from(error: source::SourceError) -> Self {
        ProvisionError::Source(error)
    }
}

impl From<schema::SchemaError> for ProvisionError {
    fn from(error: schema::SchemaError) -> Self {
        ProvisionError::Schema(error)
    }
}

/// Brings the source database and the ClickHouse schema to the pipeline's spec, as one reconcile
/// pass does (each phase runs whether or not the other failed: the sink needs its tables while the
/// source tables do not exist yet), and returns what that pass would report: the statements run and
/// the drift left alone, one line each.
pub async fn provision(
    pipeline: &CdcPipeline,
    secrets: &SecretValues,
) -> Result<Vec<String>, ProvisionError> {
    let source = source::reconcile_source(&PostgresConnector, &secrets.source_dsn, pipeline).await;
    let schema = schema::reconcile_schema(
        &ClickHouseConnector,
        secrets.warehouse_credentials.as_ref(),
        pipeline,
    )
    .await;
    let (source, schema) = match (source, schema) {
        (Ok(source), Ok(schema)) => (source, schema),
        (Err(source), Err(schema)) => return Err(ProvisionError::Both(source, schema)),
        (Err(source), Ok(_)) => return Err(ProvisionError::Source(source)),
        (Ok(_), Err(schema)) => return Err(ProvisionError::Schema(schema)),
    };
    let mut lines = Vec::new();
    lines.extend(source.executed.iter().map(|s| format!("postgres: {s}")));
    lines.extend(schema.executed.iter().map(|s| format!("clickhouse: {s}")));
    lines.extend(
        schema
            .drift
            .iter()
            .map(|d| format!("clickhouse drift left alone: {d}")),
    );
    Ok(lines)
}

/// Removes what [`provision`] made outside Kubernetes, as the finalizer does: the slot (after
/// terminating its reader) and the publication, and the ClickHouse tables only when
/// `spec.clickhouse.dropTablesOnDelete` is set. Returns the finalizer's event note.
pub async fn deprovision(
    pipeline: &CdcPipeline,
    secrets: &SecretValues,
) -> Result<String, ProvisionError> {
    let mut note = source::cleanup_source(&PostgresConnector, &secrets.source_dsn, pipeline)
        .await?
        .describe(pipeline);
    if pipeline.spec.clickhouse.drop_tables_on_delete {
        let dropped = schema::drop_tables(
            &ClickHouseConnector,
            secrets.warehouse_credentials.as_ref(),
            pipeline,
        )
        .await?;
        note.push_str(&format!(
            "; dropped {} tables and its rows of the status tables",
            dropped.len()
        ));
    }
    Ok(note)
}
