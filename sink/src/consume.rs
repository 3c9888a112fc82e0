//! Reading the topics: the consume loop ([`consumer`]), how it fetches from the brokers ([`fetch`]),
//! and the batch it fills until a flush ([`batch`]).

pub mod batch;
pub mod consumer;
pub mod fetch;
