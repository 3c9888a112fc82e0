//! The record of an event bound for the dead-letter topic, apart from its producer (`dlq`), so the
//! batch that collects dead letters and the producer that sends them do not import each other.

/// Reason kind of an event whose rows ClickHouse refused.
pub const REFUSED_KIND: &str = "refused";

/// The source table an event names in its metadata, or `unknown` when it names none.
pub fn source_table(payload: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v["metadata"]["table"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// An event bound for the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Source table when readable, else `unknown`.
    pub table: String,
    /// Reason kind.
    pub kind: &'static str,
    pub reason: String,
    /// Topic it was read from.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Original key.
    pub key: Option<Vec<u8>>,
    /// Original bytes.
    pub payload: Vec<u8>,
}
