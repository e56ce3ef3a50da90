//! The emergency controls and the platform's own page: a tenant's kill
//! switch (engaged by a Tenant Admin or Security Engineer, released only by
//! a Tenant Admin in an MFA-verified session; both behind a confirmation),
//! and for the Platform Admin the tenants (list, create) and the platform
//! kill switch. The domain audits every change.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use vigil_orchestrator::engine::kill;
use vigil_orchestrator::identity;
use vigil_orchestrator::{Error, Role};

use crate::web::AppState;
use crate::web::auth::{Principal, TenantCtx};
use crate::web::error::{message, page_error};
use crate::web::pages::people::People;

fn csrf_of(p: &Principal) -> (String, bool) {
    match p {
        Principal::Session { info, .. } => (info.csrf.clone(), info.mfa_verified),
        _ => (String::new(), false),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "kill_switch.html")]
pub struct KillPage {
    engaged: bool,
    tenant_since: String,
    platform_since: String,
    may_release: bool,
    csrf: String,
}

fn since(e: &Option<kill::Engagement>, people: &People) -> String {
    e.as_ref()
        .map(|e| format!("{} by {}", e.at.format("%Y-%m-%d %H:%M UTC"), people.name(&e.by)))
        .unwrap_or_default()
}

pub async fn kill_page(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
) -> Response {
    let (csrf, mfa) = csrf_of(&p);
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let k = kill::state(&tx).await?;
        let people = People::load(&tx).await?;
        tx.commit().await?;
        Ok::<_, Error>(KillPage {
            engaged: k.tenant.is_some(),
            tenant_since: since(&k.tenant, &people),
            platform_since: since(&k.platform, &people),
            may_release: mfa && s.authz.allows(ctx.role, "kill_switch", "release"),
            csrf,
        })
    }
    .await;
    match result {
        Ok(page) => page.into_response(),
        Err(e) => page_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct EngageForm {
    engaged: String,
}

impl EngageForm {
    /// `true` or `false`; anything else is `None` (see [`invalid_engaged`]).
    fn engaged(&self) -> Option<bool> {
        match self.engaged.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

fn invalid_engaged() -> Response {
    message(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid input",
        "engaged must be true or false",
    )
}

pub async fn set_kill(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<EngageForm>,
) -> Response {
    let Some(engaged) = f.engaged() else {
        return invalid_engaged();
    };
    let (_, mfa) = csrf_of(&p);
    let may_release = mfa && s.authz.allows(ctx.role, "kill_switch", "release");
    if !engaged && !may_release {
        return message(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Only a Tenant Admin, signed in with MFA, may release the kill switch.",
        );
    }
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        kill::set_tenant(&tx, s.clock.as_ref(), &actor, engaged).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/kill-switch").into_response(),
        Err(e) => page_error(e),
    }
}

pub struct TenantRow {
    id: String,
    name: String,
    status: String,
    /// When its scheduled deletion is due (empty: none).
    due: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "tenants.html")]
pub struct TenantsPage {
    tenants: Vec<TenantRow>,
    platform_since: String,
    csrf: String,
    error: Option<String>,
    name: String,
}

async fn tenants_page(
    s: &AppState,
    p: &Principal,
    error: Option<String>,
    name: String,
) -> Result<TenantsPage, Error> {
    let tenants = identity::list_tenants(s.store.conn())
        .await?
        .into_iter()
        .map(|t| TenantRow {
            id: t.id.0.to_string(),
            name: t.name,
            status: t.status,
            due: t
                .deletion_due_at
                .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
        })
        .collect();
    let e = kill::platform(s.store.conn()).await?;
    Ok(TenantsPage {
        tenants,
        platform_since: e
            .map(|e| format!("{} by {}", e.at.format("%Y-%m-%d %H:%M UTC"), e.by))
            .unwrap_or_default(),
        csrf: csrf_of(p).0,
        error,
        name,
    })
}

pub async fn tenants(State(s): State<AppState>, Extension(p): Extension<Principal>) -> Response {
    match tenants_page(&s, &p, None, String::new()).await {
        Ok(page) => page.into_response(),
        Err(e) => page_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct TenantForm {
    name: String,
}

pub async fn create_tenant(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<TenantForm>,
) -> Response {
    let actor = p.actor(Some(Role::PlatformAdmin), Some(peer.ip().to_string()));
    let result = async {
        let tx = s.store.begin_platform().await?;
        identity::create_tenant(&tx, s.clock.as_ref(), &actor, &f.name).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/tenants").into_response(),
        // A refused name is shown next to the field, the name kept.
        Err(e @ (Error::Invalid(_) | Error::Conflict(_))) => {
            let api = crate::web::ApiError::from(e);
            match tenants_page(&s, &p, Some(api.message), f.name).await {
                Ok(page) => (api.status, page).into_response(),
                Err(e) => page_error(e),
            }
        }
        Err(e) => page_error(e),
    }
}

pub async fn set_platform_kill(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<EngageForm>,
) -> Response {
    let Some(engaged) = f.engaged() else {
        return invalid_engaged();
    };
    let actor = p.actor(Some(Role::PlatformAdmin), Some(peer.ip().to_string()));
    let result = async {
        let tx = s.store.begin_platform().await?;
        kill::set_platform(&tx, s.clock.as_ref(), &actor, engaged).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/tenants").into_response(),
        Err(e) => page_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct DeletionForm {
    /// `schedule` (7 days' grace) or `cancel`.
    action: String,
}

/// Schedules (7 days' grace) or cancels a tenant's deletion; confirmed in
/// the browser.
pub async fn tenant_deletion(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(f): Form<DeletionForm>,
) -> Response {
    let actor = p.actor(Some(Role::PlatformAdmin), Some(peer.ip().to_string()));
    let result = async {
        let id: vigil_orchestrator::TenantId = id.parse()?;
        let tx = s.store.begin_platform().await?;
        match f.action.as_str() {
            "schedule" => {
                identity::deletion::schedule(&tx, s.clock.as_ref(), &actor, id, chrono::Duration::days(7))
                    .await?;
            }
            "cancel" => identity::deletion::cancel(&tx, s.clock.as_ref(), &actor, id).await?,
            _ => return Err(Error::Invalid("action must be schedule or cancel".into())),
        }
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/tenants").into_response(),
        Err(e) => page_error(e),
    }
}
