//! `/healthz`: the process answers. `/readyz`: the database answers and
//! every migration this binary knows is applied.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigil_orchestrator::store::Readiness;

use crate::web::{ApiError, AppState};

/// A health probe's answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (the process answers) or `ready` (and so does its database).
    pub status: &'static str,
}

pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

pub async fn readyz(state: State<AppState>) -> Response {
    match crate::web::store(&state).readiness().await {
        Ok(Readiness::Ready) => Json(Health { status: "ready" }).into_response(),
        Ok(Readiness::PendingMigrations(p)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("database migrations pending: {}", p.join(", ")),
        )
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "database unreachable",
            )
            .into_response()
        }
    }
}
