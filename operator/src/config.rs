//! Operator-wide settings that shape what the build phase produces: default images and compute
//! resources of the components, and how often a healthy pipeline is re-checked.

use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceRequirements;

/// Version of this release; the default component images are tagged with it.
pub const RELEASE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Images used when a pipeline does not name one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultImages {
    /// Native capture image (`cdcstar-capture` on its PATH).
    pub capture: String,
    /// Sink image (`cdcstar-sink` on its PATH).
    pub sink: String,
    /// Demo api image (`cdcstar-api` on its PATH).
    pub api: String,
}

impl Default for DefaultImages {
    fn default() -> Self {
        DefaultImages {
            capture: format!("cdcstar-capture:{RELEASE_VERSION}"),
            sink: format!("cdcstar-sink:{RELEASE_VERSION}"),
            api: format!("cdcstar-api:{RELEASE_VERSION}"),
        }
    }
}

/// Compute resources of the containers a pipeline does not size itself (`resources` of its
/// component). The defaults follow the README's sizing table: requests for a pipeline's steady
/// load on one core's share, memory limits at about three times the peak measured under a backlog,
/// no CPU limit (throttling would add latency; a request already reserves the CPU).
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultResources {
    /// The native capture's container.
    pub capture: ResourceRequirements,
    /// The sink's container.
    pub sink: ResourceRequirements,
    /// The demo api's container.
    pub api: ResourceRequirements,
    /// The containers of `spec.verify`'s CronJob and of resync Jobs (`cdcstar-sink verify`).
    pub verify: ResourceRequirements,
}

/// `{"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": limit}}`.
fn sized(cpu: &str, memory: &str, limit: &str) -> ResourceRequirements {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let quantities = |pairs: &[(&str, &str)]| {
        Some(
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), Quantity((*value).to_owned())))
                .collect(),
        )
    };
    ResourceRequirements {
        requests: quantities(&[("cpu", cpu), ("memory", memory)]),
        limits: quantities(&[("memory", limit)]),
        ..ResourceRequirements::default()
    }
}

impl Default for DefaultResources {
    fn default() -> Self {
        DefaultResources {
            capture: sized("100m", "64Mi", "256Mi"),
            sink: sized("250m", "128Mi", "384Mi"),
            api: sized("250m", "64Mi", "192Mi"),
            verify: sized("100m", "128Mi", "384Mi"),
        }
    }
}

/// A `resources` object (`{"requests": {...}, "limits": {...}}`) as a flag takes it: JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourcesJson(pub ResourceRequirements);

impl std::str::FromStr for ResourcesJson {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        serde_json::from_str(text)
            .map(ResourcesJson)
            .map_err(|e| format!("expected a resources object as JSON: {e}"))
    }
}

impl std::fmt::Display for ResourcesJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_string(&self.0).map_err(|_| std::fmt::Error)?;
        f.write_str(&json)
    }
}

/// Settings of the reconcile loop.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorConfig {
    /// Images of components a pipeline does not pin.
    pub images: DefaultImages,
    /// Compute resources of components a pipeline does not size.
    pub resources: DefaultResources,
    /// How long after a successful reconcile the pipeline is checked again (refreshes the lag and
    /// catches drift made outside Kubernetes, e.g. a publication dropped by hand).
    pub resync_interval: Duration,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            images: DefaultImages::default(),
            resources: DefaultResources::default(),
            resync_interval: Duration::from_secs(60),
        }
    }
}
