//! Encodes snapshot rows (`read` events) straight into the envelope's JSON bytes, in a buffer the
//! caller reuses: no intermediate JSON values, maps or per-column strings. The bytes are the ones
//! serialising the equivalent [`Envelope`](cdcstar_crds::envelope::Envelope) gives (metadata with
//! the table and `"operation":"read"` only, payload keys in alphabetical order), and the Kafka key
//! is the primary key's JSON value, as for streamed changes.

use std::ops::Range;

use cdcstar_crds::envelope::{Metadata, Operation};
use cdcstar_crds::pipeline::MaskKind;
use cdcstar_source::mask::{ColumnRule, ColumnRules};
use cdcstar_source::value::write_json;

use crate::pgoutput::Relation;
use crate::row::ConversionWarning;

/// One column of the payload, in output order.
#[derive(Debug)]
struct PayloadColumn {
    /// Position in the row as read.
    index: usize,
    /// `"name":` preceded by a comma for every column but the first.
    prefix: Vec<u8>,
    type_oid: u32,
    /// `table.column`, for warnings.
    qualified: String,
    /// How its values are masked, if they are.
    mask: Option<MaskKind>,
}

/// Encodes the `read` events of one table.
#[derive(Debug)]
pub struct ReadEncoder {
    /// `{"metadata":{...},"payload":{`
    head: Vec<u8>,
    columns: Vec<PayloadColumn>,
    /// Position of the primary key column in the row as read.
    key_index: Option<usize>,
    rules: ColumnRules,
}

impl ReadEncoder {
    /// An encoder for rows of `relation` (values in its column order), keyed by `primary_key`, its
    /// columns excluded and masked by `rules` (an excluded column's value is never read).
    pub fn new(relation: &Relation, primary_key: &str, rules: &ColumnRules) -> Self {
        let metadata = Metadata {
            table: relation.name.clone(),
            operation: Operation::Read,
            lsn: None,
            commit_lsn: None,
            tx_seq: None,
            commit_time: None,
            unchanged_toast: Vec::new(),
            old_key: None,
        };
        let mut head = br#"{"metadata":"#.to_vec();
        serde_json::to_writer(&mut head, &metadata).expect("metadata always serialises");
        head.extend_from_slice(br#","payload":{"#);
        let mut order: Vec<usize> = (0..relation.columns.len())
            .filter(|index| !rules.excludes(&relation.columns[*index].name))
            .collect();
        order.sort_by(|a, b| relation.columns[*a].name.cmp(&relation.columns[*b].name));
        let columns = order
            .into_iter()
            .enumerate()
            .map(|(position, index)| {
                let column = &relation.columns[index];
                let mut prefix = if position == 0 {
                    Vec::new()
                } else {
                    vec![b',']
                };
                serde_json::to_writer(&mut prefix, &column.name).expect("a name serialises");
                prefix.push(b':');
                PayloadColumn {
                    index,
                    prefix,
                    type_oid: column.type_oid,
                    qualified: format!("{}.{}", relation.name, column.name),
                    mask: match rules.rule(&column.name) {
                        ColumnRule::Mask(kind) => Some(kind),
                        _ => None,
                    },
                }
            })
            .collect();
        Self {
            head,
            columns,
            key_index: relation.columns.iter().position(|c| c.name == primary_key),
            rules: rules.clone(),
        }
    }

    /// Replaces `out` with the envelope of the row whose column `i` is `value(i)` (`None` for
    /// NULL); returns where the Kafka key lies in `out` (`None` when the key is NULL or the table
    /// has no such column). A value that does not convert is kept as its text and reported in
    /// `warnings`.
    pub fn encode<'r>(
        &self,
        value: impl Fn(usize) -> Option<&'r str>,
        out: &mut Vec<u8>,
        warnings: &mut Vec<ConversionWarning>,
    ) -> Option<Range<usize>> {
        out.clear();
        out.extend_from_slice(&self.head);
        let mut key = None;
        for column in &self.columns {
            out.extend_from_slice(&column.prefix);
            let start = out.len();
            match (value(column.index), column.mask) {
                (None, _) => out.extend_from_slice(b"null"),
                // Masked before any conversion: its text is in no warning either.
                (Some(text), Some(kind)) => self.rules.write_mask(kind, text.as_bytes(), out),
                (Some(text), None) => {
                    if let Err(err) = write_json(column.type_oid, text, out) {
                        warnings.push(ConversionWarning {
                            column: column.qualified.clone(),
                            reason: err.to_string(),
                        });
                        serde_json::to_writer(&mut *out, text).expect("a string serialises");
                    }
                    if Some(column.index) == self.key_index {
                        key = Some(start..out.len());
                    }
                }
            }
        }
        out.extend_from_slice(b"}}");
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgoutput::{ColumnValue, LogicalMessage, build, decode};
    use crate::row::{ChangePosition, RowBuilder};
    use cdcstar_crds::envelope::{Envelope, Lsn};
    use pretty_assertions::assert_eq;

    fn relation() -> Relation {
        let columns = [
            ("id", 20, true),
            ("name", 25, false),
            ("price", 1700, false),
            ("active", 16, false),
            ("at", 1114, false),
            ("tags", 1009, false),
            ("doc", 3802, false),
            ("Zeta", 23, false),
            ("count", 23, false),
        ];
        match decode(&build::relation(1, "product", &columns)).unwrap() {
            LogicalMessage::Relation(relation) => relation,
            _ => unreachable!(),
        }
    }

    const ROW: [Option<&str>; 9] = [
        Some("42"),
        Some("Tea \"green\"\n"),
        Some("12.50"),
        Some("t"),
        Some("2024-01-02 03:04:05.120000"),
        Some("{a,\"b c\",NULL}"),
        Some("{\"k\": [1, 2]}"),
        None,
        Some("not a number"),
    ];

    #[test]
    fn a_read_event_is_the_envelope_with_operation_read_and_no_positions() {
        let relation = relation();
        let encoder = ReadEncoder::new(&relation, "id", &ColumnRules::default());
        let (mut out, mut warnings) = (Vec::new(), Vec::new());
        let key = encoder.encode(|i| ROW[i], &mut out, &mut warnings);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            r#"{"metadata":{"table":"product","operation":"read"},"payload":{"Zeta":null,"active":true,"at":"2024-01-02T03:04:05.12Z","count":"not a number","doc":{"k":[1,2]},"id":42,"name":"Tea \"green\"\n","price":"12.50","tags":["a","b c",null]}}"#
        );
        assert_eq!(&out[key.unwrap()], b"42");
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].column, "product.count");
        let envelope: Envelope = serde_json::from_slice(&out).unwrap();
        assert_eq!(envelope.metadata.operation, Operation::Read);
    }

    /// `ROW` as the stream would carry it: an insert built by the streaming path with `rules`.
    fn streamed_insert(relation: &Relation, rules: &ColumnRules) -> crate::row::Change {
        let tuple: Vec<ColumnValue> = ROW
            .iter()
            .map(|value| match value {
                Some(text) => ColumnValue::Text(bytes::Bytes::copy_from_slice(text.as_bytes())),
                None => ColumnValue::Null,
            })
            .collect();
        let position = ChangePosition {
            lsn: Lsn(1),
            commit_lsn: Lsn(2),
            tx_seq: 0,
            commit_time: String::new(),
        };
        RowBuilder::new(relation, "id", rules)
            .insert(&tuple, position)
            .unwrap()
    }

    /// `ROW` read with `rules` has the payload and key of `ROW` streamed as an insert with the
    /// same rules; answers the read event and the warnings of its encoding.
    fn assert_read_is_the_streamed_insert(
        rules: &ColumnRules,
    ) -> (Vec<u8>, Vec<ConversionWarning>) {
        let relation = relation();
        let encoder = ReadEncoder::new(&relation, "id", rules);
        let (mut out, mut warnings) = (Vec::new(), Vec::new());
        let key = encoder.encode(|i| ROW[i], &mut out, &mut warnings);
        let insert = streamed_insert(&relation, rules);
        let read: Envelope = serde_json::from_slice(&out).unwrap();
        assert_eq!(read.payload, insert.envelope.payload);
        assert_eq!(Some(out[key.unwrap()].to_vec()), insert.key);
        (out, warnings)
    }

    #[test]
    fn the_payload_and_key_are_those_of_a_streamed_insert_of_the_same_row() {
        assert_read_is_the_streamed_insert(&ColumnRules::default());
    }

    #[test]
    fn a_null_key_gives_no_message_key_and_the_buffer_is_reused() {
        let relation = relation();
        let encoder = ReadEncoder::new(&relation, "id", &ColumnRules::default());
        let (mut out, mut warnings) = (b"left over".to_vec(), Vec::new());
        let key = encoder.encode(
            |i| if i == 0 { None } else { ROW[i] },
            &mut out,
            &mut warnings,
        );
        assert_eq!(key, None);
        assert!(out.starts_with(br#"{"metadata""#));
    }

    #[test]
    fn a_masked_read_event_is_the_masked_streamed_insert_of_the_same_row() {
        use cdcstar_crds::pipeline::{ColumnMask, SourceTable};
        let mut table = SourceTable::new("product", "id");
        table.exclude_columns = vec!["doc".into(), "Zeta".into()];
        table.mask = vec![
            ColumnMask {
                column: "name".into(),
                with: MaskKind::Hash,
            },
            ColumnMask {
                column: "price".into(),
                with: MaskKind::Redact,
            },
            ColumnMask {
                column: "count".into(),
                with: MaskKind::Null,
            },
        ];
        let rules =
            ColumnRules::for_table(&table, Some(&cdcstar_source::mask::MaskSalt::new("salt")))
                .unwrap();
        let (out, warnings) = assert_read_is_the_streamed_insert(&rules);
        let read: Envelope = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            read.payload.keys().collect::<Vec<_>>(),
            ["active", "at", "count", "id", "name", "price", "tags"]
        );
        assert_eq!(read.payload["price"], "REDACTED");
        assert_eq!(read.payload["count"], serde_json::Value::Null);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Tea") && !text.contains("12.50"), "{text}");
        // "not a number" in the masked count column is never converted, so never reported.
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
