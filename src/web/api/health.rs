//! `/healthz`: the process answers. `/readyz`: the database answers and
//! every migration this binary knows is applied.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use vigil_orchestrator::store::Readiness;

use crate::web::{ApiError, AppState};

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(state: State<AppState>) -> Response {
    match crate::web::store(&state).readiness().await {
        Ok(Readiness::Ready) => Json(json!({"status": "ready"})).into_response(),
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
