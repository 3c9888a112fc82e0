//! `limit`/`offset` pagination of every list endpoint: lists are ordered by `id` (stable across
//! pages) and never load more than [`MAX_LIMIT`] rows.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, FieldError};
use crate::extract::query_pairs;

/// Rows answered when the request gives no `limit`.
pub const DEFAULT_LIMIT: i64 = 100;
/// The largest `limit` accepted.
pub const MAX_LIMIT: i64 = 1000;

/// A page of a list, ordered by ascending `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct Pagination {
    /// How many rows to answer, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: i64,
    /// How many rows to skip, in ascending `id` order (default 0).
    #[param(minimum = 0, default = 0)]
    pub offset: i64,
}

impl Default for Pagination {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

impl Pagination {
    /// Reads `limit` and `offset` from a query string's pairs; other parameters are ignored.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ApiError> {
        let mut page = Self::default();
        let mut errors = Vec::new();
        for (name, value) in pairs {
            match name {
                "limit" => match value.parse::<i64>() {
                    Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => page.limit = limit,
                    _ => errors.push(FieldError::new(
                        "limit",
                        format!("must be an integer from 1 to {MAX_LIMIT}"),
                    )),
                },
                "offset" => match value.parse::<i64>() {
                    Ok(offset) if offset >= 0 => page.offset = offset,
                    _ => errors.push(FieldError::new("offset", "must be an integer >= 0")),
                },
                _ => {}
            }
        }
        if errors.is_empty() {
            Ok(page)
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Pagination {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs = query_pairs(parts)?;
        Self::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(Pagination::from_pairs([]).unwrap(), Pagination::default());
        assert_eq!(
            Pagination::from_pairs([("limit", "50"), ("offset", "10"), ("x", "y")]).unwrap(),
            Pagination {
                limit: 50,
                offset: 10
            }
        );
        assert!(Pagination::from_pairs([("limit", "1001")]).is_err());
        assert!(Pagination::from_pairs([("limit", "0")]).is_err());
        assert!(Pagination::from_pairs([("offset", "-1")]).is_err());
        match Pagination::from_pairs([("limit", "x"), ("offset", "y")]) {
            Err(ApiError::Validation(fields)) => assert_eq!(fields.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
