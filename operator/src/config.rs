//! Operator-wide settings that shape what the build phase produces: default images of the
//! components and how often a healthy pipeline is re-checked.

use std::time::Duration;

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

/// Settings of the reconcile loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    /// Images of components a pipeline does not pin.
    pub images: DefaultImages,
    /// How long after a successful reconcile the pipeline is checked again (refreshes the lag and
    /// catches drift made outside Kubernetes, e.g. a publication dropped by hand).
    pub resync_interval: Duration,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            images: DefaultImages::default(),
            resync_interval: Duration::from_secs(60),
        }
    }
}
