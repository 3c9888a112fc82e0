//! The sink's probe port (`cdcstar_runtime::probes`): ready once it consumes and its last ClickHouse
//! write succeeded.

use cdcstar_runtime::probes::Probed;

use crate::metrics::Metrics;

impl Probed for Metrics {
    fn readiness(&self) -> Result<(), &'static str> {
        if self.ready.get() == 1 {
            Ok(())
        } else {
            Err("not ready")
        }
    }

    fn render_metrics(&self) -> Result<String, std::fmt::Error> {
        Ok(self.render())
    }
}
