//! The caller (`/me`), and the tenant's members: invite, role change, removal.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use vigil_orchestrator::identity;
use vigil_orchestrator::ids::Email;

use crate::web::AppState;
use crate::web::api::{ApiResult, ip, parse_role};
use crate::web::auth::{Principal, TenantCtx};

pub async fn me(Extension(p): Extension<Principal>) -> Json<serde_json::Value> {
    Json(match p {
        Principal::Anonymous => json!({"kind": "anonymous"}),
        Principal::Session { info, .. } => json!({
            "kind": "user",
            "user_id": info.user,
            "email": info.email,
            "platform_admin": info.platform_admin,
            "tenant": info.active_tenant,
            "mfa_verified": info.mfa_verified,
            "totp_enabled": info.totp_enabled,
        }),
        Principal::Token(t) => json!({
            "kind": "token",
            "token_id": t.token_id,
            "name": t.name,
            "tenant": t.tenant,
            "role": t.role,
        }),
    })
}

pub async fn list_members(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let items = identity::list_members(&tx).await?;
    tx.commit().await?;
    let items: Vec<_> = items
        .iter()
        .map(|m| json!({"user_id": m.user_id, "email": m.email, "role": m.role}))
        .collect();
    Ok(Json(json!({"total": items.len(), "items": items})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct NewMember {
    email: String,
    role: String,
}

/// Invites a member: grants the role and returns a one-time password link.
pub async fn invite_member(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(body): Json<NewMember>,
) -> ApiResult {
    let email = Email::parse(&body.email)?;
    let role = parse_role(&body.role)?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let (m, token) = identity::invite_member(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), ip(&c)),
        &email,
        role,
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": m.user_id, "email": m.email, "role": m.role,
            "password_link": format!("{}/setup/password/{token}", s.public_url),
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct RoleChange {
    role: String,
}

/// Changes a member's role (effective on their next request, every node).
pub async fn change_member_role(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(user): Path<Uuid>,
    Json(body): Json<RoleChange>,
) -> ApiResult {
    let role = parse_role(&body.role)?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let m = identity::set_member_role(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), ip(&c)),
        vigil_orchestrator::UserId(user),
        Some(role),
    )
    .await?;
    tx.commit().await?;
    s.auth_cache.invalidate();
    Ok(Json(json!({"id": user, "role": m.map(|m| m.role)})).into_response())
}

/// Removes a member from the tenant.
pub async fn remove_member(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(user): Path<Uuid>,
) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    identity::set_member_role(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), ip(&c)),
        vigil_orchestrator::UserId(user),
        None,
    )
    .await?;
    tx.commit().await?;
    s.auth_cache.invalidate();
    Ok(StatusCode::NO_CONTENT.into_response())
}
