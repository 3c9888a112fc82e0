//! Conversion of one column value from PostgreSQL's text output format to the JSON value the
//! envelope carries, chosen by the column's type OID.
//!
//! | PostgreSQL | JSON |
//! | --- | --- |
//! | `int2`, `int4`, `int8`, `oid` | number |
//! | `float4`, `float8` | number; `NaN`, `Infinity`, `-Infinity` as strings |
//! | `numeric` | string with the exact decimal text (`"12.50"`) |
//! | `bool` | `true` / `false` |
//! | `timestamp` | RFC 3339 in UTC, fraction without trailing zeros: `2024-01-02T03:04:05.1234Z` |
//! | `timestamptz` | the same, converted to UTC |
//! | `date` | `YYYY-MM-DD` |
//! | `json`, `jsonb` | the embedded JSON value |
//! | arrays of the above | JSON arrays (nested for multi-dimensional arrays) |
//! | everything else (`text`, `varchar`, `uuid`, enums, `time`, `interval`, `bytea`...) | string, as Postgres prints it |
//!
//! Timestamps follow what Redpanda Connect emits (Go's `time.Time` JSON form, RFC 3339 with the
//! fraction's trailing zeros removed), so both captures produce the same bytes. `infinity` and
//! values outside the proleptic Gregorian range Postgres can print (`BC` years) stay strings.
//!
//! Over 400 lines only with its tests: one table of conversions per type family.

use chrono::{FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde_json::{Number, Value};

use crate::array::{ArrayNode, parse_array};

/// Type OIDs of the built-in types with a dedicated conversion.
pub mod oid {
    /// `bool`
    pub const BOOL: u32 = 16;
    /// `int8`
    pub const INT8: u32 = 20;
    /// `int2`
    pub const INT2: u32 = 21;
    /// `int4`
    pub const INT4: u32 = 23;
    /// `text`
    pub const TEXT: u32 = 25;
    /// `oid`
    pub const OID: u32 = 26;
    /// `json`
    pub const JSON: u32 = 114;
    /// `float4`
    pub const FLOAT4: u32 = 700;
    /// `float8`
    pub const FLOAT8: u32 = 701;
    /// `varchar`
    pub const VARCHAR: u32 = 1043;
    /// `date`
    pub const DATE: u32 = 1082;
    /// `timestamp`
    pub const TIMESTAMP: u32 = 1114;
    /// `timestamptz`
    pub const TIMESTAMPTZ: u32 = 1184;
    /// `numeric`
    pub const NUMERIC: u32 = 1700;
    /// `uuid`
    pub const UUID: u32 = 2950;
    /// `jsonb`
    pub const JSONB: u32 = 3802;
}

/// The element type of a built-in array type, or `None` when `type_oid` is not one we convert.
fn array_element_type(type_oid: u32) -> Option<u32> {
    Some(match type_oid {
        1000 => oid::BOOL,
        1005 => oid::INT2,
        1007 => oid::INT4,
        1016 => oid::INT8,
        1028 => oid::OID,
        1009 => oid::TEXT,
        1015 => oid::VARCHAR,
        1014 => 1042, // bpchar
        1021 => oid::FLOAT4,
        1022 => oid::FLOAT8,
        1231 => oid::NUMERIC,
        1115 => oid::TIMESTAMP,
        1185 => oid::TIMESTAMPTZ,
        1182 => oid::DATE,
        2951 => oid::UUID,
        199 => oid::JSON,
        3807 => oid::JSONB,
        _ => return None,
    })
}

/// Why a value could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {text:?} as {type_name}: {reason}")]
pub struct ValueError {
    /// The text Postgres sent.
    pub text: String,
    /// The type it was read as.
    pub type_name: &'static str,
    /// What went wrong.
    pub reason: String,
}

fn value_error(text: &str, type_name: &'static str, reason: impl ToString) -> ValueError {
    ValueError {
        text: text.to_owned(),
        type_name,
        reason: reason.to_string(),
    }
}

/// Converts the text form `text` of a value of type `type_oid` to JSON.
pub fn text_to_json(type_oid: u32, text: &str) -> Result<Value, ValueError> {
    converted(type_oid, text).unwrap_or_else(|| Ok(Value::String(text.to_owned())))
}

/// Writes the JSON of the text form `text` of a value of type `type_oid` to `out`: the bytes of
/// serialising [`text_to_json`]'s value, without building a string value for the types whose JSON
/// is their text (they dominate bulk reads). On error `out` is unchanged.
pub fn write_json(type_oid: u32, text: &str, out: &mut Vec<u8>) -> Result<(), ValueError> {
    let written = match converted(type_oid, text) {
        None => serde_json::to_writer(&mut *out, text),
        Some(value) => serde_json::to_writer(&mut *out, &value?),
    };
    written.expect("writing JSON to a Vec cannot fail");
    Ok(())
}

/// The JSON of a value of type `type_oid`, or `None` when it is its text as a JSON string
/// (numeric, to keep its exact decimals, and every type without a conversion).
fn converted(type_oid: u32, text: &str) -> Option<Result<Value, ValueError>> {
    if let Some(element_type) = array_element_type(type_oid) {
        return Some(
            parse_array(text, b',')
                .map_err(|err| value_error(text, "array", err))
                .and_then(|tree| array_to_json(element_type, tree)),
        );
    }
    let value = match type_oid {
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|err| value_error(text, "integer", err)),
        oid::FLOAT4 | oid::FLOAT8 => float_to_json(text),
        oid::BOOL => match text {
            "t" => Ok(Value::Bool(true)),
            "f" => Ok(Value::Bool(false)),
            _ => Err(value_error(text, "bool", "expected t or f")),
        },
        oid::TIMESTAMP => Ok(timestamp_to_json(text)),
        oid::TIMESTAMPTZ => Ok(timestamptz_to_json(text)),
        oid::DATE => Ok(date_to_json(text)),
        oid::JSON | oid::JSONB => {
            serde_json::from_str(text).map_err(|err| value_error(text, "json", err))
        }
        _ => return None,
    };
    Some(value)
}

fn array_to_json(element_type: u32, node: ArrayNode) -> Result<Value, ValueError> {
    match node {
        ArrayNode::Array(items) => items
            .into_iter()
            .map(|item| array_to_json(element_type, item))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        ArrayNode::Element(None) => Ok(Value::Null),
        ArrayNode::Element(Some(text)) => text_to_json(element_type, &text),
    }
}

fn float_to_json(text: &str) -> Result<Value, ValueError> {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return Ok(Value::String(text.to_owned()));
    }
    let number: f64 = text
        .parse()
        .map_err(|err| value_error(text, "float", err))?;
    Number::from_f64(number)
        .map(Value::Number)
        .ok_or_else(|| value_error(text, "float", "not a finite number"))
}

/// `2024-01-02 03:04:05.123456` → `2024-01-02T03:04:05.123456Z`; unparseable text (`infinity`,
/// `BC` dates) is kept as a string.
fn timestamp_to_json(text: &str) -> Value {
    match NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
        Ok(naive) => Value::String(rfc3339_trimmed(&Utc.from_utc_datetime(&naive))),
        Err(_) => Value::String(text.to_owned()),
    }
}

/// `2024-01-02 03:04:05.5+02` (any `±HH[:MM[:SS]]` offset) → `2024-01-02T01:04:05.5Z`.
fn timestamptz_to_json(text: &str) -> Value {
    match parse_timestamptz(text) {
        Some(utc) => Value::String(rfc3339_trimmed(&utc)),
        None => Value::String(text.to_owned()),
    }
}

fn parse_timestamptz(text: &str) -> Option<chrono::DateTime<Utc>> {
    // The offset starts at the last sign after the time of day (the date has '-' too).
    let sign_at = text.get(19..)?.rfind(['+', '-'])? + 19;
    let naive = NaiveDateTime::parse_from_str(&text[..sign_at], "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let sign: i32 = if text.as_bytes()[sign_at] == b'-' {
        -1
    } else {
        1
    };
    let mut seconds = 0i32;
    for (part, unit) in text[sign_at + 1..].split(':').zip([3600, 60, 1]) {
        if part.len() != 2 {
            return None;
        }
        seconds += part.parse::<i32>().ok()? * unit;
    }
    let offset = FixedOffset::east_opt(sign * seconds)?;
    let local = offset.from_local_datetime(&naive).single()?;
    Some(local.with_timezone(&Utc))
}

fn date_to_json(text: &str) -> Value {
    // With DateStyle ISO (set on every session the capture opens) Postgres prints `YYYY-MM-DD`
    // already; `infinity` and `BC` dates are kept as printed.
    Value::String(text.to_owned())
}

/// RFC 3339 in UTC with the fraction's trailing zeros removed (and no fraction when it is zero),
/// as Go's `time.RFC3339Nano` prints it.
pub fn rfc3339_trimmed(time: &chrono::DateTime<Utc>) -> String {
    let mut out = time.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = time.timestamp_subsec_nanos();
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn write_json_writes_the_bytes_of_text_to_json() {
        let samples: &[(u32, &str)] = &[
            (oid::INT2, "-12"),
            (oid::INT4, "2147483647"),
            (oid::INT8, "-9223372036854775808"),
            (oid::OID, "42"),
            (oid::FLOAT4, "1.5"),
            (oid::FLOAT8, "NaN"),
            (oid::NUMERIC, "12.50"),
            (oid::BOOL, "t"),
            (oid::TIMESTAMP, "2024-01-02 03:04:05.120000"),
            (oid::TIMESTAMPTZ, "2024-01-02 03:04:05.5+02"),
            (oid::DATE, "2024-01-02"),
            (oid::JSON, r#"{"a": [1, "x"]}"#),
            (oid::JSONB, "null"),
            (oid::TEXT, "quote \" backslash \\ tab \t newline \n é \u{1}"),
            (oid::VARCHAR, ""),
            (oid::UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            (1186, "1 day 02:00:00"),
            (1007, "{1,NULL,3}"),
            (1009, r#"{"a b",c}"#),
        ];
        for (type_oid, text) in samples {
            let mut written = b"prefix".to_vec();
            write_json(*type_oid, text, &mut written).unwrap();
            let expected = serde_json::to_vec(&text_to_json(*type_oid, text).unwrap()).unwrap();
            assert_eq!(written[6..], expected[..], "type {type_oid}, text {text:?}");
        }
        let mut untouched = b"x".to_vec();
        assert!(write_json(oid::INT4, "12a", &mut untouched).is_err());
        assert!(write_json(oid::JSON, "{", &mut untouched).is_err());
        assert_eq!(untouched, b"x");
    }

    /// `text_to_json` gives each `(type, text, JSON)`.
    fn assert_converts(cases: &[(u32, &str, Value)]) {
        for (type_oid, text, expected) in cases {
            let converted = text_to_json(*type_oid, text).unwrap();
            assert_eq!(converted, *expected, "type {type_oid}, text {text:?}");
        }
    }

    #[test]
    fn integers_are_numbers() {
        assert_converts(&[
            (oid::INT2, "-7", json!(-7)),
            (oid::INT4, "42", json!(42)),
            (
                oid::INT8,
                "9223372036854775807",
                json!(9_223_372_036_854_775_807i64),
            ),
        ]);
        assert!(text_to_json(oid::INT4, "4x").is_err());
    }

    #[test]
    fn numeric_keeps_its_exact_text() {
        assert_converts(&[
            (oid::NUMERIC, "12.50", json!("12.50")),
            (
                oid::NUMERIC,
                "123456789012345678901234.000001",
                json!("123456789012345678901234.000001"),
            ),
            (oid::NUMERIC, "NaN", json!("NaN")),
        ]);
    }

    #[test]
    fn floats_are_numbers_and_special_values_strings() {
        assert_converts(&[
            (oid::FLOAT8, "19.99", json!(19.99)),
            (oid::FLOAT4, "1e+30", json!(1e30)),
            (oid::FLOAT8, "NaN", json!("NaN")),
            (oid::FLOAT8, "-Infinity", json!("-Infinity")),
        ]);
    }

    #[test]
    fn booleans() {
        assert_converts(&[
            (oid::BOOL, "t", json!(true)),
            (oid::BOOL, "f", json!(false)),
        ]);
        assert!(text_to_json(oid::BOOL, "true").is_err());
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_trimmed_fraction() {
        assert_converts(&[
            (
                oid::TIMESTAMP,
                "2024-01-02 03:04:05.123456",
                json!("2024-01-02T03:04:05.123456Z"),
            ),
            (
                oid::TIMESTAMP,
                "2024-01-02 03:04:05.12",
                json!("2024-01-02T03:04:05.12Z"),
            ),
            (
                oid::TIMESTAMP,
                "2024-01-02 03:04:05",
                json!("2024-01-02T03:04:05Z"),
            ),
            (oid::TIMESTAMP, "infinity", json!("infinity")),
        ]);
    }

    #[test]
    fn timestamptz_is_converted_to_utc() {
        assert_converts(&[
            (
                oid::TIMESTAMPTZ,
                "2024-01-02 03:04:05.5+00",
                json!("2024-01-02T03:04:05.5Z"),
            ),
            (
                oid::TIMESTAMPTZ,
                "2024-01-02 03:04:05+02",
                json!("2024-01-02T01:04:05Z"),
            ),
            (
                oid::TIMESTAMPTZ,
                "2024-01-02 03:04:05.000001-05:30",
                json!("2024-01-02T08:34:05.000001Z"),
            ),
            (oid::TIMESTAMPTZ, "-infinity", json!("-infinity")),
        ]);
    }

    #[test]
    fn dates_text_uuid_and_unknown_types_are_strings() {
        assert_converts(&[
            (oid::DATE, "2024-02-29", json!("2024-02-29")),
            (oid::TEXT, "héllo", json!("héllo")),
            (
                oid::UUID,
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            ),
            (99_999, "happy", json!("happy")),
        ]);
    }

    #[test]
    fn json_is_embedded() {
        assert_converts(&[
            (
                oid::JSONB,
                r#"{"a": [1, "x"], "b": null}"#,
                json!({"a": [1, "x"], "b": null}),
            ),
            (oid::JSON, "3", json!(3)),
        ]);
        assert!(text_to_json(oid::JSON, "{").is_err());
    }

    #[test]
    fn arrays_convert_their_elements() {
        assert_converts(&[
            (1007, "{1,NULL,3}", json!([1, null, 3])),
            (1016, "{{1,2},{3,4}}", json!([[1, 2], [3, 4]])),
            (1009, r#"{"a b",c,"NULL"}"#, json!(["a b", "c", "NULL"])),
            (1231, "{1.50,2}", json!(["1.50", "2"])),
            (1000, "{t,f}", json!([true, false])),
            (
                1115,
                r#"{"2024-01-02 03:04:05"}"#,
                json!(["2024-01-02T03:04:05Z"]),
            ),
            (3807, r#"{"{\"k\": 1}"}"#, json!([{"k": 1}])),
            (1007, "{}", json!([])),
        ]);
        assert!(text_to_json(1007, "{1,x}").is_err());
    }
}
