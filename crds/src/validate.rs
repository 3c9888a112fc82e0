//! The rules a pipeline must satisfy beyond what its OpenAPI schema and CEL rules say, checked by a pure
//! [`validate`] that reports every violation with its field path.
//!
//! Names from the spec end up in SQL, DDL, topic names and Redpanda Connect's configuration, so they
//! are held to a strict alphabet here, before anything is generated:
//! - SQL identifiers (source schema, tables, columns, primary keys; ClickHouse database, tables,
//!   columns; publication) match `[A-Za-z_][A-Za-z0-9_]*` and are at most 63 bytes (Postgres'
//!   NAMEDATALEN - 1). Quotes, `;`, whitespace and control characters are thereby rejected; keywords
//!   such as `order` are allowed because every generated statement quotes every identifier.
//! - The replication slot matches `[a-z0-9_]+` (Postgres' own rule), at most 63 bytes; so must the
//!   default `cdcstar_<name>` when no slot or publication name is given. With the Redpanda Connect
//!   engine at most 50 bytes ([`redpanda_connect::slot_name_problem`]).
//! - Topic names (prefix, dead-letter) match `[A-Za-z0-9._-]+`, at most 249 bytes, and the dead-letter
//!   topic is none of the data topics.
//!
//! Columns and rows ([`crate::pipeline::SourceTable`]'s `excludeColumns`, `mask`, `rowFilter`): the
//! key is neither excluded nor masked; nothing of the star schema or the row filter reads an
//! excluded column; a `hash` or `redact` column feeds String columns only; no lookup follows a
//! masked foreign key; `hash` has its salt Secret; a filter on a non-key column needs `REPLICA
//! IDENTITY FULL`; each condition has the operand its `op` takes; the native capture only.
//!
//! Structural rules: at least one captured table, all distinct; at least one dimension or fact; star
//! table names distinct and none the name of a status table ([`crate::status_tables`]); a table's `key` copies its source table's `primaryKey`; column names distinct
//! within a table (columns, lookups and the reserved `lsn`, `is_deleted`, `source_lsn`); a source table
//! backs at most one fact; a lookup has at most [`MAX_LOOKUP_HOPS`] steps into captured tables; the
//! `redpandaConnect` engine has its settings; at least one broker, each `host:port`.
//!
//! And the star schema compiles into the one model the sink runs on ([`StarModel`], whose rules are
//! [`crate::star_model`]'s: column types from [`crate::ColumnType`]'s list, a key that is a column of
//! a type that can key a table, a `source` that is captured, lookups that resolve, no cycle of fact
//! lookups), so nothing admitted here is refused by the sink at startup.
//!
//! Every bound, enum and pattern of the generated CRD schema ([`crate::schema_check`]) holds too, so a
//! pipeline `validate()` accepts is one the apiserver accepts; a field already refused by a rule above
//! is not reported a second time by its schema bound.
//!
//! Over 400 lines: one check per part of the spec plus a test per rule (the tests are about 640 of
//! them).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::column_type::ColumnType;
use crate::pipeline::{
    CaptureEngine, CdcPipeline, FilterOperand, LookupSpec, MaskKind, SourceTable, parse_duration,
};
use crate::redpanda_connect;
use crate::schema_check::schema_violations;
use crate::star::{Bookkeeping, StarTable, TableKind, star_tables};
use crate::star_model::{ModelError, ModelErrors, StarModel};
use crate::status_tables::is_reserved_table_name;

/// Longest identifier Postgres keeps (NAMEDATALEN - 1); ClickHouse names are held to it too.
pub const MAX_IDENTIFIER_BYTES: usize = 63;
/// Longest Kafka topic name.
pub const MAX_TOPIC_BYTES: usize = 249;
/// Longest lookup chain.
pub const MAX_LOOKUP_HOPS: usize = 8;

/// One violated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Field path in the resource, e.g. `spec.starSchema.facts[1].lookups[0].via[0].references`.
    pub path: String,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every violated rule of a pipeline, in spec order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    /// The errors.
    pub fn errors(&self) -> &[ValidationError] {
        &self.0
    }

    /// Whether some error is at exactly `path`.
    pub fn has_path(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        write!(
            f,
            "invalid CdcPipeline ({count} error{}):",
            if count == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            write!(f, "\n  - {error}")?;
        }
        Ok(())
    }
}

/// What kind of name is checked, for the rule and the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    /// `[A-Za-z_][A-Za-z0-9_]*`, at most 63 bytes.
    SqlIdentifier,
    /// `[a-z0-9_]+`, at most 63 bytes.
    SlotName,
    /// `[A-Za-z0-9._-]+`, at most 249 bytes.
    Topic,
}

/// The first rule `name` breaks, as a message.
fn name_problem(name: &str, kind: NameKind) -> Option<String> {
    let (max, alphabet): (usize, &str) = match kind {
        NameKind::SqlIdentifier => (MAX_IDENTIFIER_BYTES, "[A-Za-z_][A-Za-z0-9_]*"),
        NameKind::SlotName => (MAX_IDENTIFIER_BYTES, "[a-z0-9_]+"),
        NameKind::Topic => (MAX_TOPIC_BYTES, "[A-Za-z0-9._-]+"),
    };
    if name.is_empty() {
        return Some(format!("must not be empty (allowed: {alphabet})"));
    }
    let allowed = |c: char, first: bool| match kind {
        NameKind::SqlIdentifier => {
            c == '_' || c.is_ascii_alphabetic() || (!first && c.is_ascii_digit())
        }
        NameKind::SlotName => c == '_' || c.is_ascii_lowercase() || c.is_ascii_digit(),
        NameKind::Topic => c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
    };
    if let Some((at, bad)) = name.char_indices().find(|&(at, c)| !allowed(c, at == 0)) {
        return Some(format!(
            "{name:?} has {} at byte {at}; allowed: {alphabet}",
            describe_char(bad)
        ));
    }
    if name.len() > max {
        return Some(format!(
            "{name:?} is {} bytes long; at most {max} allowed",
            name.len()
        ));
    }
    if kind == NameKind::Topic && (name == "." || name == "..") {
        return Some(format!("{name:?} is not a valid topic name"));
    }
    None
}

fn describe_char(c: char) -> String {
    if c.is_whitespace() {
        format!("whitespace {c:?}")
    } else if c.is_control() {
        format!("control character {:?}", c)
    } else {
        format!("{c:?}")
    }
}

/// Collects errors while walking the spec.
#[derive(Debug, Default)]
struct Collector {
    errors: Vec<ValidationError>,
}

impl Collector {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn name(&mut self, path: impl Into<String>, name: &str, kind: NameKind) {
        if let Some(problem) = name_problem(name, kind) {
            self.error(path, problem);
        }
    }
}

/// Check `pipeline` against every rule of the module docs; `Err` lists all violations.
pub fn validate(pipeline: &CdcPipeline) -> Result<(), ValidationErrors> {
    compile(pipeline).map(drop)
}

/// [`validate`] `pipeline` and return its compiled star schema.
pub fn compile(pipeline: &CdcPipeline) -> Result<StarModel, ValidationErrors> {
    let mut out = Collector::default();
    if pipeline.metadata.name.as_deref().unwrap_or("").is_empty() {
        out.error("metadata.name", "must be set");
    }
    validate_source(pipeline, &mut out);
    validate_columns_and_rows(pipeline, &mut out);
    validate_capture(pipeline, &mut out);
    validate_kafka(pipeline, &mut out);
    validate_clickhouse(pipeline, &mut out);
    let model = validate_star_schema(pipeline, &mut out);
    validate_freshness_objective(pipeline, &mut out);
    validate_verify(pipeline, &mut out);
    validate_schema_bounds(pipeline, &mut out);
    match model {
        Some(model) if out.errors.is_empty() => Ok(model),
        _ => Err(ValidationErrors(out.errors)),
    }
}

fn validate_freshness_objective(pipeline: &CdcPipeline, out: &mut Collector) {
    if let Some(text) = &pipeline.spec.freshness_objective
        && parse_duration(text).is_none()
    {
        out.error(
            "spec.freshnessObjective",
            format!("{text:?} is not a positive duration; write e.g. 30s, 5m or 1h30m"),
        );
    }
}

fn validate_verify(pipeline: &CdcPipeline, out: &mut Collector) {
    let Some(verify) = &pipeline.spec.verify else {
        return;
    };
    if !crate::verification::valid_schedule(&verify.schedule) {
        out.error(
            "spec.verify.schedule",
            format!(
                "{:?} is not a CronJob schedule: five cron fields (\"0 * * * *\") or a macro (\"@hourly\")",
                verify.schedule
            ),
        );
    }
    if verify.repair
        && pipeline.spec.capture.engine == crate::pipeline::CaptureEngine::RedpandaConnect
    {
        out.error(
            "spec.verify.repair",
            "the redpandaConnect engine reports no watermark, so the verifier cannot confirm what it \
             would repair; verify without repair, or use the native engine",
        );
    }
}

fn validate_schema_bounds(pipeline: &CdcPipeline, out: &mut Collector) {
    let spec = serde_json::to_value(&pipeline.spec).expect("a pipeline spec serialises to JSON");
    for violation in schema_violations(&spec) {
        let reported = out
            .errors
            .iter()
            .any(|e| e.path.split(' ').next() == Some(violation.path.as_str()));
        if !reported {
            out.errors.push(violation);
        }
    }
}

fn validate_source(pipeline: &CdcPipeline, out: &mut Collector) {
    let source = &pipeline.spec.source;
    out.name(
        "spec.source.schema",
        &source.schema,
        NameKind::SqlIdentifier,
    );
    if source.connection_secret_ref.name.is_empty() {
        out.error("spec.source.connectionSecretRef.name", "must not be empty");
    }
    if source.connection_secret_ref.key.is_empty() {
        out.error("spec.source.connectionSecretRef.key", "must not be empty");
    }
    if source.tables.is_empty() {
        out.error("spec.source.tables", "at least one table must be captured");
    }
    let mut seen = BTreeSet::new();
    for (i, table) in source.tables.iter().enumerate() {
        let path = format!("spec.source.tables[{i}]");
        out.name(format!("{path}.name"), &table.name, NameKind::SqlIdentifier);
        out.name(
            format!("{path}.primaryKey"),
            &table.primary_key,
            NameKind::SqlIdentifier,
        );
        if !seen.insert(table.name.as_str()) {
            out.error(
                format!("{path}.name"),
                format!("table {:?} is listed more than once", table.name),
            );
        }
    }
    // An explicit name is checked as given; a default one is checked so that a long pipeline name is
    // reported here rather than by Postgres.
    let explicit_or_default = |explicit: &Option<String>, field: &str| match explicit {
        Some(_) => format!("spec.source.{field}"),
        None => format!("spec.source.{field} (default from metadata.name)"),
    };
    let publication_path = explicit_or_default(&source.publication, "publication");
    out.name(
        publication_path,
        &pipeline.publication_name(),
        NameKind::SqlIdentifier,
    );
    let slot_path = explicit_or_default(&source.slot.name, "slot.name");
    out.name(slot_path, &pipeline.slot_name(), NameKind::SlotName);
}

/// Exclusion, masking and row filters of the source tables, and what they mean for the star schema:
/// the key stays whole, nothing reads an excluded column, a hashed or redacted value lands in a
/// String column, a masked foreign key is not followed, the filter reads no excluded column and
/// only the key unless the replica identity is full, `hash` has its salt, and only the native
/// capture applies any of it.
fn validate_columns_and_rows(pipeline: &CdcPipeline, out: &mut Collector) {
    let source = &pipeline.spec.source;
    let mut hashed = false;
    for (i, table) in source.tables.iter().enumerate() {
        let path = format!("spec.source.tables[{i}]");
        let mut excluded = BTreeSet::new();
        for (c, column) in table.exclude_columns.iter().enumerate() {
            let column_path = format!("{path}.excludeColumns[{c}]");
            out.name(column_path.clone(), column, NameKind::SqlIdentifier);
            if *column == table.primary_key {
                out.error(
                    column_path,
                    format!("{column:?} is the primary key, which keys every event; it cannot be excluded"),
                );
            } else if !excluded.insert(column.as_str()) {
                out.error(column_path, format!("{column:?} is listed more than once"));
            }
        }
        let mut masked = BTreeSet::new();
        for (m, mask) in table.mask.iter().enumerate() {
            let column_path = format!("{path}.mask[{m}].column");
            out.name(column_path.clone(), &mask.column, NameKind::SqlIdentifier);
            hashed |= mask.with == MaskKind::Hash;
            if mask.column == table.primary_key {
                out.error(
                    column_path,
                    format!(
                        "{:?} is the primary key, which keys every event and joins the star tables; it cannot be masked",
                        mask.column
                    ),
                );
            } else if excluded.contains(mask.column.as_str()) {
                out.error(
                    column_path,
                    format!("{:?} is excluded, so there is nothing to mask", mask.column),
                );
            } else if !masked.insert(mask.column.as_str()) {
                out.error(
                    column_path,
                    format!("{:?} is masked more than once", mask.column),
                );
            }
        }
        for (f, condition) in table.row_filter.iter().enumerate() {
            let condition_path = format!("{path}.rowFilter[{f}]");
            out.name(
                format!("{condition_path}.column"),
                &condition.column,
                NameKind::SqlIdentifier,
            );
            if excluded.contains(condition.column.as_str()) {
                out.error(
                    format!("{condition_path}.column"),
                    format!(
                        "{:?} is excluded; a row filter may only read captured columns",
                        condition.column
                    ),
                );
            } else if condition.column != table.primary_key && !source.replica_identity_full {
                out.error(
                    format!("{condition_path}.column"),
                    format!(
                        "filtering on {:?}, which is not the primary key, needs spec.source.replicaIdentityFull: \
                         true (Postgres refuses updates and deletes of a table whose publication filter reads \
                         a column outside its replica identity)",
                        condition.column
                    ),
                );
            }
            let op = condition.op.as_str();
            match condition.op.operand() {
                FilterOperand::Value => {
                    if condition.value.is_none() {
                        out.error(
                            format!("{condition_path}.value"),
                            format!("required with op {op}"),
                        );
                    }
                    if !condition.values.is_empty() {
                        out.error(
                            format!("{condition_path}.values"),
                            format!("not allowed with op {op} (use value)"),
                        );
                    }
                }
                FilterOperand::Values => {
                    if condition.values.is_empty() {
                        out.error(
                            format!("{condition_path}.values"),
                            format!("at least one value is required with op {op}"),
                        );
                    }
                    if condition.value.is_some() {
                        out.error(
                            format!("{condition_path}.value"),
                            format!("not allowed with op {op} (use values)"),
                        );
                    }
                }
                FilterOperand::None => {
                    if condition.value.is_some() {
                        out.error(
                            format!("{condition_path}.value"),
                            format!("not allowed with op {op}"),
                        );
                    }
                    if !condition.values.is_empty() {
                        out.error(
                            format!("{condition_path}.values"),
                            format!("not allowed with op {op}"),
                        );
                    }
                }
            }
            for (v, value) in condition.value.iter().chain(&condition.values).enumerate() {
                if value.contains('\0') {
                    let value_path = match condition.value {
                        Some(_) => format!("{condition_path}.value"),
                        None => format!("{condition_path}.values[{v}]"),
                    };
                    out.error(value_path, "Postgres text cannot hold a NUL character");
                }
            }
        }
        let uses_any = !table.exclude_columns.is_empty()
            || !table.mask.is_empty()
            || !table.row_filter.is_empty();
        if uses_any && pipeline.spec.capture.engine == CaptureEngine::RedpandaConnect {
            let field = if !table.exclude_columns.is_empty() {
                "excludeColumns"
            } else if !table.mask.is_empty() {
                "mask"
            } else {
                "rowFilter"
            };
            out.error(
                format!("{path}.{field}"),
                "excludeColumns, mask and rowFilter are applied by the native capture only; \
                 with engine redpandaConnect personal data would reach the topics: use engine native",
            );
        }
    }
    if hashed && source.mask_salt_secret_ref.is_none() {
        out.error(
            "spec.source.maskSaltSecretRef",
            "required when a column is masked with hash: {name, key} of the Secret holding the salt",
        );
    }
    if let Some(salt) = &source.mask_salt_secret_ref {
        for (field, value) in [("name", &salt.name), ("key", &salt.key)] {
            if value.is_empty() {
                out.error(
                    format!("spec.source.maskSaltSecretRef.{field}"),
                    "must not be empty",
                );
            }
        }
    }
    validate_star_reads(pipeline, out);
}

/// What the star schema reads of the source tables: no excluded column, a hashed or redacted one
/// only into a String column, no masked foreign key followed by a lookup.
fn validate_star_reads(pipeline: &CdcPipeline, out: &mut Collector) {
    let tables: BTreeMap<&str, (usize, &SourceTable)> = pipeline
        .spec
        .source
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), (i, t)))
        .collect();
    let is_string = |type_text: &str| {
        type_text
            .parse::<ColumnType>()
            .is_ok_and(|ty| *ty.base() == ColumnType::String)
    };
    // `(table, column)`: why the column may not be read, or into which types only.
    let check = |out: &mut Collector,
                 path: String,
                 table: &str,
                 column: &str,
                 type_text: Option<&str>| {
        let Some((i, source)) = tables.get(table) else {
            return;
        };
        if source.excludes(column) {
            out.error(
                path,
                format!(
                    "column {column:?} of {table} is excluded (spec.source.tables[{i}].excludeColumns); \
                     remove it from there or stop reading it here"
                ),
            );
        } else if let (Some(kind @ (MaskKind::Hash | MaskKind::Redact)), Some(type_text)) =
            (source.mask_of(column), type_text)
            && !is_string(type_text)
        {
            out.error(
                path,
                format!(
                    "column {column:?} of {table} is masked with {} (spec.source.tables[{i}].mask), \
                     which gives text: the type must be String, LowCardinality(String) or their Nullable forms, not {type_text}",
                    kind.as_str()
                ),
            );
        }
    };
    for table in star_tables(&pipeline.spec.star_schema) {
        let path = table.path();
        for (c, column) in table.columns.iter().enumerate() {
            let column_path = if tables
                .get(table.source)
                .is_some_and(|(_, t)| t.excludes(&column.source))
            {
                format!("{path}.columns[{c}].source")
            } else {
                format!("{path}.columns[{c}].type")
            };
            check(
                out,
                column_path,
                table.source,
                &column.source,
                Some(&column.r#type),
            );
        }
        for (l, lookup) in table.lookups.iter().enumerate() {
            let lookup_path = format!("{path}.lookups[{l}]");
            let mut from = table.source;
            for (h, hop) in lookup.via.iter().enumerate() {
                if let Some((i, source)) = tables.get(from)
                    && source.mask_of(&hop.foreign_key).is_some()
                {
                    out.error(
                        format!("{lookup_path}.via[{h}].foreignKey"),
                        format!(
                            "column {:?} of {from} is masked (spec.source.tables[{i}].mask): its values no \
                             longer match the primary keys of {}, so the lookup cannot follow it",
                            hop.foreign_key, hop.references
                        ),
                    );
                }
                from = &hop.references;
            }
            if let Some((_, source)) = tables.get(from)
                && !source.excludes(&lookup.column)
            {
                check(
                    out,
                    format!("{lookup_path}.type"),
                    from,
                    &lookup.column,
                    Some(&lookup.r#type),
                );
            }
        }
    }
}

fn validate_capture(pipeline: &CdcPipeline, out: &mut Collector) {
    let capture = &pipeline.spec.capture;
    if capture.engine == CaptureEngine::RedpandaConnect && pipeline.spec.source.slot.failover {
        out.error(
            "spec.source.slot.failover",
            "the native engine only: Redpanda Connect creates its own slot, without failover",
        );
    }
    if capture.engine == CaptureEngine::RedpandaConnect {
        match &capture.redpanda_connect {
            None => out.error(
                "spec.capture.redpandaConnect",
                "required when engine is redpandaConnect (at least licenseSecretRef)",
            ),
            Some(settings) => {
                if let Some(problem) = redpanda_connect::slot_name_problem(&pipeline.slot_name()) {
                    let path = match pipeline.spec.source.slot.name {
                        Some(_) => "spec.source.slot.name",
                        None => "spec.source.slot.name (default from metadata.name)",
                    };
                    out.error(path, problem);
                }
                if settings.image.trim().is_empty() {
                    out.error("spec.capture.redpandaConnect.image", "must not be empty");
                }
                if settings.license_secret_ref.name.is_empty() {
                    out.error(
                        "spec.capture.redpandaConnect.licenseSecretRef.name",
                        "must not be empty",
                    );
                }
                if settings.license_secret_ref.key.is_empty() {
                    out.error(
                        "spec.capture.redpandaConnect.licenseSecretRef.key",
                        "must not be empty",
                    );
                }
            }
        }
    }
}

fn validate_kafka(pipeline: &CdcPipeline, out: &mut Collector) {
    let kafka = &pipeline.spec.kafka;
    if kafka.brokers.is_empty() {
        out.error("spec.kafka.brokers", "at least one broker is needed");
    }
    for (i, broker) in kafka.brokers.iter().enumerate() {
        let well_formed = broker.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && !host
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == ',')
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !well_formed {
            out.error(
                format!("spec.kafka.brokers[{i}]"),
                format!("{broker:?} is not host:port"),
            );
        }
    }
    let topics = &kafka.topics;
    if !(1..=1000).contains(&topics.partitions) {
        out.error(
            "spec.kafka.topics.partitions",
            format!("{} is outside 1..=1000", topics.partitions),
        );
    }
    let prefix_path = if topics.prefix.is_some() {
        "spec.kafka.topics.prefix"
    } else {
        "spec.kafka.topics.prefix (default from metadata.name)"
    };
    out.name(prefix_path, &pipeline.topic_prefix(), NameKind::Topic);
    // Table names are SQL identifiers (checked above), so data topics are valid when the prefix is,
    // except for their length.
    for (i, table) in pipeline.spec.source.tables.iter().enumerate() {
        let topic = pipeline.topic_for_table(&table.name);
        if topic.len() > MAX_TOPIC_BYTES {
            out.error(
                format!("spec.source.tables[{i}].name"),
                format!("topic {topic:?} would exceed {MAX_TOPIC_BYTES} bytes"),
            );
        }
    }
    let dead_letter = pipeline.dead_letter_topic();
    out.name(
        "spec.kafka.topics.deadLetter",
        &dead_letter,
        NameKind::Topic,
    );
    if pipeline.data_topics().contains(&dead_letter) {
        out.error(
            "spec.kafka.topics.deadLetter",
            format!("{dead_letter:?} is also a data topic; choose another dead-letter topic"),
        );
    }
}

fn validate_clickhouse(pipeline: &CdcPipeline, out: &mut Collector) {
    let clickhouse = &pipeline.spec.clickhouse;
    if !(clickhouse.url.starts_with("http://") || clickhouse.url.starts_with("https://"))
        || clickhouse
            .url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        out.error(
            "spec.clickhouse.url",
            format!("{:?} is not an http:// or https:// URL", clickhouse.url),
        );
    }
    out.name(
        "spec.clickhouse.database",
        &clickhouse.database,
        NameKind::SqlIdentifier,
    );
    if let Some(credentials) = &clickhouse.credentials_secret_ref {
        for (field, value) in [
            ("name", &credentials.name),
            ("usernameKey", &credentials.username_key),
            ("passwordKey", &credentials.password_key),
        ] {
            if value.is_empty() {
                out.error(
                    format!("spec.clickhouse.credentialsSecretRef.{field}"),
                    "must not be empty",
                );
            }
        }
    }
}

/// The star schema's rules: names and structure here, then what compiling the model refuses
/// ([`StarModel`]: types, keys, sources, lookups, cycles). Returns the model when it compiles.
fn validate_star_schema(pipeline: &CdcPipeline, out: &mut Collector) -> Option<StarModel> {
    let schema = &pipeline.spec.star_schema;
    let primary_keys: BTreeMap<&str, &str> = pipeline
        .spec
        .source
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.primary_key.as_str()))
        .collect();
    if schema.dimensions.is_empty() && schema.facts.is_empty() {
        out.error("spec.starSchema", "declare at least one dimension or fact");
    }
    let mut table_names: BTreeMap<&str, String> = BTreeMap::new();
    let mut fact_sources: BTreeMap<&str, &str> = BTreeMap::new();
    for table in star_tables(schema) {
        let path = table.path();
        out.name(format!("{path}.name"), table.name, NameKind::SqlIdentifier);
        if is_reserved_table_name(table.name) {
            out.error(
                format!("{path}.name"),
                format!(
                    "{:?} is reserved for the status table the sink writes beside the star tables",
                    table.name
                ),
            );
        } else if let Some(first) = table_names.get(table.name) {
            out.error(
                format!("{path}.name"),
                format!("table {:?} is already declared at {first}", table.name),
            );
        } else {
            table_names.insert(table.name, path.clone());
        }
        if let Some(primary_key) = primary_keys.get(table.source) {
            validate_key(&table, primary_key, out);
        }
        if table.kind == TableKind::Fact {
            if let Some(other) = fact_sources.get(table.source) {
                out.error(
                    format!("{path}.source"),
                    format!(
                        "table {:?} already backs fact {other:?}; a source table can back at most one fact",
                        table.source
                    ),
                );
            } else {
                fact_sources.insert(table.source, table.name);
            }
        }
        validate_columns(&table, out);
    }
    // Lookups whose names are already refused are not resolved: it would repeat the same problem in
    // other words.
    let mut unresolved = BTreeSet::new();
    for (index, fact) in schema.facts.iter().enumerate() {
        for (l, lookup) in fact.lookups.iter().enumerate() {
            let path = format!("spec.starSchema.facts[{index}].lookups[{l}]");
            let before = out.errors.len();
            validate_lookup_names(&path, lookup, &primary_keys, out);
            if out.errors.len() == before && lookup.via.len() > MAX_LOOKUP_HOPS {
                out.error(
                    format!("{path}.via"),
                    format!("at most {MAX_LOOKUP_HOPS} steps allowed"),
                );
            }
            if out.errors.len() > before {
                unresolved.insert((index, l));
            }
        }
    }
    match StarModel::for_pipeline(&pipeline.spec) {
        Ok(model) => Some(model),
        Err(ModelErrors(errors)) => {
            for error in errors {
                let repeated = matches!(error, ModelError::Lookup { fact, index, .. }
                    if unresolved.contains(&(fact, index)));
                if !repeated {
                    out.error(error.path(), error.message());
                }
            }
            None
        }
    }
}

/// The key copies the source's primary key (that the key is a column of a key type is the model's).
fn validate_key(table: &StarTable<'_>, primary_key: &str, out: &mut Collector) {
    if let Some(column) = table.key_column()
        && column.source != primary_key
    {
        out.error(
            format!("{}.key", table.path()),
            format!(
                "key column {:?} copies {:?}, not the primary key {primary_key:?} of {}",
                column.name, column.source, table.source
            ),
        );
    }
}

fn validate_columns(table: &StarTable<'_>, out: &mut Collector) {
    let path = table.path();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut check_name = |out: &mut Collector, field_path: String, name: &str| {
        out.name(field_path.clone(), name, NameKind::SqlIdentifier);
        if Bookkeeping::is_reserved(name) {
            out.error(
                field_path,
                format!("{name:?} is reserved for the bookkeeping column the DDL adds"),
            );
        } else if let Some(first) = names.get(name) {
            out.error(
                field_path,
                format!("column {name:?} is already declared at {first}"),
            );
        } else {
            names.insert(name.to_owned(), field_path);
        }
    };
    if table.columns.is_empty() {
        out.error(
            format!("{path}.columns"),
            "at least the key column is needed",
        );
    }
    for (c, column) in table.columns.iter().enumerate() {
        let column_path = format!("{path}.columns[{c}]");
        out.name(
            format!("{column_path}.source"),
            &column.source,
            NameKind::SqlIdentifier,
        );
        check_name(out, format!("{column_path}.name"), &column.name);
    }
    for (l, lookup) in table.lookups.iter().enumerate() {
        check_name(out, format!("{path}.lookups[{l}].name"), &lookup.name);
    }
}

fn validate_lookup_names(
    path: &str,
    lookup: &LookupSpec,
    captured: &BTreeMap<&str, &str>,
    out: &mut Collector,
) {
    for (h, hop) in lookup.via.iter().enumerate() {
        out.name(
            format!("{path}.via[{h}].foreignKey"),
            &hop.foreign_key,
            NameKind::SqlIdentifier,
        );
        let references_path = format!("{path}.via[{h}].references");
        if name_problem(&hop.references, NameKind::SqlIdentifier).is_none()
            && !captured.contains_key(hop.references.as_str())
        {
            out.error(
                references_path.clone(),
                format!(
                    "{:?} is not a captured table; add it to spec.source.tables",
                    hop.references
                ),
            );
        }
        out.name(references_path, &hop.references, NameKind::SqlIdentifier);
    }
    out.name(
        format!("{path}.column"),
        &lookup.column,
        NameKind::SqlIdentifier,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{
        CaptureEngine, ColumnSpec, FilterOp, LookupHop, RowCondition, SourceTable, TopicMode,
    };
    use crate::test_fixtures::shop_pipeline;

    /// Validate and return the errors, failing when the pipeline is accepted.
    fn errors_of(pipeline: &CdcPipeline) -> ValidationErrors {
        validate(pipeline).expect_err("the pipeline must be rejected")
    }

    /// Assert that some error is at `path`, showing all of them otherwise.
    fn assert_rejected_at(pipeline: &CdcPipeline, path: &str) -> ValidationErrors {
        assert_rejected_at_all(pipeline, &[path])
    }

    /// Assert that some error is at each of `paths`, showing all of them otherwise.
    fn assert_rejected_at_all(pipeline: &CdcPipeline, paths: &[&str]) -> ValidationErrors {
        let errors = errors_of(pipeline);
        for path in paths {
            assert!(errors.has_path(path), "no error at {path}; got {errors}");
        }
        errors
    }

    /// Assert that the text of `errors` says `text`.
    fn assert_says(errors: &ValidationErrors, text: &str) {
        assert!(errors.to_string().contains(text), "{errors}");
    }

    #[test]
    fn the_example_validates() {
        validate(&shop_pipeline()).unwrap();
    }

    #[test]
    fn sql_injection_in_a_source_table_name_is_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.source.tables[2].name = "order\"; DROP TABLE customer; --".into();
        let errors = assert_rejected_at(&pipeline, "spec.source.tables[2].name");
        assert_says(&errors, "'\"' at byte 5");
    }

    #[test]
    fn quotes_semicolons_whitespace_and_control_characters_are_rejected_in_columns() {
        for (i, bad) in [
            "na'me",
            "name;",
            "first name",
            "name\n",
            "na\u{0}me",
            "1name",
            "",
        ]
        .into_iter()
        .enumerate()
        {
            let mut pipeline = shop_pipeline();
            pipeline.spec.star_schema.dimensions[0].columns[2].name = bad.into();
            assert_rejected_at(&pipeline, "spec.starSchema.dimensions[0].columns[2].name");
            let mut pipeline = shop_pipeline();
            pipeline.spec.star_schema.dimensions[0].columns[2].source = bad.into();
            assert_rejected_at(&pipeline, "spec.starSchema.dimensions[0].columns[2].source");
            let _ = i;
        }
    }

    #[test]
    fn injection_in_database_publication_and_slot_is_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.clickhouse.database = "local; DROP DATABASE system".into();
        pipeline.spec.source.publication = Some("pub\"x".into());
        pipeline.spec.source.slot.name = Some("Slot".into());
        pipeline.spec.source.schema = "public.x".into();
        assert_rejected_at_all(
            &pipeline,
            &[
                "spec.clickhouse.database",
                "spec.source.publication",
                "spec.source.slot.name",
                "spec.source.schema",
            ],
        );
    }

    #[test]
    fn names_longer_than_63_bytes_are_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.facts[0].name = "f".repeat(64);
        let errors = assert_rejected_at(&pipeline, "spec.starSchema.facts[0].name");
        assert_says(&errors, "64 bytes long");
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.facts[0].name = "f".repeat(63);
        validate(&pipeline).unwrap();
    }

    #[test]
    fn a_long_pipeline_name_needs_explicit_publication_and_slot() {
        let mut pipeline = shop_pipeline();
        pipeline.metadata.name = Some("a".repeat(60));
        assert_rejected_at(
            &pipeline,
            "spec.source.slot.name (default from metadata.name)",
        );
        pipeline.spec.source.publication = Some("shop_pub".into());
        pipeline.spec.source.slot.name = Some("shop_slot".into());
        validate(&pipeline).unwrap();
    }

    #[test]
    fn sql_keywords_are_allowed_as_table_names() {
        let mut pipeline = shop_pipeline();
        pipeline
            .spec
            .source
            .tables
            .push(SourceTable::new("select", "id"));
        validate(&pipeline).unwrap();
    }

    #[test]
    fn unknown_column_types_are_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.dimensions[1].columns[3].r#type = "Money".into();
        pipeline.spec.star_schema.facts[0].columns[3].r#type = "Decimal(80, 2)".into();
        pipeline.spec.star_schema.facts[1].lookups[0].r#type = "String) ENGINE = Log; --".into();
        let errors = assert_rejected_at_all(
            &pipeline,
            &[
                "spec.starSchema.dimensions[1].columns[3].type",
                "spec.starSchema.facts[0].columns[3].type",
                "spec.starSchema.facts[1].lookups[0].type",
            ],
        );
        assert_eq!(errors.errors().len(), 3, "{errors}");
    }

    #[test]
    fn a_missing_key_column_is_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.facts[0].key = "id".into();
        let errors = assert_rejected_at(&pipeline, "spec.starSchema.facts[0].key");
        assert_says(&errors, "not one of the table's columns");
    }

    #[test]
    fn a_key_that_is_not_the_primary_key_is_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.facts[0].key = "customer_id".into();
        let errors = assert_rejected_at(&pipeline, "spec.starSchema.facts[0].key");
        assert_says(&errors, "not the primary key");
    }

    #[test]
    fn a_float_key_is_rejected_as_the_sink_would() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.dimensions[0].columns[0].r#type = "Float64".into();
        let errors = assert_rejected_at(&pipeline, "spec.starSchema.dimensions[0].key");
        assert_says(&errors, "keys must be integers, String or UUID");
    }

    #[test]
    fn facts_looking_each_other_up_in_a_cycle_are_rejected() {
        let mut pipeline = shop_pipeline();
        // order_fact looks up its first item in orderitem_fact, which looks up the order.
        let order_fact = &mut pipeline.spec.star_schema.facts[0];
        order_fact.columns.push(ColumnSpec {
            name: "first_item_id".into(),
            source: "firstItemId".into(),
            r#type: "UInt64".into(),
            on_unrepresentable: None,
        });
        order_fact.lookups.push(LookupSpec {
            name: "first_item_quantity".into(),
            r#type: "UInt32".into(),
            via: vec![LookupHop {
                foreign_key: "firstItemId".into(),
                references: "orderitem".into(),
            }],
            column: "quantity".into(),
        });
        let errors = errors_of(&pipeline);
        assert_says(&errors, "form a cycle through");
        assert_eq!(errors.errors().len(), 1, "{errors}");
    }

    #[test]
    fn a_nullable_key_is_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.dimensions[0].columns[0].r#type = "Nullable(UInt64)".into();
        assert_rejected_at(&pipeline, "spec.starSchema.dimensions[0].key");
    }

    #[test]
    fn a_dimension_of_an_uncaptured_table_is_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.dimensions[1].source = "products".into();
        assert_rejected_at(&pipeline, "spec.starSchema.dimensions[1].source");
    }

    #[test]
    fn duplicate_and_reserved_column_names_are_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.facts[0].lookups[0].name = "status".into();
        pipeline.spec.star_schema.dimensions[0].columns[1].name = "lsn".into();
        pipeline.spec.star_schema.facts[1].columns[4].name = "is_deleted".into();
        pipeline.spec.star_schema.dimensions[1].columns[1].name = "source_lsn".into();
        let errors = assert_rejected_at_all(
            &pipeline,
            &[
                "spec.starSchema.facts[0].lookups[0].name",
                "spec.starSchema.dimensions[0].columns[1].name",
                "spec.starSchema.facts[1].columns[4].name",
                "spec.starSchema.dimensions[1].columns[1].name",
            ],
        );
        assert_says(
            &errors,
            "already declared at spec.starSchema.facts[0].columns[2].name",
        );
    }

    #[test]
    fn a_freshness_objective_must_be_a_positive_duration() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.freshness_objective = Some("1m30s".into());
        assert!(validate(&pipeline).is_ok());
        for bad in ["0s", "30", "1d", "5m1h"] {
            pipeline.spec.freshness_objective = Some(bad.into());
            let errors = errors_of(&pipeline);
            assert!(
                errors.has_path("spec.freshnessObjective"),
                "{bad}: {errors}"
            );
            assert_eq!(errors.0.len(), 1, "reported once: {errors}");
        }
    }

    #[test]
    fn a_star_table_named_like_a_status_table_is_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.dimensions[1].name = "cdcstar_value_adjustments".into();
        let errors = assert_rejected_at(&pipeline, "spec.starSchema.dimensions[1].name");
        assert_says(&errors, "reserved");
    }

    #[test]
    fn duplicate_tables_are_rejected() {
        let mut pipeline = shop_pipeline();
        let copy = pipeline.spec.source.tables[0].clone();
        pipeline.spec.source.tables.push(copy);
        pipeline.spec.star_schema.facts[1].name = "customer_dim".into();
        assert_rejected_at_all(
            &pipeline,
            &[
                "spec.source.tables[4].name",
                "spec.starSchema.facts[1].name",
            ],
        );
    }

    #[test]
    fn a_source_table_backing_two_facts_is_rejected() {
        let mut pipeline = shop_pipeline();
        let mut second = pipeline.spec.star_schema.facts[0].clone();
        second.name = "order_fact_copy".into();
        pipeline.spec.star_schema.facts.push(second);
        let errors = assert_rejected_at(&pipeline, "spec.starSchema.facts[2].source");
        assert_says(&errors, "at most one fact");
    }

    #[test]
    fn a_lookup_through_an_undeclared_foreign_key_is_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.facts[0].lookups[0].via[0].foreign_key = "buyerId".into();
        assert_rejected_at(
            &pipeline,
            "spec.starSchema.facts[0].lookups[0].via[0].foreignKey",
        );
    }

    #[test]
    fn a_lookup_into_an_uncaptured_table_is_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.facts[1].lookups[0].via[0].references = "supplier".into();
        let errors = assert_rejected_at(
            &pipeline,
            "spec.starSchema.facts[1].lookups[0].via[0].references",
        );
        assert_eq!(errors.errors().len(), 1, "{errors}");
    }

    #[test]
    fn a_lookup_into_a_table_without_dimension_or_fact_is_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline
            .spec
            .source
            .tables
            .push(SourceTable::new("supplier", "id"));
        pipeline.spec.star_schema.facts[1].lookups[0].via[0].references = "supplier".into();
        let errors = assert_rejected_at(
            &pipeline,
            "spec.starSchema.facts[1].lookups[0].via[0].references",
        );
        assert_says(&errors, "backs no dimension or fact");
    }

    #[test]
    fn a_lookup_of_an_unmapped_column_is_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.facts[0].lookups[1].column = "phone".into();
        assert_rejected_at(&pipeline, "spec.starSchema.facts[0].lookups[1].column");
    }

    #[test]
    fn a_dangling_chained_lookup_names_the_broken_step() {
        let mut pipeline = shop_pipeline();
        // customer_country: orderId -> order, then customerId -> customer. Break the second step.
        pipeline.spec.star_schema.facts[1].lookups[4].via[1] = LookupHop {
            foreign_key: "sellerId".into(),
            references: "customer".into(),
        };
        assert_rejected_at(
            &pipeline,
            "spec.starSchema.facts[1].lookups[4].via[1].foreignKey",
        );
    }

    #[test]
    fn a_lookup_without_steps_is_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.facts[0].lookups[0].via.clear();
        assert_rejected_at(&pipeline, "spec.starSchema.facts[0].lookups[0].via");
    }

    #[test]
    fn redpanda_connect_engine_requires_its_settings() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.capture.engine = CaptureEngine::RedpandaConnect;
        assert_rejected_at(&pipeline, "spec.capture.redpandaConnect");
    }

    /// The example run by Redpanda Connect, with its settings.
    fn redpanda_connect_pipeline() -> CdcPipeline {
        let mut pipeline = shop_pipeline();
        pipeline.spec.capture.engine = CaptureEngine::RedpandaConnect;
        pipeline.spec.capture.redpanda_connect = Some(crate::pipeline::RedpandaConnectSpec {
            image: "redpandadata/connect:4.67.5".into(),
            license_secret_ref: crate::pipeline::SecretKeyRef {
                name: "licence".into(),
                key: "licence".into(),
            },
            resources: None,
        });
        pipeline
    }

    #[test]
    fn redpanda_connect_engine_refuses_slots_over_fifty_bytes() {
        let mut pipeline = redpanda_connect_pipeline();
        pipeline.spec.source.slot.name = Some("s".repeat(50));
        validate(&pipeline).unwrap();
        pipeline.spec.source.slot.name = Some("s".repeat(51));
        assert_rejected_at(&pipeline, "spec.source.slot.name");
        // Redpanda Connect creates its own slot, never a failover one.
        pipeline.spec.source.slot.name = Some("s".repeat(50));
        pipeline.spec.source.slot.failover = true;
        let errors = assert_rejected_at(&pipeline, "spec.source.slot.failover");
        assert_says(&errors, "native engine only");
        // The native engine takes up to Postgres' 63 bytes, and failover.
        pipeline.spec.source.slot.name = Some("s".repeat(51));
        pipeline.spec.capture.engine = CaptureEngine::Native;
        validate(&pipeline).unwrap();
    }

    #[test]
    fn brokers_must_be_present_and_host_port() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.kafka.brokers.clear();
        assert_rejected_at(&pipeline, "spec.kafka.brokers");
        pipeline.spec.kafka.brokers = vec!["redpanda".into(), "a:9092,b:9092".into()];
        assert_rejected_at_all(
            &pipeline,
            &["spec.kafka.brokers[0]", "spec.kafka.brokers[1]"],
        );
    }

    #[test]
    fn at_least_one_table_is_captured_and_one_star_table_declared() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.source.tables.clear();
        pipeline.spec.star_schema.dimensions.clear();
        pipeline.spec.star_schema.facts.clear();
        assert_rejected_at_all(&pipeline, &["spec.source.tables", "spec.starSchema"]);
    }

    #[test]
    fn bad_topic_names_and_colliding_dead_letter_topic_are_rejected() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.kafka.topics.prefix = Some("shop events".into());
        assert_rejected_at(&pipeline, "spec.kafka.topics.prefix");
        let mut pipeline = shop_pipeline();
        pipeline.spec.kafka.topics.mode = TopicMode::Single;
        pipeline.spec.kafka.topics.dead_letter = Some("shop".into());
        assert_rejected_at(&pipeline, "spec.kafka.topics.deadLetter");
    }

    #[test]
    fn display_lists_every_error_with_its_path() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.clickhouse.database = "a b".into();
        pipeline.spec.clickhouse.url = "clickhouse:8123".into();
        let text = errors_of(&pipeline).to_string();
        assert!(
            text.starts_with("invalid CdcPipeline (2 errors):"),
            "{text}"
        );
        assert!(text.contains("\n  - spec.clickhouse.url: "), "{text}");
        assert!(
            text.contains("\n  - spec.clickhouse.database: \"a b\" has whitespace ' ' at byte 1"),
            "{text}"
        );
    }

    fn mask(column: &str, with: MaskKind) -> crate::pipeline::ColumnMask {
        crate::pipeline::ColumnMask {
            column: column.into(),
            with,
        }
    }

    fn condition(column: &str, op: FilterOp, value: Option<&str>) -> RowCondition {
        RowCondition {
            column: column.into(),
            op,
            value: value.map(str::to_owned),
            values: Vec::new(),
        }
    }

    /// customer (tables[0]) feeds customer_dim (dimensions[0]): id, email, name, country, city, ...
    fn customer_columns(pipeline: &CdcPipeline) -> Vec<String> {
        pipeline.spec.star_schema.dimensions[0]
            .columns
            .iter()
            .map(|c| c.source.clone())
            .collect()
    }

    #[test]
    fn excluded_masked_and_filtered_columns_validate_when_nothing_reads_them() {
        let mut pipeline = shop_pipeline();
        assert!(!customer_columns(&pipeline).contains(&"phone".to_owned()));
        let customer = &mut pipeline.spec.source.tables[0];
        customer.exclude_columns = vec!["phone".into()];
        customer.mask = vec![
            mask("email", MaskKind::Hash),
            mask("name", MaskKind::Redact),
        ];
        customer.row_filter = vec![condition("country", FilterOp::Ne, Some("XX"))];
        pipeline.spec.source.mask_salt_secret_ref = Some(crate::pipeline::SecretKeyRef {
            name: "salt".into(),
            key: "salt".into(),
        });
        validate(&pipeline).unwrap();
    }

    #[test]
    fn the_primary_key_can_be_neither_excluded_nor_masked() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.source.tables[0].exclude_columns = vec!["id".into()];
        pipeline.spec.source.tables[1].mask = vec![mask("id", MaskKind::Null)];
        let errors = assert_rejected_at_all(
            &pipeline,
            &[
                "spec.source.tables[0].excludeColumns[0]",
                "spec.source.tables[1].mask[0].column",
            ],
        );
        assert_says(&errors, "primary key");
    }

    #[test]
    fn a_star_column_reading_an_excluded_column_is_refused_with_its_path() {
        let mut pipeline = shop_pipeline();
        let email = customer_columns(&pipeline)
            .iter()
            .position(|c| c == "email")
            .unwrap();
        pipeline.spec.source.tables[0].exclude_columns = vec!["email".into()];
        let errors = assert_rejected_at(
            &pipeline,
            &format!("spec.starSchema.dimensions[0].columns[{email}].source"),
        );
        assert_says(&errors, "excludeColumns");
        assert_says(&errors, "customer is excluded");
    }

    #[test]
    fn a_hashed_or_redacted_column_must_feed_a_string_column() {
        let mut pipeline = shop_pipeline();
        // order.total feeds order_fact.total, a Decimal.
        let order = &pipeline.spec.star_schema.facts[0];
        let total = order
            .columns
            .iter()
            .position(|c| c.source == "total")
            .unwrap();
        let status = order
            .columns
            .iter()
            .position(|c| c.source == "status")
            .unwrap();
        pipeline.spec.source.tables[2].mask = vec![
            mask("total", MaskKind::Redact),
            mask("status", MaskKind::Hash),
        ];
        pipeline.spec.source.mask_salt_secret_ref = Some(crate::pipeline::SecretKeyRef {
            name: "salt".into(),
            key: "salt".into(),
        });
        let errors = assert_rejected_at(
            &pipeline,
            &format!("spec.starSchema.facts[0].columns[{total}].type"),
        );
        assert_says(&errors, "masked with redact");
        // status is a LowCardinality(String): fine, but orderitem_fact looks it up as order_status,
        // also a string type.
        assert!(
            !errors.has_path(&format!("spec.starSchema.facts[0].columns[{status}].type")),
            "{errors}"
        );
        // A null mask keeps the type: NULL fits every column.
        pipeline.spec.source.tables[2].mask = vec![mask("total", MaskKind::Null)];
        validate(&pipeline).unwrap();
    }

    #[test]
    fn a_lookup_cannot_follow_a_masked_foreign_key() {
        let mut pipeline = shop_pipeline();
        // order.customerId -> customer, followed by order_fact's customer lookups; the column
        // copying it is an integer, so the type rule fires too, with the null mask it does not.
        pipeline.spec.source.tables[2].mask = vec![mask("customerId", MaskKind::Null)];
        let errors = assert_rejected_at(
            &pipeline,
            "spec.starSchema.facts[0].lookups[0].via[0].foreignKey",
        );
        assert_says(&errors, "cannot follow it");
    }

    #[test]
    fn hash_needs_the_salt_secret() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.source.tables[0].mask = vec![mask("email", MaskKind::Hash)];
        let errors = assert_rejected_at(&pipeline, "spec.source.maskSaltSecretRef");
        assert_eq!(errors.errors().len(), 1, "{errors}");
        pipeline.spec.source.tables[0].mask = vec![mask("email", MaskKind::Redact)];
        validate(&pipeline).unwrap();
    }

    #[test]
    fn row_filters_are_checked_for_shape_exclusion_and_replica_identity() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.source.tables[0].exclude_columns = vec!["phone".into()];
        pipeline.spec.source.tables[0].row_filter = vec![
            condition("phone", FilterOp::IsNull, None),
            condition("country", FilterOp::In, Some("FR")),
            condition("city", FilterOp::Eq, None),
            condition("na me", FilterOp::IsNotNull, Some("x")),
        ];
        assert_rejected_at_all(
            &pipeline,
            &[
                "spec.source.tables[0].rowFilter[0].column",
                "spec.source.tables[0].rowFilter[1].values",
                "spec.source.tables[0].rowFilter[1].value",
                "spec.source.tables[0].rowFilter[2].value",
                "spec.source.tables[0].rowFilter[3].column",
                "spec.source.tables[0].rowFilter[3].value",
            ],
        );
        // Without REPLICA IDENTITY FULL only the primary key may be filtered on.
        let mut pipeline = shop_pipeline();
        pipeline.spec.source.replica_identity_full = false;
        pipeline.spec.source.tables[0].row_filter = vec![condition("id", FilterOp::Gt, Some("10"))];
        validate(&pipeline).unwrap();
        pipeline.spec.source.tables[0].row_filter =
            vec![condition("country", FilterOp::Eq, Some("FR"))];
        let errors = assert_rejected_at(&pipeline, "spec.source.tables[0].rowFilter[0].column");
        assert_says(&errors, "replicaIdentityFull");
    }

    #[test]
    fn redpanda_connect_refuses_exclusion_masking_and_row_filters() {
        let mut pipeline = redpanda_connect_pipeline();
        validate(&pipeline).unwrap();
        pipeline.spec.source.tables[0].exclude_columns = vec!["phone".into()];
        pipeline.spec.source.tables[1].row_filter = vec![condition("id", FilterOp::Gt, Some("1"))];
        let errors = assert_rejected_at_all(
            &pipeline,
            &[
                "spec.source.tables[0].excludeColumns",
                "spec.source.tables[1].rowFilter",
            ],
        );
        assert_says(&errors, "native capture only");
    }

    #[test]
    fn masking_and_filter_bounds_come_from_the_schema() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.source.tables[0].row_filter =
            vec![condition("id", FilterOp::Gt, Some("1")); 17];
        assert_rejected_at(&pipeline, "spec.source.tables[0].rowFilter");
        let mut pipeline = shop_pipeline();
        pipeline.spec.source.tables[0].row_filter =
            vec![condition("id", FilterOp::Gt, Some(&"9".repeat(1025)))];
        assert_rejected_at(&pipeline, "spec.source.tables[0].rowFilter[0].value");
    }
}
