//! From the bytes of one Kafka message to typed row changes of the star tables it feeds.
//!
//! Everything that can be wrong with a single event is found here, before anything is written: bytes
//! that are not an envelope, an unknown table, a missing key or LSN, a value that does not fit its
//! column. Such an event is a [`DataError`] and goes to the dead-letter topic.
//!
//! Over 400 lines only with its tests of every kind of bad event.

pub mod value;

use cdcstar_crds::star_model::{StarModel, TableId};
use cdcstar_crds::{Envelope, Operation};

use crate::route::value::{ConvertError, Value, convert, convert_with_policy, default_value};

/// Why an event cannot be applied; the reason travels to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// Not a JSON envelope.
    #[error("invalid envelope: {0}")]
    InvalidEnvelope(String),
    /// `metadata.table` is not a captured table.
    #[error("unknown table {0:?}: not listed in spec.source.tables")]
    UnknownTable(String),
    /// The payload lacks the primary key.
    #[error("table {table}: payload has no primary key column {column:?}")]
    MissingKey {
        /// Source table.
        table: String,
        /// Primary key column.
        column: String,
    },
    /// A change event without `metadata.lsn`.
    #[error("table {table}: metadata.lsn is required for {operation} events")]
    MissingLsn {
        /// Source table.
        table: String,
        operation: &'static str,
    },
    /// A value does not fit its column.
    #[error("table {table} -> {target}: {source}")]
    Convert {
        /// Source table.
        table: String,
        /// Star table.
        target: String,
        /// The conversion error.
        source: Box<ConvertError>,
    },
}

impl DataError {
    /// Short machine-readable kind, for metrics labels and the DLQ header.
    pub fn kind(&self) -> &'static str {
        match self {
            DataError::InvalidEnvelope(_) => "invalid_envelope",
            DataError::UnknownTable(_) => "unknown_table",
            DataError::MissingKey { .. } => "missing_key",
            DataError::MissingLsn { .. } => "missing_lsn",
            DataError::Convert { .. } => "conversion",
        }
    }
}

/// A change of one row of one star table.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub table: TableId,
    pub key: Value,
    /// Values of the table's copied columns (lookups are filled when writing).
    pub values: Vec<Value>,
    /// Indexes of columns whose value is unchanged (TOAST) and must be taken from the stored row.
    pub unchanged: Vec<usize>,
    /// The source row was deleted.
    pub deleted: bool,
    /// A `TRUNCATE`: every row of the table older than `version` is deleted; `key` and `values` are
    /// unused.
    pub truncates_table: bool,
    /// Version of the source row: its change LSN, 0 for snapshot rows.
    pub version: u64,
}

/// A decoded event: the source table and the star-table row changes it implies.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// Source table.
    pub source: String,
    /// Row changes (none when the table feeds no star table).
    pub changes: Vec<RowChange>,
    /// Values replaced by their column's `onUnrepresentable` policy.
    pub adjusted: Vec<AdjustedValue>,
    /// Commit time, seconds since the epoch, when the envelope carries it (changes only: what the
    /// end-to-end lag is measured on).
    pub commit_time: Option<f64>,
    /// The commit position the event stands for in its partition, when the envelope carries both
    /// `commitLsn` and `commitTime` (the native capture's changes, truncates and heartbeats).
    pub position: Option<CommitPosition>,
}

/// A commit position of the source: every change of the partition committed at or before it has
/// been read once the event carrying it has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommitPosition {
    /// The commit LSN.
    pub lsn: u64,
    /// The commit time, microseconds since the Unix epoch.
    pub time_micros: i64,
}

/// A value its column's type could not hold, replaced by the column's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdjustedValue {
    pub table: TableId,
    /// Index of the column in the table's `columns`.
    pub column: usize,
}

/// Decodes and routes one message body.
pub fn route(plan: &StarModel, bytes: &[u8]) -> Result<Routed, DataError> {
    let envelope: Envelope =
        serde_json::from_slice(bytes).map_err(|e| DataError::InvalidEnvelope(e.to_string()))?;
    let metadata = &envelope.metadata;
    let commit_time = metadata
        .commit_time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_micros());
    let position = match (metadata.commit_lsn, commit_time) {
        (Some(lsn), Some(time_micros)) => Some(CommitPosition {
            lsn: lsn.0,
            time_micros,
        }),
        _ => None,
    };
    if metadata.operation == Operation::Heartbeat {
        return Ok(Routed {
            source: String::new(),
            changes: Vec::new(),
            adjusted: Vec::new(),
            commit_time: None,
            position,
        });
    }
    let source = plan
        .sources
        .get(&metadata.table)
        .ok_or_else(|| DataError::UnknownTable(metadata.table.clone()))?;
    let version = match (metadata.operation, metadata.lsn) {
        (_, Some(lsn)) => lsn.0,
        (Operation::Read, None) => 0,
        (operation, None) => {
            return Err(DataError::MissingLsn {
                table: metadata.table.clone(),
                operation: operation.as_str(),
            });
        }
    };
    if metadata.operation == Operation::Truncate {
        return Ok(Routed {
            source: metadata.table.clone(),
            changes: source
                .targets
                .iter()
                .map(|&table| RowChange {
                    table,
                    key: Value::Null,
                    values: Vec::new(),
                    unchanged: Vec::new(),
                    deleted: true,
                    truncates_table: true,
                    version,
                })
                .collect(),
            adjusted: Vec::new(),
            commit_time: None,
            position,
        });
    }
    let deleted = metadata.operation == Operation::Delete;
    if !envelope.payload.contains_key(&source.primary_key) {
        return Err(DataError::MissingKey {
            table: metadata.table.clone(),
            column: source.primary_key.clone(),
        });
    }
    let mut changes = Vec::with_capacity(source.targets.len());
    let mut adjusted = Vec::new();
    for &table_id in &source.targets {
        let table = &plan.tables[table_id];
        let convert_error = |source: ConvertError| DataError::Convert {
            table: metadata.table.clone(),
            target: table.name.clone(),
            source: Box::new(source),
        };
        let mut values = Vec::with_capacity(table.columns.len());
        let mut unchanged = Vec::new();
        for (index, column) in table.columns.iter().enumerate() {
            let raw = envelope.payload.get(&column.source);
            let value = if index == table.key {
                convert(raw, &column.ty, &column.source).map_err(convert_error)?
            } else if deleted {
                // A delete carries the key and, under the default replica identity, nulls: keep
                // whatever converts, default the rest.
                convert(raw, &column.ty, &column.source)
                    .unwrap_or_else(|_| default_value(&column.ty))
            } else if raw.is_none() && metadata.unchanged_toast.contains(&column.source) {
                unchanged.push(index);
                default_value(&column.ty)
            } else {
                let converted =
                    convert_with_policy(raw, &column.ty, &column.source, column.on_unrepresentable)
                        .map_err(convert_error)?;
                if converted.adjusted {
                    adjusted.push(AdjustedValue {
                        table: table_id,
                        column: index,
                    });
                }
                converted.value
            };
            values.push(value);
        }
        // An update that changed the primary key deletes the row under the old key.
        if let Some(old_key) = &metadata.old_key {
            let key_column = table.key_column();
            let old = convert(
                old_key.get(&source.primary_key),
                &key_column.ty,
                &key_column.source,
            )
            .map_err(convert_error)?;
            if old != values[table.key] && old_key.contains_key(&source.primary_key) {
                let mut old_values: Vec<Value> =
                    table.columns.iter().map(|c| default_value(&c.ty)).collect();
                old_values[table.key] = old.clone();
                changes.push(RowChange {
                    table: table_id,
                    key: old,
                    values: old_values,
                    unchanged: Vec::new(),
                    deleted: true,
                    truncates_table: false,
                    version,
                });
            }
        }
        changes.push(RowChange {
            table: table_id,
            key: values[table.key].clone(),
            values,
            unchanged,
            deleted,
            truncates_table: false,
            version,
        });
    }
    Ok(Routed {
        source: metadata.table.clone(),
        changes,
        adjusted,
        commit_time: commit_time.map(|micros| micros as f64 / 1e6),
        position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::shop;

    fn plan() -> StarModel {
        StarModel::for_pipeline(&shop().spec).unwrap()
    }

    #[test]
    fn reference_envelope_routes_to_the_dimension() {
        let plan = plan();
        let raw = br#"{"metadata":{"lsn":"0/10","operation":"insert","table":"customer"},
            "payload":{"city":"Paris","country":"FR","createdAt":"2024-01-01T00:00:00Z",
                       "email":"a@b.c","id":1,"name":"Ann"}}"#;
        let routed = route(&plan, raw).unwrap();
        assert_eq!(routed.changes.len(), 1);
        let change = &routed.changes[0];
        assert_eq!(plan.tables[change.table].name, "customer_dim");
        assert_eq!(change.key, Value::UInt(1));
        assert_eq!(change.version, 0x10);
        assert!(!change.deleted);
        assert_eq!(change.values[2], Value::String("Ann".into()));
    }

    #[test]
    fn a_change_and_a_heartbeat_carry_their_commit_position() {
        let plan = plan();
        let change = br#"{"metadata":{"lsn":"0/10","commitLsn":"0/20","txSeq":0,
            "commitTime":"2026-01-01T00:00:01.000002Z","operation":"update","table":"customer"},
            "payload":{"id":1,"name":"Ann"}}"#;
        let routed = route(&plan, change).unwrap();
        let position = CommitPosition {
            lsn: 0x20,
            time_micros: 1_767_225_601_000_002,
        };
        assert_eq!(routed.position, Some(position));
        assert_eq!(routed.commit_time, Some(1_767_225_601.000_002));

        let heartbeat = br#"{"metadata":{"table":"","operation":"heartbeat","lsn":"0/30",
            "commitLsn":"0/30","commitTime":"2026-01-01T00:00:02Z"},"payload":{}}"#;
        let routed = route(&plan, heartbeat).unwrap();
        assert!(routed.changes.is_empty());
        assert_eq!(routed.commit_time, None, "not a change: no lag sample");
        assert_eq!(
            routed.position,
            Some(CommitPosition {
                lsn: 0x30,
                time_micros: 1_767_225_602_000_000
            })
        );
    }

    #[test]
    fn snapshot_rows_get_version_zero_and_changes_need_an_lsn() {
        let plan = plan();
        let read = br#"{"metadata":{"operation":"read","table":"product"},
            "payload":{"id":3,"name":"Pen","category":"office","price":1.5}}"#;
        assert_eq!(route(&plan, read).unwrap().changes[0].version, 0);
        let update = br#"{"metadata":{"operation":"update","table":"product"},"payload":{"id":3}}"#;
        assert!(matches!(
            route(&plan, update),
            Err(DataError::MissingLsn { .. })
        ));
    }

    #[test]
    fn delete_with_null_columns_defaults_them() {
        let plan = plan();
        let raw = br#"{"metadata":{"lsn":"0/20","operation":"delete","table":"order"},
            "payload":{"id":9,"customerId":null,"total":null,"status":null,"orderDate":null}}"#;
        let change = &route(&plan, raw).unwrap().changes[0];
        assert!(change.deleted);
        assert_eq!(change.values[1], Value::UInt(0));
        assert_eq!(change.values[3], Value::Decimal(0));
    }

    #[test]
    fn unchanged_toast_columns_are_marked_not_nulled() {
        let plan = plan();
        let raw = br#"{"metadata":{"lsn":"0/30","operation":"update","table":"customer",
                                  "unchangedToast":["city"]},
            "payload":{"id":1,"name":"Ann","email":"a@b.c","country":"FR","createdAt":null}}"#;
        let change = &route(&plan, raw).unwrap().changes[0];
        assert_eq!(change.unchanged, [4]);
    }

    #[test]
    fn changed_primary_key_deletes_the_old_row() {
        let plan = plan();
        let raw = br#"{"metadata":{"lsn":"0/40","operation":"update","table":"customer",
                                  "oldKey":{"id":1}},
            "payload":{"id":2,"name":"Ann","email":"a@b.c","country":"FR","city":"X"}}"#;
        let changes = route(&plan, raw).unwrap().changes;
        assert_eq!(changes.len(), 2);
        assert!(changes[0].deleted && changes[0].key == Value::UInt(1));
        assert!(!changes[1].deleted && changes[1].key == Value::UInt(2));
    }

    #[test]
    fn poison_messages_are_data_errors() {
        let plan = plan();
        assert!(matches!(
            route(&plan, b"not json"),
            Err(DataError::InvalidEnvelope(_))
        ));
        let unknown =
            br#"{"metadata":{"lsn":"0/1","operation":"insert","table":"nope"},"payload":{"id":1}}"#;
        assert_eq!(
            route(&plan, unknown),
            Err(DataError::UnknownTable("nope".into()))
        );
        let no_key = br#"{"metadata":{"lsn":"0/1","operation":"insert","table":"customer"},"payload":{"name":"x"}}"#;
        assert!(matches!(
            route(&plan, no_key),
            Err(DataError::MissingKey { .. })
        ));
        let bad_value = br#"{"metadata":{"lsn":"0/1","operation":"insert","table":"orderitem"},
            "payload":{"id":1,"orderId":1,"productId":1,"quantity":"many","price":1}}"#;
        let err = route(&plan, bad_value).unwrap_err();
        assert_eq!(err.kind(), "conversion");
        assert!(err.to_string().contains("quantity"), "{err}");
    }

    /// Messages as the Redpanda Connect engine's mapping writes them, from the shapes `postgres_cdc`
    /// v4.67.5 emits: streamed rows decoded by pgx (numbers as numbers), snapshot rows scanned as text
    /// (`int8`, `numeric`, timestamps as strings; `int4` and `bool` as JSON), deletes under the default
    /// replica identity (key plus nulls), and unchanged TOASTed columns left out of the payload and
    /// listed in `unchangedToast`. No `commitTime`, `oldKey` or `commitLsn`.
    mod redpanda_connect {
        use super::*;

        #[test]
        fn a_streamed_insert_routes_with_its_lsn_as_version() {
            let raw = br#"{"metadata":{"table":"order","operation":"insert","lsn":"0/1A2B3C8"},
                "payload":{"id":7,"customerId":3,"total":12.5,"status":"new",
                           "orderDate":"2024-05-01T10:00:00Z"}}"#;
            let routed = route(&plan(), raw).unwrap();
            assert_eq!(
                routed.commit_time, None,
                "Redpanda Connect sends no commit time"
            );
            assert_eq!(routed.position, None, "nor a commit LSN");
            let change = &routed.changes[0];
            assert_eq!(change.key, Value::UInt(7));
            assert_eq!(change.version, 0x1A2B3C8);
            assert!(!change.deleted);
        }

        #[test]
        fn a_snapshot_row_with_stringified_values_converts_like_a_streamed_one() {
            let plan = plan();
            let snapshot = br#"{"metadata":{"table":"order","operation":"read"},
                "payload":{"id":"7","customerId":"3","total":"12.50","status":"new",
                           "orderDate":"2024-05-01T10:00:00Z"}}"#;
            let streamed = br#"{"metadata":{"table":"order","operation":"update","lsn":"0/10"},
                "payload":{"id":7,"customerId":3,"total":12.5,"status":"new",
                           "orderDate":"2024-05-01T10:00:00Z"}}"#;
            let read = &route(&plan, snapshot).unwrap().changes[0];
            let update = &route(&plan, streamed).unwrap().changes[0];
            assert_eq!(read.version, 0);
            assert_eq!(read.key, update.key);
            assert_eq!(read.values, update.values);
        }

        #[test]
        fn a_delete_under_the_default_identity_deletes_by_key() {
            let raw = br#"{"metadata":{"table":"customer","operation":"delete","lsn":"0/20"},
                "payload":{"id":1,"email":null,"name":null,"country":null,"city":null,"createdAt":null}}"#;
            let change = &route(&plan(), raw).unwrap().changes[0];
            assert!(change.deleted);
            assert_eq!(change.key, Value::UInt(1));
        }

        #[test]
        fn an_unchanged_toast_column_keeps_its_stored_value() {
            let raw = br#"{"metadata":{"table":"customer","operation":"update","lsn":"0/30",
                                      "unchangedToast":["city"]},
                "payload":{"id":1,"email":"a@b.c","name":"Ann","country":"FR","createdAt":null}}"#;
            let plan = plan();
            let change = &route(&plan, raw).unwrap().changes[0];
            let table = &plan.tables[change.table];
            let city = table
                .columns
                .iter()
                .position(|c| c.source == "city")
                .unwrap();
            assert_eq!(change.unchanged, [city]);
        }

        #[test]
        fn the_empty_message_of_a_truncate_is_refused_not_applied() {
            // The engine drops it before the output; should one arrive anyway it is poison, never a
            // change of some table.
            assert!(matches!(
                route(&plan(), b"null"),
                Err(DataError::InvalidEnvelope(_))
            ));
            let unlabelled = br#"{"metadata":{"table":"","operation":""},"payload":{}}"#;
            assert!(route(&plan(), unlabelled).is_err());
        }
    }
}
