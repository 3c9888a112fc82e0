//! `GET /health` (liveness: answers without touching anything) and `GET /ready` (readiness: runs
//! `SELECT 1` on the database pool).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};

/// The answer of the health and readiness checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthStatus {
    /// `healthy` or `ready`.
    #[schema(example = "healthy")]
    pub status: String,
}

/// Liveness: the process answers HTTP.
#[utoipa::path(
    get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process is alive", body = HealthStatus))
)]
pub async fn health() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "healthy".to_owned(),
    })
}

/// Readiness: the database answers a query.
#[utoipa::path(
    get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = HealthStatus),
        (status = 503, description = "No database connection could be had", body = ErrorBody),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<HealthStatus>, ApiError> {
    state
        .db
        .execute(sqlx::query("SELECT 1"))
        .await
        .map_err(ApiError::Unavailable)?;
    Ok(Json(HealthStatus {
        status: "ready".to_owned(),
    }))
}
