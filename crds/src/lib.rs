//! The shared model of the project: the `CdcPipeline` custom resource that users declare, the CDC
//! envelope that travels between capture and sink, and the pure functions that derive every artefact
//! (SQL, DDL, configuration, Kubernetes objects' inputs) from a pipeline spec.

pub mod clickhouse_ddl;
pub mod column_type;
pub mod crd;
pub mod envelope;
pub mod names;
pub mod pipeline;
pub mod postgres;
pub mod redpanda_connect;
pub mod star;
pub mod validate;

#[cfg(test)]
mod test_fixtures;

pub use column_type::ColumnType;
pub use envelope::{Envelope, Lsn, Metadata, Operation};
pub use pipeline::{CdcPipeline, CdcPipelineSpec, CdcPipelineStatus};
pub use validate::{ValidationError, ValidationErrors, validate};
