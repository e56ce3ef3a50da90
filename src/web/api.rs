//! JSON API handlers under `/api/v1`. Lists answer `{"items", "total"}`
//! with `limit`/`offset`; created resources answer 201 with their `id`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use vigil_orchestrator::identity::{self, LinkPurpose, PASSWORD_LINK_TTL};
use vigil_orchestrator::ids::Email;
use vigil_orchestrator::{Role, audit, auth};

use super::auth::{Principal, TenantCtx};
use super::{ApiError, AppState};

pub(super) type ApiResult = Result<Response, ApiError>;

/// `?limit=&offset=` of every list.
#[derive(Debug, Deserialize)]
pub struct Page {
    limit: Option<u64>,
    offset: Option<u64>,
}

/// The largest `limit` of a list.
pub const MAX_LIMIT: u64 = 500;
/// The largest `offset` (2^53: exact in every JSON number reader).
pub const MAX_OFFSET: u64 = 1 << 53;

/// Checks a list's `limit` (default 50) and `offset` (default 0).
pub(super) fn page(limit: Option<u64>, offset: Option<u64>) -> Result<(u64, u64), ApiError> {
    let limit = limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    let offset = offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("offset must be 0 to {MAX_OFFSET}"),
        ));
    }
    Ok((limit, offset))
}

impl Page {
    fn checked(&self) -> Result<(u64, u64), ApiError> {
        page(self.limit, self.offset)
    }
}

pub(super) fn ip(c: &ConnectInfo<SocketAddr>) -> Option<String> {
    Some(c.0.ip().to_string())
}

pub(super) fn parse_role(s: &str) -> Result<Role, ApiError> {
    s.parse::<Role>().map_err(ApiError::from)
}

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
    let m = identity::add_member(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), ip(&c)),
        &email,
        role,
    )
    .await?;
    let token = identity::issue_link(
        &*tx,
        s.clock.as_ref(),
        LinkPurpose::SetPassword,
        Some(m.user_id),
        PASSWORD_LINK_TTL,
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

pub async fn list_tokens(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let items = identity::list_api_tokens(&tx).await?;
    tx.commit().await?;
    Ok(Json(json!({"total": items.len(), "items": items})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    role: String,
}

pub async fn issue_token(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(body): Json<NewToken>,
) -> ApiResult {
    let role = parse_role(&body.role)?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let (id, token) = identity::issue_api_token(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), ip(&c)),
        &body.name,
        role,
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "name": body.name, "role": role, "token": token})),
    )
        .into_response())
}

pub async fn revoke_token(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> ApiResult {
    // A malformed id is as unknown as another tenant's.
    let id = Uuid::try_parse(&id).map_err(|_| ApiError::not_found("api token not found"))?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    identity::revoke_api_token(&tx, s.clock.as_ref(), &p.actor(Some(ctx.role), ip(&c)), id).await?;
    tx.commit().await?;
    // This node at once; the others on the database's notification.
    s.auth_cache.invalidate();
    Ok(StatusCode::NO_CONTENT.into_response())
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    idle_minutes: i64,
    absolute_minutes: i64,
}

fn session_settings_json(l: &auth::SessionLimits) -> serde_json::Value {
    json!({"idle_minutes": l.idle.num_minutes(), "absolute_minutes": l.absolute.num_minutes(), "custom": l.custom})
}

pub async fn get_session_settings(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
) -> ApiResult {
    let limits = auth::session_limits(s.store.conn(), Some(ctx.tenant)).await?;
    Ok(Json(session_settings_json(&limits)).into_response())
}

pub async fn put_session_settings(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<SessionSettings>,
) -> ApiResult {
    let limits = auth::SessionLimits::new(
        chrono::Duration::minutes(b.idle_minutes),
        chrono::Duration::minutes(b.absolute_minutes),
    )?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    auth::set_session_limits(&tx, s.clock.as_ref(), &p.actor(Some(ctx.role), ip(&c)), limits).await?;
    tx.commit().await?;
    s.auth_cache.invalidate();
    Ok(Json(session_settings_json(&limits)).into_response())
}
