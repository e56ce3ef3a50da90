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

pub async fn me(Extension(p): Extension<Principal>) -> Json<Me> {
    let nobody = Me {
        kind: "anonymous",
        user_id: None,
        email: None,
        platform_admin: None,
        tenant: None,
        mfa_verified: None,
        totp_enabled: None,
        token_id: None,
        name: None,
        role: None,
    };
    Json(match p {
        Principal::Anonymous => nobody,
        Principal::Session { info, .. } => Me {
            kind: "user",
            user_id: Some(info.user.0),
            email: Some(info.email),
            platform_admin: Some(info.platform_admin),
            tenant: info.active_tenant.map(|t| t.0),
            mfa_verified: Some(info.mfa_verified),
            totp_enabled: Some(info.totp_enabled),
            ..nobody
        },
        Principal::Token(t) => Me {
            kind: "token",
            token_id: Some(t.token_id),
            name: Some(t.name),
            tenant: Some(t.tenant.0),
            role: Some(t.role),
            ..nobody
        },
    })
}

/// A member of the tenant.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub user_id: Uuid,
    pub email: String,
    pub role: vigil_orchestrator::Role,
}

/// An invited member, with the one-time link that lets them set a
/// password (shown once).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Invited {
    pub id: Uuid,
    pub email: String,
    pub role: vigil_orchestrator::Role,
    pub password_link: String,
}

/// A member's role after a change (null: no longer a member).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RoleNow {
    pub id: Uuid,
    pub role: Option<vigil_orchestrator::Role>,
}

/// Who is calling: a person (`kind: user`) or an API token (`kind: token`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Me {
    /// `user`, `token` or `anonymous`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_admin: Option<bool>,
    /// The tenant acted in (null before one is chosen, and for nobody).
    pub tenant: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<vigil_orchestrator::Role>,
}

pub async fn list_members(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let items = identity::list_members(&tx).await?;
    tx.commit().await?;
    let items: Vec<MemberView> = items
        .into_iter()
        .map(|m| MemberView {
            user_id: m.user_id.0,
            email: m.email,
            role: m.role,
        })
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
        Json(Invited {
            id: m.user_id.0,
            email: m.email,
            role: m.role,
            password_link: format!("{}/setup/password/{token}", s.public_url),
        }),
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
    Ok(Json(RoleNow {
        id: user,
        role: m.map(|m| m.role),
    })
    .into_response())
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
