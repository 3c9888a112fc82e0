//! `cdcstar-operator`: a kube-runtime controller that turns a `CdcPipeline` custom resource into a
//! running change-data-capture pipeline (Postgres publication and slot, capture, ClickHouse schema,
//! sink, optional demo api) and reports its state honestly in the resource's status.
//!
//! The reconcile loop is a sequence of phases, one module each under [`controller`]:
//! [`controller::validate`] (pure) → [`controller::dereference`] (reads the referenced Secrets) →
//! [`controller::source`] and [`controller::schema`] (Postgres and ClickHouse, behind the traits in
//! [`external`]) → [`controller::build`] (pure: the desired Kubernetes objects) → [`controller::apply`]
//! (server-side apply) → [`controller::status`]. [`controller::cleanup`] runs behind the finalizer.
//!
//! The binary's subcommands live in [`cli`]; [`plan`] prints everything a pipeline would cause
//! without touching anything; [`provision`] runs the database phases once without Kubernetes.

pub mod app;
pub mod cli;
pub mod config;
pub mod controller;
pub mod external;
pub mod http;
pub mod kube_error;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod provision;
pub mod sql;
pub mod telemetry;

/// Field manager of every server-side apply the operator makes (children and status).
pub const FIELD_MANAGER: &str = "cdcstar-operator";
