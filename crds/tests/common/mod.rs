//! Helpers shared by the integration tests: service URLs from the environment, unique names, the
//! example pipeline.

#![allow(dead_code)] // each test binary uses a subset

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use cdcstar_crds::CdcPipeline;

/// The URL of a local service, or a panic that says how to start the services.
pub fn service_url(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: start the local services with `scripts/services.sh up` and load \
             their environment with `eval \"$(scripts/services.sh env)\"`"
        )
    })
}

/// A name unique to this test run: `<prefix>_<pid>_<time>_<counter>`, lowercase and SQL-safe.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!(
        "{prefix}_{}_{nanos:x}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The committed example pipeline.
pub fn shop_pipeline() -> CdcPipeline {
    serde_yaml::from_str(include_str!("../../../examples/shop-pipeline.yaml"))
        .expect("examples/shop-pipeline.yaml parses")
}
