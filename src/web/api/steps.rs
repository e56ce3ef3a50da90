//! Durable steps: list (dead letters included) and retry.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use vigil_orchestrator::engine::steps;

use crate::web::AppState;
use crate::web::api::{ApiResult, id, page};
use crate::web::auth::{Principal, TenantCtx};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StepQuery {
    /// A step state (e.g. `dead`: the dead-letter queue).
    state: Option<String>,
    /// A case's id.
    #[param(format = Uuid)]
    case: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
}

/// Steps (e.g. `?state=dead`: the dead-letter queue).
pub async fn list_steps(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Query(q): Query<StepQuery>,
) -> ApiResult {
    let (limit, _) = page(q.limit, None)?;
    let state = q.state.as_deref().map(str::parse).transpose()?;
    let case = q.case.as_deref().map(|c| id(c, "case")).transpose()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let items = steps::list(&tx, case, state, limit).await?;
    tx.commit().await?;
    Ok(Json(json!({"total": items.len(), "items": items})).into_response())
}

/// An engineer retries a dead-lettered step.
pub async fn retry_step(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(step_id): Path<String>,
) -> ApiResult {
    let step_id = id(&step_id, "step")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = steps::retry_dead(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), Some(c.0.ip().to_string())),
        step_id,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(v).into_response())
}
