//! ClickHouse's RowBinary format for the closed set of column types: encoding rows the sink inserts and
//! decoding rows it reads back (stored versions, lookups).
//!
//! RowBinary is typed by the table's columns, so values are written without names or separators:
//! little-endian integers, LEB128-prefixed strings, a leading byte for `Nullable`. The sink chose it
//! over JSONEachRow because the values are converted and range-checked once, here, and ClickHouse
//! parses nothing (see docs/sink.md for the measurement).

use cdcstar_crds::ColumnType;

use crate::route::value::Value;

/// Why bytes read back from ClickHouse could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to decode RowBinary {ty} value: {reason}")]
pub struct DecodeError {
    /// The type being decoded.
    pub ty: String,
    /// What went wrong.
    pub reason: String,
}

/// Why a value cannot be encoded as the column type (a bug or a spec/value mismatch).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode {value} as RowBinary {ty}")]
pub struct EncodeError {
    /// The target type.
    pub ty: String,
    /// The value, debug-printed.
    pub value: String,
}

/// Appends `value` encoded as `ty` to `out`.
pub fn encode(value: &Value, ty: &ColumnType, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if ty.is_nullable() {
        if matches!(value, Value::Null) {
            out.push(1);
            return Ok(());
        }
        out.push(0);
    }
    let mismatch = || EncodeError {
        ty: ty.to_string(),
        value: format!("{value:?}"),
    };
    match (ty.base(), value) {
        (ColumnType::UInt8, Value::UInt(v)) => out.push(u8::try_from(*v).map_err(|_| mismatch())?),
        (ColumnType::UInt16, Value::UInt(v)) => {
            out.extend_from_slice(&u16::try_from(*v).map_err(|_| mismatch())?.to_le_bytes())
        }
        (ColumnType::UInt32, Value::UInt(v)) => {
            out.extend_from_slice(&u32::try_from(*v).map_err(|_| mismatch())?.to_le_bytes())
        }
        (ColumnType::UInt64, Value::UInt(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (ColumnType::Int8, Value::Int(v)) => {
            out.extend_from_slice(&i8::try_from(*v).map_err(|_| mismatch())?.to_le_bytes())
        }
        (ColumnType::Int16, Value::Int(v)) => {
            out.extend_from_slice(&i16::try_from(*v).map_err(|_| mismatch())?.to_le_bytes())
        }
        (ColumnType::Int32, Value::Int(v)) => {
            out.extend_from_slice(&i32::try_from(*v).map_err(|_| mismatch())?.to_le_bytes())
        }
        (ColumnType::Int64, Value::Int(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (ColumnType::Float32, Value::Float32(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (ColumnType::Float64, Value::Float64(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (ColumnType::Decimal { precision, .. }, Value::Decimal(v)) => match precision {
            0..=9 => {
                out.extend_from_slice(&i32::try_from(*v).map_err(|_| mismatch())?.to_le_bytes())
            }
            10..=18 => {
                out.extend_from_slice(&i64::try_from(*v).map_err(|_| mismatch())?.to_le_bytes())
            }
            19..=38 => out.extend_from_slice(&v.to_le_bytes()),
            _ => {
                // Decimal256: the i128 sign-extended to 32 bytes.
                out.extend_from_slice(&v.to_le_bytes());
                let fill = if *v < 0 { 0xFF } else { 0 };
                out.extend_from_slice(&[fill; 16]);
            }
        },
        (ColumnType::String, Value::String(s)) => {
            write_varint(s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
        }
        (ColumnType::Bool, Value::Bool(b)) => out.push(u8::from(*b)),
        (ColumnType::Date, Value::Days(d)) => {
            out.extend_from_slice(&u16::try_from(*d).map_err(|_| mismatch())?.to_le_bytes())
        }
        (ColumnType::Date32, Value::Days(d)) => out.extend_from_slice(&d.to_le_bytes()),
        (ColumnType::DateTime, Value::Seconds(s)) => out.extend_from_slice(&s.to_le_bytes()),
        (ColumnType::DateTime64(_), Value::Ticks(t)) => out.extend_from_slice(&t.to_le_bytes()),
        (ColumnType::Uuid, Value::Uuid(u)) => {
            out.extend_from_slice(&((*u >> 64) as u64).to_le_bytes());
            out.extend_from_slice(&(*u as u64).to_le_bytes());
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

fn write_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one value of type `ty` from the front of `input`, advancing it.
pub fn decode(ty: &ColumnType, input: &mut &[u8]) -> Result<Value, DecodeError> {
    let fail = |reason: &str| DecodeError {
        ty: ty.to_string(),
        reason: reason.to_owned(),
    };
    if ty.is_nullable() && take::<1>(input).ok_or_else(|| fail("truncated"))?[0] == 1 {
        return Ok(Value::Null);
    }
    let truncated = || fail("truncated");
    Ok(match ty.base() {
        ColumnType::UInt8 => Value::UInt(u64::from(take::<1>(input).ok_or_else(truncated)?[0])),
        ColumnType::UInt16 => Value::UInt(u64::from(u16::from_le_bytes(
            take(input).ok_or_else(truncated)?,
        ))),
        ColumnType::UInt32 => Value::UInt(u64::from(u32::from_le_bytes(
            take(input).ok_or_else(truncated)?,
        ))),
        ColumnType::UInt64 => Value::UInt(u64::from_le_bytes(take(input).ok_or_else(truncated)?)),
        ColumnType::Int8 => Value::Int(i64::from(i8::from_le_bytes(
            take(input).ok_or_else(truncated)?,
        ))),
        ColumnType::Int16 => Value::Int(i64::from(i16::from_le_bytes(
            take(input).ok_or_else(truncated)?,
        ))),
        ColumnType::Int32 => Value::Int(i64::from(i32::from_le_bytes(
            take(input).ok_or_else(truncated)?,
        ))),
        ColumnType::Int64 => Value::Int(i64::from_le_bytes(take(input).ok_or_else(truncated)?)),
        ColumnType::Float32 => {
            Value::Float32(f32::from_le_bytes(take(input).ok_or_else(truncated)?))
        }
        ColumnType::Float64 => {
            Value::Float64(f64::from_le_bytes(take(input).ok_or_else(truncated)?))
        }
        ColumnType::Decimal { precision, .. } => Value::Decimal(match precision {
            0..=9 => i128::from(i32::from_le_bytes(take(input).ok_or_else(truncated)?)),
            10..=18 => i128::from(i64::from_le_bytes(take(input).ok_or_else(truncated)?)),
            19..=38 => i128::from_le_bytes(take(input).ok_or_else(truncated)?),
            _ => {
                let low = i128::from_le_bytes(take(input).ok_or_else(truncated)?);
                let high: [u8; 16] = take(input).ok_or_else(truncated)?;
                let fill = if low < 0 { 0xFF } else { 0 };
                if high.iter().any(|b| *b != fill) {
                    return Err(fail("Decimal256 value beyond 38 digits"));
                }
                low
            }
        }),
        ColumnType::String => {
            let len = read_varint(input).ok_or_else(truncated)? as usize;
            if input.len() < len {
                return Err(truncated());
            }
            let (bytes, rest) = input.split_at(len);
            *input = rest;
            Value::String(
                String::from_utf8(bytes.to_vec()).map_err(|_| fail("string is not UTF-8"))?,
            )
        }
        ColumnType::Bool => Value::Bool(take::<1>(input).ok_or_else(truncated)?[0] != 0),
        ColumnType::Date => Value::Days(i32::from(u16::from_le_bytes(
            take(input).ok_or_else(truncated)?,
        ))),
        ColumnType::Date32 => Value::Days(i32::from_le_bytes(take(input).ok_or_else(truncated)?)),
        ColumnType::DateTime => {
            Value::Seconds(u32::from_le_bytes(take(input).ok_or_else(truncated)?))
        }
        ColumnType::DateTime64(_) => {
            Value::Ticks(i64::from_le_bytes(take(input).ok_or_else(truncated)?))
        }
        ColumnType::Uuid => {
            let high = u64::from_le_bytes(take(input).ok_or_else(truncated)?);
            let low = u64::from_le_bytes(take(input).ok_or_else(truncated)?);
            Value::Uuid((u128::from(high) << 64) | u128::from(low))
        }
        ColumnType::LowCardinalityString { .. } | ColumnType::Nullable(_) => {
            return Err(fail("unexpected wrapper type"));
        }
    })
}

fn take<const N: usize>(input: &mut &[u8]) -> Option<[u8; N]> {
    if input.len() < N {
        return None;
    }
    let (head, rest) = input.split_at(N);
    *input = rest;
    head.try_into().ok()
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0_u64;
    for shift in (0..64).step_by(7) {
        let [byte] = take::<1>(input)?;
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips() {
        let cases: Vec<(&str, Value)> = vec![
            ("UInt8", Value::UInt(200)),
            ("UInt16", Value::UInt(60_000)),
            ("UInt32", Value::UInt(4_000_000_000)),
            ("UInt64", Value::UInt(u64::MAX)),
            ("Int8", Value::Int(-100)),
            ("Int16", Value::Int(-30_000)),
            ("Int32", Value::Int(-2_000_000_000)),
            ("Int64", Value::Int(i64::MIN)),
            ("Float32", Value::Float32(1.5)),
            ("Float64", Value::Float64(-2.25)),
            ("Decimal(9, 2)", Value::Decimal(-12345)),
            ("Decimal(18, 4)", Value::Decimal(123_456_789_012)),
            ("Decimal(38, 10)", Value::Decimal(-(10_i128.pow(30)))),
            ("Decimal(76, 10)", Value::Decimal(-(10_i128.pow(30)))),
            ("String", Value::String("héllo".repeat(50))),
            ("LowCardinality(String)", Value::String("paid".into())),
            ("LowCardinality(Nullable(String))", Value::Null),
            ("Bool", Value::Bool(true)),
            ("Date", Value::Days(19_000)),
            ("Date32", Value::Days(-5)),
            ("DateTime", Value::Seconds(1_700_000_000)),
            ("DateTime64(6)", Value::Ticks(-1)),
            (
                "UUID",
                Value::Uuid(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
            ),
            ("Nullable(UInt32)", Value::UInt(9)),
            ("Nullable(UInt32)", Value::Null),
        ];
        for (text, value) in cases {
            let ty: ColumnType = text.parse().unwrap();
            let mut buf = Vec::new();
            encode(&value, &ty, &mut buf).unwrap();
            let mut input = buf.as_slice();
            assert_eq!(decode(&ty, &mut input).unwrap(), value, "{text}");
            assert!(input.is_empty(), "{text}: trailing bytes");
        }
    }

    #[test]
    fn known_wire_forms() {
        let mut buf = Vec::new();
        encode(&Value::String("ab".into()), &ColumnType::String, &mut buf).unwrap();
        assert_eq!(buf, [2, b'a', b'b']);
        buf.clear();
        let uuid = uuid::Uuid::parse_str("61f0c404-5cb3-11e7-907b-a6006ad3dba0").unwrap();
        encode(&Value::Uuid(uuid.as_u128()), &ColumnType::Uuid, &mut buf).unwrap();
        // ClickHouse writes the high half then the low half, each little-endian.
        assert_eq!(
            buf,
            [
                0xe7, 0x11, 0xb3, 0x5c, 0x04, 0xc4, 0xf0, 0x61, 0xa0, 0xdb, 0xd3, 0x6a, 0x00, 0xa6,
                0x7b, 0x90
            ]
        );
        buf.clear();
        write_varint(300, &mut buf);
        assert_eq!(buf, [0xAC, 0x02]);
    }

    #[test]
    fn mismatched_value_is_an_error_not_garbage() {
        let mut buf = Vec::new();
        assert!(encode(&Value::String("x".into()), &ColumnType::UInt64, &mut buf).is_err());
        assert!(encode(&Value::UInt(300), &ColumnType::UInt8, &mut buf).is_err());
        assert!(encode(&Value::Null, &ColumnType::UInt8, &mut buf).is_err());
    }

    #[test]
    fn truncated_input_is_reported() {
        let mut input: &[u8] = &[1, 2];
        assert!(decode(&ColumnType::UInt64, &mut input).is_err());
        let mut input: &[u8] = &[5, b'a'];
        assert!(decode(&ColumnType::String, &mut input).is_err());
    }
}
