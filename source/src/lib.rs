//! `cdcstar-source`: how a row of the Postgres source becomes the payload the capture sends. The
//! capture builds its envelopes with it, and the sink's verifier (`cdcstar-sink verify`) reads the
//! source rows with it, so the payloads the verifier expects are the ones the capture sends,
//! without either binary depending on the other.
//!
//! It owns:
//! - [`value`] (with its array parser [`array`](mod@array)): the conversion of a column's text, as
//!   Postgres prints it, to the JSON value the payload carries, chosen by the column's type;
//! - [`mask`]: the columns a table excludes and the values it masks (`excludeColumns`, `mask`);
//! - [`key`]: the message key, the primary key's JSON value;
//! - [`address`]: where the source database is, and the session settings every connection to it
//!   runs with (so that every value's text form is the same from pgoutput and from a query).
//!
//! No Kafka, no replication protocol: the slot, the publication, the replication stream and the
//! heartbeats stay in the capture.

pub mod address;
pub mod array;
pub mod key;
pub mod mask;
pub mod value;
