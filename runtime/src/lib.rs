//! The floor every cdcstar binary stands on, below its own job: [`kafka`] (client settings, auth from
//! a mounted Secret, topic provisioning; the capture and the sink), [`logging`] (one log format for
//! every binary), [`pipeline_file`] (reading the file `--pipeline` names), [`probes`] (one `/health`,
//! `/ready` and `/metrics` port, and the metrics' encoding) and [`shutdown`] (SIGTERM and SIGINT,
//! the same way everywhere). It depends on no other cdcstar crate, and no binary crate depends on
//! another.

pub mod kafka;
pub mod logging;
pub mod pipeline_file;
pub mod probes;
pub mod shutdown;
