//! The CDC envelope: the bytes on the topics between capture and sink, and the LSN they carry.
//!
//! Version 1 of the envelope is the reference app's shape, unchanged:
//!
//! ```json
//! {"metadata": {"table": "customer", "operation": "update", "lsn": "0/16B3748"},
//!  "payload": {"id": 1, "name": "Jane", ...}}
//! ```
//!
//! `operation` is `read` (snapshot row), `insert`, `update`, `delete`, `truncate` or `heartbeat`;
//! `lsn` is the position of the change in Postgres text form (`%X/%X`), absent for snapshot rows. For
//! a delete the payload carries the primary key and (under the default replica identity) nulls for
//! the other columns; a truncate's payload is empty: every row of the table older than its `lsn` is
//! deleted.
//!
//! A `heartbeat` carries no change: the native capture sends one to every partition of every data
//! topic when a heartbeat message it wrote to the WAL comes back through the slot (empty `table` and
//! `payload`, no Kafka key; `lsn` and `commitLsn` the message's position, `commitTime` the time
//! Postgres wrote it). Every transaction committed before that position was sent to the partition
//! before it, so a consumer that has applied a partition up to a heartbeat has applied every change
//! of that partition committed before it, even when the partition is idle. A consumer that does not
//! know the operation must skip it.
//!
//! Compatible extensions, each optional so the reference's Redpanda Connect output still parses and a
//! consumer that ignores them still works:
//! - `commitLsn`: the LSN of the transaction's commit record (`%X/%X`). Unlike `lsn` it is monotonic in
//!   commit order, so it orders changes across transactions.
//! - `txSeq`: position of the change inside its transaction, from 0.
//! - `commitTime`: commit timestamp, RFC 3339 with microseconds, UTC; used to measure end-to-end lag.
//! - `unchangedToast`: columns whose values Postgres did not send because they are unchanged TOASTed
//!   values; they are absent from `payload` and must keep their stored values.
//! - `oldKey`: for an update that changed the primary key, the old key columns.
//!
//! On Kafka, an envelope is the message value (UTF-8 JSON) and its Kafka key is the row's primary key
//! as text ([`message_key`]), in both topic layouts, so all changes of a row land in one partition,
//! chosen by Kafka's murmur2 hash of the key with either capture engine ([`LIBRDKAFKA_PARTITIONER`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// One CDC event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Where the change comes from and what it is.
    pub metadata: Metadata,
    /// The row, keyed by source column name.
    pub payload: Map<String, Value>,
}

/// Envelope metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Source table name.
    pub table: String,
    /// The kind of change.
    pub operation: Operation,
    /// Position of the change; `None` for snapshot rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    /// Position of the transaction's commit (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_lsn: Option<Lsn>,
    /// Position of the change inside its transaction (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_seq: Option<u32>,
    /// Commit time, RFC 3339 (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_time: Option<String>,
    /// Columns left out of the payload because their TOASTed value is unchanged (extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchanged_toast: Vec<String>,
    /// Old primary key of an update that changed it (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_key: Option<Map<String, Value>>,
}

/// The kind of change an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// A row of the initial snapshot.
    Read,
    /// A new row.
    Insert,
    /// A changed row.
    Update,
    /// A removed row.
    Delete,
    /// `TRUNCATE` of the table: every row older than the event's `lsn` is gone; the payload is empty.
    Truncate,
    /// No change: every change committed before the event's `commitLsn` was sent to the partition
    /// before it. `table` and `payload` are empty.
    Heartbeat,
}

impl Operation {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Truncate => "truncate",
            Operation::Heartbeat => "heartbeat",
        }
    }
}

/// A PostgreSQL log sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

/// Why a text LSN could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN {0:?}: expected two hexadecimal halves like \"16/B374D848\"")]
pub struct LsnParseError(pub String);

impl FromStr for Lsn {
    type Err = LsnParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || LsnParseError(text.to_owned());
        let (high, low) = text.split_once('/').ok_or_else(err)?;
        let half = |part: &str| {
            if part.is_empty() || part.len() > 8 {
                return Err(err());
            }
            u32::from_str_radix(part, 16).map_err(|_| err())
        };
        Ok(Lsn((u64::from(half(high)?) << 32) | u64::from(half(low)?)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// librdkafka's partitioner of the native capture: Kafka's murmur2 hash of the key (Java clients'
/// and franz-go's `murmur2_hash`, which the Redpanda Connect engine uses,
/// [`crate::redpanda_connect::PARTITIONER`]), so both engines put a row's changes on the same
/// partition. librdkafka's default (`consistent_random`, CRC32) would not.
pub const LIBRDKAFKA_PARTITIONER: &str = "murmur2_random";

/// The Kafka message key of a change: the value of the primary-key column `primary_key` in `payload`
/// as text (a string as is, a number or boolean as its JSON text, like Bloblang's `.string()`).
/// `None` when the payload has no such column or it is null.
pub fn message_key(payload: &Map<String, Value>, primary_key: &str) -> Option<String> {
    match payload.get(primary_key)? {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_key_is_the_primary_key_as_text() {
        let payload: Map<String, Value> =
            serde_json::from_str(r#"{"id": 42, "code": "A-1", "gone": null}"#).unwrap();
        assert_eq!(message_key(&payload, "id").as_deref(), Some("42"));
        assert_eq!(message_key(&payload, "code").as_deref(), Some("A-1"));
        assert_eq!(message_key(&payload, "gone"), None);
        assert_eq!(message_key(&payload, "missing"), None);
    }

    #[test]
    fn lsn_round_trips_through_postgres_text_form() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.0, (0x16 << 32) | 0xB374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("00000016/B374D848".parse::<Lsn>().unwrap(), lsn);
    }

    #[test]
    fn lsn_rejects_malformed_text() {
        for bad in ["", "16", "/1", "1/", "G/1", "1/2/3", "123456789/0"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn a_heartbeat_carries_a_position_and_no_change() {
        let raw = r#"{"metadata":{"table":"","operation":"heartbeat","lsn":"0/16B3748",
                      "commitLsn":"0/16B3748","commitTime":"2026-01-01T00:00:00.000001Z"},
                      "payload":{}}"#;
        let envelope: Envelope = serde_json::from_str(raw).unwrap();
        assert_eq!(envelope.metadata.operation, Operation::Heartbeat);
        assert_eq!(envelope.metadata.commit_lsn, Some(Lsn(0x16B3748)));
        assert!(envelope.payload.is_empty());
        assert_eq!(Operation::Heartbeat.as_str(), "heartbeat");
    }

    #[test]
    fn reference_envelope_parses_without_extensions() {
        let raw = r#"{"metadata":{"lsn":"0/16B3748","operation":"insert","table":"customer"},
                      "payload":{"city":"Paris","id":1,"name":"Jane"}}"#;
        let envelope: Envelope = serde_json::from_str(raw).unwrap();
        assert_eq!(envelope.metadata.operation, Operation::Insert);
        assert_eq!(envelope.metadata.lsn, Some(Lsn(0x16B3748)));
        assert_eq!(envelope.metadata.commit_lsn, None);
        assert_eq!(envelope.payload["id"], 1);
    }

    #[test]
    fn envelope_without_extensions_serialises_to_reference_keys_only() {
        let envelope = Envelope {
            metadata: Metadata {
                table: "order".into(),
                operation: Operation::Delete,
                lsn: Some(Lsn(0x10)),
                commit_lsn: None,
                tx_seq: None,
                commit_time: None,
                unchanged_toast: vec![],
                old_key: None,
            },
            payload: serde_json::from_str(r#"{"id":7}"#).unwrap(),
        };
        assert_eq!(
            serde_json::to_string(&envelope).unwrap(),
            r#"{"metadata":{"table":"order","operation":"delete","lsn":"0/10"},"payload":{"id":7}}"#
        );
    }
}
