//! The Redpanda Connect configuration of the `redpandaConnect` capture engine: its `postgres_cdc`
//! input reading the captured tables through its own slot, a mapping into the project's CDC envelope
//! (`{"metadata": {"table", "operation", "lsn"}, "payload": <row>}`), and a Kafka output to the
//! pipeline's topics keyed by primary key.
//!
//! Secrets stay out of it: the DSN and the SASL settings are `${ENV}` references that Redpanda
//! Connect interpolates from the container's env, which the Deployment fills from the Secrets.

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::pipeline::TopicMode;
use serde_json::{Value, json};

use crate::controller::build::{CONNECT_DSN_ENV, CONNECT_KAFKA_AUTH_ENV};

/// The configuration as YAML.
pub fn config_yaml(pipeline: &CdcPipeline) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&config(pipeline))
}

/// A Bloblang string literal.
fn bloblang_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The configuration as a document.
pub fn config(pipeline: &CdcPipeline) -> Value {
    let spec = &pipeline.spec;
    let tables: Vec<&str> = spec.source.tables.iter().map(|t| t.name.as_str()).collect();
    let key_cases: Vec<String> = spec
        .source
        .tables
        .iter()
        .map(|t| {
            format!(
                "  {} => this.get({}).string()",
                bloblang_string(&t.name),
                bloblang_string(&t.primary_key)
            )
        })
        .collect();
    let mapping = format!(
        "meta cdc_key = match @table {{\n{}\n  _ => \"\"\n}}\nroot.metadata = {{\"table\": @table, \"operation\": @operation, \"lsn\": @lsn}}\nroot.payload = this\n",
        key_cases.join("\n")
    );
    let prefix = pipeline.topic_prefix();
    let topic = match spec.kafka.topics.mode {
        TopicMode::PerTable => format!("{prefix}.${{! @table }}"),
        TopicMode::Single => prefix,
    };
    let mut output = json!({
        "seed_brokers": spec.kafka.brokers,
        "topic": topic,
        "key": "${! @cdc_key }",
        "partitioner": "murmur2_hash",
        "max_in_flight": 1,
    });
    if spec.kafka.auth_secret_ref.is_some() {
        let env = |key: &str| {
            CONNECT_KAFKA_AUTH_ENV
                .iter()
                .find(|(_, k)| *k == key)
                .map(|(var, _)| format!("${{{var}}}"))
                .unwrap_or_default()
        };
        output["sasl"] = json!([{
            "mechanism": env("sasl.mechanism"),
            "username": env("sasl.username"),
            "password": env("sasl.password"),
        }]);
    }
    json!({
        "http": { "address": "0.0.0.0:4195" },
        "input": {
            "postgres_cdc": {
                "dsn": format!("${{{CONNECT_DSN_ENV}}}"),
                "schema": spec.source.schema,
                "tables": tables,
                "slot_name": pipeline.slot_name(),
                "stream_snapshot": spec.capture.snapshot,
            }
        },
        "pipeline": { "processors": [ { "mapping": mapping } ] },
        "output": { "kafka_franz": output },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> CdcPipeline {
        serde_yaml::from_str(include_str!("../../examples/shop-pipeline.yaml")).unwrap()
    }

    #[test]
    fn reads_the_slot_and_writes_per_table_topics_keyed_by_primary_key() {
        let config = config(&example());
        let input = &config["input"]["postgres_cdc"];
        assert_eq!(input["dsn"], "${CDCSTAR_SOURCE_DSN}");
        assert_eq!(input["slot_name"], "cdcstar_shop");
        assert_eq!(
            input["tables"],
            json!(["customer", "product", "order", "orderitem"])
        );
        assert_eq!(
            config["output"]["kafka_franz"]["topic"],
            "shop.${! @table }"
        );
        let mapping = config["pipeline"]["processors"][0]["mapping"]
            .as_str()
            .unwrap();
        assert!(
            mapping.contains("\"order\" => this.get(\"id\").string()"),
            "{mapping}"
        );
        assert!(config["output"]["kafka_franz"].get("sasl").is_none());
    }
}
