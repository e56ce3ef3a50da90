//! IOC lists: list and import.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, State};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::web::AppState;
use crate::web::api::ApiResult;
use crate::web::auth::{Principal, TenantCtx};

/// One indicator of the tenant's list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Indicator {
    pub kind: String,
    pub value: String,
    pub source: String,
    pub description: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub created_by: String,
}

/// The tenant's indicators (the first 10,000).
pub async fn list_iocs(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v: Vec<Indicator> = vigil_orchestrator::pipeline::iocs::list(&tx, 10_000)
        .await?
        .into_iter()
        .map(|i| Indicator {
            kind: i.kind,
            value: i.value,
            source: i.source,
            description: i.description,
            created_at: i.created_at,
            created_by: i.created_by,
        })
        .collect();
    tx.commit().await?;
    Ok(Json(json!({"total": v.len(), "items": v})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct IocImport {
    format: String,
    content: String,
}

/// Imports indicators (CSV or a STIX 2.1 bundle), all or nothing.
pub async fn import_iocs(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<IocImport>,
) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), Some(c.0.ip().to_string()));
    let r = vigil_orchestrator::pipeline::iocs::import(&tx, s.clock.as_ref(), &actor, &b.format, &b.content)
        .await?;
    tx.commit().await?;
    Ok(Json(r).into_response())
}
