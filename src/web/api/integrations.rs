//! Integrations API: create (read-only), list, get (with the permission
//! manifest and each scope's state), and a Tenant Admin's write-scope opt-in.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_orchestrator::{connect::integrations, secrets::vault};

use crate::web::AppState;
use crate::web::auth::{Principal, TenantCtx};

use crate::web::api::{ApiResult, id};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct NewIntegration {
    kind: String,
    name: String,
    #[serde(default = "empty")]
    config: Value,
}

fn empty() -> Value {
    json!({})
}

/// An integration just created: a webhook's signing secret is shown this
/// once (stored only encrypted).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CreatedIntegration {
    #[serde(flatten)]
    pub integration: integrations::Integration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// An integration with its credential's version and fingerprint (never the
/// secret; null when it has none).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct IntegrationDetail {
    #[serde(flatten)]
    pub integration: integrations::Integration,
    pub credential: Option<vault::CredentialInfo>,
}

/// How many credentials a data-key rotation sealed again.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Resealed {
    pub credentials_resealed: u64,
}

pub async fn create(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<NewIntegration>,
) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), Some(c.0.ip().to_string()));
    let (i, secret) = integrations::create_with_secret(
        &tx,
        s.clock.as_ref(),
        &s.master_key,
        &actor,
        &b.kind,
        &b.name,
        b.config,
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedIntegration {
            integration: i,
            signing_secret: secret,
        }),
    )
        .into_response())
}

pub async fn list(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let (items, total) = integrations::list(&tx).await?;
    tx.commit().await?;
    Ok(Json(json!({"items": items, "total": total})).into_response())
}

pub async fn get(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(i): Path<String>,
) -> ApiResult {
    let i = id(&i, "integration")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = integrations::get(&tx, i).await?;
    let cred = vault::current(&tx, i).await?;
    tx.commit().await?;
    Ok(Json(IntegrationDetail {
        integration: v,
        credential: cred,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct ScopeChange {
    enabled: bool,
}

pub async fn set_scope(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path((i, scope)): Path<(String, String)>,
    Json(b): Json<ScopeChange>,
) -> ApiResult {
    let i = id(&i, "integration")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), Some(c.0.ip().to_string()));
    let v = integrations::set_scope(&tx, s.clock.as_ref(), &actor, i, &scope, b.enabled).await?;
    tx.commit().await?;
    Ok(Json(v).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct NewCredential {
    secret: String,
}

/// Sets or rotates the credential; answers its version and fingerprint only.
pub async fn set_credential(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(i): Path<String>,
    Json(b): Json<NewCredential>,
) -> ApiResult {
    let i = id(&i, "integration")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), Some(c.0.ip().to_string()));
    let info = vault::set(
        &tx,
        s.clock.as_ref(),
        s.master_key.as_ref(),
        &actor,
        i,
        b.secret.as_bytes(),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// Revokes the credential in one action (wiped at once).
pub async fn revoke_credential(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(i): Path<String>,
) -> ApiResult {
    let i = id(&i, "integration")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    vault::revoke(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), Some(c.0.ip().to_string())),
        i,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Rotates the tenant's data key: every credential re-sealed under a new
/// key, online, in one transaction. Answers how many were re-sealed.
pub async fn rotate_data_key(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let n = vault::rotate_data_key(
        &tx,
        s.clock.as_ref(),
        s.master_key.as_ref(),
        &p.actor(Some(ctx.role), Some(c.0.ip().to_string())),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Resealed {
        credentials_resealed: n as u64,
    })
    .into_response())
}
