//! Pipelines for the tests, built from the committed example (`examples/shop-pipeline.yaml`).

use std::collections::BTreeMap;

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::pipeline::{ColumnSpec, DimensionSpec, FINALIZER, SourceTable};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

/// The example as committed.
pub const SHOP_PIPELINE_YAML: &str = include_str!("../../../examples/shop-pipeline.yaml");

/// The DSN stored in the fixture Secret; it must never appear in anything the operator writes.
pub const SECRET_DSN: &str =
    "postgresql://app:Sup3r-S3cret-Pa55@postgres:5432/shop?sslmode=disable";

/// Uid given to the stored fixture pipeline.
pub const UID: &str = "4a1b5c3d-0000-4000-8000-000000000001";

/// Builders on top of the example, in the style of controller-rs's fixtures.
pub trait PipelineFixture: Sized {
    /// The example as the API server would store it (namespace, uid, generation, resourceVersion).
    fn test() -> Self;
    /// With the operator's finalizer.
    fn finalized(self) -> Self;
    /// Being deleted.
    fn deleting(self) -> Self;
    /// With `spec.suspend` (the deprecated alias of `state: paused`).
    fn suspended(self) -> Self;
    /// With `spec.state: paused`.
    fn paused(self) -> Self;
    /// At another generation.
    fn generation(self, generation: i64) -> Self;
}

impl PipelineFixture for CdcPipeline {
    fn test() -> Self {
        let mut pipeline: CdcPipeline =
            serde_yaml::from_str(SHOP_PIPELINE_YAML).expect("the example parses");
        pipeline.metadata = ObjectMeta {
            name: Some("shop".into()),
            namespace: Some("default".into()),
            uid: Some(UID.into()),
            generation: Some(1),
            resource_version: Some("100".into()),
            ..ObjectMeta::default()
        };
        pipeline
    }

    fn finalized(mut self) -> Self {
        self.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
        self
    }

    fn deleting(mut self) -> Self {
        self.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        self
    }

    fn suspended(mut self) -> Self {
        self.spec.suspend = true;
        self
    }

    fn paused(mut self) -> Self {
        self.spec.state = cdcstar_crds::pipeline::PipelineState::Paused;
        self
    }

    fn generation(mut self, generation: i64) -> Self {
        self.metadata.generation = Some(generation);
        self
    }
}

/// The example plus a `shipment` table with its dimension, and a `phone` column on customer_dim.
pub fn with_shipment_and_phone(mut pipeline: CdcPipeline) -> CdcPipeline {
    pipeline
        .spec
        .source
        .tables
        .push(SourceTable::new("shipment", "id"));
    pipeline.spec.star_schema.dimensions.push(DimensionSpec {
        name: "shipment_dim".into(),
        source: "shipment".into(),
        key: "shipment_id".into(),
        columns: vec![
            ColumnSpec {
                name: "shipment_id".into(),
                source: "id".into(),
                r#type: "UInt64".into(),
                on_unrepresentable: None,
            },
            ColumnSpec {
                name: "carrier".into(),
                source: "carrier".into(),
                r#type: "LowCardinality(String)".into(),
                on_unrepresentable: None,
            },
        ],
    });
    pipeline.spec.star_schema.dimensions[0]
        .columns
        .push(ColumnSpec {
            name: "phone".into(),
            source: "phone".into(),
            r#type: "Nullable(String)".into(),
            on_unrepresentable: None,
        });
    pipeline
}

/// The Secret the example refers to.
pub fn dsn_secret() -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("shop-postgres".into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "dsn".to_owned(),
            ByteString(SECRET_DSN.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// What the source database holds once the pipeline is in place (publication with its tables,
/// replica identities FULL, slot retaining `retained` bytes).
pub fn source_in_place(
    pipeline: &CdcPipeline,
    retained: i64,
) -> cdcstar_operator::sql::SourceObservation {
    use cdcstar_crds::postgres::declared_tables;
    cdcstar_operator::sql::SourceObservation {
        publication_tables: Some(declared_tables(pipeline).into_iter().collect()),
        replica_identity: declared_tables(pipeline)
            .into_iter()
            .map(|t| (t.name, "f".to_owned()))
            .collect(),
        row_filters: Default::default(),
        slot: Some(cdcstar_operator::sql::SlotObservation {
            retained_wal_bytes: Some(retained),
            active: true,
            invalidated: None,
            failover: None,
        }),
        snapshot: Vec::new(),
        server_version_num: Some(150_010),
    }
}

/// What ClickHouse holds once the pipeline's schema is in place.
pub fn warehouse_in_place(pipeline: &CdcPipeline) -> cdcstar_operator::sql::WarehouseObservation {
    let mut tables: std::collections::BTreeMap<String, Vec<(String, String)>> =
        cdcstar_crds::clickhouse_ddl::table_schemas(pipeline)
            .expect("fixture validates")
            .into_iter()
            .map(|table| {
                let columns = table
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), c.column_type.to_string()))
                    .collect();
                (table.name, columns)
            })
            .collect();
    for table in cdcstar_crds::status_tables::STATUS_TABLES {
        let columns = table
            .columns
            .iter()
            .map(|(name, ty)| ((*name).to_owned(), (*ty).to_owned()))
            .collect();
        tables.insert(table.name.to_owned(), columns);
    }
    cdcstar_operator::sql::WarehouseObservation {
        database_exists: true,
        tables,
    }
}

/// The stored form of a pipeline, as the API server returns it.
pub fn to_json(pipeline: &CdcPipeline) -> serde_json::Value {
    serde_json::to_value(pipeline).expect("pipeline serialises")
}
