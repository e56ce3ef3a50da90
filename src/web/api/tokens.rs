//! API tokens: list, issue, revoke.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use vigil_orchestrator::identity::{self};

use crate::web::api::{ApiResult, ip, parse_role};
use crate::web::auth::{Principal, TenantCtx};
use crate::web::{ApiError, AppState};

pub async fn list_tokens(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let items = identity::list_api_tokens(&tx).await?;
    tx.commit().await?;
    Ok(Json(json!({"total": items.len(), "items": items})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct NewToken {
    name: String,
    role: String,
}

/// A token just issued: the token itself is shown this once.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    pub id: Uuid,
    pub name: String,
    pub role: vigil_orchestrator::Role,
    pub token: String,
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
        Json(IssuedToken {
            id,
            name: body.name,
            role,
            token,
        }),
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
