//! `cdcstar-capture`: the licence-free capture engine. It reads a pipeline's publication through its
//! logical replication slot (pgoutput over the streaming replication protocol), turns every row
//! change into the project's CDC envelope and produces it to the pipeline's Kafka topics, keyed by
//! primary key. The slot is confirmed only up to events the broker acknowledged (at least once).
//!
//! Modules, from the wire up: [`pgoutput`] decodes messages, [`row`] builds envelopes
//! ([`read_event`] those of snapshot rows) with the column conversion, masks and message key of
//! [`cdcstar_source`] (shared with the sink's verifier), [`producer`] and [`acks`] deliver them and
//! decide what may be confirmed, [`stream`] is the streaming loop, [`snapshot`] the initial
//! snapshot, [`replication`] and [`source`] the database sessions, [`heartbeat`] and [`metrics`]
//! the operational side, [`settings`] and [`app`] the start-up.

pub mod acks;
pub mod app;
pub mod heartbeat;
pub mod metrics;
pub mod pgoutput;
pub mod producer;
pub mod read_event;
pub mod replication;
pub mod row;
pub mod settings;
pub mod snapshot;
pub mod source;
pub mod stream;
