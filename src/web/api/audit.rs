//! The tenant's audit log, page by page.

use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::response::IntoResponse;
use serde_json::json;
use vigil_orchestrator::audit;

use crate::web::AppState;
use crate::web::api::{ApiResult, Page};
use crate::web::auth::TenantCtx;

pub async fn list_audit(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Query(page): Query<Page>,
) -> ApiResult {
    let (limit, offset) = page.checked()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let (items, total) = audit::list(&tx, limit, offset).await?;
    tx.commit().await?;
    Ok(Json(json!({"total": total, "items": items})).into_response())
}
