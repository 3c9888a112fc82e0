//! `cdcstar-operator plan FILE`: everything the operator would do for a pipeline, printed and
//! touching nothing — the Postgres statements and ClickHouse DDL of a first install (in the order
//! the operator runs them) and every Kubernetes manifest it would server-side apply. Secrets appear
//! only as references (`secretKeyRef`), never as values: the plan never reads them.

use std::fmt::Write as _;

use cdcstar_crds::redpanda_connect::BrokerTransport;
use cdcstar_crds::schema_check::unknown_fields;
use cdcstar_crds::validate::{ValidationError, ValidationErrors};
use cdcstar_crds::{CdcPipeline, clickhouse_ddl, postgres};
use serde::Serialize;

use crate::config::OperatorConfig;
use crate::controller::build::{self, BuildError, DesiredState};
use crate::controller::validate;

/// Stands for the pipeline's uid in owner references: the API server assigns it on creation.
pub const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file is not a CdcPipeline (the source names the field).
    #[error("failed to parse the pipeline")]
    Parse(#[from] serde_yaml::Error),
    /// The file has fields the CdcPipeline schema does not declare (what
    /// `kubectl apply --validate=strict` refuses), each with its path.
    #[error("fields unknown to the CdcPipeline schema would be dropped: {}", paths(.0))]
    UnknownFields(Vec<ValidationError>),
    /// The pipeline breaks rules.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The manifests could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// What a plan holds.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The pipeline as planned (namespace defaulted).
    pub pipeline: CdcPipeline,
    /// Source database statements.
    pub postgres: Vec<String>,
    /// ClickHouse DDL.
    pub clickhouse: Vec<String>,
    /// Kubernetes objects.
    pub kubernetes: DesiredState,
}

fn paths(errors: &[ValidationError]) -> String {
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    paths.join(", ")
}

/// Plans the pipeline in `yaml` (a CdcPipeline document), refusing fields its schema does not
/// declare, as `kubectl apply --validate=strict` does: a misspelt optional field would otherwise
/// be planned as absent.
pub fn plan_yaml(yaml: &str, config: &OperatorConfig) -> Result<Plan, PlanError> {
    let document: serde_json::Value = serde_yaml::from_str(yaml)?;
    let unknown = unknown_fields(&document);
    if !unknown.is_empty() {
        return Err(PlanError::UnknownFields(unknown));
    }
    let mut pipeline: CdcPipeline = serde_yaml::from_str(yaml)?;
    if pipeline.metadata.namespace.is_none() {
        pipeline.metadata.namespace = Some(pipeline.pipeline_namespace());
    }
    if pipeline.metadata.uid.is_none() {
        pipeline.metadata.uid = Some(PLACEHOLDER_UID.to_owned());
    }
    plan(pipeline, config)
}

/// Plans `pipeline`.
pub fn plan(pipeline: CdcPipeline, config: &OperatorConfig) -> Result<Plan, PlanError> {
    validate::validate(&pipeline)?;
    let postgres = postgres::install_statements(&pipeline);
    let clickhouse = clickhouse_ddl::install_statements(&pipeline)?;
    // NB: a plan reads no Secret, so Redpanda Connect's TLS is shown off; a reconcile turns it on
    // when the Kafka auth Secret's security.protocol is SSL or SASL_SSL.
    let kubernetes = build::build(&pipeline, config, BrokerTransport::default())?;
    Ok(Plan {
        pipeline,
        postgres,
        clickhouse,
        kubernetes,
    })
}

fn push_manifest(out: &mut String, object: &impl Serialize) -> Result<(), serde_yaml::Error> {
    out.push_str("---\n");
    out.push_str(&serde_yaml::to_string(object)?);
    Ok(())
}

impl Plan {
    /// The Kubernetes objects as one multi-document YAML stream (what `kubectl apply -f` takes).
    pub fn manifests_yaml(&self) -> Result<String, serde_yaml::Error> {
        let mut out = String::new();
        for object in &self.kubernetes.config_maps {
            push_manifest(&mut out, object)?;
        }
        for object in &self.kubernetes.deployments {
            push_manifest(&mut out, object)?;
        }
        for object in &self.kubernetes.services {
            push_manifest(&mut out, object)?;
        }
        for object in &self.kubernetes.cron_jobs {
            push_manifest(&mut out, object)?;
        }
        for object in &self.kubernetes.jobs {
            push_manifest(&mut out, object)?;
        }
        Ok(out)
    }

    /// The whole plan for review: SQL sections as comments-headed statement lists, then the
    /// manifests.
    pub fn render(&self) -> Result<String, serde_yaml::Error> {
        let spec = &self.pipeline.spec;
        let mut out = String::new();
        let name = format!(
            "{}/{}",
            self.pipeline.pipeline_namespace(),
            self.pipeline.pipeline_name()
        );
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# cdcstar plan for cdcpipeline {name}");
        let _ = writeln!(
            out,
            "# Nothing was contacted: these are the statements of a first install; on an existing\n\
             # install the operator runs only those whose effect is missing."
        );
        if let Some(field) = spec.paused_by() {
            let _ = writeln!(
                out,
                "# Paused ({field}): capture and sink at 0 replicas; the publication and the slot are\n\
                 # kept, and the slot retains the WAL of every change until the pipeline resumes."
            );
        }
        if spec.source.slot.failover {
            let _ = writeln!(
                out,
                "# The slot is created as a failover slot: PostgreSQL 17 or later (on an older server\n\
                 # it is not created and the Publication condition says so; docs/operator.md)."
            );
        }
        let _ = writeln!(
            out,
            "\n# == Postgres: source database (connection string from Secret {}, key {}) ==",
            spec.source.connection_secret_ref.name, spec.source.connection_secret_ref.key
        );
        for statement in &self.postgres {
            let _ = writeln!(out, "{statement};");
        }
        let _ = writeln!(
            out,
            "\n# == ClickHouse: {} (database {}) ==",
            spec.clickhouse.url,
            self.pipeline.clickhouse_database()
        );
        for statement in &self.clickhouse {
            let _ = writeln!(out, "{statement};");
        }
        let _ = writeln!(
            out,
            "\n# == Kubernetes: server-side apply, field manager {} ==",
            crate::FIELD_MANAGER
        );
        let _ = writeln!(
            out,
            "# ownerReferences uid {PLACEHOLDER_UID} stands for the uid the API server gives the pipeline"
        );
        for obsolete in &self.kubernetes.obsolete {
            let _ = writeln!(
                out,
                "# deleted when present: {:?} {}",
                obsolete.kind, obsolete.name
            );
        }
        out.push_str(&self.manifests_yaml()?);
        Ok(out)
    }
}
