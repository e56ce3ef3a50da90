//! The integrations page: each integration's permission manifest (every
//! scope, read or write, and the exact vendor calls it permits), whether
//! each write scope is on and who turned it on, the credential's
//! fingerprint (never the secret), and the connector's last outcome. A
//! Tenant Admin with MFA turns write scopes on and off here; the domain
//! audits every change.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;
use vigil_integrations::Access;
use vigil_orchestrator::{Error, connect::integrations, secrets::vault};

use crate::web::AppState;
use crate::web::auth::{Principal, TenantCtx};
use crate::web::error::{message, page_error};

pub struct ScopeRow {
    name: &'static str,
    write: bool,
    calls: String,
    purpose: &'static str,
    enabled: bool,
    enabled_by: String,
}

pub struct IntegrationRow {
    id: Uuid,
    name: String,
    kind: &'static str,
    credential: String,
    has_credential: bool,
    last_ok: String,
    last_error: String,
    cursor: String,
    pulled: i64,
    /// Approved writes waiting for this integration (sent when its scope
    /// is turned on).
    held: u64,
    scopes: Vec<ScopeRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "integrations.html")]
pub struct IntegrationsPage {
    integrations: Vec<IntegrationRow>,
    can_toggle: bool,
    /// May set or rotate credentials (the security engineer).
    can_set_credential: bool,
    /// May revoke them (the engineer and the tenant admin).
    can_revoke_credential: bool,
    csrf: String,
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

pub async fn list(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
) -> Response {
    let (csrf, mfa) = match &p {
        Principal::Session { info, .. } => (info.csrf.clone(), info.mfa_verified),
        _ => (String::new(), false),
    };
    let can_toggle = mfa && s.authz.allows(ctx.role, "integration_scope", "set");
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let (items, _) = integrations::list(&tx).await?;
        let held = vigil_orchestrator::engine::outbox::waiting_by_integration(&tx).await?;
        let mut rows = Vec::with_capacity(items.len());
        for i in items {
            let current = vault::current(&tx, i.id).await?;
            let has_credential = current.is_some();
            let credential = match current {
                Some(c) => format!("v{} · fingerprint {}", c.version, c.fingerprint),
                None => "none".into(),
            };
            rows.push(IntegrationRow {
                held: held.get(&i.id).copied().unwrap_or(0),
                id: i.id,
                name: i.name,
                kind: i.kind.as_str(),
                credential,
                has_credential,
                last_ok: when(i.status.last_ok_at),
                last_error: i.status.last_error.unwrap_or_default(),
                cursor: i.status.cursor.unwrap_or_default(),
                pulled: i.status.pulled,
                scopes: i
                    .manifest
                    .into_iter()
                    .map(|m| ScopeRow {
                        name: m.scope,
                        write: m.access == Access::Write,
                        calls: m.calls.join("\n"),
                        purpose: m.purpose,
                        enabled: m.enabled,
                        enabled_by: match (m.enabled_by, m.enabled_at) {
                            (Some(by), at) => format!("{by}, {}", when(at)),
                            _ => String::new(),
                        },
                    })
                    .collect(),
            });
        }
        tx.commit().await?;
        Ok::<_, Error>(rows)
    }
    .await;
    match result {
        Ok(integrations) => IntegrationsPage {
            integrations,
            can_toggle,
            can_set_credential: s.authz.allows(ctx.role, "credential", "set"),
            can_revoke_credential: s.authz.allows(ctx.role, "credential", "revoke"),
            csrf,
        }
        .into_response(),
        Err(e) => page_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct ScopeForm {
    #[serde(default)]
    enabled: String,
}

pub async fn set_scope(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, scope)): Path<(String, String)>,
    Form(f): Form<ScopeForm>,
) -> Response {
    let Ok(id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such integration.");
    };
    let enabled = match f.enabled.as_str() {
        "true" => true,
        "false" => false,
        _ => {
            return message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "enabled must be true or false.",
            );
        }
    };
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        integrations::set_scope(&tx, s.clock.as_ref(), &actor, id, &scope, enabled).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/integrations").into_response(),
        Err(e) => page_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CredentialForm {
    #[serde(default)]
    secret: String,
}

/// Sets or rotates an integration's credential (the old version is
/// destroyed); the page shows only its version and fingerprint.
pub async fn set_credential(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Form(f): Form<CredentialForm>,
) -> Response {
    let Ok(id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such integration.");
    };
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        vault::set(
            &tx,
            s.clock.as_ref(),
            s.master_key.as_ref(),
            &actor,
            id,
            f.secret.as_bytes(),
        )
        .await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/integrations#integration-{id}")).into_response(),
        Err(e) => page_error(e),
    }
}

/// Revokes an integration's credential at once (wiped; the integration
/// stops until a new one is set).
pub async fn revoke_credential(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such integration.");
    };
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        vault::revoke(&tx, s.clock.as_ref(), &actor, id).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/integrations#integration-{id}")).into_response(),
        Err(e) => page_error(e),
    }
}
