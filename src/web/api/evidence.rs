//! Evidence items the investigation collected through integrations' read
//! scopes: one at a time, so a draft's citation can be opened.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use vigil_orchestrator::pipeline::evidence;

use crate::web::auth::TenantCtx;
use crate::web::{ApiError, AppState};

/// `GET /api/v1/evidence/{id}`: the item, the vendor's answer verbatim.
pub async fn get(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = crate::web::api::id(&id, "evidence")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let item = evidence::get(&tx, id).await?;
    tx.commit().await?;
    Ok(Json(item).into_response())
}
