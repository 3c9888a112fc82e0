//! The sink: consumes CDC topics and maintains the ClickHouse star schema a `CdcPipeline` declares.

pub mod kafka;
