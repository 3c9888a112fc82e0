//! The success envelope of the reference API: `{"success": true, "data": ..., "message": "..."}`,
//! plus the 201 and 204 answers of creates and deletes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A successful answer: the data and a human-readable message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiResponse<T> {
    /// Always `true`.
    pub success: bool,
    /// The resource, or the list of resources.
    pub data: T,
    /// What was done, e.g. `Customer created successfully`.
    pub message: String,
}

impl<T> ApiResponse<T> {
    /// A 200 envelope around `data`.
    pub fn ok(data: T, message: impl Into<String>) -> Self {
        Self {
            success: true,
            data,
            message: message.into(),
        }
    }
}

impl<T: Serialize> IntoResponse for ApiResponse<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// A 201 Created envelope, the answer of every POST.
#[derive(Debug)]
pub struct Created<T>(pub ApiResponse<T>);

impl<T> Created<T> {
    /// A 201 envelope around `data`.
    pub fn new(data: T, message: impl Into<String>) -> Self {
        Self(ApiResponse::ok(data, message))
    }
}

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, Json(self.0)).into_response()
    }
}

/// The answer of every DELETE: 204 with no body.
#[derive(Debug, Clone, Copy)]
pub struct Deleted;

impl IntoResponse for Deleted {
    fn into_response(self) -> Response {
        StatusCode::NO_CONTENT.into_response()
    }
}
