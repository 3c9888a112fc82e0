//! The `CdcPipeline` custom resource: what a user declares (`spec`) and what the operator reports
//! (`status`).
//!
//! Everything a pipeline does is derived from this one declaration: the Postgres publication and slot,
//! the capture's configuration, the ClickHouse DDL and the sink's routing. The `///` docs on every field
//! are what `kubectl explain cdcpipeline.spec...` shows, so they are written for users.
//!
//! Over 400 lines: the whole user-facing spec, whose field docs are what `kubectl explain` shows;
//! splitting it would scatter the reference.
// NB: internal notes go in `//` comments so they stay out of the generated schema.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every resource this project defines.
pub const GROUP: &str = "cdcstar.dev";
/// Finalizer that guards what Kubernetes cannot garbage-collect (publication, slot, tables on request).
pub const FINALIZER: &str = "cdcpipelines.cdcstar.dev/cleanup";

// NB: the schema patterns below are the apiserver's first line of defence; `validate()` is the
// authoritative check (it also runs in the operator and in `plan`) and stays in step with them.

/// Schema pattern of SQL identifiers (tables, columns, schema, database, publication).
pub const SQL_IDENTIFIER_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
/// Schema pattern of replication slot names (Postgres allows lowercase letters, digits, `_`).
pub const SLOT_NAME_PATTERN: &str = "^[a-z0-9_]+$";
/// Schema pattern of Kafka topic names.
pub const TOPIC_PATTERN: &str = "^[A-Za-z0-9._-]+$";
/// Schema pattern of the supported ClickHouse types (precise bounds are checked by `validate()`).
pub const COLUMN_TYPE_PATTERN: &str = concat!(
    r"^ *(",
    r"(U?Int(8|16|32|64)|Float(32|64)|Decimal\( *[0-9]{1,2} *, *[0-9]{1,2} *\)|String|Bool|Date|Date32|DateTime|DateTime64\( *[0-9] *\)|UUID)",
    r"|Nullable\( *(U?Int(8|16|32|64)|Float(32|64)|Decimal\( *[0-9]{1,2} *, *[0-9]{1,2} *\)|String|Bool|Date|Date32|DateTime|DateTime64\( *[0-9] *\)|UUID) *\)",
    r"|LowCardinality\( *(String|Nullable\( *String *\)) *\)",
    r") *$"
);

/// A change-data-capture pipeline from PostgreSQL tables into a ClickHouse star schema.
///
/// The operator keeps a publication (and, for the native capture, a logical replication slot) on the
/// source database, runs the capture that turns committed changes into CDC events on Kafka/Redpanda
/// topics, creates the ClickHouse tables, and runs the sink that maintains dimension and fact tables
/// from those events.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "cdcstar.dev",
    version = "v1alpha1",
    kind = "CdcPipeline",
    plural = "cdcpipelines",
    singular = "cdcpipeline",
    shortname = "cdcp",
    category = "cdc",
    namespaced,
    status = "CdcPipelineStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Tables","type":"integer","jsonPath":".status.tables"}"#,
    printcolumn = r#"{"name":"Lag","type":"string","jsonPath":".status.lag"}"#,
    printcolumn = r#"{"name":"Freshness","type":"date","jsonPath":".status.consistentUpTo.time","description":"How long ago the last change the star schema is complete up to was committed"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.starSchema.dimensions) || self.starSchema.dimensions.all(d, self.source.tables.exists(t, t.name == d.source))",
        "message": "the source of every dimension must be listed in spec.source.tables"
    },
    {
        "rule": "!has(self.starSchema.facts) || self.starSchema.facts.all(f, self.source.tables.exists(t, t.name == f.source))",
        "message": "the source of every fact must be listed in spec.source.tables"
    }
]))]
pub struct CdcPipelineSpec {
    /// Deprecated: `suspend: true` means `state: paused` (whatever `state` says); use `state`.
    #[serde(default)]
    pub suspend: bool,

    /// `running` (default) or `paused`. Paused: the capture and the sink are scaled to zero while
    /// the publication, the replication slot and the ClickHouse tables are kept; the slot retains
    /// the WAL of every change made meanwhile, and the status warns once it exceeds
    /// `spec.source.slot.maxRetainedWal`. Back to `running`, the capture continues from the slot and
    /// nothing is lost.
    #[serde(default)]
    pub state: PipelineState,

    /// The PostgreSQL database whose tables are captured.
    pub source: SourceSpec,

    /// How changes are read from PostgreSQL and published as CDC events.
    #[serde(default)]
    pub capture: CaptureSpec,

    /// The Kafka-protocol brokers (Kafka, Redpanda) that carry the CDC events.
    pub kafka: KafkaSpec,

    /// The ClickHouse server that holds the star schema.
    pub clickhouse: ClickHouseSpec,

    /// The dimension and fact tables maintained in ClickHouse, and where each column comes from.
    pub star_schema: StarSchemaSpec,

    /// The sink Deployment that writes the star schema.
    #[serde(default)]
    pub sink: WorkloadSpec,

    /// The demo OLTP REST service (customers, products, orders, order items) writing to the source
    /// database. Off unless `enabled` is true.
    #[serde(default)]
    pub api: ApiSpec,

    /// How stale the star schema may be: at most this long between now and the commit time it is
    /// complete up to (`status.consistentUpTo.time`), e.g. `30s`, `5m`, `1h30m`. When set, the
    /// condition `Fresh` says whether the pipeline meets it. Unset: no `Fresh` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    pub freshness_objective: Option<String>,

    /// Verify the star schema against Postgres on a schedule: the operator runs
    /// `cdcstar-sink verify` as a CronJob, whose results reach `status.verification` and the
    /// `Verified` condition. Unset: no scheduled verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySpec>,
}

/// `spec.verify`: the scheduled verification (docs/sink.md, Verification).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifySpec {
    /// When to run, as a CronJob schedule: five cron fields (`0 * * * *`: hourly) or a macro
    /// (`@hourly`, `@daily`, ...), in the time zone of the kube-controller-manager.
    #[schemars(
        length(min = 1, max = 64),
        pattern(crate::verification::SCHEDULE_PATTERN)
    )]
    pub schedule: String,
    /// Re-emit the rows still differing after the re-check (`--repair`), so the sink fixes them.
    #[serde(default)]
    pub repair: bool,
    /// Keys each side reads at a time (`--chunk-rows`; 10 000 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub chunk_rows: Option<u32>,
    /// Compute resources of the verifier's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl CdcPipelineSpec {
    /// `freshnessObjective` as a duration; `None` when unset or not a valid duration (which
    /// `validate()` refuses).
    pub fn freshness_objective(&self) -> Option<std::time::Duration> {
        self.freshness_objective.as_deref().and_then(parse_duration)
    }

    /// Whether the pipeline is paused: `state: paused`, or the deprecated `suspend: true`. The one
    /// rule every reader applies (the operator's children and status, `plan`).
    pub fn paused(&self) -> bool {
        self.state == PipelineState::Paused || self.suspend
    }

    /// Which field pauses the pipeline, for messages: `spec.state is paused` or the deprecated
    /// alias; `None` when it runs.
    pub fn paused_by(&self) -> Option<&'static str> {
        if self.state == PipelineState::Paused {
            Some("spec.state is paused")
        } else if self.suspend {
            Some("spec.suspend is true (deprecated alias of spec.state: paused)")
        } else {
            None
        }
    }
}

/// Whether the pipeline runs.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PipelineState {
    /// Capture and sink run.
    #[default]
    Running,
    /// Capture and sink are scaled to zero; the slot keeps every change for the resume.
    Paused,
}

/// Schema pattern of byte sizes: a whole number of bytes, optionally with a binary suffix
/// (`Ki`, `Mi`, `Gi`, `Ti`), as Kubernetes quantities write them.
pub const BYTE_SIZE_PATTERN: &str = "^[0-9]+(Ki|Mi|Gi|Ti)?$";

/// Reads a size of [`BYTE_SIZE_PATTERN`] into bytes; `None` for anything else or on overflow.
pub fn parse_byte_size(text: &str) -> Option<i64> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let shift = match &text[digits..] {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        "Ti" => 40,
        _ => return None,
    };
    let value: i64 = text[..digits].parse().ok()?;
    value.checked_mul(1i64 << shift)
}

/// The retained WAL a paused pipeline warns about when `spec.source.slot.maxRetainedWal` is unset.
pub const DEFAULT_MAX_RETAINED_WAL: &str = "1Gi";

/// Schema pattern of durations: hours, minutes and seconds, each optional, in that order (`90s`,
/// `5m`, `1h30m`).
pub const DURATION_PATTERN: &str = "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$";

/// Reads a duration of [`DURATION_PATTERN`]; `None` for anything else, for the empty string and for
/// zero.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let mut seconds: u64 = 0;
    let mut rest = text;
    let mut units = ['h', 'm', 's'].iter();
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let unit = rest[digits..].chars().next()?;
        let factor = match units.by_ref().find(|u| **u == unit)? {
            'h' => 3600,
            'm' => 60,
            _ => 1,
        };
        let value: u64 = rest[..digits].parse().ok()?;
        seconds = seconds.checked_add(value.checked_mul(factor)?)?;
        rest = &rest[digits + 1..];
    }
    (seconds > 0).then(|| std::time::Duration::from_secs(seconds))
}

/// A key inside a Secret in the pipeline's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// The PostgreSQL side of the pipeline.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// Secret key holding the connection string, e.g.
    /// `postgresql://user:password@host:5432/db?sslmode=disable`. The user needs the REPLICATION
    /// attribute and ownership of the captured tables (to create the publication).
    pub connection_secret_ref: SecretKeyRef,

    /// Schema of the captured tables.
    #[serde(default = "default_schema")]
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub schema: String,

    /// The tables to capture, each once. Every table a dimension or fact reads from must be listed here.
    #[schemars(length(min = 1, max = 128))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub tables: Vec<SourceTable>,

    /// Publication name. Defaults to `cdcstar_<pipeline name>` (dashes become underscores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub publication: Option<String>,

    /// The logical replication slot: its name, failover, and the retained WAL the status warns
    /// about.
    // NB: a string here (the slot's name, the field's first form) is still read, so stored
    // pipelines keep working; the schema asks for the object.
    #[serde(
        default,
        skip_serializing_if = "SlotSpec::is_default",
        deserialize_with = "slot_spec_or_name"
    )]
    pub slot: SlotSpec,

    /// Set `REPLICA IDENTITY FULL` on every captured table, so updates and deletes carry the whole old
    /// row (needed to see the old key of an update that changes it and the old values of unchanged
    /// TOASTed columns). Costs extra WAL. Required by a `rowFilter` on a column other than the
    /// primary key (Postgres refuses updates and deletes of such a table otherwise).
    #[serde(default)]
    pub replica_identity_full: bool,

    /// Secret key holding the salt of `mask: hash` (the HMAC-SHA256 key, the same for every table
    /// of the pipeline, so equal values hash equally and still join). Required when a column is
    /// masked with `hash`. Changing it changes every hash written after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_salt_secret_ref: Option<SecretKeyRef>,
}

fn default_schema() -> String {
    "public".to_owned()
}

/// The logical replication slot of the pipeline.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotSpec {
    /// Slot name (lowercase letters, digits, `_`). Defaults to `cdcstar_<pipeline name>` (dashes
    /// become underscores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(SLOT_NAME_PATTERN))]
    pub name: Option<String>,

    /// Create the slot as a failover slot (PostgreSQL 17+), which a standby synchronises so the
    /// capture can continue on it after a failover (the servers need `sync_replication_slots` and
    /// `synchronized_standby_slots`, see docs/operator.md). Refused, with the `Publication`
    /// condition, on older servers. Changing it does not alter an existing slot: the condition
    /// says how.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failover: bool,

    /// How much WAL the slot may retain while the pipeline is paused before the status warns
    /// (`RetainedWalGrowing`, and a Warning Event): bytes, or with `Ki`, `Mi`, `Gi`, `Ti`
    /// (e.g. `10Gi`). Default `1Gi`. A warning only: Postgres's own `max_slot_wal_keep_size` is
    /// what invalidates a slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 24), pattern(BYTE_SIZE_PATTERN))]
    pub max_retained_wal: Option<String>,
}

impl SlotSpec {
    /// A slot named `name`, nothing else set.
    pub fn named(name: impl Into<String>) -> Self {
        SlotSpec {
            name: Some(name.into()),
            ..SlotSpec::default()
        }
    }

    fn is_default(&self) -> bool {
        self == &SlotSpec::default()
    }

    /// `maxRetainedWal` in bytes (its default when unset or unreadable, which `validate()`
    /// refuses).
    pub fn max_retained_wal_bytes(&self) -> i64 {
        self.max_retained_wal
            .as_deref()
            .and_then(parse_byte_size)
            .or_else(|| parse_byte_size(DEFAULT_MAX_RETAINED_WAL))
            .unwrap_or(i64::MAX)
    }
}

/// `spec.source.slot` as the object, or as the slot's name alone (the field's first form).
fn slot_spec_or_name<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<SlotSpec, D::Error> {
    // NB: not `#[serde(untagged)]`, which would hide why an object form is refused.
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(name) => Ok(SlotSpec::named(name)),
        serde_json::Value::Null => Ok(SlotSpec::default()),
        other => serde_json::from_value(other).map_err(serde::de::Error::custom),
    }
}

/// One captured table.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceTable {
    /// Table name as it is in PostgreSQL (case-sensitive, e.g. `order` or `orderitem`).
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub name: String,

    /// The table's primary key column (single-column keys only). Events are keyed by it, and foreign
    /// keys of lookups refer to it.
    #[serde(default = "default_primary_key")]
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub primary_key: String,

    /// Columns that never leave the capture: absent from every event, snapshot row, log line and
    /// dead letter. Neither the primary key nor a column a star table, a lookup or the row filter
    /// reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 128),
        inner(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub exclude_columns: Vec<String>,

    /// Columns whose values are replaced before they leave the capture: `hash` (lowercase hex
    /// HMAC-SHA256 of the value's text with the pipeline's salt, `spec.source.maskSaltSecretRef`:
    /// equal values give equal hashes, so they still join), `redact` (the string `REDACTED`) or
    /// `null`. NULL stays NULL. Never the primary key; a star column fed by a `hash` or `redact`
    /// column must be a String type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["column"]))]
    pub mask: Vec<ColumnMask>,

    /// Only rows matching every condition (ANDed) are replicated: the publication's row filter
    /// (PostgreSQL 15+), applied to the snapshot too. An update that moves a row out of the filter
    /// arrives as a delete, one that moves it in as an insert (with `replicaIdentityFull`).
    /// Structured conditions, never SQL: values are sent as quoted literals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub row_filter: Vec<RowCondition>,
}

/// How one column is masked.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ColumnMask {
    /// Source column (case-sensitive).
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub column: String,
    /// `hash`, `redact` or `null`.
    pub with: MaskKind,
}

/// What a masked column's values become.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MaskKind {
    /// Lowercase hex HMAC-SHA256 of the value's text, keyed by the pipeline's salt.
    Hash,
    /// The string `REDACTED`.
    Redact,
    /// JSON null.
    Null,
}

impl MaskKind {
    /// The name in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            MaskKind::Hash => "hash",
            MaskKind::Redact => "redact",
            MaskKind::Null => "null",
        }
    }
}

/// One condition of a row filter: `column op value`, `column op values` (`in`, `notIn`) or
/// `column op` (`isNull`, `isNotNull`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.op in ['isNull', 'isNotNull'] ? !has(self.value) && !has(self.values) : (self.op in ['in', 'notIn'] ? has(self.values) && size(self.values) > 0 && !has(self.value) : has(self.value) && !has(self.values))",
        "message": "value goes with =, !=, <, <=, >, >=; values (at least one) with in and notIn; neither with isNull and isNotNull"
    }
]))]
pub struct RowCondition {
    /// Source column (case-sensitive).
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub column: String,
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `notIn`, `isNull` or `isNotNull`.
    pub op: FilterOp,
    /// The value compared with (not with `in`, `notIn`, `isNull`, `isNotNull`), as text: Postgres
    /// reads it as the column's type (`"42"`, `"2024-01-01"`, `"shipped"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub value: Option<String>,
    /// The values of `in` and `notIn`, as text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 1024)))]
    pub values: Vec<String>,
}

/// A row filter's comparison.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum FilterOp {
    /// Equal.
    #[serde(rename = "=")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// Less than or equal.
    #[serde(rename = "<=")]
    Le,
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// Greater than or equal.
    #[serde(rename = ">=")]
    Ge,
    /// One of `values`.
    #[serde(rename = "in")]
    In,
    /// None of `values` (and not NULL).
    #[serde(rename = "notIn")]
    NotIn,
    /// NULL.
    #[serde(rename = "isNull")]
    IsNull,
    /// Not NULL.
    #[serde(rename = "isNotNull")]
    IsNotNull,
}

impl FilterOp {
    /// The name in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            FilterOp::Eq => "=",
            FilterOp::Ne => "!=",
            FilterOp::Lt => "<",
            FilterOp::Le => "<=",
            FilterOp::Gt => ">",
            FilterOp::Ge => ">=",
            FilterOp::In => "in",
            FilterOp::NotIn => "notIn",
            FilterOp::IsNull => "isNull",
            FilterOp::IsNotNull => "isNotNull",
        }
    }

    /// What the operator compares with: one `value`, a list of `values`, or nothing.
    pub fn operand(self) -> FilterOperand {
        match self {
            FilterOp::In | FilterOp::NotIn => FilterOperand::Values,
            FilterOp::IsNull | FilterOp::IsNotNull => FilterOperand::None,
            _ => FilterOperand::Value,
        }
    }
}

/// What a [`FilterOp`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterOperand {
    /// `value`.
    Value,
    /// `values`, at least one.
    Values,
    /// Neither.
    None,
}

impl SourceTable {
    /// A table keyed by `primary_key`, with every column captured as it is and every row.
    pub fn new(name: impl Into<String>, primary_key: impl Into<String>) -> Self {
        SourceTable {
            name: name.into(),
            primary_key: primary_key.into(),
            exclude_columns: Vec::new(),
            mask: Vec::new(),
            row_filter: Vec::new(),
        }
    }

    /// How column `column` is masked, `None` when it is not.
    pub fn mask_of(&self, column: &str) -> Option<MaskKind> {
        self.mask
            .iter()
            .find(|m| m.column == column)
            .map(|m| m.with)
    }

    /// Whether column `column` is excluded.
    pub fn excludes(&self, column: &str) -> bool {
        self.exclude_columns.iter().any(|c| c == column)
    }
}

fn default_primary_key() -> String {
    "id".to_owned()
}

/// How changes are captured.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.engine) || self.engine != 'redpandaConnect' || has(self.redpandaConnect)",
        "message": "redpandaConnect settings (at least licenseSecretRef) are required when engine is redpandaConnect"
    }
]))]
pub struct CaptureSpec {
    /// `native` (default): this project's licence-free capture reading the slot with pgoutput.
    /// `redpandaConnect`: Redpanda Connect's `postgres_cdc` input (needs an Enterprise licence).
    #[serde(default)]
    pub engine: CaptureEngine,

    /// Emit the rows that exist when the pipeline (or a table) is added, as `read` events, before
    /// streaming changes.
    #[serde(default = "default_true")]
    pub snapshot: bool,

    /// Settings of the Redpanda Connect engine; required when `engine` is `redpandaConnect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redpanda_connect: Option<RedpandaConnectSpec>,

    /// Deployment settings of the native capture.
    #[serde(default)]
    pub native: WorkloadSpec,
}

// NB: written by hand, not derived, so that an omitted `capture` gets the same defaults as an empty
// one (a derived Default would turn `snapshot` off).
impl Default for CaptureSpec {
    fn default() -> Self {
        CaptureSpec {
            engine: CaptureEngine::default(),
            snapshot: default_true(),
            redpanda_connect: None,
            native: WorkloadSpec::default(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// The capture engine.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum CaptureEngine {
    /// This project's capture: pgoutput over a logical replication slot, no licence needed.
    #[default]
    Native,
    /// Redpanda Connect's `postgres_cdc` input.
    RedpandaConnect,
}

/// Redpanda Connect settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedpandaConnectSpec {
    /// Redpanda Connect image.
    #[serde(default = "default_redpanda_connect_image")]
    #[schemars(length(min = 1))]
    pub image: String,

    /// Secret key holding the Redpanda Enterprise licence.
    pub license_secret_ref: SecretKeyRef,

    /// Compute resources of the Redpanda Connect container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

fn default_redpanda_connect_image() -> String {
    "redpandadata/connect:4.67.5".to_owned()
}

/// The Kafka-protocol brokers and topics.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSpec {
    /// Bootstrap brokers, `host:port`.
    #[schemars(length(min = 1, max = 32), inner(length(min = 3)))]
    pub brokers: Vec<String>,

    /// How events are spread over topics.
    #[serde(default)]
    pub topics: TopicsSpec,

    /// Secret with the client's security settings, for brokers that need them. Recognised keys:
    /// `security.protocol`, `sasl.mechanism`, `sasl.username`, `sasl.password`, `ca.crt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretNameRef>,
}

/// A whole Secret in the pipeline's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretNameRef {
    /// Name of the Secret.
    pub name: String,
}

/// Topic layout.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicsSpec {
    /// `perTable` (default): one topic per captured table, `<prefix>.<table>`, keyed by primary key so
    /// changes to one row stay ordered while tables and partitions are consumed in parallel.
    /// `single`: one topic named `<prefix>` for all tables, as the reference app does.
    #[serde(default)]
    pub mode: TopicMode,

    /// Topic name prefix. Defaults to the pipeline name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200), pattern(TOPIC_PATTERN))]
    pub prefix: Option<String>,

    /// Partitions of each topic the operator creates.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 1000))]
    pub partitions: i32,

    /// Dead-letter topic for events the sink cannot apply. Defaults to `<prefix>.dlq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), pattern(TOPIC_PATTERN))]
    pub dead_letter: Option<String>,
}

// NB: written by hand, not derived, so that an omitted `topics` gets 3 partitions, not 0.
impl Default for TopicsSpec {
    fn default() -> Self {
        TopicsSpec {
            mode: TopicMode::default(),
            prefix: None,
            partitions: default_partitions(),
            dead_letter: None,
        }
    }
}

fn default_partitions() -> i32 {
    3
}

/// Topic layout mode.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum TopicMode {
    /// One topic per table.
    #[default]
    PerTable,
    /// One topic for all tables.
    Single,
}

/// The ClickHouse target.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClickHouseSpec {
    /// HTTP(S) endpoint, e.g. `http://clickhouse:8123`.
    #[schemars(pattern("^https?://[^\\s]+$"))]
    pub url: String,

    /// Database holding the star schema; created when missing.
    #[serde(default = "default_database")]
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub database: String,

    /// Secret with the user name and password. Without it the `default` user without password is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,

    /// Drop the star-schema tables when the pipeline is deleted. Off by default: analytics data outlives
    /// the pipeline unless asked otherwise.
    #[serde(default)]
    pub drop_tables_on_delete: bool,

    /// Let ClickHouse remove deleted rows for good during merges
    /// (`allow_experimental_replacing_merge_with_cleanup`). Off by default: without it a deleted row
    /// stays as a hidden tombstone that `FINAL` filters out.
    #[serde(default)]
    pub cleanup_deleted_rows: bool,

    /// A self-hosted ClickHouse cluster (with Keeper, or run by the ClickHouse operator): every
    /// statement runs `ON CLUSTER`, each table is a `Replicated...MergeTree` named `<table>_local` on
    /// every replica, and a `Distributed` table under the table's own name shards rows by a hash of
    /// the key, so every version of a key meets on one shard. Leave it unset for a single server and
    /// for ClickHouse Cloud, which replicates every table itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSpec>,
}

fn default_database() -> String {
    "local".to_owned()
}

/// Where the star schema's tables live on a ClickHouse cluster.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// The cluster's name in the servers' `remote_servers` configuration.
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub name: String,
    /// Keeper path of each replicated table; the servers expand the `{shard}`, `{database}` and
    /// `{table}` macros.
    #[serde(default = "default_replica_path")]
    #[schemars(length(min = 2, max = 255), pattern(r"^/[A-Za-z0-9_{}./-]+$"))]
    pub replica_path: String,
    /// Name of each replica; the servers expand the `{replica}` macro.
    #[serde(default = "default_replica_name")]
    #[schemars(length(min = 1, max = 255), pattern(r"^[A-Za-z0-9_{}.-]+$"))]
    pub replica_name: String,
}

fn default_replica_path() -> String {
    "/clickhouse/tables/{shard}/{database}/{table}".to_owned()
}

fn default_replica_name() -> String {
    "{replica}".to_owned()
}

/// Where ClickHouse credentials are.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret.
    pub name: String,
    /// Key of the user name.
    #[serde(default = "default_username_key")]
    pub username_key: String,
    /// Key of the password in the same Secret.
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

fn default_username_key() -> String {
    "username".to_owned()
}

fn default_password_key() -> String {
    "password".to_owned()
}

/// The star schema: dimensions and facts.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StarSchemaSpec {
    /// Dimension tables: one row per source row, e.g. `customer_dim` from `customer`.
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub dimensions: Vec<DimensionSpec>,

    /// Fact tables: one row per source row, with columns copied from dimensions (lookups). A source
    /// table backs at most one fact.
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub facts: Vec<FactSpec>,

    /// What the sink writes for a value its column's ClickHouse type cannot hold (a date after
    /// 2299 in a `DateTime64`, 300 in a `UInt8`, more digits than a `Decimal`'s precision, 1.5 in an
    /// integer column): `clamp` (default) writes the nearest value the type holds, `null` writes NULL
    /// (the type's default in a column that is not `Nullable`), `deadLetter` sends the whole event to
    /// the dead-letter topic. Each adjusted value is counted per table and column. A column's own
    /// `onUnrepresentable` overrides this; key columns are never adjusted.
    #[serde(default)]
    pub on_unrepresentable: OnUnrepresentable,
}

/// What the sink does with a value its column's type cannot hold.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum OnUnrepresentable {
    /// The nearest value the type holds; NULL (or the type's default) when there is none (NaN).
    #[default]
    Clamp,
    /// NULL, or the type's default in a column that is not `Nullable`.
    Null,
    /// The event goes to the dead-letter topic.
    DeadLetter,
}

impl OnUnrepresentable {
    /// The name in the spec (`clamp`, `null`, `deadLetter`).
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnrepresentable::Clamp => "clamp",
            OnUnrepresentable::Null => "null",
            OnUnrepresentable::DeadLetter => "deadLetter",
        }
    }
}

/// Declares a star table's spec (a dimension or a fact): the validation that `key` names one of
/// `columns`; `name` (with the doc given) and the `source`, `key` and `columns` every star table has;
/// then the table's own fields.
macro_rules! star_table_spec {
    (
        $(#[$($attr:tt)*])*
        pub struct $spec:ident {
            #[doc = $name_doc:tt]
            pub name: String,
            $($fields:tt)*
        }
    ) => {
        $(#[$($attr)*])*
        #[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
        #[serde(rename_all = "camelCase")]
        #[schemars(extend("x-kubernetes-validations" = [
            {
                "rule": "self.columns.exists(c, c.name == self.key)",
                "message": "key must be the name of one of columns",
                "fieldPath": ".key"
            }
        ]))]
        pub struct $spec {
            #[doc = $name_doc]
            #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
            pub name: String,
            /// Captured source table it mirrors.
            #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
            pub source: String,
            /// The column (among `columns`) that holds the source table's primary key; the table's ORDER BY.
            #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
            pub key: String,
            /// Columns copied from the source row.
            #[schemars(length(min = 1, max = 128))]
            #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
            pub columns: Vec<ColumnSpec>,
            $($fields)*
        }
    };
}

star_table_spec! {
    /// A dimension table.
    pub struct DimensionSpec {
        /// ClickHouse table name, e.g. `customer_dim`.
        pub name: String,
    }
}

star_table_spec! {
    /// A fact table.
    pub struct FactSpec {
        /// ClickHouse table name, e.g. `order_fact`.
        pub name: String,
        /// Columns taken from other captured tables through foreign keys (denormalised). Kept current:
        /// when the referenced row changes, the fact rows that carry its values are rewritten.
        #[serde(default)]
        #[schemars(length(max = 64))]
        #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
        pub lookups: Vec<LookupSpec>,
    }
}

/// A column copied from the source row.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ColumnSpec {
    /// ClickHouse column name. `lsn`, `is_deleted` and `source_lsn` are reserved.
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub name: String,
    /// Source column name (case-sensitive, e.g. `customerId`).
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub source: String,
    /// ClickHouse type: `UInt8`..`UInt64`, `Int8`..`Int64`, `Float32`, `Float64`, `Decimal(P, S)`,
    /// `String`, `LowCardinality(String)`, `Bool`, `Date`, `Date32`, `DateTime`, `DateTime64(P)`,
    /// `UUID`, or `Nullable(T)` of one of them (and `LowCardinality(Nullable(String))`).
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 64), pattern(COLUMN_TYPE_PATTERN))]
    pub r#type: String,
    /// Overrides `spec.starSchema.onUnrepresentable` for this column. Ignored on the key column,
    /// whose values are never adjusted (two keys would become one row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_unrepresentable: Option<OnUnrepresentable>,
}

/// A fact column taken from another captured table through one or more foreign keys.
///
/// `order_fact.customer_name` from `customer.name` via `order.customerId` is
/// `{name: customer_name, type: String, via: [{foreignKey: customerId, references: customer}],
/// column: name}`; `orderitem_fact.customer_country` goes through the order:
/// `via: [{foreignKey: orderId, references: order}, {foreignKey: customerId, references: customer}]`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LookupSpec {
    /// ClickHouse column name in the fact table.
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub name: String,
    /// ClickHouse type of the column (same list as for columns).
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 64), pattern(COLUMN_TYPE_PATTERN))]
    pub r#type: String,
    /// The foreign keys to follow, starting at the fact's source table. The first foreign key must be
    /// the source of one of the fact's columns; each next one the source of a column of a dimension or
    /// fact of the table referenced before.
    #[schemars(length(min = 1, max = 8))]
    pub via: Vec<LookupHop>,
    /// Source column of the last referenced table whose value is copied; a dimension or fact of that
    /// table must copy it.
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub column: String,
}

/// One foreign-key step of a lookup.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LookupHop {
    /// Foreign-key column of the current table (e.g. `customerId` of `order`).
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub foreign_key: String,
    /// The captured table it references, by its primary key (e.g. `customer`). It must back a declared
    /// dimension or fact that has the columns the lookup needs.
    #[schemars(length(min = 1, max = 63), pattern(SQL_IDENTIFIER_PATTERN))]
    pub references: String,
}

/// Deployment settings of a component.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Container image. Defaults to the image of the operator's release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Number of replicas (the sink's replicas share the topics' partitions in one consumer group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 64))]
    pub replicas: Option<i32>,
    /// Compute resources of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// The demo OLTP REST service.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApiSpec {
    /// Run the api Deployment and its Service.
    #[serde(default)]
    pub enabled: bool,
    /// Deployment settings.
    #[serde(default)]
    pub workload: WorkloadSpec,
}

/// What the operator observed.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CdcPipelineStatus {
    /// Summary of the pipeline's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` plus one condition per component: `Publication`, `Capture`, `ClickHouseSchema`, `Sink`,
    /// `Api`.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Number of captured tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<i32>,

    /// End-to-end lag, human readable (`1.2s`, or the WAL the slot retains, `12MiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<String>,

    /// WAL bytes the replication slot retains on the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_wal_bytes: Option<i64>,

    /// Initial snapshot progress, one entry per table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshot: Vec<TableSnapshotStatus>,

    /// The point up to which the star schema is complete: every change committed at or before it is
    /// applied in every star table (later changes may be applied too). Read from the
    /// `cdcstar_watermark` view the sink maintains beside the star tables; absent until every topic
    /// partition has applied a position, and while the initial snapshot runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_up_to: Option<ConsistentUpTo>,

    /// Seconds between the last pass of the operator and `consistentUpTo.time` (the FRESHNESS column
    /// shows the same age as of now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness_seconds: Option<i64>,

    /// Values the sink could not store as they were, because the column's ClickHouse type cannot
    /// hold them, and replaced under the column's `onUnrepresentable` policy: one entry per star
    /// table, column and policy, counted since the table was created (a batch the sink replays after
    /// a crash is counted again).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value_adjustments: Vec<ValueAdjustmentStatus>,

    /// The last result of `cdcstar-sink verify` per star table: the star schema compared with
    /// Postgres, key range by key range, differences re-checked once the watermark passed them.
    /// Read from the `cdcstar_verifications` table the verifier writes beside the star tables;
    /// absent until it ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification: Vec<TableVerificationStatus>,

    /// The last `cdcstar.dev/recreate-slot` request the operator acted on (each value once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_recreation: Option<SlotRecreationStatus>,

    /// The resync the `cdcstar.dev/resync` annotation asks for, while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync: Option<ResyncStatus>,
}

/// A requested resync and how its Job went.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResyncStatus {
    /// The annotation's value.
    pub request: String,
    /// The star tables re-copied (none when the request is invalid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// The Job running it (none when the request is invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// `Running`, `Succeeded`, `Failed` or `Invalid`.
    pub state: String,
    /// Why it failed or is invalid, and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Annotation asking the operator to drop an invalidated replication slot and create it anew (the
/// capture then snapshots every table again). Any new value is one request, acted on once and
/// recorded in `status.slotRecreation`; a slot that is not invalidated is never dropped.
pub const RECREATE_SLOT_ANNOTATION: &str = "cdcstar.dev/recreate-slot";

/// What the operator did with one `cdcstar.dev/recreate-slot` request.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotRecreationStatus {
    /// The annotation's value.
    pub request: String,
    /// `Recreated` (the invalidated slot was dropped and created anew, its snapshot progress
    /// reset), `NotInvalidated` (the slot was healthy: nothing dropped) or `SlotMissing` (there was
    /// no slot: it was created as usual).
    pub outcome: String,
    /// What was done, and what is left to do (after `Recreated`: `cdcstar-sink verify --repair`
    /// for the rows updated or deleted while the slot was lost).
    pub message: String,
    /// When the operator acted on it.
    pub time: Time,
}

impl CdcPipeline {
    /// The value of `cdcstar.dev/recreate-slot` when the operator has not acted on it yet.
    pub fn pending_slot_recreation(&self) -> Option<&str> {
        let request = self
            .metadata
            .annotations
            .as_ref()?
            .get(RECREATE_SLOT_ANNOTATION)?;
        let handled = self
            .status
            .as_ref()
            .and_then(|s| s.slot_recreation.as_ref())
            .is_some_and(|done| &done.request == request);
        (!handled && !request.is_empty()).then_some(request.as_str())
    }
}

/// The last verification of one star table against Postgres.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableVerificationStatus {
    /// Star table.
    pub table: String,
    /// When the verification ended.
    pub verified_at: Time,
    /// Source rows compared.
    pub rows_checked: i64,
    /// Keys that still differed after the re-check (and after the repair, when asked).
    pub mismatches: i64,
    /// The first mismatching keys (the verifier's output lists all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatch_keys: Vec<String>,
    /// Mismatching keys re-emitted and equal afterwards (`--repair`).
    pub repaired: i64,
    /// Keys that could not be decided (a source row the sink refuses, rows still changing, a
    /// watermark that did not move).
    pub skipped: i64,
    /// Why the table was not verified, if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_verified: Option<String>,
}

/// Summary phase of a pipeline.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Accepted, nothing provisioned yet.
    Pending,
    /// Components are being created or are not ready yet.
    Provisioning,
    /// Every component is ready.
    Running,
    /// Running, but a component reports a problem.
    Degraded,
    /// The name `Paused` had before `spec.state`; no longer written.
    Suspended,
    /// `spec.state` is `paused` (or the deprecated `spec.suspend` is true): capture and sink at
    /// zero, the slot kept.
    Paused,
    /// The spec is invalid or a referenced object is missing; see the conditions.
    Failed,
    /// Being deleted; cleanup in progress.
    Deleting,
}

/// A commit position of the source.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsistentUpTo {
    /// Commit time of the source transaction (or heartbeat) the star schema is complete up to.
    pub time: Time,
    /// Its commit LSN, in Postgres text form (`16/B374D848`).
    pub lsn: String,
}

/// Values of one star-table column replaced under one `onUnrepresentable` policy.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueAdjustmentStatus {
    /// Star table.
    pub table: String,
    /// Column of the star table.
    pub column: String,
    /// The policy that replaced them: `clamp` (the nearest value the type holds, or NULL / the type's
    /// default when there is none) or `null`.
    pub policy: String,
    /// Values replaced.
    pub count: i64,
    /// When the sink last wrote one.
    pub last_seen: Time,
}

/// Snapshot progress of one table.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableSnapshotStatus {
    /// Source table.
    pub table: String,
    /// `Pending`, `Running` or `Done`.
    pub state: String,
    /// Rows emitted so far.
    pub rows: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{SHOP_PIPELINE_YAML, shop_pipeline};

    #[test]
    fn the_example_round_trips_through_serde() {
        let pipeline = shop_pipeline();
        let json = serde_json::to_string(&pipeline).unwrap();
        let again: CdcPipeline = serde_json::from_str(&json).unwrap();
        assert_eq!(again.metadata, pipeline.metadata);
        assert_eq!(again.spec, pipeline.spec);
        let yaml = serde_yaml::to_string(&pipeline).unwrap();
        let again: CdcPipeline = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(again.spec, pipeline.spec);
        assert_eq!(pipeline.spec.star_schema.facts[1].lookups.len(), 6);
        assert!(SHOP_PIPELINE_YAML.contains("kind: CdcPipeline"));
    }

    #[test]
    fn policy_names_are_the_spec_spellings() {
        for policy in [
            OnUnrepresentable::Clamp,
            OnUnrepresentable::Null,
            OnUnrepresentable::DeadLetter,
        ] {
            assert_eq!(
                serde_json::to_value(policy).unwrap(),
                serde_json::Value::from(policy.as_str())
            );
        }
    }

    #[test]
    fn durations_read_hours_minutes_and_seconds_in_that_order() {
        use std::time::Duration;
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h0m5s"), Some(Duration::from_secs(3605)));
        for bad in ["", "0s", "30", "s", "5m1h", "1.5m", "1d", "30s "] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        // The schema's pattern admits exactly what the parser reads (zero aside, which the pattern
        // cannot express and `validate()` refuses).
        let pattern = regex::Regex::new(DURATION_PATTERN).unwrap();
        for text in [
            "30s", "5m", "1h30m", "1h0m5s", "30", "s", "5m1h", "1.5m", "1d", "12h", "0s",
        ] {
            assert_eq!(
                pattern.is_match(text),
                parse_duration(text).is_some() || text == "0s",
                "{text:?}"
            );
        }
    }

    #[test]
    fn omitted_sections_get_the_same_defaults_as_empty_ones() {
        let omitted: CaptureSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(omitted, CaptureSpec::default());
        assert!(CaptureSpec::default().snapshot);
        let omitted: TopicsSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(omitted, TopicsSpec::default());
        assert_eq!(TopicsSpec::default().partitions, 3);
    }

    #[test]
    fn minimal_spec_fills_defaults() {
        let spec: CdcPipelineSpec = serde_yaml::from_str(
            "source: {connectionSecretRef: {name: pg, key: dsn}, tables: [{name: customer}]}\n\
             kafka: {brokers: ['k:9092']}\n\
             clickhouse: {url: 'http://ch:8123'}\n\
             starSchema: {}\n",
        )
        .unwrap();
        assert_eq!(spec.source.schema, "public");
        assert_eq!(spec.source.tables[0].primary_key, "id");
        assert_eq!(spec.capture.engine, CaptureEngine::Native);
        assert!(spec.capture.snapshot);
        assert_eq!(spec.kafka.topics.mode, TopicMode::PerTable);
        assert_eq!(spec.kafka.topics.partitions, 3);
        assert_eq!(spec.clickhouse.database, "local");
        assert!(!spec.suspend);
        assert_eq!(spec.state, PipelineState::Running);
        assert!(!spec.paused());
        assert_eq!(spec.source.slot, SlotSpec::default());
    }

    #[test]
    fn paused_is_state_paused_or_the_deprecated_suspend() {
        let mut spec = shop_pipeline().spec;
        assert_eq!((spec.paused(), spec.paused_by()), (false, None));
        spec.suspend = true;
        assert!(spec.paused());
        assert!(spec.paused_by().unwrap().contains("deprecated"));
        spec.suspend = false;
        spec.state = PipelineState::Paused;
        assert_eq!(
            (spec.paused(), spec.paused_by()),
            (true, Some("spec.state is paused"))
        );
        // The alias pauses whatever state says.
        spec.state = PipelineState::Running;
        spec.suspend = true;
        assert!(spec.paused());
    }

    #[test]
    fn a_slot_given_as_its_name_alone_still_reads() {
        let source = |slot: &str| -> SourceSpec {
            serde_yaml::from_str(&format!(
                "connectionSecretRef: {{name: pg, key: dsn}}\ntables: [{{name: t}}]\n{slot}"
            ))
            .unwrap()
        };
        assert_eq!(source("slot: shop_slot").slot, SlotSpec::named("shop_slot"));
        assert_eq!(source("").slot, SlotSpec::default());
        let full = source("slot: {name: s, failover: true, maxRetainedWal: 10Gi}").slot;
        assert_eq!(full.name.as_deref(), Some("s"));
        assert!(full.failover);
        assert_eq!(full.max_retained_wal_bytes(), 10 << 30);
        // A default slot is not written back; a set one is written as the object.
        let json = serde_json::to_value(source("slot: shop_slot")).unwrap();
        assert_eq!(json["slot"], serde_json::json!({"name": "shop_slot"}));
        assert!(
            serde_json::to_value(source(""))
                .unwrap()
                .get("slot")
                .is_none()
        );
        let refused = serde_yaml::from_str::<SourceSpec>(
            "connectionSecretRef: {name: pg, key: dsn}\ntables: [{name: t}]\nslot: {failover: maybe}",
        );
        let refused = refused.unwrap_err().to_string();
        assert!(refused.contains("expected a boolean"), "{refused}");
    }

    #[test]
    fn byte_sizes_read_bytes_and_binary_suffixes() {
        assert_eq!(parse_byte_size("512"), Some(512));
        assert_eq!(parse_byte_size("64Ki"), Some(64 << 10));
        assert_eq!(parse_byte_size("1Gi"), Some(1 << 30));
        assert_eq!(parse_byte_size("2Ti"), Some(2 << 40));
        for bad in ["", "Gi", "1G", "1.5Gi", "1gi", "-1", "99999999999Ti"] {
            assert_eq!(parse_byte_size(bad), None, "{bad:?}");
        }
        let pattern = regex::Regex::new(BYTE_SIZE_PATTERN).unwrap();
        for text in ["512", "64Ki", "1Gi", "Gi", "1G", "1.5Gi", "-1"] {
            assert_eq!(
                pattern.is_match(text),
                parse_byte_size(text).is_some(),
                "{text:?}"
            );
        }
        assert_eq!(SlotSpec::default().max_retained_wal_bytes(), 1 << 30);
    }

    #[test]
    fn a_recreate_request_is_pending_until_the_status_records_its_value() {
        let mut pipeline = shop_pipeline();
        assert_eq!(pipeline.pending_slot_recreation(), None);
        pipeline.metadata.annotations = Some(
            [(RECREATE_SLOT_ANNOTATION.to_owned(), "1".to_owned())]
                .into_iter()
                .collect(),
        );
        assert_eq!(pipeline.pending_slot_recreation(), Some("1"));
        pipeline.status = Some(CdcPipelineStatus {
            slot_recreation: Some(SlotRecreationStatus {
                request: "1".into(),
                outcome: "Recreated".into(),
                message: String::new(),
                time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            }),
            ..CdcPipelineStatus::default()
        });
        assert_eq!(pipeline.pending_slot_recreation(), None);
        pipeline
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(RECREATE_SLOT_ANNOTATION.to_owned(), "2".to_owned());
        assert_eq!(pipeline.pending_slot_recreation(), Some("2"));
    }
}
