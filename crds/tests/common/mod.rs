//! Helpers shared by the integration tests: service URLs from the environment and unique names
//! (the workspace's testkit), the example pipeline.

#![allow(dead_code)] // each test binary uses a subset

use cdcstar_crds::CdcPipeline;

#[allow(unused_imports)] // each test binary uses a subset
pub use cdcstar_testkit::{required_env, unique};

/// The committed example pipeline.
pub fn shop_pipeline() -> CdcPipeline {
    serde_yaml::from_str(include_str!("../../../examples/shop-pipeline.yaml"))
        .expect("examples/shop-pipeline.yaml parses")
}
