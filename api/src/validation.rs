//! Field validation: a [`Validator`] collects every bad field of a request so one 422 names them
//! all, and [`Validate`] is implemented by each request body (checked by
//! [`crate::extract::ValidJson`] before a handler sees it). Request bodies are declared with
//! [`request_body!`], which gives their text fields the OpenAPI constraints the validator checks.

use chrono::NaiveDateTime;
use rust_decimal::Decimal;

use crate::error::{ApiError, FieldError};
use crate::timestamps;

/// Declares a request body struct as written, except that a field ending in
/// `as text(min = 1, max = 255)` (or `as text(max = 255)`: no lower bound) also gets the OpenAPI
/// constraints [`Validator::text`] checks: its length bounds and the pattern refusing NUL
/// characters.
// NB: a macro, not a type: utoipa reads the constraints from attributes, and a wrapper type would
// be a schema component of its own. The bounds are `tt`s: utoipa does not read a `literal`
// fragment as a number.
macro_rules! request_body {
    (
        $(#[$struct_attr:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$field_attr:meta])*
                $field_vis:vis $field:ident: $ty:ty $(as text($(min = $min:tt,)? max = $max:tt))?
            ),* $(,)?
        }
    ) => {
        $(#[$struct_attr])*
        $vis struct $name {
            $(
                $(#[$field_attr])*
                $(#[schema($(min_length = $min,)? max_length = $max, pattern = r"^[^\u0000]*$")])?
                $field_vis $field: $ty,
            )*
        }
    };
}
pub(crate) use request_body;

/// A request body whose fields can be checked beyond their JSON types.
pub trait Validate {
    /// Records every bad field of `self` in `v`.
    fn validate(&self, v: &mut Validator);
}

/// Collects field errors; [`Validator::finish`] turns them into one 422.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

const NO_NUL: &str = "must not contain NUL characters (U+0000)";

/// Largest total the `NUMERIC(12, 2)` column holds.
const MAX_MONEY_INTEGER_DIGITS: u32 = 10;

impl Validator {
    /// An empty validator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error on `field`.
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// `value` must hold between `min` and `max` characters (not bytes, as Postgres' VARCHAR) and
    /// no NUL character (which Postgres text cannot store; the OpenAPI pattern `^[^\u0000]*$`).
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let len = value.chars().count();
        if value.contains('\0') {
            self.push(field, NO_NUL);
        } else if len < min {
            self.push(field, format!("must be at least {min} character(s) long"));
        } else if len > max {
            self.push(field, format!("must be at most {max} characters long"));
        }
    }

    /// Like [`Validator::text`] when the field is present.
    pub fn optional_text(&mut self, field: &str, value: Option<&str>, min: usize, max: usize) {
        self.optional(field, value, |v, field, value| {
            v.text(field, value, min, max)
        });
    }

    /// Runs `check` on `field` when it is present (an update's absent field keeps its value).
    pub fn optional<T>(
        &mut self,
        field: &str,
        value: Option<T>,
        check: impl FnOnce(&mut Self, &str, T),
    ) {
        if let Some(value) = value {
            check(self, field, value);
        }
    }

    /// `value` must look like an email address (`local@domain.tld`, no spaces, at most 255 chars).
    pub fn email(&mut self, field: &str, value: &str) {
        if value.chars().count() > 255 {
            self.push(field, "must be at most 255 characters long");
        } else if value.contains('\0') {
            self.push(field, NO_NUL);
        } else if !is_email(value) {
            self.push(field, "must be a valid email address");
        }
    }

    /// `value` must be a finite number greater than zero.
    pub fn positive_float(&mut self, field: &str, value: f64) {
        if !value.is_finite() || value <= 0.0 {
            self.push(field, "must be greater than 0");
        }
    }

    /// `value` must be greater than zero.
    pub fn positive_int(&mut self, field: &str, value: i32) {
        if value <= 0 {
            self.push(field, "must be greater than 0");
        }
    }

    /// `value` must be an amount of money the `NUMERIC(12, 2)` columns hold: greater than zero,
    /// at most 2 decimal places and 10 integer digits.
    pub fn money(&mut self, field: &str, value: Decimal) {
        let normalized = value.normalize();
        if normalized <= Decimal::ZERO {
            self.push(field, "must be greater than 0");
        } else if normalized.scale() > 2 {
            self.push(field, "must have at most 2 decimal places");
        } else if normalized.trunc() >= Decimal::from(10_i64.pow(MAX_MONEY_INTEGER_DIGITS)) {
            self.push(
                field,
                "must have at most 10 digits before the decimal point",
            );
        }
    }

    /// `value` must be a timestamp the analytics side stores (see [`crate::timestamps`]).
    pub fn timestamp(&mut self, field: &str, value: NaiveDateTime) {
        if !timestamps::in_range(value) {
            self.push(
                field,
                "must be from 1900-01-01T00:00:00Z to 2299-12-31T23:59:59.999999Z \
                 (the range of the analytics side's DateTime64)",
            );
        }
    }

    /// The collected errors, if any, as a 422.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// `local@domain` as the OpenAPI `format: email` means it: a dot-atom local part (RFC 5321) and a
/// domain of dot-separated hostname labels (letters, digits, inner hyphens), with at least one dot.
fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    let atom_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let label_ok = |label: &str| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(atom_char))
        && domain.contains('.')
        && domain.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn errors(check: impl FnOnce(&mut Validator)) -> Vec<String> {
        let mut v = Validator::new();
        check(&mut v);
        match v.finish() {
            Ok(()) => Vec::new(),
            Err(ApiError::Validation(fields)) => fields.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn emails() {
        for good in ["jane@example.com", "a.b+c@sub.example.org"] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "",
            "jane",
            "jane@",
            "@example.com",
            "jane@example",
            "ja ne@x.com",
            "a@b@c.com",
            "a@.com",
            "0@0.com*",
            "a..b@x.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn text_lengths_count_characters() {
        assert!(errors(|v| v.text("name", "é", 1, 1)).is_empty());
        assert_eq!(errors(|v| v.text("name", "", 1, 10)), ["name"]);
        assert_eq!(errors(|v| v.text("city", "abc", 1, 2)), ["city"]);
    }

    #[test]
    fn nul_characters_are_refused_in_text_and_emails() {
        assert_eq!(errors(|v| v.text("name", "a\0b", 1, 10)), ["name"]);
        assert_eq!(errors(|v| v.email("email", "a\0@b.co")), ["email"]);
    }

    #[test]
    fn money_bounds() {
        let ok = |s: &str| errors(|v| v.money("total", Decimal::from_str(s).unwrap())).is_empty();
        assert!(ok("0.01"));
        assert!(ok("19.990"));
        assert!(ok("9999999999.99"));
        assert!(!ok("0"));
        assert!(!ok("-1"));
        assert!(!ok("1.001"));
        assert!(!ok("10000000000"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let fields = errors(|v| {
            v.positive_float("price", 0.0);
            v.positive_int("quantity", -1);
            v.positive_float("ok", 1.5);
        });
        assert_eq!(fields, ["price", "quantity"]);
    }
}
