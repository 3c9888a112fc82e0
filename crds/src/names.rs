//! Every name derived from a pipeline: Postgres publication and replication slot, Kafka topics and
//! consumer group, ClickHouse database.
//!
//! The operator, the capture and the sink must agree on these names byte for byte, so they are computed
//! here and only here. Defaults are derived from `metadata.name` (and `metadata.namespace` where the name
//! must be unique across the cluster); every default can be overridden in the spec.
//!
//! | what | default | override |
//! | --- | --- | --- |
//! | publication | `cdcstar_<name>` (`-` and `.` become `_`) | `spec.source.publication` |
//! | replication slot | `cdcstar_<name>` (`-` and `.` become `_`) | `spec.source.slot.name` |
//! | topic prefix | `<name>` | `spec.kafka.topics.prefix` |
//! | topic of a table | `<prefix>.<table>` (`perTable`), `<prefix>` (`single`) | |
//! | dead-letter topic | `<prefix>.dlq` | `spec.kafka.topics.deadLetter` |
//! | sink consumer group | `cdcstar-<namespace>-<name>-sink` | |
//! | rows in the status tables | `<namespace>/<name>` | |
//! | ClickHouse database | `local` | `spec.clickhouse.database` |

use kube::ResourceExt;

use crate::pipeline::{CdcPipeline, TopicMode};

/// Prefix of the default publication and slot names.
pub const DEFAULT_NAME_PREFIX: &str = "cdcstar_";

/// Suffix of the default dead-letter topic.
pub const DEAD_LETTER_SUFFIX: &str = "dlq";

/// Namespace assumed for an object read from a file without `metadata.namespace`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Default publication or slot name for a pipeline called `pipeline_name`: `cdcstar_<name>` with the
/// characters Postgres does not allow in slot names (`-`, `.`) replaced by `_`.
///
/// Kubernetes names are lowercase, so the result only holds `[a-z0-9_]`, as slot names require. It may
/// still exceed 63 bytes for a long pipeline name; `validate` reports that and asks for an explicit name.
pub fn default_replication_name(pipeline_name: &str) -> String {
    let sanitized: String = pipeline_name
        .chars()
        .map(|c| if c == '-' || c == '.' { '_' } else { c })
        .collect();
    format!("{DEFAULT_NAME_PREFIX}{sanitized}")
}

impl CdcPipeline {
    /// `metadata.name`, or the empty string for an object that has none (never the case once stored).
    pub fn pipeline_name(&self) -> String {
        self.name_any()
    }

    /// `metadata.namespace`, or `default` for an object read from a file without one.
    pub fn pipeline_namespace(&self) -> String {
        self.namespace()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
    }

    /// The names of the captured source tables, in spec order.
    pub fn source_table_names(&self) -> Vec<String> {
        self.spec
            .source
            .tables
            .iter()
            .map(|t| t.name.clone())
            .collect()
    }

    /// The Postgres publication the capture reads.
    pub fn publication_name(&self) -> String {
        self.spec
            .source
            .publication
            .clone()
            .unwrap_or_else(|| default_replication_name(&self.pipeline_name()))
    }

    /// The logical replication slot the capture reads.
    pub fn slot_name(&self) -> String {
        self.spec
            .source
            .slot
            .name
            .clone()
            .unwrap_or_else(|| default_replication_name(&self.pipeline_name()))
    }

    /// The prefix of every topic of the pipeline.
    pub fn topic_prefix(&self) -> String {
        self.spec
            .kafka
            .topics
            .prefix
            .clone()
            .unwrap_or_else(|| self.pipeline_name())
    }

    /// The topic carrying the changes of source table `table`: `<prefix>.<table>` in `perTable` mode,
    /// `<prefix>` in `single` mode.
    pub fn topic_for_table(&self, table: &str) -> String {
        let prefix = self.topic_prefix();
        match self.spec.kafka.topics.mode {
            TopicMode::PerTable => format!("{prefix}.{table}"),
            TopicMode::Single => prefix,
        }
    }

    /// Every data topic of the pipeline, once each, in the order of `spec.source.tables` (one topic in
    /// `single` mode). The dead-letter topic is not included.
    pub fn data_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        for table in &self.spec.source.tables {
            let topic = self.topic_for_table(&table.name);
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        topics
    }

    /// The topic the sink sends events it cannot apply to.
    pub fn dead_letter_topic(&self) -> String {
        self.spec
            .kafka
            .topics
            .dead_letter
            .clone()
            .unwrap_or_else(|| format!("{}.{DEAD_LETTER_SUFFIX}", self.topic_prefix()))
    }

    /// The sink's Kafka consumer group, unique per pipeline in the cluster.
    pub fn sink_consumer_group(&self) -> String {
        format!(
            "cdcstar-{}-{}-sink",
            self.pipeline_namespace(),
            self.pipeline_name()
        )
    }

    /// `<namespace>/<name>`: the pipeline's rows in the status tables beside the star tables
    /// (`crate::status_tables`), which pipelines sharing a database share.
    pub fn status_key(&self) -> String {
        format!("{}/{}", self.pipeline_namespace(), self.pipeline_name())
    }

    /// The ClickHouse database holding the star schema.
    pub fn clickhouse_database(&self) -> &str {
        &self.spec.clickhouse.database
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::shop_pipeline;

    #[test]
    fn replication_names_default_to_prefixed_pipeline_name_with_underscores() {
        let mut pipeline = shop_pipeline();
        pipeline.metadata.name = Some("shop-eu.west".into());
        assert_eq!(pipeline.publication_name(), "cdcstar_shop_eu_west");
        assert_eq!(pipeline.slot_name(), "cdcstar_shop_eu_west");
    }

    #[test]
    fn replication_names_from_spec_win() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.source.publication = Some("shop_pub".into());
        pipeline.spec.source.slot.name = Some("shop_slot".into());
        assert_eq!(pipeline.publication_name(), "shop_pub");
        assert_eq!(pipeline.slot_name(), "shop_slot");
    }

    #[test]
    fn per_table_topics_are_prefixed_table_names() {
        let pipeline = shop_pipeline();
        assert_eq!(pipeline.topic_for_table("order"), "shop.order");
        assert_eq!(
            pipeline.data_topics(),
            [
                "shop.customer",
                "shop.product",
                "shop.order",
                "shop.orderitem"
            ]
        );
        assert_eq!(pipeline.dead_letter_topic(), "shop.dlq");
    }

    #[test]
    fn single_mode_uses_the_prefix_for_every_table() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.kafka.topics.mode = TopicMode::Single;
        pipeline.spec.kafka.topics.prefix = Some("sqlmodel_cdc_events".into());
        assert_eq!(pipeline.topic_for_table("order"), "sqlmodel_cdc_events");
        assert_eq!(pipeline.data_topics(), ["sqlmodel_cdc_events"]);
        assert_eq!(pipeline.dead_letter_topic(), "sqlmodel_cdc_events.dlq");
    }

    #[test]
    fn topic_prefix_defaults_to_pipeline_name_and_dead_letter_can_be_set() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.kafka.topics.prefix = None;
        pipeline.spec.kafka.topics.dead_letter = Some("poison".into());
        assert_eq!(pipeline.topic_for_table("customer"), "shop.customer");
        assert_eq!(pipeline.dead_letter_topic(), "poison");
    }

    #[test]
    fn consumer_group_names_namespace_and_pipeline() {
        let mut pipeline = shop_pipeline();
        assert_eq!(pipeline.sink_consumer_group(), "cdcstar-default-shop-sink");
        pipeline.metadata.namespace = Some("analytics".into());
        assert_eq!(
            pipeline.sink_consumer_group(),
            "cdcstar-analytics-shop-sink"
        );
    }

    #[test]
    fn status_rows_are_keyed_by_namespace_and_name() {
        let mut pipeline = shop_pipeline();
        assert_eq!(pipeline.status_key(), "default/shop");
        pipeline.metadata.namespace = Some("analytics".into());
        assert_eq!(pipeline.status_key(), "analytics/shop");
    }

    #[test]
    fn clickhouse_database_comes_from_spec() {
        assert_eq!(shop_pipeline().clickhouse_database(), "local");
    }
}
