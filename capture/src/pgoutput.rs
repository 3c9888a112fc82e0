//! Decoder of the `pgoutput` logical replication protocol, version 1 (text tuple format).
//!
//! Owns the byte layout of every message the walsender sends for a publication: `Begin`, `Commit`,
//! `Origin`, `Relation`, `Type`, `Insert`, `Update`, `Delete`, `Truncate` and logical decoding
//! `Message`s. It turns one message's bytes into a [`LogicalMessage`] and knows nothing about tables,
//! types or envelopes (see `row` and `value` for those).
//!
//! Layout reference: PostgreSQL documentation, "Logical Replication Message Formats".
//!
//! Over 400 lines: one decoder per pgoutput message type of the protocol, kept together so the byte
//! layout reads against the PostgreSQL documentation; 340 lines are its unit tests.

use bytes::Bytes;

/// Microseconds between the Unix epoch and the PostgreSQL epoch (2000-01-01 00:00:00 UTC).
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message ended before a field it announces.
    #[error(
        "truncated pgoutput {message} message: expected {needed} more bytes at offset {offset}"
    )]
    Truncated {
        /// Message kind being decoded.
        message: &'static str,
        /// Offset of the field in the message.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
    },
    /// A string field had no NUL terminator.
    #[error("unterminated string in pgoutput {message} message at offset {offset}")]
    UnterminatedString {
        /// Message kind being decoded.
        message: &'static str,
        /// Offset where the string starts.
        offset: usize,
    },
    /// A string field was not UTF-8.
    #[error("non-utf-8 string in pgoutput {message} message at offset {offset}")]
    InvalidUtf8 {
        /// Message kind being decoded.
        message: &'static str,
        /// Offset where the string starts.
        offset: usize,
    },
    /// An unexpected tag byte.
    #[error(
        "unexpected byte {found:?} in pgoutput {message} message at offset {offset}: {expected}"
    )]
    UnexpectedTag {
        /// Message kind being decoded.
        message: &'static str,
        /// Offset of the tag.
        offset: usize,
        /// The byte found, as a character.
        found: char,
        /// What was expected there.
        expected: &'static str,
    },
    /// A message kind this decoder does not know.
    #[error("unknown pgoutput message tag {0:?}")]
    UnknownMessage(char),
    /// An empty message.
    #[error("empty pgoutput message")]
    Empty,
}

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum LogicalMessage {
    /// Start of a transaction.
    Begin(Begin),
    /// End of a transaction.
    Commit(Commit),
    /// Replication origin of the transaction (ignored by the capture).
    Origin {
        /// Commit LSN on the origin server.
        lsn: u64,
        /// Origin name.
        name: String,
    },
    /// Description of a table, sent before its first change and again after each schema change.
    Relation(Relation),
    /// Description of a non-built-in data type (ignored by the capture: values come as text).
    Type {
        oid: u32,
        /// Schema of the type.
        namespace: String,
        name: String,
    },
    /// A new row.
    Insert {
        /// Table OID.
        relation_id: u32,
        /// The row.
        new: TupleData,
    },
    /// A changed row.
    Update {
        /// Table OID.
        relation_id: u32,
        /// The old key (`K`, the key changed) or the whole old row (`O`, `REPLICA IDENTITY FULL`).
        old: Option<OldTuple>,
        /// The new row.
        new: TupleData,
    },
    /// A removed row.
    Delete {
        /// Table OID.
        relation_id: u32,
        /// The old key or the whole old row.
        old: OldTuple,
    },
    /// Tables emptied by `TRUNCATE`.
    Truncate {
        /// Option bits: 1 = CASCADE, 2 = RESTART IDENTITY.
        options: u8,
        /// OIDs of the truncated tables.
        relation_ids: Vec<u32>,
    },
    /// A logical decoding message from `pg_logical_emit_message`.
    Message(LogicalDecodingMessage),
}

/// `Begin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    /// LSN of the transaction's commit record.
    pub final_lsn: u64,
    /// Commit time, microseconds since 2000-01-01 UTC.
    pub commit_time_micros: i64,
    pub xid: u32,
}

/// `Commit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// LSN of the commit record.
    pub commit_lsn: u64,
    /// LSN just past the commit record: the position to confirm once the transaction is durable.
    pub end_lsn: u64,
    /// Commit time, microseconds since 2000-01-01 UTC.
    pub commit_time_micros: i64,
}

/// `Relation`: a table's name and columns as of this point of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Table OID.
    pub id: u32,
    /// Schema name.
    pub namespace: String,
    pub name: String,
    /// Replica identity setting: `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// Columns in table order (dropped and generated columns are not sent).
    pub columns: Vec<RelationColumn>,
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity key.
    pub is_key: bool,
    pub name: String,
    pub type_oid: u32,
    /// Type modifier (`atttypmod`).
    pub type_modifier: i32,
}

/// The old image of an updated or deleted row.
#[derive(Debug, Clone, PartialEq)]
pub enum OldTuple {
    /// Only the replica identity key columns carry values (`K`); the others are null.
    Key(TupleData),
    /// The whole old row (`O`, `REPLICA IDENTITY FULL`).
    Full(TupleData),
}

impl OldTuple {
    /// The tuple, whichever kind it is.
    pub fn tuple(&self) -> &TupleData {
        match self {
            OldTuple::Key(tuple) | OldTuple::Full(tuple) => tuple,
        }
    }
}

/// A row's column values, in the order of the relation's columns.
pub type TupleData = Vec<ColumnValue>;

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnValue {
    /// SQL NULL (`n`).
    Null,
    /// An unchanged TOASTed value that was not sent (`u`).
    UnchangedToast,
    /// The value in the type's text output format (`t`).
    Text(Bytes),
    /// The value in the type's binary format (`b`, only with the `binary` option).
    Binary(Bytes),
}

/// `Message`: a logical decoding message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalDecodingMessage {
    /// Emitted inside a transaction (delivered at its commit) rather than immediately.
    pub transactional: bool,
    /// LSN of the message.
    pub lsn: u64,
    /// Application-defined prefix.
    pub prefix: String,
    /// Content bytes.
    pub content: Bytes,
}

/// Decodes one pgoutput message.
pub fn decode(data: &Bytes) -> Result<LogicalMessage, DecodeError> {
    let (&tag, _) = data.split_first().ok_or(DecodeError::Empty)?;
    let name = message_name(tag).ok_or(DecodeError::UnknownMessage(char::from(tag)))?;
    let mut reader = Reader {
        data,
        offset: 1,
        message: name,
    };
    let message = match tag {
        b'B' => LogicalMessage::Begin(Begin {
            final_lsn: reader.u64()?,
            commit_time_micros: reader.i64()?,
            xid: reader.u32()?,
        }),
        b'C' => {
            let _flags = reader.u8()?;
            LogicalMessage::Commit(Commit {
                commit_lsn: reader.u64()?,
                end_lsn: reader.u64()?,
                commit_time_micros: reader.i64()?,
            })
        }
        b'O' => LogicalMessage::Origin {
            lsn: reader.u64()?,
            name: reader.string()?,
        },
        b'R' => LogicalMessage::Relation(reader.relation()?),
        b'Y' => LogicalMessage::Type {
            oid: reader.u32()?,
            namespace: reader.string()?,
            name: reader.string()?,
        },
        b'I' => {
            let relation_id = reader.u32()?;
            reader.expect(b'N', "N (new tuple)")?;
            LogicalMessage::Insert {
                relation_id,
                new: reader.tuple()?,
            }
        }
        b'U' => {
            let relation_id = reader.u32()?;
            let old = match reader.peek()? {
                b'K' | b'O' => Some(reader.old_tuple()?),
                _ => None,
            };
            reader.expect(b'N', "N (new tuple)")?;
            LogicalMessage::Update {
                relation_id,
                old,
                new: reader.tuple()?,
            }
        }
        b'D' => LogicalMessage::Delete {
            relation_id: reader.u32()?,
            old: reader.old_tuple()?,
        },
        b'T' => {
            let count = reader.u32()?;
            let options = reader.u8()?;
            let relation_ids = (0..count).map(|_| reader.u32()).collect::<Result<_, _>>()?;
            LogicalMessage::Truncate {
                options,
                relation_ids,
            }
        }
        b'M' => {
            let flags = reader.u8()?;
            let lsn = reader.u64()?;
            let prefix = reader.string()?;
            let length = reader.u32()? as usize;
            LogicalMessage::Message(LogicalDecodingMessage {
                transactional: flags & 1 == 1,
                lsn,
                prefix,
                content: reader.bytes(length)?,
            })
        }
        _ => unreachable!("message_name accepted the tag"),
    };
    Ok(message)
}

fn message_name(tag: u8) -> Option<&'static str> {
    Some(match tag {
        b'B' => "begin",
        b'C' => "commit",
        b'O' => "origin",
        b'R' => "relation",
        b'Y' => "type",
        b'I' => "insert",
        b'U' => "update",
        b'D' => "delete",
        b'T' => "truncate",
        b'M' => "message",
        _ => return None,
    })
}

/// A cursor over one message's bytes; every read checks the length first.
struct Reader<'a> {
    data: &'a Bytes,
    offset: usize,
    message: &'static str,
}

impl Reader<'_> {
    fn take(&mut self, needed: usize) -> Result<&[u8], DecodeError> {
        let end = self
            .offset
            .checked_add(needed)
            .filter(|end| *end <= self.data.len())
            .ok_or(DecodeError::Truncated {
                message: self.message,
                offset: self.offset,
                needed,
            })?;
        let slice = &self.data[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.data
            .get(self.offset)
            .copied()
            .ok_or(DecodeError::Truncated {
                message: self.message,
                offset: self.offset,
                needed: 1,
            })
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn bytes(&mut self, length: usize) -> Result<Bytes, DecodeError> {
        let start = self.offset;
        self.take(length)?;
        Ok(self.data.slice(start..self.offset))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let start = self.offset;
        let rest = &self.data[start.min(self.data.len())..];
        let length = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::UnterminatedString {
                message: self.message,
                offset: start,
            })?;
        let text = std::str::from_utf8(&rest[..length]).map_err(|_| DecodeError::InvalidUtf8 {
            message: self.message,
            offset: start,
        })?;
        self.offset = start + length + 1;
        Ok(text.to_owned())
    }

    fn expect(&mut self, tag: u8, expected: &'static str) -> Result<(), DecodeError> {
        let offset = self.offset;
        let found = self.u8()?;
        if found == tag {
            Ok(())
        } else {
            Err(DecodeError::UnexpectedTag {
                message: self.message,
                offset,
                found: char::from(found),
                expected,
            })
        }
    }

    fn relation(&mut self) -> Result<Relation, DecodeError> {
        let id = self.u32()?;
        let namespace = self.string()?;
        let name = self.string()?;
        let replica_identity = self.u8()?;
        let count = self.i16()?.max(0);
        let mut columns = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let flags = self.u8()?;
            columns.push(RelationColumn {
                is_key: flags & 1 == 1,
                name: self.string()?,
                type_oid: self.u32()?,
                type_modifier: self.i32()?,
            });
        }
        Ok(Relation {
            id,
            namespace,
            name,
            replica_identity,
            columns,
        })
    }

    fn old_tuple(&mut self) -> Result<OldTuple, DecodeError> {
        let offset = self.offset;
        match self.u8()? {
            b'K' => Ok(OldTuple::Key(self.tuple()?)),
            b'O' => Ok(OldTuple::Full(self.tuple()?)),
            other => Err(DecodeError::UnexpectedTag {
                message: self.message,
                offset,
                found: char::from(other),
                expected: "K (old key) or O (old row)",
            }),
        }
    }

    fn tuple(&mut self) -> Result<TupleData, DecodeError> {
        let count = self.i16()?.max(0);
        let mut values = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let offset = self.offset;
            let value = match self.u8()? {
                b'n' => ColumnValue::Null,
                b'u' => ColumnValue::UnchangedToast,
                b't' => {
                    let length = self.u32()? as usize;
                    ColumnValue::Text(self.bytes(length)?)
                }
                b'b' => {
                    let length = self.u32()? as usize;
                    ColumnValue::Binary(self.bytes(length)?)
                }
                other => {
                    return Err(DecodeError::UnexpectedTag {
                        message: self.message,
                        offset,
                        found: char::from(other),
                        expected: "n, u, t or b (column value kind)",
                    });
                }
            };
            values.push(value);
        }
        Ok(values)
    }
}

/// Builds pgoutput messages byte by byte, for tests of this crate.
#[cfg(test)]
pub(crate) mod build {
    /// One appender per integer type named, writing the value big-endian (pgoutput's byte order).
    macro_rules! big_endian {
        ($($int:ident),*) => {
            $(
                pub fn $int(mut self, v: $int) -> Self {
                    self.0.extend(v.to_be_bytes());
                    self
                }
            )*
        };
    }

    /// A message under construction.
    #[derive(Debug, Default)]
    pub struct MessageBytes(pub Vec<u8>);

    impl MessageBytes {
        pub fn tag(tag: u8) -> Self {
            Self(vec![tag])
        }
        /// The head of a message `tag` of relation 7 whose next tuple is the new row (`N`): an
        /// insert, or an update without old image.
        pub fn new_row_of_relation_7(tag: u8) -> Self {
            Self::tag(tag).u32(7).u8(b'N')
        }
        pub fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        big_endian!(i16, u32, i32, u64, i64);
        pub fn string(mut self, s: &str) -> Self {
            self.0.extend(s.as_bytes());
            self.0.push(0);
            self
        }
        /// A tuple of `values`: `None` null, `Some("\u{0}u")` unchanged TOAST, else text.
        pub fn tuple(mut self, values: &[Option<&str>]) -> Self {
            self = self.i16(values.len() as i16);
            for value in values {
                match value {
                    None => self = self.u8(b'n'),
                    Some("\u{0}u") => self = self.u8(b'u'),
                    Some(text) => {
                        self = self.u8(b't').u32(text.len() as u32);
                        self.0.extend(text.as_bytes());
                    }
                }
            }
            self
        }
        pub fn bytes(self) -> bytes::Bytes {
            bytes::Bytes::from(self.0)
        }
    }

    /// A `Relation` message with `(name, type oid, is_key)` columns.
    pub fn relation(id: u32, name: &str, columns: &[(&str, u32, bool)]) -> bytes::Bytes {
        let mut message = MessageBytes::tag(b'R')
            .u32(id)
            .string("public")
            .string(name)
            .u8(b'd')
            .i16(columns.len() as i16);
        for (column, oid, key) in columns {
            message = message.u8(u8::from(*key)).string(column).u32(*oid).i32(-1);
        }
        message.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::build::{MessageBytes, relation};
    use super::*;

    fn text(value: &str) -> ColumnValue {
        ColumnValue::Text(Bytes::copy_from_slice(value.as_bytes()))
    }

    #[test]
    fn begin_carries_final_lsn_commit_time_and_xid() {
        let bytes = MessageBytes::tag(b'B')
            .u64(0x16_B374_D848)
            .i64(123_456)
            .u32(789)
            .bytes();
        assert_eq!(
            decode(&bytes).unwrap(),
            LogicalMessage::Begin(Begin {
                final_lsn: 0x16_B374_D848,
                commit_time_micros: 123_456,
                xid: 789
            })
        );
    }

    #[test]
    fn commit_carries_commit_and_end_lsn() {
        let bytes = MessageBytes::tag(b'C')
            .u8(0)
            .u64(100)
            .u64(148)
            .i64(-5)
            .bytes();
        assert_eq!(
            decode(&bytes).unwrap(),
            LogicalMessage::Commit(Commit {
                commit_lsn: 100,
                end_lsn: 148,
                commit_time_micros: -5
            })
        );
    }

    #[test]
    fn relation_lists_columns_with_key_flags_and_types() {
        let bytes = relation(
            16384,
            "order",
            &[("id", 23, true), ("customerId", 20, false)],
        );
        let LogicalMessage::Relation(relation) = decode(&bytes).unwrap() else {
            panic!("not a relation");
        };
        assert_eq!(relation.id, 16384);
        assert_eq!(relation.namespace, "public");
        assert_eq!(relation.name, "order");
        assert_eq!(relation.replica_identity, b'd');
        assert_eq!(
            relation.columns,
            vec![
                RelationColumn {
                    is_key: true,
                    name: "id".into(),
                    type_oid: 23,
                    type_modifier: -1
                },
                RelationColumn {
                    is_key: false,
                    name: "customerId".into(),
                    type_oid: 20,
                    type_modifier: -1
                },
            ]
        );
    }

    #[test]
    fn insert_tuple_keeps_null_unchanged_toast_and_text_apart() {
        let bytes = MessageBytes::new_row_of_relation_7(b'I')
            .tuple(&[Some("1"), None, Some("\u{0}u"), Some("")])
            .bytes();
        assert_eq!(
            decode(&bytes).unwrap(),
            LogicalMessage::Insert {
                relation_id: 7,
                new: vec![
                    text("1"),
                    ColumnValue::Null,
                    ColumnValue::UnchangedToast,
                    text("")
                ]
            }
        );
    }

    #[test]
    fn update_without_old_image_has_only_the_new_tuple() {
        let bytes = MessageBytes::new_row_of_relation_7(b'U')
            .tuple(&[Some("1")])
            .bytes();
        assert_eq!(
            decode(&bytes).unwrap(),
            LogicalMessage::Update {
                relation_id: 7,
                old: None,
                new: vec![text("1")]
            }
        );
    }

    #[test]
    fn update_with_old_key_and_full_old_row() {
        for (tag, wrap) in [
            (b'K', OldTuple::Key as fn(TupleData) -> OldTuple),
            (b'O', OldTuple::Full),
        ] {
            let bytes = MessageBytes::tag(b'U')
                .u32(7)
                .u8(tag)
                .tuple(&[Some("1"), None])
                .u8(b'N')
                .tuple(&[Some("2"), Some("x")])
                .bytes();
            assert_eq!(
                decode(&bytes).unwrap(),
                LogicalMessage::Update {
                    relation_id: 7,
                    old: Some(wrap(vec![text("1"), ColumnValue::Null])),
                    new: vec![text("2"), text("x")]
                }
            );
        }
    }

    #[test]
    fn delete_carries_the_old_key() {
        let bytes = MessageBytes::tag(b'D')
            .u32(9)
            .u8(b'K')
            .tuple(&[Some("5"), None])
            .bytes();
        assert_eq!(
            decode(&bytes).unwrap(),
            LogicalMessage::Delete {
                relation_id: 9,
                old: OldTuple::Key(vec![text("5"), ColumnValue::Null])
            }
        );
    }

    #[test]
    fn truncate_lists_relations_and_options() {
        let bytes = MessageBytes::tag(b'T').u32(2).u8(1).u32(10).u32(11).bytes();
        assert_eq!(
            decode(&bytes).unwrap(),
            LogicalMessage::Truncate {
                options: 1,
                relation_ids: vec![10, 11]
            }
        );
    }

    #[test]
    fn logical_message_carries_prefix_and_content() {
        let bytes = MessageBytes::tag(b'M')
            .u8(0)
            .u64(0x42)
            .string("cdcstar")
            .u32(9)
            .bytes();
        let mut raw = bytes.to_vec();
        raw.extend(b"heartbeat");
        assert_eq!(
            decode(&Bytes::from(raw)).unwrap(),
            LogicalMessage::Message(LogicalDecodingMessage {
                transactional: false,
                lsn: 0x42,
                prefix: "cdcstar".into(),
                content: Bytes::from_static(b"heartbeat"),
            })
        );
    }

    #[test]
    fn type_and_origin_messages_decode() {
        let bytes = MessageBytes::tag(b'Y')
            .u32(99)
            .string("public")
            .string("mood")
            .bytes();
        assert_eq!(
            decode(&bytes).unwrap(),
            LogicalMessage::Type {
                oid: 99,
                namespace: "public".into(),
                name: "mood".into()
            }
        );
        let bytes = MessageBytes::tag(b'O').u64(5).string("upstream").bytes();
        assert_eq!(
            decode(&bytes).unwrap(),
            LogicalMessage::Origin {
                lsn: 5,
                name: "upstream".into()
            }
        );
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        let full = MessageBytes::new_row_of_relation_7(b'I')
            .tuple(&[Some("hello")])
            .bytes();
        for cut in 1..full.len() {
            let err = decode(&full.slice(..cut)).unwrap_err();
            assert!(
                matches!(err, DecodeError::Truncated { .. }),
                "cut at {cut}: {err}"
            );
        }
        assert_eq!(decode(&Bytes::new()).unwrap_err(), DecodeError::Empty);
    }

    #[test]
    fn unknown_and_malformed_tags_are_reported() {
        assert_eq!(
            decode(&Bytes::from_static(b"Z")).unwrap_err(),
            DecodeError::UnknownMessage('Z')
        );
        let bytes = MessageBytes::tag(b'I').u32(7).u8(b'X').bytes();
        assert!(matches!(
            decode(&bytes).unwrap_err(),
            DecodeError::UnexpectedTag { found: 'X', .. }
        ));
        let bytes = MessageBytes::new_row_of_relation_7(b'I')
            .i16(1)
            .u8(b'q')
            .bytes();
        assert!(matches!(
            decode(&bytes).unwrap_err(),
            DecodeError::UnexpectedTag { found: 'q', .. }
        ));
    }

    #[test]
    fn unterminated_string_is_reported() {
        let mut raw = MessageBytes::tag(b'Y').u32(1).0;
        raw.extend(b"public");
        assert!(matches!(
            decode(&Bytes::from(raw)).unwrap_err(),
            DecodeError::UnterminatedString { .. }
        ));
    }
}
