//! Fixtures shared by the unit tests: the reference app's pipeline from `examples/`.

use crate::pipeline::CdcPipeline;

/// The committed example, `examples/shop-pipeline.yaml`.
pub const SHOP_PIPELINE_YAML: &str = include_str!("../../examples/shop-pipeline.yaml");

/// The example parsed; every test mutates its own copy.
pub fn shop_pipeline() -> CdcPipeline {
    serde_yaml::from_str(SHOP_PIPELINE_YAML).expect("examples/shop-pipeline.yaml parses")
}
