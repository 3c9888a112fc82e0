//! Turns decoded row changes into CDC envelopes: the table's current column list (from `Relation`
//! messages, replaced whenever the table's schema changes mid-stream), the payload in alphabetical
//! key order, NULL kept apart from unchanged TOAST values, the old key of an update that changed
//! it, and the Kafka message key (the primary key's JSON value).
//!
//! Over 400 lines: the conversion is short; 180 lines are its unit tests.

use std::collections::HashMap;

use cdcstar_crds::envelope::{Envelope, Lsn, Metadata, Operation};
use cdcstar_source::key::message_key;
use cdcstar_source::mask::{ColumnRule, ColumnRules};
use cdcstar_source::value::text_to_json;
use serde_json::{Map, Value};

use crate::pgoutput::{ColumnValue, OldTuple, Relation, TupleData};

/// Why a change could not be turned into an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// A change refers to a table whose `Relation` message was never received.
    #[error("change for unknown relation oid {0}: no relation message received before it")]
    UnknownRelation(u32),
    /// A tuple's column count does not match the relation's.
    #[error("tuple of {table} has {found} columns, its relation message lists {expected}")]
    ColumnCount {
        table: String,
        /// Columns in the relation.
        expected: usize,
        /// Columns in the tuple.
        found: usize,
    },
    /// A value arrived in binary format, which the capture never asks for.
    #[error("column {table}.{column} arrived in binary format; the capture only reads text")]
    BinaryValue { table: String, column: String },
}

/// The last `Relation` message of every table seen on the stream.
#[derive(Debug, Default)]
pub struct RelationCache {
    relations: HashMap<u32, Relation>,
}

impl RelationCache {
    /// Records (or replaces, after a schema change) a table's description.
    pub fn update(&mut self, relation: Relation) {
        self.relations.insert(relation.id, relation);
    }

    /// The description of table `id`.
    pub fn get(&self, id: u32) -> Result<&Relation, RowError> {
        self.relations.get(&id).ok_or(RowError::UnknownRelation(id))
    }
}

/// Where a change sits in the WAL and in its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePosition {
    /// LSN of the change record.
    pub lsn: Lsn,
    /// LSN of its transaction's commit record.
    pub commit_lsn: Lsn,
    /// Position of the change in its transaction, from 0.
    pub tx_seq: u32,
    /// Commit time, RFC 3339 with microseconds.
    pub commit_time: String,
}

/// A change ready to be produced: its Kafka key and its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The primary key's JSON value (`42`, `"a1"`), `None` when the row has no usable key.
    pub key: Option<Vec<u8>>,
    pub envelope: Envelope,
}

/// A value that could not be converted; it is kept as the text Postgres sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionWarning {
    /// `table.column`.
    pub column: String,
    /// What went wrong.
    pub reason: String,
}

/// Builds envelopes for one table's changes.
#[derive(Debug)]
pub struct RowBuilder<'a> {
    relation: &'a Relation,
    primary_key: &'a str,
    rules: &'a ColumnRules,
    /// Indexes of the columns sent, in alphabetical order of their names, with what happens to
    /// each (excluded columns are not listed).
    sorted: Vec<(usize, ColumnRule)>,
    /// Values that did not convert, reported by the caller.
    pub warnings: Vec<ConversionWarning>,
}

impl<'a> RowBuilder<'a> {
    /// A builder for `relation`, keyed by column `primary_key`, its columns excluded and masked
    /// by `rules`.
    pub fn new(relation: &'a Relation, primary_key: &'a str, rules: &'a ColumnRules) -> Self {
        let columns = &relation.columns;
        let mut sorted: Vec<(usize, ColumnRule)> = (0..columns.len())
            .map(|index| (index, rules.rule(&columns[index].name)))
            .filter(|(_, rule)| *rule != ColumnRule::Exclude)
            .collect();
        // NB: inserting in sorted order keeps keys alphabetical even if serde_json's
        // `preserve_order` feature is switched on by another crate of the build.
        sorted.sort_by(|(a, _), (b, _)| columns[*a].name.cmp(&columns[*b].name));
        Self {
            relation,
            primary_key,
            rules,
            sorted,
            warnings: Vec::new(),
        }
    }

    /// The envelope of an inserted row.
    pub fn insert(
        &mut self,
        new: &TupleData,
        position: ChangePosition,
    ) -> Result<Change, RowError> {
        let (payload, unchanged) = self.payload(new, None)?;
        Ok(self.change(Operation::Insert, payload, unchanged, None, position))
    }

    /// The envelope of an updated row. Unchanged TOAST values are taken from the old row when
    /// `REPLICA IDENTITY FULL` sent it, else listed in `unchangedToast`.
    pub fn update(
        &mut self,
        old: Option<&OldTuple>,
        new: &TupleData,
        position: ChangePosition,
    ) -> Result<Change, RowError> {
        let full_old = match old {
            Some(OldTuple::Full(tuple)) => Some(tuple),
            _ => None,
        };
        let (payload, unchanged) = self.payload(new, full_old)?;
        let old_key = match old {
            Some(old) => self.changed_key(old.tuple(), &payload)?,
            None => None,
        };
        Ok(self.change(Operation::Update, payload, unchanged, old_key, position))
    }

    /// The envelope of a deleted row: the old key (other columns null) or the whole old row.
    pub fn delete(&mut self, old: &OldTuple, position: ChangePosition) -> Result<Change, RowError> {
        let (payload, unchanged) = self.payload(old.tuple(), None)?;
        Ok(self.change(Operation::Delete, payload, unchanged, None, position))
    }

    fn change(
        &self,
        operation: Operation,
        payload: Map<String, Value>,
        unchanged_toast: Vec<String>,
        old_key: Option<Map<String, Value>>,
        position: ChangePosition,
    ) -> Change {
        Change {
            key: message_key(&payload, self.primary_key),
            envelope: Envelope {
                metadata: Metadata {
                    table: self.relation.name.clone(),
                    operation,
                    lsn: Some(position.lsn),
                    commit_lsn: Some(position.commit_lsn),
                    tx_seq: Some(position.tx_seq),
                    commit_time: Some(position.commit_time),
                    unchanged_toast,
                    old_key,
                },
                payload,
            },
        }
    }

    /// The row as a JSON object in alphabetical key order, and the unchanged TOAST columns left out.
    fn payload(
        &mut self,
        tuple: &TupleData,
        fallback: Option<&TupleData>,
    ) -> Result<(Map<String, Value>, Vec<String>), RowError> {
        let columns = &self.relation.columns;
        if tuple.len() != columns.len() {
            return Err(RowError::ColumnCount {
                table: self.relation.name.clone(),
                expected: columns.len(),
                found: tuple.len(),
            });
        }
        let mut payload = Map::new();
        let mut unchanged = Vec::new();
        for (index, rule) in self.sorted.clone() {
            let column = &columns[index];
            let mut value = &tuple[index];
            if value == &ColumnValue::UnchangedToast
                && let Some(old) = fallback.and_then(|old| old.get(index))
                && matches!(old, ColumnValue::Text(_))
            {
                value = old;
            }
            if let (ColumnRule::Mask(kind), ColumnValue::Text(bytes)) = (rule, value) {
                // Masked before any conversion: its text is in no warning either.
                payload.insert(column.name.clone(), self.rules.mask(kind, bytes));
                continue;
            }
            match value {
                ColumnValue::Null => {
                    payload.insert(column.name.clone(), Value::Null);
                }
                ColumnValue::UnchangedToast => unchanged.push(column.name.clone()),
                ColumnValue::Text(bytes) => {
                    let text = String::from_utf8_lossy(bytes);
                    let json = self.convert(&column.name, column.type_oid, &text);
                    payload.insert(column.name.clone(), json);
                }
                ColumnValue::Binary(_) => {
                    return Err(RowError::BinaryValue {
                        table: self.relation.name.clone(),
                        column: column.name.clone(),
                    });
                }
            }
        }
        Ok((payload, unchanged))
    }

    fn convert(&mut self, column: &str, type_oid: u32, text: &str) -> Value {
        text_to_json(type_oid, text).unwrap_or_else(|err| {
            self.warnings.push(ConversionWarning {
                column: format!("{}.{column}", self.relation.name),
                reason: err.to_string(),
            });
            Value::String(text.to_owned())
        })
    }

    /// The old key columns when they differ from the new row's, else `None`.
    fn changed_key(
        &mut self,
        old: &TupleData,
        new_payload: &Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>, RowError> {
        let (old_payload, _) = self.payload(old, None)?;
        let key_columns = self.key_columns();
        let changed = key_columns
            .iter()
            .any(|column| old_payload.get(*column) != new_payload.get(*column));
        if !changed {
            return Ok(None);
        }
        Ok(Some(
            key_columns
                .iter()
                .map(|column| {
                    let value = old_payload.get(*column).cloned().unwrap_or(Value::Null);
                    ((*column).to_owned(), value)
                })
                .collect(),
        ))
    }

    /// The configured primary key when the table has it, else the replica identity key columns.
    fn key_columns(&self) -> Vec<&str> {
        let columns = &self.relation.columns;
        if columns.iter().any(|c| c.name == self.primary_key) {
            return vec![self.primary_key];
        }
        columns
            .iter()
            .filter(|c| c.is_key)
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// Formats a pgoutput timestamp (microseconds since 2000-01-01 UTC) as RFC 3339 with microseconds.
pub fn commit_time_text(pg_micros: i64) -> String {
    let unix = pg_micros.saturating_add(crate::pgoutput::PG_EPOCH_OFFSET_MICROS);
    chrono::DateTime::from_timestamp_micros(unix)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgoutput::{LogicalMessage, RelationColumn, build, decode};
    use bytes::Bytes;
    use pretty_assertions::assert_eq;

    fn relation(columns: &[(&str, u32, bool)]) -> Relation {
        match decode(&build::relation(1, "customer", columns)).unwrap() {
            LogicalMessage::Relation(relation) => relation,
            _ => unreachable!(),
        }
    }

    fn text(value: &str) -> ColumnValue {
        ColumnValue::Text(Bytes::copy_from_slice(value.as_bytes()))
    }

    static KEEP: std::sync::LazyLock<ColumnRules> = std::sync::LazyLock::new(ColumnRules::default);

    fn position() -> ChangePosition {
        ChangePosition {
            lsn: Lsn(0x10),
            commit_lsn: Lsn(0x20),
            tx_seq: 3,
            commit_time: "2024-01-02T03:04:05.000000Z".into(),
        }
    }

    fn customer() -> Relation {
        relation(&[("id", 23, true), ("name", 25, false), ("bio", 25, false)])
    }

    static CUSTOMER: std::sync::LazyLock<Relation> = std::sync::LazyLock::new(customer);

    /// A builder of `customer` changes, keyed by `id`, every column kept.
    fn customer_builder() -> RowBuilder<'static> {
        RowBuilder::new(&CUSTOMER, "id", &KEEP)
    }

    #[test]
    fn insert_envelope_has_sorted_payload_extensions_and_key() {
        let change = customer_builder()
            .insert(
                &vec![text("7"), text("Jane"), ColumnValue::Null],
                position(),
            )
            .unwrap();
        assert_eq!(change.key.as_deref(), Some(&b"7"[..]));
        assert_eq!(
            serde_json::to_string(&change.envelope).unwrap(),
            r#"{"metadata":{"table":"customer","operation":"insert","lsn":"0/10","commitLsn":"0/20","txSeq":3,"commitTime":"2024-01-02T03:04:05.000000Z"},"payload":{"bio":null,"id":7,"name":"Jane"}}"#
        );
    }

    #[test]
    fn unchanged_toast_is_listed_and_absent_not_null() {
        let change = customer_builder()
            .update(
                None,
                &vec![text("7"), text("Jo"), ColumnValue::UnchangedToast],
                position(),
            )
            .unwrap();
        assert_eq!(change.envelope.metadata.unchanged_toast, vec!["bio"]);
        assert!(!change.envelope.payload.contains_key("bio"));
        assert_eq!(change.envelope.metadata.old_key, None);
    }

    #[test]
    fn unchanged_toast_is_filled_from_a_full_old_row() {
        let old = OldTuple::Full(vec![text("7"), text("Jane"), text("long bio")]);
        let change = customer_builder()
            .update(
                Some(&old),
                &vec![text("7"), text("Jo"), ColumnValue::UnchangedToast],
                position(),
            )
            .unwrap();
        assert!(change.envelope.metadata.unchanged_toast.is_empty());
        assert_eq!(change.envelope.payload["bio"], "long bio");
        assert_eq!(change.envelope.metadata.old_key, None);
    }

    #[test]
    fn update_that_changes_the_key_carries_the_old_key() {
        let old = OldTuple::Key(vec![text("7"), ColumnValue::Null, ColumnValue::Null]);
        let change = customer_builder()
            .update(
                Some(&old),
                &vec![text("8"), text("Jo"), text("b")],
                position(),
            )
            .unwrap();
        assert_eq!(change.key.as_deref(), Some(&b"8"[..]));
        assert_eq!(
            serde_json::to_value(&change.envelope.metadata.old_key).unwrap(),
            serde_json::json!({"id": 7})
        );
    }

    #[test]
    fn delete_under_default_identity_has_key_and_nulls() {
        let old = OldTuple::Key(vec![text("7"), ColumnValue::Null, ColumnValue::Null]);
        let change = customer_builder().delete(&old, position()).unwrap();
        assert_eq!(change.envelope.metadata.operation, Operation::Delete);
        assert_eq!(
            serde_json::to_string(&change.envelope.payload).unwrap(),
            r#"{"bio":null,"id":7,"name":null}"#
        );
        assert_eq!(change.key.as_deref(), Some(&b"7"[..]));
    }

    #[test]
    fn a_relation_update_changes_the_columns_of_later_changes() {
        let mut cache = RelationCache::default();
        cache.update(customer());
        let mut widened = customer();
        widened.columns.push(RelationColumn {
            is_key: false,
            name: "age".into(),
            type_oid: 23,
            type_modifier: -1,
        });
        cache.update(widened);
        let relation = cache.get(1).unwrap();
        let mut builder = RowBuilder::new(relation, "id", &KEEP);
        let change = builder
            .insert(
                &vec![text("1"), text("a"), ColumnValue::Null, text("30")],
                position(),
            )
            .unwrap();
        assert_eq!(change.envelope.payload["age"], 30);
        assert_eq!(cache.get(2).unwrap_err(), RowError::UnknownRelation(2));
    }

    #[test]
    fn column_count_mismatch_and_binary_values_are_errors() {
        let mut builder = customer_builder();
        assert!(matches!(
            builder.insert(&vec![text("1")], position()),
            Err(RowError::ColumnCount {
                expected: 3,
                found: 1,
                ..
            })
        ));
        let binary = ColumnValue::Binary(Bytes::from_static(b"\x00"));
        assert!(matches!(
            builder.insert(&vec![text("1"), binary, ColumnValue::Null], position()),
            Err(RowError::BinaryValue { .. })
        ));
    }

    #[test]
    fn unconvertible_values_are_kept_as_text_with_a_warning() {
        let relation = relation(&[("id", 23, true), ("flag", 16, false)]);
        let mut builder = RowBuilder::new(&relation, "id", &KEEP);
        let change = builder
            .insert(&vec![text("1"), text("maybe")], position())
            .unwrap();
        assert_eq!(change.envelope.payload["flag"], "maybe");
        assert_eq!(builder.warnings.len(), 1);
        assert_eq!(builder.warnings[0].column, "customer.flag");
    }

    #[test]
    fn commit_time_is_rfc3339_with_microseconds() {
        assert_eq!(commit_time_text(0), "2000-01-01T00:00:00.000000Z");
        assert_eq!(
            commit_time_text(757_393_445_123_456),
            "2024-01-01T03:04:05.123456Z"
        );
    }

    fn rules() -> ColumnRules {
        use cdcstar_crds::pipeline::{ColumnMask, MaskKind, SourceTable};
        let mut table = SourceTable::new("customer", "id");
        table.exclude_columns = vec!["bio".into()];
        table.mask = vec![ColumnMask {
            column: "name".into(),
            with: MaskKind::Hash,
        }];
        ColumnRules::for_table(&table, Some(&cdcstar_source::mask::MaskSalt::new("salt"))).unwrap()
    }

    #[test]
    fn excluded_and_masked_columns_never_reach_the_envelope() {
        let relation = customer();
        let rules = rules();
        let mut builder = RowBuilder::new(&relation, "id", &rules);
        let hashed = rules.mask(cdcstar_crds::pipeline::MaskKind::Hash, b"Jane");
        let insert = builder
            .insert(
                &vec![text("7"), text("Jane"), text("secret bio")],
                position(),
            )
            .unwrap();
        assert_eq!(
            serde_json::to_value(&insert.envelope.payload).unwrap(),
            serde_json::json!({"id": 7, "name": hashed})
        );
        assert_eq!(insert.key.as_deref(), Some(&b"7"[..]));
        // An unchanged TOASTed excluded column is not even named.
        let update = builder
            .update(
                Some(&OldTuple::Key(vec![
                    text("6"),
                    ColumnValue::Null,
                    ColumnValue::Null,
                ])),
                &vec![text("7"), text("Jane"), ColumnValue::UnchangedToast],
                position(),
            )
            .unwrap();
        assert!(update.envelope.metadata.unchanged_toast.is_empty());
        assert_eq!(update.envelope.payload["name"], hashed);
        assert_eq!(
            serde_json::to_value(&update.envelope.metadata.old_key).unwrap(),
            serde_json::json!({"id": 6}),
            "the key is kept whole"
        );
        // The whole old row of a delete is masked the same way.
        let delete = builder
            .delete(
                &OldTuple::Full(vec![text("7"), text("Jane"), text("secret bio")]),
                position(),
            )
            .unwrap();
        for change in [&insert, &update, &delete] {
            let json = serde_json::to_string(&change.envelope).unwrap();
            assert!(!json.contains("Jane") && !json.contains("bio"), "{json}");
        }
        assert!(builder.warnings.is_empty());
    }
}
