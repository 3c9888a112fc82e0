//! The one error type of every handler and extractor, and its HTTP mapping.
//!
//! Every error answers the reference's envelope,
//! `{"success": false, "error": {"message", "code"}, "message", "details": [{"field", "message"}]}`
//! (the test client reads `error.message`; `details` is empty unless fields are named). Database
//! constraint violations become 4xx answers naming the field, and a 500 never shows internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// One bad input field: its JSON path (`email`, `items[1].quantity`, `id`, `limit`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The JSON path of the field, or `body` when the body as a whole is unreadable.
    pub field: String,
    /// What is wrong with it, in lowercase.
    pub message: String,
}

impl FieldError {
    /// A field error from anything string-like.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything a request can fail with. Each variant documents the status it answers.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 422 Unprocessable Entity: the body, a path parameter or a query parameter is missing,
    /// mistyped or out of range; `details` names each bad field.
    #[error("validation failed: {}", describe(.0))]
    Validation(Vec<FieldError>),
    /// 404 Not Found: no row of this resource has this id.
    #[error("{resource} {id} not found")]
    NotFound {
        /// The resource's singular name (`customer`, `order item`...).
        resource: &'static str,
        /// The id that was asked for.
        id: i32,
    },
    /// 404 Not Found: no route matches the path.
    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },
    /// 405 Method Not Allowed: the path exists but not with this method.
    #[error("method {method} not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// 400 Bad Request: the request refers to a row it needs and that does not exist (an order's
    /// customer), as the reference answers.
    #[error("{message}")]
    BadReference {
        /// What is missing.
        message: String,
        /// The field holding the dangling reference.
        details: Vec<FieldError>,
    },
    /// 409 Conflict: a unique value already exists (a customer's email) or a foreign key is
    /// violated (an order item's order or product does not exist; a product still has items).
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// The fields involved, when known.
        details: Vec<FieldError>,
    },
    /// 413 Payload Too Large: the body exceeds the server's limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 408 Request Timeout: the request took longer than the configured request timeout.
    #[error("request timed out")]
    Timeout,
    /// 503 Service Unavailable: no database connection could be had in time.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// 404 Not Found: the star-schema view (`/api/star/{table}`) is not configured.
    #[error(
        "the star-schema view is not configured: start the api with --clickhouse-url \
         (CLICKHOUSE_URL) and --clickhouse-database (CLICKHOUSE_DATABASE)"
    )]
    StarNotConfigured,
    /// 404 Not Found when the star table does not exist in ClickHouse (`missing`), 503 Service
    /// Unavailable when ClickHouse did not answer or failed.
    #[error("{message}")]
    Star {
        /// The table or its database does not exist.
        missing: bool,
        /// What happened, for the client.
        message: String,
    },
    /// 500 Internal Server Error: anything else. Logged with its cause; the client sees a generic
    /// message only.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

fn describe(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The error body, as documented in the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// The error, as the test client reads it.
    pub error: ErrorInfo,
    /// The same message as `error.message` (the reference put it at the top level).
    pub message: String,
    /// One entry per bad field; empty when no field is to blame.
    pub details: Vec<FieldError>,
}

/// The `error` object of an error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorInfo {
    /// A human-readable message.
    pub message: String,
    /// A stable machine-readable code: `VALIDATION_ERROR`, `NOT_FOUND`,
    /// `METHOD_NOT_ALLOWED`, `BAD_REQUEST`, `CONFLICT`,
    /// `PAYLOAD_TOO_LARGE`, `TIMEOUT`, `UNAVAILABLE` or `INTERNAL_ERROR`.
    pub code: String,
}

impl ApiError {
    /// The HTTP status this error answers.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound { .. }
            | Self::NoRoute { .. }
            | Self::StarNotConfigured
            | Self::Star { missing: true, .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadReference { .. } => StatusCode::BAD_REQUEST,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable(_) | Self::Star { missing: false, .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code of the envelope's `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "VALIDATION_ERROR",
            Self::NotFound { .. }
            | Self::NoRoute { .. }
            | Self::StarNotConfigured
            | Self::Star { missing: true, .. } => "NOT_FOUND",
            Self::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            Self::BadReference { .. } => "BAD_REQUEST",
            Self::Conflict { .. } => "CONFLICT",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::Timeout => "TIMEOUT",
            Self::Unavailable(_) | Self::Star { missing: false, .. } => "UNAVAILABLE",
            Self::Database(_) => "INTERNAL_ERROR",
        }
    }

    /// A 422 for one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    fn into_body(self) -> ErrorBody {
        let message = match &self {
            Self::Validation(_) => "validation error".to_owned(),
            // NB: the cause is logged by `into_response`, never sent.
            Self::Database(_) => "internal server error".to_owned(),
            other => other.to_string(),
        };
        let code = self.code().to_owned();
        let details = match self {
            Self::Validation(details)
            | Self::BadReference { details, .. }
            | Self::Conflict { details, .. } => details,
            _ => Vec::new(),
        };
        ErrorBody {
            success: false,
            error: ErrorInfo {
                message: message.clone(),
                code,
            },
            message,
            details,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Database(cause) => {
                tracing::error!(error = %cause, "request failed on the database")
            }
            Self::Unavailable(cause) => tracing::warn!(error = %cause, "database unavailable"),
            Self::Star { missing: false, .. } => tracing::warn!(error = %self, "star view failed"),
            _ => tracing::debug!(error = %self, "request rejected"),
        }
        (status, Json(self.into_body())).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if matches!(err, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) {
            return Self::Unavailable(err);
        }
        let Some(db) = err.as_database_error() else {
            return Self::Database(err);
        };
        let constraint = db.constraint().unwrap_or_default();
        let field = field_of_constraint(constraint);
        match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => Self::Conflict {
                message: format!("a row with this {field} already exists"),
                details: vec![FieldError::new(field, "already exists")],
            },
            sqlx::error::ErrorKind::ForeignKeyViolation => foreign_key_violation(constraint, field),
            sqlx::error::ErrorKind::CheckViolation | sqlx::error::ErrorKind::NotNullViolation => {
                Self::invalid_field(field, format!("violates database constraint {constraint}"))
            }
            _ => Self::Database(err),
        }
    }
}

/// The API field a constraint is about. Constraint names follow Postgres' own scheme,
/// `<table>_<column>_<key|fkey|check>` (see the migrations), so the column is the middle part.
fn field_of_constraint(constraint: &str) -> &str {
    let without_suffix = constraint
        .rsplit_once('_')
        .map_or(constraint, |(head, _suffix)| head);
    without_suffix
        .split_once('_')
        .map_or(without_suffix, |(_table, column)| column)
}

fn foreign_key_violation(constraint: &str, field: &str) -> ApiError {
    let referenced = match field {
        "customerId" => "customer",
        "orderId" => "order",
        "productId" => "product",
        _ => "referenced row",
    };
    let details = vec![FieldError::new(
        field,
        format!("{referenced} does not exist"),
    )];
    // NB: the reference answers 400 for an order whose customer does not exist; every other
    // foreign key violation is a 409.
    if constraint == "order_customerId_fkey" {
        ApiError::BadReference {
            message: format!("{referenced} does not exist"),
            details,
        }
    } else {
        ApiError::Conflict {
            message: format!("{referenced} does not exist"),
            details,
        }
    }
}

/// Whether `err` is a foreign key violation (a delete blocked by rows still referencing the row).
pub fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| matches!(db.kind(), sqlx::error::ErrorKind::ForeignKeyViolation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_map_to_fields() {
        assert_eq!(field_of_constraint("customer_email_key"), "email");
        assert_eq!(field_of_constraint("order_customerId_fkey"), "customerId");
        assert_eq!(field_of_constraint("orderitem_productId_fkey"), "productId");
        assert_eq!(field_of_constraint("order_total_check"), "total");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let body = ApiError::Database(sqlx::Error::Protocol("secret detail".into())).into_body();
        assert_eq!(body.error.message, "internal server error");
        assert_eq!(body.error.code, "INTERNAL_ERROR");
        assert!(!serde_json::to_string(&body).unwrap().contains("secret"));
    }
}
