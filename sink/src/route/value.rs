//! Typed column values: the conversion of a CDC payload's JSON value into the ClickHouse type a column
//! declares, each type's default, and the SQL literal of a key.
//!
//! Conversion is where bad data is caught. A value of the wrong kind (text in a number column) is a
//! [`ConvertError`], and the event that carried it goes to the dead-letter topic. A value of the right
//! kind outside its type's range (a date after 2299, 300 in a `UInt8`, 1.5 in an integer column) is
//! handled by the column's `onUnrepresentable` policy ([`convert_with_policy`]): by default it is
//! clamped to the type's range, so a later change of the same row is never held back by it.
//!
//! JSON `null` (and a column missing from the payload) becomes NULL in a `Nullable` column and the
//! type's default elsewhere, as ClickHouse itself does for `input_format_null_as_default`.
//!
//! Over 400 lines: one JSON conversion per ClickHouse type family beside the ranges and literals they
//! share; a third is tests.

use std::hash::{Hash, Hasher};

use cdcstar_crds::column_type::ValueRange;
use cdcstar_crds::unrepresentable::{Substitute, substitute};
use cdcstar_crds::{ColumnType, OnUnrepresentable};
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

/// Why a present value was not converted as is.
#[derive(Debug, Clone, PartialEq)]
enum Refusal {
    /// Not a value of the column's kind: always an error.
    Malformed(Reason),
    /// A value of the column's kind that its type cannot hold; `nearest` is the closest value the
    /// type holds, when there is one (NaN has none).
    Unrepresentable {
        reason: Reason,
        nearest: Option<Value>,
    },
}

impl From<Reason> for Refusal {
    fn from(reason: Reason) -> Self {
        Refusal::Malformed(reason)
    }
}

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

/// A converted value, and whether the column's policy replaced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub value: Value,
    /// The payload's value could not be held by the type and was replaced (clamped, NULL, default).
    pub adjusted: bool,
}

/// Converts `json` (a payload value of source column `column`) to the type `ty`, refusing values the
/// type cannot hold (the `deadLetter` policy; what keys use).
pub fn convert(json: Option<&Json>, ty: &ColumnType, column: &str) -> Result<Value, ConvertError> {
    convert_with_policy(json, ty, column, OnUnrepresentable::DeadLetter).map(|c| c.value)
}

/// Converts `json` (a payload value of source column `column`) to the type `ty`; a value the type
/// cannot hold is replaced as `policy` says (see `cdcstar_crds::unrepresentable`).
pub fn convert_with_policy(
    json: Option<&Json>,
    ty: &ColumnType,
    column: &str,
    policy: OnUnrepresentable,
) -> Result<Converted, ConvertError> {
    let json = match json {
        None | Some(Json::Null) => {
            return Ok(Converted {
                value: default_value(ty),
                adjusted: false,
            });
        }
        Some(json) => json,
    };
    let error = |reason| ConvertError {
        column: column.to_owned(),
        ty: ty.to_string(),
        value: shorten(json),
        reason,
    };
    let adjusted = |value| Converted {
        value,
        adjusted: true,
    };
    match convert_present(json, ty.base(), ty) {
        Ok(value) => Ok(Converted {
            value,
            adjusted: false,
        }),
        Err(Refusal::Malformed(reason)) => Err(error(reason)),
        Err(Refusal::Unrepresentable { reason, nearest }) => {
            match (substitute(policy, ty, nearest.is_some()), nearest) {
                (Substitute::Nearest, Some(nearest)) => Ok(adjusted(nearest)),
                (Substitute::Null, _) => Ok(adjusted(Value::Null)),
                (Substitute::TypeDefault, _) | (Substitute::Nearest, None) => {
                    Ok(adjusted(default_value(ty)))
                }
                (Substitute::DeadLetter, _) => Err(error(reason)),
            }
        }
    }
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

fn convert_present(json: &Json, base: &ColumnType, full: &ColumnType) -> Result<Value, Refusal> {
    match base {
        integer_type if integer_type.is_integer() => in_range(base, integer(json)?),
        ColumnType::Float32 => Ok(float(json).map(|f| Value::Float32(f as f32))?),
        ColumnType::Float64 => Ok(float(json).map(Value::Float64)?),
        ColumnType::Decimal { precision, scale } => {
            let text = match json {
                Json::Number(n) => n.to_string(),
                Json::String(s) => s.trim().to_owned(),
                _ => return Err(Refusal::Malformed("expected a number".into())),
            };
            let scaled = match text.as_str() {
                "NaN" => return Err(no_nearest(base)),
                "Infinity" => Exact(i128::MAX),
                "-Infinity" => Exact(i128::MIN),
                _ => match parse_decimal(&text, *precision, *scale) {
                    Ok(value) => Exact(value),
                    // More digits than the precision (or 128 bits): the nearest bound, by sign.
                    Err(reason) if reason.starts_with("does not fit") => {
                        Exact(if text.starts_with('-') {
                            i128::MIN
                        } else {
                            i128::MAX
                        })
                    }
                    Err(reason) => return Err(Refusal::Malformed(reason)),
                },
            };
            in_range(base, scaled)
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
                _ => Err(Refusal::Malformed("expected a boolean".into())),
            },
            _ => Err(Refusal::Malformed("expected a boolean".into())),
        },
        ColumnType::Date | ColumnType::Date32 => in_range(base, Exact(days(json)?)),
        ColumnType::DateTime => in_range(base, Exact(timestamp(json)?.0)),
        ColumnType::DateTime64(precision) => {
            let (seconds, nanos) = timestamp(json)?;
            let unit = 10_i128.pow(u32::from(*precision));
            let sub = i128::from(nanos) / 10_i128.pow(9 - u32::from(*precision));
            in_range(
                base,
                Exact(seconds.saturating_mul(unit).saturating_add(sub)),
            )
        }
        ColumnType::Uuid => match json {
            Json::String(s) => uuid::Uuid::parse_str(s.trim())
                .map(|u| Value::Uuid(u.as_u128()))
                .map_err(|e| Refusal::Malformed(format!("not a UUID: {e}"))),
            _ => Err(Refusal::Malformed("expected a UUID string".into())),
        },
        // Integers are matched above; a `Nullable` inside a base type cannot be parsed.
        _ => Err(Refusal::Malformed(format!("nested nullable type {full}"))),
    }
}

/// A value in a type's storage unit (see [`ColumnType::range`]), before its range is checked.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stored {
    /// The value itself.
    Exact(i128),
    /// The value is between integers (1.5 in an integer column); this is the nearest one.
    Rounded(i128),
}
use Stored::{Exact, Rounded};

/// The value of a ranged type `base` (integers, Decimal, dates, timestamps) from its storage unit,
/// or the refusal that carries the nearest value the type holds.
fn in_range(base: &ColumnType, stored: Stored) -> Result<Value, Refusal> {
    let range = base
        .range()
        .expect("in_range is called for ranged types only");
    let (raw, exact) = match stored {
        Exact(raw) => (raw, true),
        Rounded(raw) => (raw, false),
    };
    if exact && range.contains(raw) {
        return Ok(ranged_value(base, raw));
    }
    let reason = if range.contains(raw) {
        "not an integer".to_owned()
    } else {
        format!("outside {base}'s range {}", describe_range(base, range))
    };
    Err(Refusal::Unrepresentable {
        reason,
        nearest: Some(ranged_value(base, range.clamp(raw))),
    })
}

fn no_nearest(base: &ColumnType) -> Refusal {
    Refusal::Unrepresentable {
        reason: format!("NaN has no {base} value"),
        nearest: None,
    }
}

/// The value of a ranged type from a storage-unit integer inside its range.
fn ranged_value(base: &ColumnType, raw: i128) -> Value {
    match base {
        ColumnType::UInt8 | ColumnType::UInt16 | ColumnType::UInt32 | ColumnType::UInt64 => {
            Value::UInt(raw as u64)
        }
        ColumnType::Int8 | ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 => {
            Value::Int(raw as i64)
        }
        ColumnType::Decimal { .. } => Value::Decimal(raw),
        ColumnType::Date | ColumnType::Date32 => Value::Days(raw as i32),
        ColumnType::DateTime => Value::Seconds(raw as u32),
        ColumnType::DateTime64(_) => Value::Ticks(raw as i64),
        other => unreachable!("{other} has no range"),
    }
}

/// A range in words, dates and timestamps as such.
fn describe_range(base: &ColumnType, range: ValueRange) -> String {
    let instant = |raw: i128, per_second: i128| {
        DateTime::<Utc>::from_timestamp(raw.div_euclid(per_second) as i64, 0).map_or_else(
            || raw.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
    };
    let (min, max) = match base {
        ColumnType::Date | ColumnType::Date32 => {
            let day = |raw: i128| instant(raw * 86_400, 1)[..10].to_owned();
            (day(range.min), day(range.max))
        }
        ColumnType::DateTime => (instant(range.min, 1), instant(range.max, 1)),
        ColumnType::DateTime64(precision) => {
            let unit = 10_i128.pow(u32::from(*precision));
            (instant(range.min, unit), instant(range.max, unit))
        }
        _ => (range.min.to_string(), range.max.to_string()),
    };
    format!("{min} ..= {max}")
}

fn integer_text(json: &Json) -> Result<String, Reason> {
    match json {
        Json::Number(n) => Ok(n.to_string()),
        Json::String(s) => Ok(s.trim().to_owned()),
        Json::Bool(b) => Ok(u8::from(*b).to_string()),
        _ => Err("expected an integer".into()),
    }
}

/// An integer from a number, digit string or boolean; a fraction, an infinity or a number past 128
/// bits gives the nearest integer, NaN none.
fn integer(json: &Json) -> Result<Stored, Refusal> {
    if let Some(v) = json.as_i64() {
        return Ok(Exact(v.into()));
    }
    if let Some(v) = json.as_u64() {
        return Ok(Exact(v.into()));
    }
    let text = integer_text(json)?;
    let text = text.strip_suffix(".0").unwrap_or(&text);
    if let Ok(v) = text.parse::<i128>() {
        return Ok(Exact(v));
    }
    let Ok(f) = text.parse::<f64>() else {
        return Err(Refusal::Malformed(format!(
            "expected an integer, got {text:?}"
        )));
    };
    if f.is_nan() {
        return Err(Refusal::Unrepresentable {
            reason: "NaN is not an integer".into(),
            nearest: None,
        });
    }
    // NB: `as` saturates, so infinities and huge values become the extreme integers.
    let rounded = f.round() as i128;
    Ok(if f.fract() == 0.0 {
        Exact(rounded)
    } else {
        Rounded(rounded)
    })
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

/// Days since 1970-01-01 of a date given as text (`YYYY-MM-DD`, a timestamp's date, Postgres's
/// `infinity`) or as a number of days.
fn days(json: &Json) -> Result<i128, Refusal> {
    match json {
        Json::Number(n) => Ok(n
            .as_i64()
            .ok_or_else(|| "expected whole days".to_owned())?
            .into()),
        Json::String(s) => {
            let s = s.trim();
            if let Some(infinite) = infinity(s) {
                return Ok(infinite);
            }
            let date_text = s.get(..10).unwrap_or(s);
            let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d")
                .map_err(|_| "expected a date YYYY-MM-DD".to_owned())?;
            Ok(i128::from(date.num_days_from_ce() - UNIX_EPOCH_CE_DAYS))
        }
        _ => Err(Refusal::Malformed("expected a date string".into())),
    }
}

/// Postgres's `infinity` and `-infinity` dates and timestamps, as the extreme storage values.
fn infinity(text: &str) -> Option<i128> {
    match text {
        "infinity" => Some(i128::MAX),
        "-infinity" => Some(i128::MIN),
        _ => None,
    }
}

/// Seconds since the epoch and nanoseconds of a timestamp given as text (RFC 3339, or Postgres's
/// `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]`, without offset meaning UTC) or as a number of seconds.
fn timestamp(json: &Json) -> Result<(i128, u32), Refusal> {
    match json {
        Json::Number(n) => {
            let f = n.as_f64().ok_or_else(|| "not a number".to_owned())?;
            let seconds = f.floor();
            let nanos = ((f - seconds) * 1e9).round().min(999_999_999.0) as u32;
            Ok((seconds as i128, nanos))
        }
        Json::String(s) => {
            if let Some(infinite) = infinity(s.trim()) {
                return Ok((infinite, 0));
            }
            let parsed = parse_timestamp(s.trim())
                .ok_or_else(|| format!("expected a timestamp, got {s:?}"))?;
            Ok((parsed.timestamp().into(), parsed.timestamp_subsec_nanos()))
        }
        _ => Err(Refusal::Malformed("expected a timestamp string".into())),
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
        assert!(err(json!(256), "UInt8").reason.contains("range 0 ..= 255"));
        assert!(err(json!(-1), "UInt64").reason.contains("range"));
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
        // The same instant in each form the source may write it.
        for text in [
            "2023-11-14 22:13:20.123456",
            "2023-11-14T22:13:20.123456Z",
            "2023-11-15T00:13:20.123456+02:00",
            "2023-11-14 23:13:20.123456+01",
        ] {
            assert_eq!(
                ok(json!(text), "DateTime64(6)"),
                Value::Ticks(1_700_000_000_123_456),
                "{text}"
            );
        }
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

    fn with(json: Json, text: &str, policy: OnUnrepresentable) -> Converted {
        convert_with_policy(Some(&json), &ty(text), "c", policy).unwrap()
    }

    fn clamped(json: Json, text: &str) -> Value {
        let converted = with(json, text, OnUnrepresentable::Clamp);
        assert!(converted.adjusted);
        converted.value
    }

    #[test]
    fn clamp_moves_every_ranged_type_to_its_nearest_bound() {
        for (json, text, nearest) in [
            (json!(300), "UInt8", Value::UInt(255)),
            (json!(-1), "UInt64", Value::UInt(0)),
            (json!(-200), "Int8", Value::Int(-128)),
            (json!("1e30"), "Int64", Value::Int(i64::MAX)),
            (json!(2.5), "Int32", Value::Int(3)),
            (json!(-1.4), "UInt16", Value::UInt(0)),
            (json!("123456.789"), "Decimal(5, 2)", Value::Decimal(99_999)),
            (json!("-1e40"), "Decimal(5, 2)", Value::Decimal(-99_999)),
            (json!("Infinity"), "Decimal(5, 0)", Value::Decimal(99_999)),
            (json!("1969-12-31"), "Date", Value::Days(0)),
            (json!("2300-01-01"), "Date32", Value::Days(120_529)),
            (json!("infinity"), "Date32", Value::Days(120_529)),
            (
                json!("2200-01-01 00:00:00"),
                "DateTime",
                Value::Seconds(u32::MAX),
            ),
            // The last tick of 2299-12-31.
            (
                json!("2300-06-01T10:00:00Z"),
                "DateTime64(6)",
                Value::Ticks(10_413_791_999_999_999),
            ),
            (
                json!("1800-01-01 00:00:00"),
                "Nullable(DateTime64(3))",
                Value::Ticks(-2_208_988_800_000),
            ),
            // Precision 9 ends where Int64 nanoseconds end, in 2262.
            (
                json!("2290-01-01 00:00:00"),
                "DateTime64(9)",
                Value::Ticks(i64::MAX),
            ),
        ] {
            assert_eq!(clamped(json.clone(), text), nearest, "{json} in {text}");
        }
    }

    #[test]
    fn values_the_type_holds_are_not_adjusted() {
        let converted = with(
            json!("2299-12-31 23:59:59"),
            "DateTime64(6)",
            OnUnrepresentable::Clamp,
        );
        assert_eq!(converted.value, Value::Ticks(10_413_791_999_000_000));
        assert!(!converted.adjusted);
        assert!(!with(json!(255), "UInt8", OnUnrepresentable::Null).adjusted);
        assert!(!with(json!(null), "UInt8", OnUnrepresentable::Null).adjusted);
    }

    #[test]
    fn without_a_nearest_value_clamp_writes_null_or_the_default() {
        assert_eq!(clamped(json!("NaN"), "Nullable(Int32)"), Value::Null);
        assert_eq!(clamped(json!("NaN"), "Int32"), Value::Int(0));
        assert_eq!(clamped(json!("NaN"), "Decimal(12, 2)"), Value::Decimal(0));
    }

    #[test]
    fn null_and_dead_letter_policies() {
        let null = OnUnrepresentable::Null;
        assert_eq!(with(json!(300), "Nullable(UInt8)", null).value, Value::Null);
        assert_eq!(
            with(json!("2300-01-01"), "Date32", null).value,
            Value::Days(0)
        );
        let refused = convert_with_policy(
            Some(&json!("2300-01-01 00:00:00")),
            &ty("DateTime64(6)"),
            "orderDate",
            OnUnrepresentable::DeadLetter,
        )
        .unwrap_err();
        assert!(
            refused.to_string().contains(
                "outside DateTime64(6)'s range 1900-01-01 00:00:00 ..= 2299-12-31 23:59:59"
            ),
            "{refused}"
        );
    }

    #[test]
    fn malformed_values_are_errors_whatever_the_policy() {
        for policy in [OnUnrepresentable::Clamp, OnUnrepresentable::Null] {
            for (json, text) in [
                (json!("abc"), "Int32"),
                (json!("yesterday"), "DateTime64(6)"),
                (json!("nope"), "UUID"),
                (json!("1.2.3"), "Decimal(5, 2)"),
            ] {
                assert!(
                    convert_with_policy(Some(&json), &ty(text), "c", policy).is_err(),
                    "{json} in {text}"
                );
            }
        }
    }

    #[test]
    fn literals_are_escaped_for_sql_and_the_bind_syntax() {
        assert_eq!(sql_literal(&Value::UInt(5)), "5");
        assert_eq!(
            sql_literal(&Value::String("it's a \\ ?".into())),
            r"'it\'s a \\ ??'"
        );
    }
}
