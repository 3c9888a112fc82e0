//! Fixtures shared by the unit tests: the reference app's pipeline from `examples/`.

/// The example pipeline of the repository.
pub(crate) fn shop() -> cdcstar_crds::CdcPipeline {
    let text = include_str!("../../examples/shop-pipeline.yaml");
    serde_yaml::from_str(text).expect("example pipeline parses")
}
