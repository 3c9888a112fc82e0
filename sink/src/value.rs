//! Typed column values: the conversion of a CDC payload's JSON value into the ClickHouse type a column
//! declares, each type's default, and the SQL literal of a key.
//!
//! Conversion is where bad data is caught: a value that does not fit its column (text in a number
//! column, a number out of range, a date ClickHouse cannot store) is a [`ConvertError`], and the event
//! that carried it goes to the dead-letter topic instead of reaching ClickHouse.
//!
//! JSON `null` (and a column missing from the payload) becomes NULL in a `Nullable` column and the
//! type's default elsewhere, as ClickHouse itself does for `input_format_null_as_default`.

use std::hash::{Hash, Hasher};

use cdcstar_crds::ColumnType;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::Value as Json;

/// One typed value, interpreted through the [`ColumnType`] of its column.
#[derive(Debug, Clone)]
pub enum Value {
    /// NULL (only in nullable columns).
    Null,
    /// Any unsigned integer type.
    UInt(u64),
    /// Any signed integer type.
    Int(i64),
    /// `Float32`.
    Float32(f32),
    /// `Float64`.
    Float64(f64),
    /// `Decimal(P, S)`: the value times 10^S.
    Decimal(i128),
    /// `String` and `LowCardinality(String)`.
    String(String),
    /// `Bool`.
    Bool(bool),
    /// `Date` and `Date32`: days since 1970-01-01.
    Days(i32),
    /// `DateTime`: seconds since the epoch.
    Seconds(u32),
    /// `DateTime64(P)`: ticks of 10^-P seconds since the epoch.
    Ticks(i64),
    /// `UUID`.
    Uuid(u128),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::UInt(a), Value::UInt(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            // Bitwise, so that NaN equals itself and values can be map keys.
            (Value::Float32(a), Value::Float32(b)) => a.to_bits() == b.to_bits(),
            (Value::Float64(a), Value::Float64(b)) => a.to_bits() == b.to_bits(),
            (Value::Decimal(a), Value::Decimal(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Days(a), Value::Days(b)) => a == b,
            (Value::Seconds(a), Value::Seconds(b)) => a == b,
            (Value::Ticks(a), Value::Ticks(b)) => a == b,
            (Value::Uuid(a), Value::Uuid(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::Null => {}
            Value::UInt(v) => v.hash(state),
            Value::Int(v) => v.hash(state),
            Value::Float32(v) => v.to_bits().hash(state),
            Value::Float64(v) => v.to_bits().hash(state),
            Value::Decimal(v) => v.hash(state),
            Value::String(v) => v.hash(state),
            Value::Bool(v) => v.hash(state),
            Value::Days(v) => v.hash(state),
            Value::Seconds(v) => v.hash(state),
            Value::Ticks(v) => v.hash(state),
            Value::Uuid(v) => v.hash(state),
        }
    }
}

/// Why a payload value does not fit its column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column} ({ty}): cannot store {value}: {reason}")]
pub struct ConvertError {
    /// Source column name.
    pub column: String,
    /// ClickHouse type of the target column.
    pub ty: String,
    /// The offending value, shortened.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A reason without the column context, completed by [`convert`].
type Reason = String;

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;
/// Smallest and largest day numbers `Date` stores (1970-01-01 ..= 2149-06-06).
const DATE_RANGE: (i64, i64) = (0, 65_535);
/// Smallest and largest day numbers `Date32` stores (1900-01-01 ..= 2299-12-31).
const DATE32_RANGE: (i64, i64) = (-25_567, 120_529);
/// Smallest and largest seconds `DateTime64` stores (1900-01-01 ..= 2299-12-31 23:59:59).
const DATETIME64_SECONDS: (i64, i64) = (-2_208_988_800, 10_413_791_999);

/// Converts `json` (a payload value of source column `column`) to the type `ty`.
pub fn convert(json: Option<&Json>, ty: &ColumnType, column: &str) -> Result<Value, ConvertError> {
    let json = match json {
        None | Some(Json::Null) => return Ok(default_value(ty)),
        Some(json) => json,
    };
    convert_present(json, ty.base(), ty).map_err(|reason| ConvertError {
        column: column.to_owned(),
        ty: ty.to_string(),
        value: shorten(json),
        reason,
    })
}

fn shorten(json: &Json) -> String {
    let mut text = json.to_string();
    if text.len() > 80 {
        let mut cut = 77;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// The value a column gets when the payload has none: NULL for nullable columns, else the type's zero.
pub fn default_value(ty: &ColumnType) -> Value {
    if ty.is_nullable() {
        return Value::Null;
    }
    match ty.base() {
        ColumnType::UInt8 | ColumnType::UInt16 | ColumnType::UInt32 | ColumnType::UInt64 => {
            Value::UInt(0)
        }
        ColumnType::Int8 | ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 => {
            Value::Int(0)
        }
        ColumnType::Float32 => Value::Float32(0.0),
        ColumnType::Float64 => Value::Float64(0.0),
        ColumnType::Decimal { .. } => Value::Decimal(0),
        ColumnType::String | ColumnType::LowCardinalityString { .. } => {
            Value::String(String::new())
        }
        ColumnType::Bool => Value::Bool(false),
        ColumnType::Date | ColumnType::Date32 => Value::Days(0),
        ColumnType::DateTime => Value::Seconds(0),
        ColumnType::DateTime64(_) => Value::Ticks(0),
        ColumnType::Uuid => Value::Uuid(0),
        ColumnType::Nullable(_) => Value::Null,
    }
}

fn convert_present(json: &Json, base: &ColumnType, full: &ColumnType) -> Result<Value, Reason> {
    match base {
        ColumnType::UInt8 => unsigned(json, u64::from(u8::MAX)),
        ColumnType::UInt16 => unsigned(json, u64::from(u16::MAX)),
        ColumnType::UInt32 => unsigned(json, u64::from(u32::MAX)),
        ColumnType::UInt64 => unsigned(json, u64::MAX),
        ColumnType::Int8 => signed(json, i64::from(i8::MIN), i64::from(i8::MAX)),
        ColumnType::Int16 => signed(json, i64::from(i16::MIN), i64::from(i16::MAX)),
        ColumnType::Int32 => signed(json, i64::from(i32::MIN), i64::from(i32::MAX)),
        ColumnType::Int64 => signed(json, i64::MIN, i64::MAX),
        ColumnType::Float32 => float(json).map(|f| Value::Float32(f as f32)),
        ColumnType::Float64 => float(json).map(Value::Float64),
        ColumnType::Decimal { precision, scale } => {
            let text = match json {
                Json::Number(n) => n.to_string(),
                Json::String(s) => s.trim().to_owned(),
                _ => return Err("expected a number".into()),
            };
            parse_decimal(&text, *precision, *scale).map(Value::Decimal)
        }
        ColumnType::String | ColumnType::LowCardinalityString { .. } => {
            Ok(Value::String(match json {
                Json::String(s) => s.clone(),
                // Numbers, booleans and json/jsonb documents are stored as their JSON text.
                other => other.to_string(),
            }))
        }
        ColumnType::Bool => match json {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            Json::Number(n) if n.as_u64() == Some(0) => Ok(Value::Bool(false)),
            Json::Number(n) if n.as_u64() == Some(1) => Ok(Value::Bool(true)),
            Json::String(s) => match s.trim() {
                "t" | "true" | "TRUE" | "1" => Ok(Value::Bool(true)),
                "f" | "false" | "FALSE" | "0" => Ok(Value::Bool(false)),
                _ => Err("expected a boolean".into()),
            },
            _ => Err("expected a boolean".into()),
        },
        ColumnType::Date => days(json, DATE_RANGE),
        ColumnType::Date32 => days(json, DATE32_RANGE),
        ColumnType::DateTime => {
            let (seconds, _) = timestamp(json)?;
            u32::try_from(seconds)
                .map(Value::Seconds)
                .map_err(|_| "outside DateTime's range 1970-01-01 ..= 2106-02-07".to_owned())
        }
        ColumnType::DateTime64(precision) => {
            let (seconds, nanos) = timestamp(json)?;
            if !(DATETIME64_SECONDS.0..=DATETIME64_SECONDS.1).contains(&seconds) {
                return Err("outside DateTime64's range 1900-01-01 ..= 2299-12-31".into());
            }
            let unit = 10_i64.pow(u32::from(*precision));
            let sub = i64::from(nanos) / 10_i64.pow(9 - u32::from(*precision));
            Ok(Value::Ticks(seconds * unit + sub))
        }
        ColumnType::Uuid => match json {
            Json::String(s) => uuid::Uuid::parse_str(s.trim())
                .map(|u| Value::Uuid(u.as_u128()))
                .map_err(|e| format!("not a UUID: {e}")),
            _ => Err("expected a UUID string".into()),
        },
        ColumnType::Nullable(_) => Err(format!("nested nullable type {full}")),
    }
}

fn integer_text(json: &Json) -> Result<String, Reason> {
    match json {
        Json::Number(n) => Ok(n.to_string()),
        Json::String(s) => Ok(s.trim().to_owned()),
        Json::Bool(b) => Ok(u8::from(*b).to_string()),
        _ => Err("expected an integer".into()),
    }
}

fn unsigned(json: &Json, max: u64) -> Result<Value, Reason> {
    if let Some(v) = json.as_u64() {
        return if v <= max {
            Ok(Value::UInt(v))
        } else {
            Err(format!("above the maximum {max}"))
        };
    }
    let text = integer_text(json)?;
    let text = text.strip_suffix(".0").unwrap_or(&text);
    let v: u64 = text
        .parse()
        .map_err(|_| format!("expected an integer between 0 and {max}"))?;
    if v > max {
        return Err(format!("above the maximum {max}"));
    }
    Ok(Value::UInt(v))
}

fn signed(json: &Json, min: i64, max: i64) -> Result<Value, Reason> {
    let v = match json.as_i64() {
        Some(v) => v,
        None => {
            let text = integer_text(json)?;
            let text = text.strip_suffix(".0").unwrap_or(&text);
            text.parse()
                .map_err(|_| format!("expected an integer between {min} and {max}"))?
        }
    };
    if !(min..=max).contains(&v) {
        return Err(format!("outside the range {min} ..= {max}"));
    }
    Ok(Value::Int(v))
}

fn float(json: &Json) -> Result<f64, Reason> {
    match json {
        Json::Number(n) => n.as_f64().ok_or_else(|| "not a finite number".to_owned()),
        Json::String(s) => match s.trim() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(|_| "expected a number".to_owned()),
        },
        _ => Err("expected a number".into()),
    }
}

/// Parses decimal text (`-12.345`, `1e-3`, `+7`) into an integer scaled by 10^scale, rounding half
/// away from zero, and checks that it fits `precision` digits.
pub fn parse_decimal(text: &str, precision: u8, scale: u8) -> Result<i128, Reason> {
    let bad = || format!("expected a decimal number, got {text:?}");
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (
            &unsigned[..at],
            unsigned[at + 1..].parse::<i32>().map_err(|_| bad())?,
        ),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    // digits * 10^(exponent - fraction.len()) is the value; we want it times 10^scale.
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let shift = i64::from(exponent) - fraction.len() as i64 + i64::from(scale);
    let too_big = || format!("does not fit Decimal({precision}, {scale})");
    let mut value: i128 = 0;
    let (kept, dropped) = if shift >= 0 {
        (digits, "")
    } else {
        let cut = digits.len().saturating_sub(shift.unsigned_abs() as usize);
        digits.split_at(cut)
    };
    for b in kept.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
            .ok_or_else(too_big)?;
    }
    if shift > 0 {
        for _ in 0..shift {
            value = value.checked_mul(10).ok_or_else(too_big)?;
        }
    }
    // Round half away from zero on the first dropped digit (only when it is the digit right after
    // the kept ones: a longer drop means the value is below half a unit).
    let dropped_len = if shift < 0 {
        shift.unsigned_abs() as usize
    } else {
        0
    };
    if dropped_len > 0 && dropped.len() == dropped_len && dropped.as_bytes()[0] >= b'5' {
        value = value.checked_add(1).ok_or_else(too_big)?;
    }
    let limit = 10_i128
        .checked_pow(u32::from(precision))
        .unwrap_or(i128::MAX);
    if value >= limit {
        return Err(too_big());
    }
    Ok(if negative { -value } else { value })
}

fn days(json: &Json, range: (i64, i64)) -> Result<Value, Reason> {
    let days = match json {
        Json::Number(n) => n.as_i64().ok_or_else(|| "expected whole days".to_owned())?,
        Json::String(s) => {
            let s = s.trim();
            let date_text = s.get(..10).unwrap_or(s);
            let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d")
                .map_err(|_| "expected a date YYYY-MM-DD".to_owned())?;
            i64::from(date.num_days_from_ce() - UNIX_EPOCH_CE_DAYS)
        }
        _ => return Err("expected a date string".into()),
    };
    if !(range.0..=range.1).contains(&days) {
        return Err("date outside the column type's range".into());
    }
    Ok(Value::Days(days as i32))
}

/// Seconds since the epoch and nanoseconds of a timestamp given as text (RFC 3339, or Postgres's
/// `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]`, without offset meaning UTC) or as a number of seconds.
fn timestamp(json: &Json) -> Result<(i64, u32), Reason> {
    match json {
        Json::Number(n) => {
            let f = n.as_f64().ok_or_else(|| "not a number".to_owned())?;
            let seconds = f.floor();
            let nanos = ((f - seconds) * 1e9).round().min(999_999_999.0) as u32;
            Ok((seconds as i64, nanos))
        }
        Json::String(s) => {
            let parsed = parse_timestamp(s.trim())
                .ok_or_else(|| format!("expected a timestamp, got {s:?}"))?;
            Ok((parsed.timestamp(), parsed.timestamp_subsec_nanos()))
        }
        _ => Err("expected a timestamp string".into()),
    }
}

fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let normalised = text.replacen(' ', "T", 1);
    for format in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%:z"] {
        if let Ok(t) = DateTime::parse_from_str(&normalised, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let naive = normalised.strip_suffix('Z').unwrap_or(&normalised);
    if let Ok(t) = NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(naive, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

/// The SQL literal of a key value, for `IN (...)` lists. `?` is doubled because the `clickhouse`
/// crate treats a single `?` as a bind placeholder.
pub fn sql_literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::UInt(v) => v.to_string(),
        Value::Int(v) => v.to_string(),
        Value::Float32(v) => v.to_string(),
        Value::Float64(v) => v.to_string(),
        Value::Decimal(v) => v.to_string(),
        Value::String(s) => quote_string(s),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Days(d) => format!("toDate32({d})"),
        Value::Seconds(s) => format!("toDateTime({s})"),
        Value::Ticks(t) => t.to_string(),
        Value::Uuid(u) => format!("toUUID('{}')", uuid::Uuid::from_u128(*u)),
    }
}

/// A ClickHouse string literal.
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '?' => out.push_str("??"),
            other => out.push(other),
        }
    }
    out.push('\'');
    out
}

/// A ClickHouse identifier, back-quoted.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        match c {
            '`' => out.push_str("\\`"),
            '\\' => out.push_str("\\\\"),
            '?' => out.push_str("??"),
            other => out.push(other),
        }
    }
    out.push('`');
    out
}

/// Whether a type can be a table key (compared with literals in `IN` lists).
pub fn is_key_type(ty: &ColumnType) -> bool {
    matches!(
        ty,
        ColumnType::UInt8
            | ColumnType::UInt16
            | ColumnType::UInt32
            | ColumnType::UInt64
            | ColumnType::Int8
            | ColumnType::Int16
            | ColumnType::Int32
            | ColumnType::Int64
            | ColumnType::String
            | ColumnType::LowCardinalityString { nullable: false }
            | ColumnType::Uuid
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ty(text: &str) -> ColumnType {
        text.parse().unwrap()
    }

    fn ok(json: Json, text: &str) -> Value {
        convert(Some(&json), &ty(text), "c").unwrap()
    }

    fn err(json: Json, text: &str) -> ConvertError {
        convert(Some(&json), &ty(text), "c").unwrap_err()
    }

    #[test]
    fn integers_accept_numbers_and_digit_strings_within_range() {
        assert_eq!(ok(json!(7), "UInt64"), Value::UInt(7));
        assert_eq!(ok(json!("42"), "UInt32"), Value::UInt(42));
        assert_eq!(ok(json!(-5), "Int8"), Value::Int(-5));
        assert_eq!(ok(json!(true), "UInt8"), Value::UInt(1));
        assert!(err(json!(256), "UInt8").reason.contains("maximum"));
        assert!(err(json!(-1), "UInt64").reason.contains("integer"));
        assert!(
            err(json!("abc"), "Int32")
                .to_string()
                .contains("column c (Int32)")
        );
        assert!(err(json!(1.5), "UInt32").reason.contains("integer"));
    }

    #[test]
    fn null_and_missing_become_null_or_default() {
        assert_eq!(convert(None, &ty("UInt64"), "c").unwrap(), Value::UInt(0));
        assert_eq!(
            convert(Some(&Json::Null), &ty("String"), "c").unwrap(),
            Value::String(String::new())
        );
        assert_eq!(
            convert(Some(&Json::Null), &ty("Nullable(String)"), "c").unwrap(),
            Value::Null
        );
        assert_eq!(
            convert(None, &ty("LowCardinality(Nullable(String))"), "c").unwrap(),
            Value::Null
        );
    }

    #[test]
    fn decimals_scale_round_and_check_precision() {
        assert_eq!(parse_decimal("12.34", 12, 2), Ok(1234));
        assert_eq!(parse_decimal("-12.345", 12, 2), Ok(-1235));
        assert_eq!(parse_decimal("12.344", 12, 2), Ok(1234));
        assert_eq!(parse_decimal("7", 12, 2), Ok(700));
        assert_eq!(parse_decimal("1e-3", 12, 4), Ok(10));
        assert_eq!(parse_decimal("1.5E2", 5, 0), Ok(150));
        assert_eq!(parse_decimal("0.30000000000000004", 12, 2), Ok(30));
        assert_eq!(parse_decimal("0.001", 12, 2), Ok(0));
        assert!(parse_decimal("1000", 4, 2).is_err());
        assert!(parse_decimal("1.2.3", 4, 2).is_err());
        assert!(parse_decimal("", 4, 2).is_err());
        assert!(parse_decimal("abc", 4, 2).is_err());
        assert_eq!(ok(json!("99.5"), "Decimal(12, 2)"), Value::Decimal(9950));
        assert_eq!(ok(json!(99.5), "Decimal(12, 2)"), Value::Decimal(9950));
    }

    #[test]
    fn timestamps_in_postgres_and_rfc3339_forms() {
        let expected = Value::Ticks(1_700_000_000_123_456);
        assert_eq!(
            ok(json!("2023-11-14 22:13:20.123456"), "DateTime64(6)"),
            expected
        );
        assert_eq!(
            ok(json!("2023-11-14T22:13:20.123456Z"), "DateTime64(6)"),
            expected
        );
        assert_eq!(
            ok(json!("2023-11-15T00:13:20.123456+02:00"), "DateTime64(6)"),
            expected
        );
        assert_eq!(
            ok(json!("2023-11-14 23:13:20.123456+01"), "DateTime64(6)"),
            expected
        );
        assert_eq!(
            ok(json!("2023-11-14T22:13:20.123456"), "DateTime64(3)"),
            Value::Ticks(1_700_000_000_123)
        );
        assert_eq!(
            ok(json!("2023-11-14 22:13:20"), "DateTime"),
            Value::Seconds(1_700_000_000)
        );
        assert_eq!(ok(json!("1970-01-11"), "Date"), Value::Days(10));
        assert_eq!(ok(json!("1969-12-31"), "Date32"), Value::Days(-1));
        assert!(err(json!("1969-12-31"), "Date").reason.contains("range"));
        assert!(
            err(json!("0001-01-01 00:00:00"), "DateTime64(6)")
                .reason
                .contains("range")
        );
        assert!(
            err(json!("yesterday"), "DateTime64(6)")
                .reason
                .contains("timestamp")
        );
    }

    #[test]
    fn strings_uuids_and_bools() {
        assert_eq!(ok(json!("x"), "String"), Value::String("x".into()));
        assert_eq!(
            ok(json!({"a": 1}), "String"),
            Value::String(r#"{"a":1}"#.into())
        );
        assert_eq!(
            ok(json!("00000000-0000-0000-0000-0000000000ff"), "UUID"),
            Value::Uuid(255)
        );
        assert!(err(json!("nope"), "UUID").reason.contains("UUID"));
        assert_eq!(ok(json!("t"), "Bool"), Value::Bool(true));
        assert_eq!(ok(json!(0), "Bool"), Value::Bool(false));
        assert_eq!(ok(json!("NaN"), "Float64"), Value::Float64(f64::NAN));
    }

    #[test]
    fn literals_are_escaped_for_sql_and_the_bind_syntax() {
        assert_eq!(sql_literal(&Value::UInt(5)), "5");
        assert_eq!(
            sql_literal(&Value::String("it's a \\ ?".into())),
            r"'it\'s a \\ ??'"
        );
        assert_eq!(quote_ident("order"), "`order`");
        assert_eq!(quote_ident("we`ird"), r"`we\`ird`");
    }
}
