//! Tenants (Platform Admin).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use vigil_orchestrator::Role;
use vigil_orchestrator::identity::{self};

use crate::web::AppState;
use crate::web::api::{ApiResult, ip};
use crate::web::auth::Principal;

pub async fn list_tenants(State(s): State<AppState>) -> ApiResult {
    let items = identity::list_tenants(s.store.conn()).await?;
    let items: Vec<_> = items
        .iter()
        .map(|t| json!({"id": t.id, "name": t.name, "status": t.status}))
        .collect();
    Ok(Json(json!({"total": items.len(), "items": items})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    name: String,
}

pub async fn create_tenant(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    c: ConnectInfo<SocketAddr>,
    Json(body): Json<NewTenant>,
) -> ApiResult {
    let tx = s.store.begin_platform().await?;
    let t = identity::create_tenant(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(Role::PlatformAdmin), ip(&c)),
        &body.name,
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": t.id, "name": t.name, "status": t.status})),
    )
        .into_response())
}
