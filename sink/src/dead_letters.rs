//! Beside the flow, for events the sink cannot apply: the record of one ([`letter`]), the producer
//! that sends it to the dead-letter topic ([`producer`]), finding the events behind rows ClickHouse
//! refused ([`isolate`]) and reading their bytes back from the broker ([`refetch`]).

pub mod isolate;
pub mod letter;
pub mod producer;
pub mod refetch;
