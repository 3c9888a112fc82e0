//! The Redpanda Connect configuration of the `redpandaConnect` capture engine: a `postgres_cdc` input
//! on the captured tables, a filter that drops what Redpanda Connect cannot attribute to a captured
//! table, a mapping into the CDC envelope v1 (see [`crate::envelope`]) keyed by primary key, and a
//! `kafka_franz` output to the pipeline's topics. The facts below were read in Redpanda Connect
//! v4.67.5's source and its benthos v4.57.1 runtime, the image the CRD pins.
//!
//! ## Secrets and the environment
//!
//! Secrets stay out of the file: benthos replaces `${VAR}` and `${VAR:default}` in the raw text
//! before it parses the YAML, refuses to start when a `${VAR}` without default is unset, uses the
//! default when the variable is unset or empty, and writes newlines of a value as `\n`. Every
//! substitution therefore sits inside a double-quoted YAML scalar (so `: `, `#`, `'` or a PEM's
//! newlines survive), and a value must not contain `"` or `\` ([`unsubstitutable_char`]).
//! [`env_references`] lists what the file references; [`EnvVar`] says where each comes from.
//!
//! ## What the mapping does
//!
//! - Keys every message by its row's primary key as text, the same key the native capture uses
//!   ([`crate::envelope::message_key`]), from one table of (table, key column), [`key_columns`].
//!   (Inside `match @table { ... }` Bloblang rebinds `this` to the matched value, so the key column
//!   is chosen by the match and read from the row outside it.)
//! - Drops, with a warning in Redpanda Connect's log, every message whose `table` is not a captured
//!   table: a TRUNCATE and the Type message pgoutput sends for enum, domain and composite columns
//!   come out of `postgres_cdc` with empty `table` and `operation` and a `null` body. They are acked,
//!   so they neither stall the slot nor reach a topic (`<prefix>.` in perTable mode).
//! - Unchanged TOASTed values arrive as [`UNCHANGED_TOAST_VALUE`] (the input's
//!   `unchanged_toast_value`); the mapping leaves them out of `payload` and lists their columns in
//!   `metadata.unchangedToast`, so the sink keeps the stored values instead of writing NULL.
//!
//! ## What it cannot do
//!
//! Redpanda Connect 4.67.5 sends no old key of an update (no `oldKey`: a primary-key change leaves
//! the row under the old key in place), no commit time (no `commitTime`: end-to-end lag is not
//! measured), nothing for TRUNCATE, and snapshots a table only when it creates the slot.
//! [`LIMITATIONS`] says so in the pipeline's status.
//!
//! ## Names
//!
//! Redpanda Connect lowercases a table or schema name unless it is passed quoted, so mixed-case
//! names are quoted ([`postgres_identifier`]). It derives `pglog_stream_<slot>` (its publication)
//! and `<slot>_tmp` from the slot name, so the slot is at most [`MAX_SLOT_NAME_BYTES`] bytes.
//! Partitions are chosen by Kafka's murmur2 hash of the key ([`PARTITIONER`]), as the native
//! capture does ([`crate::envelope::LIBRDKAFKA_PARTITIONER`]).
//!
//! Over 400 lines: the generated configuration and the facts about Redpanda Connect it relies on,
//! with a third of the file testing it.

use serde_json::{Value, json};

use crate::pipeline::{CdcPipeline, TopicMode};

/// Address of Redpanda Connect's HTTP server (`/ready`, `/ping`, `/metrics`).
pub const HTTP_ADDRESS: &str = "0.0.0.0:4195";
/// Value `postgres_cdc` emits for an unchanged TOASTed column (its `unchanged_toast_value`).
pub const UNCHANGED_TOAST_VALUE: &str = "__cdcstar_unchanged_toast__";
/// Longest slot name: Redpanda Connect names its publication `pglog_stream_<slot>` (13 bytes more)
/// and Postgres names are at most 63 bytes.
pub const MAX_SLOT_NAME_BYTES: usize = 50;
/// `kafka_franz`'s partitioner: Kafka's murmur2 hash of the key, the native capture's choice too.
pub const PARTITIONER: &str = "murmur2_hash";
/// Metadata key the mapping sets to the message key.
const KEY_METADATA: &str = "cdc_key";
/// What this engine cannot convey, for the `Capture` condition and the docs.
pub const LIMITATIONS: &str = "Redpanda Connect conveys no TRUNCATE, no old key of a primary-key \
     change (the row under the old key stays) and no commit time (lag is not measured)";

/// An environment variable the configuration references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    pub name: &'static str,
    /// The Secret it comes from.
    pub source: SecretSource,
    /// Value used when the variable is unset or empty; `None` makes it required.
    pub default: Option<&'static str>,
}

/// Where an [`EnvVar`]'s value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// `spec.source.connectionSecretRef`.
    SourceConnection,
    /// `spec.capture.redpandaConnect.licenseSecretRef` (read by Redpanda Connect itself).
    License,
    /// This key of `spec.kafka.authSecretRef`, when the key exists.
    KafkaAuth(&'static str),
}

/// The Postgres connection string.
pub const DSN_ENV: EnvVar = EnvVar {
    name: "POSTGRES_DSN",
    source: SecretSource::SourceConnection,
    default: None,
};
/// The Redpanda Enterprise licence; Redpanda Connect reads it, the file does not reference it.
pub const LICENSE_ENV: EnvVar = EnvVar {
    name: "REDPANDA_LICENSE",
    source: SecretSource::License,
    default: None,
};
/// The Kafka client settings from `spec.kafka.authSecretRef`, each optional: a Secret with only
/// `security.protocol` and `ca.crt` (TLS without SASL) or only SASL keys is fine. `none` is the
/// SASL mechanism `kafka_franz` skips.
pub const KAFKA_AUTH_ENV: [EnvVar; 4] = [
    EnvVar {
        name: "KAFKA_SASL_MECHANISM",
        source: SecretSource::KafkaAuth("sasl.mechanism"),
        default: Some("none"),
    },
    EnvVar {
        name: "KAFKA_SASL_USERNAME",
        source: SecretSource::KafkaAuth("sasl.username"),
        default: Some(""),
    },
    EnvVar {
        name: "KAFKA_SASL_PASSWORD",
        source: SecretSource::KafkaAuth("sasl.password"),
        default: Some(""),
    },
    EnvVar {
        name: "KAFKA_CA_CRT",
        source: SecretSource::KafkaAuth("ca.crt"),
        default: Some(""),
    },
];

impl EnvVar {
    /// The reference as it appears in the file, e.g. `${KAFKA_SASL_USERNAME:}`.
    pub fn reference(&self) -> String {
        match self.default {
            Some(default) => format!("${{{}:{default}}}", self.name),
            None => format!("${{{}}}", self.name),
        }
    }
}

/// Whether the Kafka client must use TLS, from `security.protocol` of the auth Secret (librdkafka's
/// names, which the native capture and the sink pass on as they are).
pub fn uses_tls(security_protocol: Option<&str>) -> bool {
    security_protocol.is_some_and(|protocol| {
        let protocol = protocol.trim();
        protocol.eq_ignore_ascii_case("SSL") || protocol.eq_ignore_ascii_case("SASL_SSL")
    })
}

/// How Redpanda Connect reaches the brokers, as far as the operator knows it from the Secrets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerTransport {
    /// TLS to the brokers (`security.protocol` is `SSL` or `SASL_SSL`).
    pub tls: bool,
}

/// One row of the key table: a captured table and the column whose value keys its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    /// Table name as Redpanda Connect reports it in `@table` (case kept).
    pub table: String,
    /// The table's primary-key column.
    pub column: String,
}

/// The key table the mapping is generated from: every captured table and its primary key.
pub fn key_columns(pipeline: &CdcPipeline) -> Vec<KeyColumn> {
    pipeline
        .spec
        .source
        .tables
        .iter()
        .map(|table| KeyColumn {
            table: table.name.clone(),
            column: table.primary_key.clone(),
        })
        .collect()
}

/// A Bloblang (and JSON) string literal.
fn string_literal(text: &str) -> String {
    Value::from(text).to_string()
}

/// A table or schema name as `postgres_cdc` must receive it: quoted when it has an uppercase letter,
/// because Redpanda Connect lowercases unquoted names.
pub fn postgres_identifier(name: &str) -> String {
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        name.to_owned()
    }
}

/// The problem with `slot` as this engine's slot name, if any.
pub fn slot_name_problem(slot: &str) -> Option<String> {
    (slot.len() > MAX_SLOT_NAME_BYTES).then(|| {
        format!(
            "{slot:?} is {} bytes; Redpanda Connect derives pglog_stream_<slot> from it, so at most \
             {MAX_SLOT_NAME_BYTES} bytes with engine redpandaConnect",
            slot.len()
        )
    })
}

/// The Bloblang check of the `switch` case that drops messages of no captured table.
pub fn uncaptured_check(pipeline: &CdcPipeline) -> String {
    let tables: Vec<String> = key_columns(pipeline)
        .iter()
        .map(|k| string_literal(&k.table))
        .collect();
    format!("![{}].contains(@table.or(\"\"))", tables.join(", "))
}

/// The Bloblang mapping from a `postgres_cdc` message of a captured table to the envelope, setting
/// the message key.
pub fn envelope_mapping(pipeline: &CdcPipeline) -> String {
    let mut mapping = format!(
        "let unchanged_toast = {}\nlet key_column = match @table {{\n",
        string_literal(UNCHANGED_TOAST_VALUE)
    );
    for key in key_columns(pipeline) {
        mapping.push_str(&format!(
            "  {} => {}\n",
            string_literal(&key.table),
            string_literal(&key.column)
        ));
    }
    mapping.push_str("  _ => throw(\"table \" + @table + \" is not captured\")\n}\n");
    mapping.push_str(&format!(
        "meta {KEY_METADATA} = this.get($key_column).string()\n"
    ));
    mapping.push_str(
        "let unchanged = this.key_values().filter(kv -> kv.value == $unchanged_toast).map_each(kv -> kv.key).sort()\n\
         root.metadata.table = @table\n\
         root.metadata.operation = @operation\n\
         root.metadata.lsn = @lsn.or(deleted())\n\
         root.metadata.unchangedToast = if $unchanged.length() > 0 { $unchanged } else { deleted() }\n\
         root.payload = this.filter(kv -> kv.value != $unchanged_toast)\n",
    );
    mapping
}

/// The output topic: interpolated per table in `perTable` mode.
fn topic(pipeline: &CdcPipeline) -> String {
    match pipeline.spec.kafka.topics.mode {
        TopicMode::PerTable => format!("{}.${{! @table }}", pipeline.topic_prefix()),
        TopicMode::Single => pipeline.topic_prefix(),
    }
}

/// The `kafka_franz` output.
fn output(pipeline: &CdcPipeline, transport: BrokerTransport) -> Value {
    let spec = &pipeline.spec;
    let mut output = json!({
        "seed_brokers": spec.kafka.brokers,
        "topic": topic(pipeline),
        "key": format!("${{! @{KEY_METADATA} }}"),
        "partitioner": PARTITIONER,
        "max_in_flight": 1,
    });
    if spec.kafka.auth_secret_ref.is_some() {
        let [mechanism, username, password, ca] = KAFKA_AUTH_ENV.map(|var| var.reference());
        output["sasl"] = json!([{
            "mechanism": mechanism,
            "username": username,
            "password": password,
        }]);
        if transport.tls {
            output["tls"] = json!({ "enabled": true, "root_cas": ca });
        }
    }
    output
}

/// The configuration as a document.
pub fn config(pipeline: &CdcPipeline, transport: BrokerTransport) -> Value {
    let spec = &pipeline.spec;
    let tables: Vec<String> = key_columns(pipeline)
        .iter()
        .map(|k| postgres_identifier(&k.table))
        .collect();
    json!({
        "http": { "address": HTTP_ADDRESS },
        "input": {
            "postgres_cdc": {
                "dsn": DSN_ENV.reference(),
                "schema": postgres_identifier(&spec.source.schema),
                "tables": tables,
                "slot_name": pipeline.slot_name(),
                "stream_snapshot": spec.capture.snapshot,
                "unchanged_toast_value": UNCHANGED_TOAST_VALUE,
            }
        },
        "pipeline": { "processors": [
            { "switch": [ {
                "check": uncaptured_check(pipeline),
                "processors": [
                    { "log": {
                        "level": "WARN",
                        "message": "dropped a change of no captured table (a TRUNCATE, or the type \
                                    message of an enum, domain or composite column): Redpanda \
                                    Connect does not say which table it concerns",
                    } },
                    { "mapping": "root = deleted()" },
                ],
            } ] },
            { "mapping": envelope_mapping(pipeline) },
        ] },
        "output": { "kafka_franz": output(pipeline, transport) },
    })
}

/// The configuration as the YAML file Redpanda Connect runs: every `${VAR}` inside a double-quoted
/// scalar.
pub fn config_yaml(pipeline: &CdcPipeline, transport: BrokerTransport) -> String {
    let body = serde_yaml::to_string(&config(pipeline, transport))
        .expect("a JSON document always serialises to YAML");
    let body = body
        .lines()
        .map(double_quote_env_reference)
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "# Redpanda Connect configuration of CdcPipeline {}, generated by cdcstar; do not edit.\n\
         # The licence comes from ${}, the connection string from ${}.\n{body}\n",
        pipeline.pipeline_name(),
        LICENSE_ENV.name,
        DSN_ENV.name,
    )
}

/// `key: ${VAR}` (plain or single-quoted, as serde_yaml writes it) becomes `key: "${VAR}"`. Other
/// lines are returned as they are.
fn double_quote_env_reference(line: &str) -> String {
    let Some((key, value)) = line.split_once(": ") else {
        return line.to_owned();
    };
    let unquoted = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value);
    let is_reference = unquoted.starts_with("${")
        && unquoted.ends_with('}')
        && env_references(unquoted).len() == 1;
    if is_reference {
        format!("{key}: \"{unquoted}\"")
    } else {
        line.to_owned()
    }
}

/// A `${NAME}` or `${NAME:default}` the file references, as benthos finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvReference {
    pub name: String,
    /// Its default, when the reference has one (possibly empty).
    pub default: Option<String>,
}

/// Every environment reference in `text`, by benthos' rule: `${` then `[0-9A-Za-z_.]+`, then
/// optionally `:` and a default without `}`, then `}`. Bloblang interpolations (`${! ... }`) are not
/// references.
pub fn env_references(text: &str) -> Vec<EnvReference> {
    let mut references = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        if name_len == 0 {
            continue;
        }
        let name = &rest[..name_len];
        let after = &rest[name_len..];
        let (default, consumed) = if let Some(tail) = after.strip_prefix(':') {
            match tail.find('}') {
                Some(end) => (Some(tail[..end].to_owned()), 1 + end + 1),
                None => continue,
            }
        } else if after.starts_with('}') {
            (None, 1)
        } else {
            continue;
        };
        references.push(EnvReference {
            name: name.to_owned(),
            default,
        });
        rest = &rest[name_len + consumed..];
    }
    references
}

/// The first character of a secret `value` that cannot be substituted into a double-quoted YAML
/// scalar (`"` ends it, `\` starts an escape), if any.
pub fn unsubstitutable_char(value: &str) -> Option<char> {
    value.chars().find(|c| matches!(c, '"' | '\\'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::SecretNameRef;
    use crate::test_fixtures::{assert_golden, shop_pipeline};

    fn with_auth(mut pipeline: CdcPipeline) -> CdcPipeline {
        pipeline.spec.kafka.auth_secret_ref = Some(SecretNameRef {
            name: "kafka-auth".into(),
        });
        pipeline
    }

    /// What benthos does to the file before parsing it: each reference becomes the variable's value,
    /// or its default when unset or empty, newlines written as `\n`.
    fn substitute(text: &str, env: &[(&str, &str)]) -> String {
        let mut out = text.to_owned();
        for reference in env_references(text) {
            let written = match &reference.default {
                Some(default) => format!("${{{}:{default}}}", reference.name),
                None => format!("${{{}}}", reference.name),
            };
            let value = env
                .iter()
                .find(|(name, _)| *name == reference.name)
                .map(|(_, value)| *value)
                .filter(|value| !value.is_empty())
                .or(reference.default.as_deref())
                .unwrap_or_else(|| panic!("benthos refuses to start: {} unset", reference.name));
            out = out.replacen(&written, &value.replace('\n', "\\n"), 1);
        }
        out
    }

    #[test]
    fn golden_config_of_the_example() {
        assert_golden(
            "redpanda-connect.yaml",
            &config_yaml(&shop_pipeline(), BrokerTransport::default()),
        );
    }

    #[test]
    fn every_captured_table_is_keyed_by_its_primary_key() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.source.tables[1].primary_key = "sku".into();
        let keys = key_columns(&pipeline);
        assert_eq!(
            keys.iter()
                .map(|k| (k.table.as_str(), k.column.as_str()))
                .collect::<Vec<_>>(),
            [
                ("customer", "id"),
                ("product", "sku"),
                ("order", "id"),
                ("orderitem", "id")
            ]
        );
        // The mapping chooses the column by table and reads it from the row outside the match, where
        // `this` is still the row.
        let mapping = envelope_mapping(&pipeline);
        let arms: Vec<&str> = mapping
            .lines()
            .skip_while(|l| !l.starts_with("let key_column = match @table {"))
            .skip(1)
            .take_while(|l| !l.starts_with("  _ =>"))
            .collect();
        assert_eq!(
            arms,
            [
                "  \"customer\" => \"id\"",
                "  \"product\" => \"sku\"",
                "  \"order\" => \"id\"",
                "  \"orderitem\" => \"id\""
            ]
        );
        assert!(mapping.contains("meta cdc_key = this.get($key_column).string()\n"));
        assert!(
            !mapping.contains("=> this"),
            "no arm reads `this`: {mapping}"
        );
    }

    #[test]
    fn messages_of_no_captured_table_are_dropped_before_the_mapping() {
        let config = config(&shop_pipeline(), BrokerTransport::default());
        let processors = config["pipeline"]["processors"].as_array().unwrap();
        let case = &processors[0]["switch"][0];
        assert_eq!(
            case["check"],
            r#"!["customer", "product", "order", "orderitem"].contains(@table.or(""))"#
        );
        let dropped = case["processors"].as_array().unwrap();
        assert_eq!(dropped.last().unwrap()["mapping"], "root = deleted()");
        assert!(processors[1]["mapping"].is_string());
    }

    #[test]
    fn input_reads_the_captured_tables_through_the_slot_with_a_toast_sentinel() {
        let config = config(&shop_pipeline(), BrokerTransport::default());
        let input = &config["input"]["postgres_cdc"];
        assert_eq!(input["dsn"], "${POSTGRES_DSN}");
        assert_eq!(input["schema"], "public");
        assert_eq!(input["slot_name"], "cdcstar_shop");
        assert_eq!(input["stream_snapshot"], true);
        assert_eq!(input["unchanged_toast_value"], UNCHANGED_TOAST_VALUE);
        assert_eq!(
            input["tables"],
            json!(["customer", "product", "order", "orderitem"])
        );
        let mapping = envelope_mapping(&shop_pipeline());
        assert!(mapping.contains(&format!(
            "let unchanged_toast = \"{UNCHANGED_TOAST_VALUE}\""
        )));
        assert!(mapping.contains("root.payload = this.filter(kv -> kv.value != $unchanged_toast)"));
    }

    #[test]
    fn mixed_case_names_are_quoted_and_lowercase_names_are_not() {
        assert_eq!(postgres_identifier("orderitem"), "orderitem");
        assert_eq!(postgres_identifier("order_2"), "order_2");
        assert_eq!(postgres_identifier("OrderItem"), "\"OrderItem\"");
        let mut pipeline = shop_pipeline();
        pipeline.spec.source.schema = "Shop".into();
        pipeline.spec.source.tables[0].name = "Customer".into();
        let config = config(&pipeline, BrokerTransport::default());
        assert_eq!(config["input"]["postgres_cdc"]["schema"], "\"Shop\"");
        assert_eq!(config["input"]["postgres_cdc"]["tables"][0], "\"Customer\"");
        // `@table` carries the name as Postgres spells it, unquoted.
        assert!(envelope_mapping(&pipeline).contains("  \"Customer\" => \"id\"\n"));
    }

    #[test]
    fn slots_longer_than_fifty_bytes_are_refused() {
        assert_eq!(slot_name_problem(&"s".repeat(50)), None);
        let problem = slot_name_problem(&"s".repeat(51)).unwrap();
        assert!(problem.contains("pglog_stream_"), "{problem}");
    }

    #[test]
    fn per_table_mode_interpolates_the_table_into_the_topic() {
        let config = config(&shop_pipeline(), BrokerTransport::default());
        let output = &config["output"]["kafka_franz"];
        assert_eq!(output["topic"], "shop.${! @table }");
        assert_eq!(output["key"], "${! @cdc_key }");
        assert_eq!(output["partitioner"], PARTITIONER);
        assert_eq!(output["seed_brokers"], json!(["redpanda:9092"]));
        assert!(output.get("sasl").is_none());
        assert!(output.get("tls").is_none());
    }

    #[test]
    fn single_mode_writes_one_topic_still_keyed() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.kafka.topics.mode = TopicMode::Single;
        pipeline.spec.kafka.topics.prefix = Some("sqlmodel_cdc_events".into());
        let config = config(&pipeline, BrokerTransport::default());
        assert_eq!(
            config["output"]["kafka_franz"]["topic"],
            "sqlmodel_cdc_events"
        );
        assert_eq!(config["output"]["kafka_franz"]["key"], "${! @cdc_key }");
    }

    #[test]
    fn tls_follows_the_security_protocol() {
        assert!(uses_tls(Some("SSL")));
        assert!(uses_tls(Some("sasl_ssl\n")));
        assert!(!uses_tls(Some("SASL_PLAINTEXT")));
        assert!(!uses_tls(Some("PLAINTEXT")));
        assert!(!uses_tls(None));
        let pipeline = with_auth(shop_pipeline());
        let plain = config(&pipeline, BrokerTransport { tls: false });
        assert!(plain["output"]["kafka_franz"].get("tls").is_none());
        let tls = config(&pipeline, BrokerTransport { tls: true });
        assert_eq!(
            tls["output"]["kafka_franz"]["tls"],
            json!({ "enabled": true, "root_cas": "${KAFKA_CA_CRT:}" })
        );
    }

    #[test]
    fn every_reference_has_a_default_or_is_required_and_known() {
        let pipeline = with_auth(shop_pipeline());
        let text = config_yaml(&pipeline, BrokerTransport { tls: true });
        let references = env_references(&text);
        let known: Vec<EnvVar> = std::iter::once(DSN_ENV).chain(KAFKA_AUTH_ENV).collect();
        assert_eq!(references.len(), 5, "{references:?}");
        for reference in &references {
            let var = known
                .iter()
                .find(|v| v.name == reference.name)
                .unwrap_or_else(|| {
                    panic!("{} is not one of the engine's variables", reference.name)
                });
            assert_eq!(reference.default.as_deref(), var.default, "{}", var.name);
        }
        assert!(
            !references.iter().any(|r| r.name == LICENSE_ENV.name),
            "the licence is read by Redpanda Connect, not substituted"
        );
    }

    #[test]
    fn a_secret_without_sasl_keys_leaves_sasl_off() {
        let pipeline = with_auth(shop_pipeline());
        let text = config_yaml(&pipeline, BrokerTransport { tls: true });
        let substituted = substitute(&text, &[("POSTGRES_DSN", "postgresql://u:p@h/db")]);
        let parsed: Value = serde_yaml::from_str(&substituted).unwrap();
        let output = &parsed["output"]["kafka_franz"];
        assert_eq!(output["sasl"][0]["mechanism"], "none");
        assert_eq!(output["sasl"][0]["password"], "");
        assert_eq!(output["tls"]["root_cas"], "");
    }

    #[test]
    fn hostile_secret_values_survive_substitution() {
        let pipeline = with_auth(shop_pipeline());
        let text = config_yaml(&pipeline, BrokerTransport { tls: true });
        let dsn = "postgresql://u:p: #x'y{}@h:5432/db?sslmode=disable";
        let password = "  - pa: ss #'{}[] ";
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let substituted = substitute(
            &text,
            &[
                ("POSTGRES_DSN", dsn),
                ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
                ("KAFKA_SASL_USERNAME", "user"),
                ("KAFKA_SASL_PASSWORD", password),
                ("KAFKA_CA_CRT", ca),
            ],
        );
        let parsed: Value = serde_yaml::from_str(&substituted).unwrap();
        assert_eq!(parsed["input"]["postgres_cdc"]["dsn"], dsn);
        let output = &parsed["output"]["kafka_franz"];
        assert_eq!(output["sasl"][0]["mechanism"], "SCRAM-SHA-512");
        assert_eq!(output["sasl"][0]["password"], password);
        assert_eq!(output["tls"]["root_cas"], ca);
        assert_eq!(unsubstitutable_char(dsn), None);
        assert_eq!(unsubstitutable_char("a\"b"), Some('"'));
        assert_eq!(unsubstitutable_char("a\\b"), Some('\\'));
    }

    #[test]
    fn env_references_follow_benthos_rules() {
        let found = env_references("a: ${A}\nb: \"${B_1.x:}\"\nc: ${! @table }\nd: ${C:none} ${}");
        assert_eq!(
            found,
            [
                EnvReference {
                    name: "A".into(),
                    default: None
                },
                EnvReference {
                    name: "B_1.x".into(),
                    default: Some(String::new())
                },
                EnvReference {
                    name: "C".into(),
                    default: Some("none".into())
                },
            ]
        );
    }
}
