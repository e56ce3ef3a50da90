//! The tenant admin's settings page: API tokens (issue — the token shown
//! once —, revoke), session limits and the approvals each gate kind needs.
//! Each form is the API's own core call; a refusal shows beside its form.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;
use vigil_orchestrator::engine::gates;
use vigil_orchestrator::engine::state::GateKind;
use vigil_orchestrator::identity::{self, auth};
use vigil_orchestrator::{Error, Role};

use crate::web::AppState;
use crate::web::auth::{Principal, TenantCtx};
use crate::web::error::{message, page_error};
use crate::web::pages::people::People;

/// The roles a token may carry (every tenant role).
const ROLES: [Role; 5] = [
    Role::AnalystRead,
    Role::AnalystEdit,
    Role::SecurityEngineer,
    Role::Executive,
    Role::TenantAdmin,
];

pub struct TokenRow {
    id: Uuid,
    name: String,
    role: String,
    issued: String,
    revoked: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    tokens: Vec<TokenRow>,
    roles: Vec<&'static str>,
    /// After issuing: (name, the token), shown once.
    issued: Option<(String, String)>,
    idle_minutes: i64,
    absolute_minutes: i64,
    custom_limits: bool,
    /// (kind, its label, approvers needed).
    quorum: Vec<(&'static str, &'static str, u32)>,
    max_quorum: u32,
    /// A refusal: (the section it belongs to, what was wrong).
    error: Option<(&'static str, String)>,
    csrf: String,
    /// Issuing tokens and setting session limits need an MFA-verified
    /// session of a person (never a token).
    person_mfa: bool,
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

async fn page(s: &AppState, p: &Principal, ctx: TenantCtx) -> Result<SettingsPage, Error> {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let people = People::load(&tx).await?;
    let tokens = identity::list_api_tokens(&tx)
        .await?
        .into_iter()
        .rev()
        .map(|t| TokenRow {
            id: t.id,
            issued: format!("{} by {}", when(t.created_at), people.name(&t.created_by)),
            revoked: t.revoked_at.map(when).unwrap_or_default(),
            name: t.name,
            role: t.role,
        })
        .collect();
    let mut quorum = Vec::new();
    for k in GateKind::ALL {
        quorum.push((
            k.as_str(),
            crate::web::pages::gates::label(*k),
            gates::quorum(&tx, *k).await?,
        ));
    }
    tx.commit().await?;
    let limits = auth::session_limits(s.store.conn(), Some(ctx.tenant)).await?;
    let (csrf, person_mfa) = match p {
        Principal::Session { info, .. } => (info.csrf.clone(), info.mfa_verified),
        _ => (String::new(), false),
    };
    Ok(SettingsPage {
        tokens,
        roles: ROLES.iter().map(|r| r.as_str()).collect(),
        issued: None,
        idle_minutes: limits.idle.num_minutes(),
        absolute_minutes: limits.absolute.num_minutes(),
        custom_limits: limits.custom,
        quorum,
        max_quorum: gates::MAX_QUORUM,
        error: None,
        csrf,
        person_mfa,
    })
}

/// The page again with a refusal beside the section's form (422 / 409);
/// anything else is the error page.
async fn refused(s: &AppState, p: &Principal, ctx: TenantCtx, section: &'static str, e: Error) -> Response {
    if !matches!(e, Error::Invalid(_) | Error::Conflict(_)) {
        return page_error(e);
    }
    let api = crate::web::ApiError::from(e);
    match page(s, p, ctx).await {
        Ok(mut pg) => {
            pg.error = Some((section, api.message));
            (api.status, pg).into_response()
        }
        Err(e) => page_error(e),
    }
}

pub async fn show(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
) -> Response {
    match page(&s, &p, ctx).await {
        Ok(pg) => pg.into_response(),
        Err(e) => page_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// Issues a token; the page shows it once (not cached).
pub async fn issue_token(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<TokenForm>,
) -> Response {
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let role: Role = f.role.parse()?;
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let (_, token) = identity::issue_api_token(&tx, s.clock.as_ref(), &actor, &f.name, role).await?;
        tx.commit().await?;
        Ok::<_, Error>(token)
    }
    .await;
    match result {
        Ok(token) => match page(&s, &p, ctx).await {
            Ok(mut pg) => {
                pg.issued = Some((f.name.trim().to_owned(), token));
                ([(header::CACHE_CONTROL, "no-store")], pg).into_response()
            }
            Err(e) => page_error(e),
        },
        Err(e) => refused(&s, &p, ctx, "tokens", e).await,
    }
}

pub async fn revoke_token(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such API token.");
    };
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        identity::revoke_api_token(&tx, s.clock.as_ref(), &actor, id).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => {
            s.auth_cache.invalidate();
            Redirect::to("/settings#tokens").into_response()
        }
        Err(e) => refused(&s, &p, ctx, "tokens", e).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct SessionForm {
    #[serde(default)]
    idle_minutes: String,
    #[serde(default)]
    absolute_minutes: String,
}

pub async fn set_sessions(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<SessionForm>,
) -> Response {
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let minutes = |v: &str, what: &str| {
            v.trim()
                .parse::<i64>()
                .ok()
                .and_then(chrono::Duration::try_minutes)
                .ok_or_else(|| Error::Invalid(format!("{what}: a whole number of minutes")))
        };
        let limits = auth::SessionLimits::new(
            minutes(&f.idle_minutes, "idle timeout")?,
            minutes(&f.absolute_minutes, "absolute timeout")?,
        )?;
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        auth::set_session_limits(&tx, s.clock.as_ref(), &actor, limits).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => {
            s.auth_cache.invalidate();
            Redirect::to("/settings#sessions").into_response()
        }
        Err(e) => refused(&s, &p, ctx, "sessions", e).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct QuorumForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    quorum: String,
}

pub async fn set_quorum(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<QuorumForm>,
) -> Response {
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let kind: GateKind = f.kind.parse()?;
        let n: u32 = f
            .quorum
            .trim()
            .parse()
            .map_err(|_| Error::Invalid(format!("a quorum is 1 to {} approvers", gates::MAX_QUORUM)))?;
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        gates::set_quorum(&tx, s.clock.as_ref(), &actor, kind, n).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/settings#quorum").into_response(),
        Err(e) => refused(&s, &p, ctx, "quorum", e).await,
    }
}
