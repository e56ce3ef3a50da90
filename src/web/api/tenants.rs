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

/// A tenant, as the platform admin sees it (no content of its own).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub id: uuid::Uuid,
    pub name: String,
    /// `active`, or `suspended`.
    pub status: String,
    /// While a deletion is scheduled: when it is due.
    pub deletion_due_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A tenant's scheduled deletion (`due_at` null: none, after a cancel).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeletionView {
    pub tenant: uuid::Uuid,
    pub due_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn list_tenants(State(s): State<AppState>) -> ApiResult {
    let items = identity::list_tenants(s.store.conn()).await?;
    let items: Vec<_> = items
        .into_iter()
        .map(|t| TenantView {
            id: t.id.0,
            name: t.name,
            status: t.status,
            deletion_due_at: t.deletion_due_at,
        })
        .collect();
    Ok(Json(json!({"total": items.len(), "items": items})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
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
        Json(TenantView {
            id: t.id.0,
            name: t.name,
            status: t.status,
            deletion_due_at: None,
        }),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deletion {
    /// The grace period during which it can be cancelled (1–90, default 7).
    grace_days: Option<i64>,
}

/// `POST /api/v1/tenants/{id}/deletion`: schedules the tenant's deletion.
pub async fn schedule_deletion(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    c: ConnectInfo<SocketAddr>,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Option<Json<Deletion>>,
) -> ApiResult {
    let id: vigil_orchestrator::TenantId = id.parse()?;
    let grace = body.and_then(|Json(b)| b.grace_days).unwrap_or(7);
    let tx = s.store.begin_platform().await?;
    let due = identity::deletion::schedule(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(Role::PlatformAdmin), ip(&c)),
        id,
        chrono::Duration::try_days(grace).ok_or_else(|| {
            vigil_orchestrator::Error::Invalid("grace_days is out of range (1 to 90)".into())
        })?,
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeletionView {
            tenant: id.0,
            due_at: Some(due),
        }),
    )
        .into_response())
}

/// `DELETE /api/v1/tenants/{id}/deletion`: cancels it (in the grace period).
pub async fn cancel_deletion(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    c: ConnectInfo<SocketAddr>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult {
    let id: vigil_orchestrator::TenantId = id.parse()?;
    let tx = s.store.begin_platform().await?;
    identity::deletion::cancel(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(Role::PlatformAdmin), ip(&c)),
        id,
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::OK,
        Json(DeletionView {
            tenant: id.0,
            due_at: None,
        }),
    )
        .into_response())
}
