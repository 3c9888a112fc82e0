//! The shared model of the project: the `CdcPipeline` custom resource that users declare, the CDC
//! envelope that travels between capture and sink, and the pure functions that derive every artefact
//! (SQL, DDL, configuration, Kubernetes objects' inputs) from a pipeline spec.
//!
//! | module | owns |
//! | --- | --- |
//! | [`pipeline`] | the resource's Rust types (spec, status), schema patterns and CEL rules |
//! | [`crd`] | the generated CustomResourceDefinition (`crds/cdcpipeline.yaml`) |
//! | [`mod@validate`] | the pure `validate()` and `compile()` with field-path errors |
//! | [`schema_check`] | the generated schema's bounds, enums, patterns and known fields applied to a document |
//! | [`document`] | parsing and validating a `CdcPipeline` YAML document in one step |
//! | [`names`] | publication, slot, topic, consumer-group and database names |
//! | [`column_type`] | the supported ClickHouse column types and their ranges |
//! | [`unrepresentable`] | the `onUnrepresentable` policy of a column and what it writes |
//! | [`star`] | dimensions and facts behind one view, bookkeeping columns, lookup resolution |
//! | [`star_model`] | the compiled star schema: tables, typed columns, keys, routes, lookup trees |
//! | [`postgres`] | publication, replica identity and slot SQL |
//! | [`clickhouse_ddl`] | table schemas, `CREATE`/`ADD COLUMN`/`DROP` DDL, drift |
//! | [`status_tables`] | the tables beside the star tables the sink reports into, and their queries |
//! | [`verification`] | the scheduled verification's rules and the resync request annotation |
//! | [`redpanda_connect`] | the Redpanda Connect configuration of that capture engine |
//! | [`envelope`] | the CDC envelope v1 and its extensions, LSNs, message keys |
//!
//! Everything here is pure: no I/O, so the operator's `plan` can print what it would run.

pub mod clickhouse_ddl;
pub mod clickhouse_placement;
pub mod column_type;
pub mod crd;
pub mod document;
pub mod envelope;
pub mod names;
pub mod pipeline;
pub mod postgres;
pub mod redpanda_connect;
pub mod schema_check;
pub mod star;
pub mod star_model;
pub mod status_tables;
pub mod unrepresentable;
pub mod validate;
pub mod verification;

#[cfg(test)]
mod test_fixtures;

pub use column_type::ColumnType;
pub use document::{PipelineDocumentError, parse_compiled, parse_pipeline};
pub use envelope::{Envelope, Lsn, Metadata, Operation};
pub use pipeline::{CdcPipeline, CdcPipelineSpec, CdcPipelineStatus, OnUnrepresentable};
pub use validate::{ValidationError, ValidationErrors, validate};
