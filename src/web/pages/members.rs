//! The tenant admin's members page: who holds which role, invite (the
//! one-time password link is shown once), change a role, remove (both in
//! an MFA-verified session, confirmed). The domain keeps the last tenant
//! admin and audits every change.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;
use vigil_orchestrator::identity;
use vigil_orchestrator::ids::Email;
use vigil_orchestrator::{Error, Role, UserId};

use crate::web::AppState;
use crate::web::auth::{Principal, TenantCtx};
use crate::web::error::{message, page_error};

/// The roles a tenant grants (the platform admin is not a tenant role).
const ROLES: [Role; 5] = [
    Role::TenantAdmin,
    Role::SecurityEngineer,
    Role::AnalystEdit,
    Role::AnalystRead,
    Role::Executive,
];

pub struct MemberRow {
    user: Uuid,
    email: String,
    role: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "members.html")]
pub struct MembersPage {
    members: Vec<MemberRow>,
    roles: Vec<&'static str>,
    csrf: String,
    may_change: bool,
    error: Option<String>,
    email: String,
    /// After an invitation: the one-time link to hand to the person.
    link: Option<String>,
}

async fn page(s: &AppState, p: &Principal, ctx: TenantCtx) -> Result<MembersPage, Error> {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let members = identity::list_members(&tx)
        .await?
        .into_iter()
        .map(|m| MemberRow {
            user: m.user_id.0,
            email: m.email,
            role: m.role.as_str(),
        })
        .collect();
    tx.commit().await?;
    let (csrf, mfa) = match p {
        Principal::Session { info, .. } => (info.csrf.clone(), info.mfa_verified),
        _ => (String::new(), false),
    };
    Ok(MembersPage {
        members,
        roles: ROLES.iter().map(|r| r.as_str()).collect(),
        csrf,
        may_change: mfa && s.authz.allows(ctx.role, "member", "change_role"),
        error: None,
        email: String::new(),
        link: None,
    })
}

pub async fn list(
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
pub struct InviteForm {
    email: String,
    role: String,
}

fn tenant_role(s: &str) -> Result<Role, Error> {
    let r: Role = s.parse()?;
    if r == Role::PlatformAdmin {
        return Err(Error::Invalid("the platform admin is not a tenant role".into()));
    }
    Ok(r)
}

pub async fn invite(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<InviteForm>,
) -> Response {
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let email = Email::parse(&f.email)?;
        let role = tenant_role(&f.role)?;
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let (_, token) = identity::invite_member(&tx, s.clock.as_ref(), &actor, &email, role).await?;
        tx.commit().await?;
        Ok::<_, Error>(format!(
            "{}/setup/password/{token}",
            s.public_url.trim_end_matches('/')
        ))
    }
    .await;
    match result {
        Ok(link) => match page(&s, &p, ctx).await {
            Ok(mut pg) => {
                pg.link = Some(link);
                ([(axum::http::header::CACHE_CONTROL, "no-store")], pg).into_response()
            }
            Err(e) => page_error(e),
        },
        Err(e @ (Error::Invalid(_) | Error::Conflict(_))) => {
            let api = crate::web::ApiError::from(e);
            match page(&s, &p, ctx).await {
                Ok(mut pg) => {
                    pg.error = Some(api.message);
                    pg.email = f.email;
                    (api.status, pg).into_response()
                }
                Err(e) => page_error(e),
            }
        }
        Err(e) => page_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    /// A role, or empty to remove the member.
    #[serde(default)]
    role: String,
}

pub async fn set_role(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(user): Path<String>,
    Form(f): Form<RoleForm>,
) -> Response {
    let Ok(user) = Uuid::try_parse(&user) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such member.");
    };
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let role = match f.role.as_str() {
            "" => None,
            r => Some(tenant_role(r)?),
        };
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        identity::set_member_role(&tx, s.clock.as_ref(), &actor, UserId(user), role).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => {
            s.auth_cache.invalidate();
            Redirect::to("/members").into_response()
        }
        Err(e) => page_error(e),
    }
}
