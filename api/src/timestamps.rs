//! Timestamps in bodies: written in RFC 3339 with their offset (`2024-05-01T12:30:00Z`, what the
//! OpenAPI `format: date-time` declares; the database keeps UTC without an offset), read with or
//! without one, and held to the range the analytics side stores: ClickHouse `DateTime64` holds
//! 1900-01-01 00:00:00 to 2299-12-31 23:59:59.999999 (UTC), so a date outside it is refused here
//! rather than stored in Postgres and left unrepresentable in the star schema.

use chrono::{NaiveDate, NaiveDateTime, SecondsFormat};
use serde::{Deserializer, Serializer};

use crate::money::TimestampVisitor;

/// The earliest instant accepted, 1900-01-01T00:00:00Z.
pub fn earliest() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1900, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date")
}

/// The latest instant accepted, 2299-12-31T23:59:59.999999Z.
pub fn latest() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2299, 12, 31)
        .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999))
        .expect("a valid date")
}

/// Whether the analytics side can store `value` (a UTC timestamp).
pub fn in_range(value: NaiveDateTime) -> bool {
    (earliest()..=latest()).contains(&value)
}

/// Writes a UTC timestamp in RFC 3339 with its `Z` offset.
pub fn serialize<S: Serializer>(value: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&value.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// Reads a timestamp with or without an offset (converted to UTC).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
    d.deserialize_str(TimestampVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct At(#[serde(with = "super")] NaiveDateTime);

    #[test]
    fn timestamps_are_written_with_their_offset_and_read_back() {
        let at: At = serde_json::from_str(r#""2024-05-01T12:30:00.5+02:00""#).unwrap();
        let written = serde_json::to_string(&at).unwrap();
        assert_eq!(written, r#""2024-05-01T10:30:00.500Z""#);
        let again: At = serde_json::from_str(&written).unwrap();
        assert_eq!(again.0, at.0);
    }

    #[test]
    fn the_range_is_clickhouse_datetime64s() {
        assert!(in_range(earliest()) && in_range(latest()));
        assert!(!in_range(earliest() - chrono::Duration::microseconds(1)));
        assert!(!in_range(latest() + chrono::Duration::microseconds(1)));
    }
}
