//! Lenient decoding of numbers and timestamps in request bodies, as the reference (Pydantic in lax
//! mode) accepts them: money and prices as a JSON number or a numeric string (`29.99` or
//! `"29.99"`), ids and quantities as an integer, an integral float or an integer string (`3`,
//! `3.0`, `"3"`: HTML form values arrive as strings), timestamps with or without a UTC offset.
//!
//! Money is read from the number's own text (serde_json's `RawValue`), never through an f64, so
//! every digit sent reaches the checks and the database. Output is strict: `total` is written as a JSON number (the client's TypeScript expects one),
//! with `rust_decimal::serde::float`. A `NUMERIC(12, 2)` value has at most 12 significant digits,
//! well inside the 15 an `f64` keeps exactly, so the shortest float text is the decimal itself.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{Deserializer, Unexpected, Visitor};
use serde_json::value::RawValue;

struct DecimalVisitor;

impl Visitor<'_> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number or a numeric string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
        parse_decimal(v.trim()).ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
    }
}

fn parse_decimal(text: &str) -> Option<Decimal> {
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
}

/// Decodes a [`Decimal`] from a JSON number or a numeric string. Read from JSON text (not from a
/// `serde_json::Value`), a number is parsed from its own digits, exactly, without an f64.
pub fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let raw = Box::<RawValue>::deserialize(d)?;
    decimal_of_raw(&raw)
}

/// Decodes an optional [`Decimal`] from a JSON number, a numeric string or null (see [`decimal`]).
pub fn optional_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    match Option::<Box<RawValue>>::deserialize(d)? {
        Some(raw) if raw.get() != "null" => decimal_of_raw(&raw).map(Some),
        _ => Ok(None),
    }
}

fn decimal_of_raw<E: serde::de::Error>(raw: &RawValue) -> Result<Decimal, E> {
    let text = raw.get();
    if text.starts_with('"') {
        let text: String = serde_json::from_str(text).map_err(E::custom)?;
        DecimalVisitor.visit_str(&text)
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        parse_decimal(text)
            .ok_or_else(|| E::invalid_value(Unexpected::Other(text), &DecimalVisitor))
    } else {
        Err(E::invalid_type(Unexpected::Other(text), &DecimalVisitor))
    }
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number or a numeric string")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<f64, E> {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
    }
}

/// Decodes an `f64` from a JSON number or a numeric string.
pub fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(FloatVisitor)
}

/// Decodes an optional `f64` from a JSON number, a numeric string or null.
pub fn optional_float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_option(OptionVisitor(FloatVisitor))
}

struct IntVisitor;

impl Visitor<'_> for IntVisitor {
    type Value = i32;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an integer or an integer string")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &"a 32-bit integer"))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &"a 32-bit integer"))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i32, E> {
        if v.fract() == 0.0 && v >= f64::from(i32::MIN) && v <= f64::from(i32::MAX) {
            Ok(v as i32)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i32, E> {
        v.trim()
            .parse::<i32>()
            .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
    }
}

/// Decodes an `i32` from an integer, an integral float or an integer string.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    d.deserialize_any(IntVisitor)
}

/// Decodes an optional `i32` from an integer, an integral float, an integer string or null.
pub fn optional_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    d.deserialize_option(OptionVisitor(IntVisitor))
}

/// Reads a timestamp with or without an offset (see [`crate::timestamps`]).
pub(crate) struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = NaiveDateTime;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an ISO 8601 timestamp such as 2024-05-01T12:30:00 or 2024-05-01T12:30:00Z")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NaiveDateTime, E> {
        // With an offset: stored as UTC, like every timestamp the database writes.
        if let Ok(with_offset) = DateTime::parse_from_rfc3339(v) {
            return Ok(with_offset.naive_utc());
        }
        NaiveDateTime::from_str(v).map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
    }
}

/// Decodes an optional UTC timestamp, with or without an offset, or null.
pub fn optional_timestamp<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<NaiveDateTime>, D::Error> {
    d.deserialize_option(OptionVisitor(TimestampVisitor))
}

struct OptionVisitor<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for OptionVisitor<V> {
    type Value = Option<V::Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        self.0.expecting(f)?;
        f.write_str(" or null")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self.0).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Money {
        #[serde(deserialize_with = "decimal")]
        total: Decimal,
        #[serde(default, deserialize_with = "optional_float")]
        price: Option<f64>,
        #[serde(default, deserialize_with = "optional_timestamp")]
        at: Option<NaiveDateTime>,
    }

    fn parse(json: &str) -> Result<Money, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn money_accepts_numbers_and_strings() {
        assert_eq!(
            parse(r#"{"total": 19.99}"#).unwrap().total.to_string(),
            "19.99"
        );
        assert_eq!(
            parse(r#"{"total": "19.99"}"#).unwrap().total.to_string(),
            "19.99"
        );
        assert_eq!(parse(r#"{"total": 20}"#).unwrap().total.to_string(), "20");
        // Digits an f64 does not hold are kept, so the 2-decimal rule sees them.
        assert_eq!(
            parse(r#"{"total": 1.0000000000000001}"#)
                .unwrap()
                .total
                .to_string(),
            "1.0000000000000001"
        );
        assert_eq!(parse(r#"{"total": 1e2}"#).unwrap().total.to_string(), "100");
        assert!(parse(r#"{"total": "abc"}"#).is_err());
        assert!(parse(r#"{"total": true}"#).is_err());
    }

    #[derive(Debug, Deserialize)]
    struct Ids {
        #[serde(deserialize_with = "int")]
        id: i32,
        #[serde(default, deserialize_with = "optional_int")]
        other: Option<i32>,
    }

    #[test]
    fn ids_accept_integers_integral_floats_and_strings() {
        let parse = |json: &str| serde_json::from_str::<Ids>(json);
        assert_eq!(parse(r#"{"id": 3}"#).unwrap().id, 3);
        assert_eq!(
            parse(r#"{"id": "3", "other": 4.0}"#).unwrap().other,
            Some(4)
        );
        assert_eq!(parse(r#"{"id": 1, "other": null}"#).unwrap().other, None);
        for bad in [
            r#"{"id": 1.5}"#,
            r#"{"id": "x"}"#,
            r#"{"id": 99999999999}"#,
            r#"{"id": true}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn optional_fields_accept_null_and_absence() {
        let m = parse(r#"{"total": 1, "price": null}"#).unwrap();
        assert_eq!(m.price, None);
        assert_eq!(m.at, None);
        let m =
            parse(r#"{"total": 1, "price": "29.99", "at": "2024-05-01T12:30:00+02:00"}"#).unwrap();
        assert_eq!(m.price, Some(29.99));
        assert_eq!(m.at.unwrap().to_string(), "2024-05-01 10:30:00");
        let m = parse(r#"{"total": 1, "at": "2024-05-01T12:30:00.5"}"#).unwrap();
        assert_eq!(m.at.unwrap().to_string(), "2024-05-01 12:30:00.500");
    }
}
