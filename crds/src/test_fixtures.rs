//! Fixtures shared by the unit tests: the reference app's pipeline from `examples/`.

use crate::pipeline::CdcPipeline;
use crate::star_model::StarModel;

/// The committed example, `examples/shop-pipeline.yaml`.
pub const SHOP_PIPELINE_YAML: &str = include_str!("../../examples/shop-pipeline.yaml");

/// Every ClickHouse column type the parser supports, one sample of each form, in canonical
/// spelling: the parser round-trips them and the CRD's column-type pattern accepts them.
pub const EVERY_SUPPORTED_TYPE: &[&str] = &[
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "Float32",
    "Float64",
    "Decimal(12, 2)",
    "Decimal(76, 76)",
    "Decimal(1, 0)",
    "String",
    "LowCardinality(String)",
    "LowCardinality(Nullable(String))",
    "Bool",
    "Date",
    "Date32",
    "DateTime",
    "DateTime64(6)",
    "DateTime64(0)",
    "DateTime64(9)",
    "UUID",
    "Nullable(String)",
    "Nullable(Decimal(10, 4))",
    "Nullable(DateTime64(3))",
];

/// The example parsed; every test mutates its own copy.
pub fn shop_pipeline() -> CdcPipeline {
    serde_yaml::from_str(SHOP_PIPELINE_YAML).expect("examples/shop-pipeline.yaml parses")
}

/// The example's compiled star schema.
pub fn shop_model() -> StarModel {
    StarModel::for_pipeline(&shop_pipeline().spec).expect("the example compiles")
}

/// Compare `actual` with the committed golden file `tests/golden/<name>`; with `UPDATE_GOLDEN=1` in the
/// environment, rewrite the file instead (then review the diff and commit it).
pub fn assert_golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("golden file is writable");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    pretty_assertions::assert_eq!(
        expected,
        actual,
        "{} is stale; run `UPDATE_GOLDEN=1 cargo test -p cdcstar-crds` and review the diff",
        path.display()
    );
}
