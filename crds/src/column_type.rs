//! The ClickHouse column types a star schema may use: parsing the `type` strings of the spec into a
//! closed enum and printing them back in canonical form.
//!
//! The list is deliberately closed: every type here has a known conversion from a Postgres value carried
//! in a CDC payload, and its text is safe to splice into DDL (it is printed from the enum, never copied
//! from user input).

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
    LowCardinalityString {
        /// Whether NULL is allowed.
        nullable: bool,
    },
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

impl ColumnType {
    /// Whether an existing column whose type ClickHouse prints as `printed` (`system.columns.type`)
    /// has this type: the one rule for telling a table that drifted from the spec.
    pub fn is_printed_as(&self, printed: &str) -> bool {
        printed.parse::<ColumnType>().is_ok_and(|t| t == *self)
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
        for text in [
            "UInt8",
            "UInt16",
            "UInt32",
            "UInt64",
            "Int8",
            "Int16",
            "Int32",
            "Int64",
            "Float32",
            "Float64",
            "Decimal(12, 2)",
            "Decimal(76, 76)",
            "Decimal(1, 0)",
            "String",
            "LowCardinality(String)",
            "LowCardinality(Nullable(String))",
            "Bool",
            "Date",
            "Date32",
            "DateTime",
            "DateTime64(6)",
            "DateTime64(0)",
            "DateTime64(9)",
            "UUID",
            "Nullable(String)",
            "Nullable(Decimal(10, 4))",
            "Nullable(DateTime64(3))",
        ] {
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
    fn nullability_and_base_type() {
        let t: ColumnType = "Nullable(UInt32)".parse().unwrap();
        assert!(t.is_nullable());
        assert_eq!(t.base(), &ColumnType::UInt32);
        let t: ColumnType = "LowCardinality(String)".parse().unwrap();
        assert!(!t.is_nullable());
        assert_eq!(t.base(), &ColumnType::String);
    }
}
