//! The ClickHouse column types a star schema may use: parsing the `type` strings of the spec into a
//! closed enum and printing them back in canonical form.
//!
//! The list is deliberately closed: every type here has a known conversion from a Postgres value carried
//! in a CDC payload, and its text is safe to splice into DDL (it is printed from the enum, never copied
//! from user input).
//!
//! Over 400 lines only with its tests of every type's parsing and range.

use std::fmt;
use std::str::FromStr;

/// Largest precision of a ClickHouse `Decimal`.
pub const MAX_DECIMAL_PRECISION: u8 = 76;
/// Largest precision (digits after the second) of a ClickHouse `DateTime64`.
pub const MAX_DATETIME64_PRECISION: u8 = 9;

/// A supported ClickHouse column type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `UInt8`.
    UInt8,
    /// `UInt16`.
    UInt16,
    /// `UInt32`.
    UInt32,
    /// `UInt64`.
    UInt64,
    /// `Int8`.
    Int8,
    /// `Int16`.
    Int16,
    /// `Int32`.
    Int32,
    /// `Int64`.
    Int64,
    /// `Float32`.
    Float32,
    /// `Float64`.
    Float64,
    /// `Decimal(P, S)`: `precision` total digits (1..=76), `scale` of them after the point (0..=P).
    Decimal {
        /// Total number of digits.
        precision: u8,
        /// Digits after the decimal point.
        scale: u8,
    },
    /// `String`.
    String,
    /// `LowCardinality(String)`, or `LowCardinality(Nullable(String))` when `nullable`.
    LowCardinalityString { nullable: bool },
    /// `Bool`.
    Bool,
    /// `Date`.
    Date,
    /// `Date32`.
    Date32,
    /// `DateTime` (seconds).
    DateTime,
    /// `DateTime64(P)`: `P` digits after the second (0..=9).
    DateTime64(u8),
    /// `UUID`.
    Uuid,
    /// `Nullable(T)` of a type that is neither nullable nor low-cardinality.
    Nullable(Box<ColumnType>),
}

/// Why a type string is not a supported ClickHouse type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColumnTypeError {
    /// Not a type name of the supported list.
    #[error(
        "unsupported ClickHouse type {0:?}: expected one of UInt8..UInt64, Int8..Int64, Float32, Float64, \
         Decimal(P, S), String, LowCardinality(String), Bool, Date, Date32, DateTime, DateTime64(P), UUID, \
         or Nullable(T) of one of them"
    )]
    Unsupported(String),
    /// `Decimal` with precision or scale out of range.
    #[error("invalid {0:?}: Decimal(P, S) needs 1 <= P <= 76 and 0 <= S <= P")]
    DecimalRange(String),
    /// `DateTime64` with precision out of range.
    #[error("invalid {0:?}: DateTime64(P) needs 0 <= P <= 9")]
    DateTime64Range(String),
    /// `Nullable` around a type that cannot be inside it.
    #[error(
        "invalid {0:?}: Nullable cannot wrap Nullable or LowCardinality (write LowCardinality(Nullable(String)))"
    )]
    BadNullable(String),
}

/// Days since 1970-01-01 a `Date` holds: 1970-01-01 ..= 2149-06-06.
pub const DATE_DAYS: ValueRange = ValueRange::new(0, 65_535);
/// Days since 1970-01-01 a `Date32` holds: 1900-01-01 ..= 2299-12-31.
pub const DATE32_DAYS: ValueRange = ValueRange::new(-25_567, 120_529);
/// Seconds since the epoch a `DateTime` holds: 1970-01-01 00:00:00 ..= 2106-02-07 06:28:15.
pub const DATETIME_SECONDS: ValueRange = ValueRange::new(0, u32::MAX as i128);
/// Whole seconds since the epoch a `DateTime64` holds: 1900-01-01 00:00:00 ..= 2299-12-31 23:59:59
/// (and its fraction). With precision 9 the Int64 of nanoseconds ends earlier, at
/// 2262-04-11 23:47:16.854775807.
pub const DATETIME64_SECONDS: ValueRange = ValueRange::new(-2_208_988_800, 10_413_791_999);

/// The values a type holds, `min ..= max`, in the unit ClickHouse stores it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueRange {
    pub min: i128,
    pub max: i128,
}

impl ValueRange {
    const fn new(min: i128, max: i128) -> Self {
        ValueRange { min, max }
    }

    /// Whether `value` is in the range.
    pub fn contains(&self, value: i128) -> bool {
        (self.min..=self.max).contains(&value)
    }

    /// `value` moved into the range: the nearest bound when outside.
    pub fn clamp(&self, value: i128) -> i128 {
        value.clamp(self.min, self.max)
    }
}

impl ColumnType {
    /// The range of a type with one, in the unit ClickHouse stores it in: integers as themselves,
    /// `Decimal(P, S)` as the value times 10^S (±(10^P − 1), at most what 128 bits hold), `Date` and
    /// `Date32` in days since 1970-01-01, `DateTime` in seconds and `DateTime64(P)` in ticks of
    /// 10^-P seconds since the epoch. `None` for types without a range (floats, strings, `Bool`,
    /// `UUID`); a `Nullable` type has the range of the type it wraps.
    pub fn range(&self) -> Option<ValueRange> {
        let integer = |min: i128, max: i128| Some(ValueRange::new(min, max));
        match self.base() {
            ColumnType::UInt8 => integer(0, u8::MAX.into()),
            ColumnType::UInt16 => integer(0, u16::MAX.into()),
            ColumnType::UInt32 => integer(0, u32::MAX.into()),
            ColumnType::UInt64 => integer(0, u64::MAX.into()),
            ColumnType::Int8 => integer(i8::MIN.into(), i8::MAX.into()),
            ColumnType::Int16 => integer(i16::MIN.into(), i16::MAX.into()),
            ColumnType::Int32 => integer(i32::MIN.into(), i32::MAX.into()),
            ColumnType::Int64 => integer(i64::MIN.into(), i64::MAX.into()),
            ColumnType::Decimal { precision, .. } => {
                let max = 10_i128
                    .checked_pow(u32::from(*precision))
                    .map_or(i128::MAX, |limit| limit - 1);
                integer(-max, max)
            }
            ColumnType::Date => Some(DATE_DAYS),
            ColumnType::Date32 => Some(DATE32_DAYS),
            ColumnType::DateTime => Some(DATETIME_SECONDS),
            ColumnType::DateTime64(precision) => {
                let unit = 10_i128.pow(u32::from(*precision));
                let min = DATETIME64_SECONDS.min * unit;
                let max = DATETIME64_SECONDS.max * unit + unit - 1;
                integer(min.max(i64::MIN.into()), max.min(i64::MAX.into()))
            }
            ColumnType::Float32
            | ColumnType::Float64
            | ColumnType::String
            | ColumnType::LowCardinalityString { .. }
            | ColumnType::Bool
            | ColumnType::Uuid
            | ColumnType::Nullable(_) => None,
        }
    }

    /// Whether an existing column whose type ClickHouse prints as `printed` (`system.columns.type`)
    /// has this type: the one rule for telling a table that drifted from the spec.
    pub fn is_printed_as(&self, printed: &str) -> bool {
        printed.parse::<ColumnType>().is_ok_and(|t| t == *self)
    }

    /// Whether the type is one of the integer widths (`UInt8`..`UInt64`, `Int8`..`Int64`).
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            ColumnType::UInt8
                | ColumnType::UInt16
                | ColumnType::UInt32
                | ColumnType::UInt64
                | ColumnType::Int8
                | ColumnType::Int16
                | ColumnType::Int32
                | ColumnType::Int64
        )
    }

    /// Whether a table may be keyed by the type: its values are compared with literals in `IN` lists,
    /// so integers, `String` (low-cardinality too) and `UUID`, never nullable.
    pub fn is_key(&self) -> bool {
        self.is_integer()
            || matches!(
                self,
                ColumnType::String
                    | ColumnType::LowCardinalityString { nullable: false }
                    | ColumnType::Uuid
            )
    }

    /// Whether the column accepts NULL.
    pub fn is_nullable(&self) -> bool {
        matches!(
            self,
            ColumnType::Nullable(_) | ColumnType::LowCardinalityString { nullable: true }
        )
    }

    /// The type without its `Nullable` wrapper (low-cardinality strings become `String`).
    pub fn base(&self) -> &ColumnType {
        match self {
            ColumnType::Nullable(inner) => inner,
            ColumnType::LowCardinalityString { .. } => &ColumnType::String,
            other => other,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::UInt8 => f.write_str("UInt8"),
            ColumnType::UInt16 => f.write_str("UInt16"),
            ColumnType::UInt32 => f.write_str("UInt32"),
            ColumnType::UInt64 => f.write_str("UInt64"),
            ColumnType::Int8 => f.write_str("Int8"),
            ColumnType::Int16 => f.write_str("Int16"),
            ColumnType::Int32 => f.write_str("Int32"),
            ColumnType::Int64 => f.write_str("Int64"),
            ColumnType::Float32 => f.write_str("Float32"),
            ColumnType::Float64 => f.write_str("Float64"),
            ColumnType::Decimal { precision, scale } => write!(f, "Decimal({precision}, {scale})"),
            ColumnType::String => f.write_str("String"),
            ColumnType::LowCardinalityString { nullable: false } => {
                f.write_str("LowCardinality(String)")
            }
            ColumnType::LowCardinalityString { nullable: true } => {
                f.write_str("LowCardinality(Nullable(String))")
            }
            ColumnType::Bool => f.write_str("Bool"),
            ColumnType::Date => f.write_str("Date"),
            ColumnType::Date32 => f.write_str("Date32"),
            ColumnType::DateTime => f.write_str("DateTime"),
            ColumnType::DateTime64(precision) => write!(f, "DateTime64({precision})"),
            ColumnType::Uuid => f.write_str("UUID"),
            ColumnType::Nullable(inner) => write!(f, "Nullable({inner})"),
        }
    }
}

/// `Name(args)` split into the name and the text between the outer parentheses.
fn split_call(text: &str) -> Option<(&str, &str)> {
    let open = text.find('(')?;
    let args = text[open + 1..].strip_suffix(')')?;
    Some((&text[..open], args))
}

/// A small unsigned number, digits only (no sign, no spaces inside).
fn small_number(text: &str) -> Option<u8> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl FromStr for ColumnType {
    type Err = ColumnTypeError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let text = raw.trim();
        let unsupported = || ColumnTypeError::Unsupported(raw.to_owned());
        let simple = match text {
            "UInt8" => Some(ColumnType::UInt8),
            "UInt16" => Some(ColumnType::UInt16),
            "UInt32" => Some(ColumnType::UInt32),
            "UInt64" => Some(ColumnType::UInt64),
            "Int8" => Some(ColumnType::Int8),
            "Int16" => Some(ColumnType::Int16),
            "Int32" => Some(ColumnType::Int32),
            "Int64" => Some(ColumnType::Int64),
            "Float32" => Some(ColumnType::Float32),
            "Float64" => Some(ColumnType::Float64),
            "String" => Some(ColumnType::String),
            "Bool" => Some(ColumnType::Bool),
            "Date" => Some(ColumnType::Date),
            "Date32" => Some(ColumnType::Date32),
            "DateTime" => Some(ColumnType::DateTime),
            "UUID" => Some(ColumnType::Uuid),
            _ => None,
        };
        if let Some(simple) = simple {
            return Ok(simple);
        }
        let (name, args) = split_call(text).ok_or_else(unsupported)?;
        match name {
            "Decimal" => {
                let (precision, scale) = args.split_once(',').ok_or_else(unsupported)?;
                let range = || ColumnTypeError::DecimalRange(raw.to_owned());
                let precision = small_number(precision).ok_or_else(range)?;
                let scale = small_number(scale).ok_or_else(range)?;
                if !(1..=MAX_DECIMAL_PRECISION).contains(&precision) || scale > precision {
                    return Err(range());
                }
                Ok(ColumnType::Decimal { precision, scale })
            }
            "DateTime64" => {
                let range = || ColumnTypeError::DateTime64Range(raw.to_owned());
                let precision = small_number(args).ok_or_else(range)?;
                if precision > MAX_DATETIME64_PRECISION {
                    return Err(range());
                }
                Ok(ColumnType::DateTime64(precision))
            }
            "LowCardinality" => match args.trim().parse::<ColumnType>() {
                Ok(ColumnType::String) => Ok(ColumnType::LowCardinalityString { nullable: false }),
                Ok(ColumnType::Nullable(inner)) if *inner == ColumnType::String => {
                    Ok(ColumnType::LowCardinalityString { nullable: true })
                }
                _ => Err(unsupported()),
            },
            "Nullable" => {
                let inner: ColumnType = args.parse().map_err(|_| unsupported())?;
                if matches!(
                    inner,
                    ColumnType::Nullable(_) | ColumnType::LowCardinalityString { .. }
                ) {
                    return Err(ColumnTypeError::BadNullable(raw.to_owned()));
                }
                Ok(ColumnType::Nullable(Box::new(inner)))
            }
            _ => Err(unsupported()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_type_round_trips_in_canonical_form() {
        for &text in crate::test_fixtures::EVERY_SUPPORTED_TYPE {
            let parsed: ColumnType = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn spacing_is_normalised() {
        let parsed: ColumnType = " Decimal( 12 ,2 ) ".parse().unwrap();
        assert!("Decimal (12, 2)".parse::<ColumnType>().is_err());
        assert_eq!(parsed.to_string(), "Decimal(12, 2)");
        let parsed: ColumnType = "Nullable( UInt64 )".parse().unwrap();
        assert_eq!(parsed, ColumnType::Nullable(Box::new(ColumnType::UInt64)));
    }

    #[test]
    fn decimal_bounds_are_enforced() {
        for bad in [
            "Decimal(0, 0)",
            "Decimal(77, 2)",
            "Decimal(5, 6)",
            "Decimal(-1, 0)",
            "Decimal(1e1, 0)",
            "Decimal(12)",
        ] {
            let err = bad.parse::<ColumnType>().unwrap_err();
            assert!(
                matches!(
                    err,
                    ColumnTypeError::DecimalRange(_) | ColumnTypeError::Unsupported(_)
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn datetime64_precision_is_bounded() {
        assert_eq!(
            "DateTime64(10)".parse::<ColumnType>(),
            Err(ColumnTypeError::DateTime64Range("DateTime64(10)".into()))
        );
        assert!("DateTime64(3, 'UTC')".parse::<ColumnType>().is_err());
    }

    #[test]
    fn unknown_and_hostile_types_are_rejected() {
        for bad in [
            "",
            "Varchar",
            "string",
            "Array(String)",
            "Map(String, String)",
            "String) ENGINE = Memory; DROP TABLE x; --",
            "Nullable(Nullable(String))",
            "Nullable(LowCardinality(String))",
            "LowCardinality(UInt64)",
            "UInt64 DEFAULT 1",
        ] {
            assert!(
                bad.parse::<ColumnType>().is_err(),
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn ranges_are_the_types_bounds_in_their_storage_unit() {
        let range = |text: &str| text.parse::<ColumnType>().unwrap().range();
        assert_eq!(range("UInt8"), Some(ValueRange::new(0, 255)));
        assert_eq!(
            range("Nullable(Int16)"),
            Some(ValueRange::new(-32_768, 32_767))
        );
        assert_eq!(
            range("Decimal(5, 2)"),
            Some(ValueRange::new(-99_999, 99_999))
        );
        assert_eq!(range("Decimal(76, 0)").unwrap().max, i128::MAX);
        assert_eq!(range("Date32"), Some(DATE32_DAYS));
        let ticks = range("DateTime64(3)").unwrap();
        assert_eq!(ticks.min, -2_208_988_800_000);
        assert_eq!(ticks.max, 10_413_791_999_999);
        // Precision 9 ends where Int64 nanoseconds end (2262-04-11).
        assert_eq!(range("DateTime64(9)").unwrap().max, i128::from(i64::MAX));
        assert_eq!(range("Float64"), None);
        assert_eq!(range("String"), None);
        assert_eq!(ValueRange::new(0, 9).clamp(12), 9);
        assert_eq!(ValueRange::new(0, 9).clamp(-3), 0);
    }

    #[test]
    fn nullability_and_base_type() {
        let t: ColumnType = "Nullable(UInt32)".parse().unwrap();
        assert!(t.is_nullable());
        assert_eq!(t.base(), &ColumnType::UInt32);
        let t: ColumnType = "LowCardinality(String)".parse().unwrap();
        assert!(!t.is_nullable());
        assert_eq!(t.base(), &ColumnType::String);
    }
}
