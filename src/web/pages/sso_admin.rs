//! The tenant admin's single sign-on page: the tenant's identity providers
//! with what the IdP must be told (redirect URI, or the SP's entity id and
//! ACS URL) and the sign-in link; create an OIDC provider (its issuer must
//! answer discovery with a usable key, now) or a SAML one (its metadata
//! must parse with a signing certificate); test one; turn one off or on;
//! delete one (its people's sessions end). Creation goes through the same
//! function as the API.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;
use vigil_orchestrator::Error;
use vigil_orchestrator::identity::sso;

use crate::web::api::sso::{NewProviderBody, check, create};
use crate::web::auth::{Principal, TenantCtx};
use crate::web::error::{message, page_error};
use crate::web::pages::people::People;
use crate::web::urls::{login_url, redirect_uri, sp};
use crate::web::{ApiError, AppState};

pub struct ProviderRow {
    id: Uuid,
    name: String,
    protocol: String,
    issuer: String,
    enabled: bool,
    domains: String,
    /// "group → role" lines.
    roles: Vec<String>,
    trust_idp_mfa: bool,
    login_url: String,
    /// What the IdP is told: (label, value).
    tell_idp: Vec<(&'static str, String)>,
    created: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "sso_admin.html")]
pub struct SsoPage {
    providers: Vec<ProviderRow>,
    csrf: String,
    may_change: bool,
    /// After a test: (provider, passed, what it found or the problem).
    tested: Option<(Uuid, bool, String)>,
    /// A refused creation: (protocol form, what was wrong), and what was
    /// typed (to fill the form again; never the secret).
    error: Option<(&'static str, String)>,
    typed: Typed,
}

/// What the person typed into a create form.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Typed {
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    group_claim: String,
    /// One `group = role` per line.
    #[serde(default)]
    role_map: String,
    /// Separated by commas or spaces.
    #[serde(default)]
    domains: String,
    #[serde(default)]
    trust_idp_mfa: Option<String>,
    #[serde(default)]
    idp_metadata: String,
    #[serde(default)]
    email_authoritative: Option<String>,
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

async fn page(s: &AppState, p: &Principal, ctx: TenantCtx) -> Result<SsoPage, Error> {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let people = People::load(&tx).await?;
    let items = sso::list_providers(&tx).await?;
    tx.commit().await?;
    let providers = items
        .into_iter()
        .map(|i| {
            let tell_idp = if i.protocol == "saml" {
                let sp = sp(s, i.id);
                vec![
                    ("SP entity id (and metadata URL)", sp.entity_id),
                    ("ACS URL (HTTP-POST)", sp.acs_url),
                ]
            } else {
                vec![("Redirect URI", redirect_uri(s, i.id))]
            };
            let roles = i
                .role_map
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(g, r)| format!("{g} → {}", r.as_str().unwrap_or("?")))
                        .collect()
                })
                .unwrap_or_default();
            ProviderRow {
                login_url: login_url(s, i.id),
                tell_idp,
                roles,
                domains: i.domains.join(", "),
                created: format!("{} by {}", when(i.created_at), people.name(&i.created_by)),
                id: i.id,
                name: i.name,
                protocol: i.protocol,
                issuer: i.issuer,
                enabled: i.enabled,
                trust_idp_mfa: i.trust_idp_mfa,
            }
        })
        .collect();
    let (csrf, mfa) = match p {
        Principal::Session { info, .. } => (info.csrf.clone(), info.mfa_verified),
        _ => (String::new(), false),
    };
    Ok(SsoPage {
        providers,
        csrf,
        may_change: mfa,
        tested: None,
        error: None,
        typed: Typed::default(),
    })
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

/// The form's role map: one `group = role` per line (blank lines skipped).
fn role_lines(text: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((group, role)) = line.split_once('=') else {
            return Err(Error::Invalid(format!(
                "role map, line {}: write `group = role`",
                n + 1
            )));
        };
        out.insert(group.trim().to_owned(), role.trim().to_owned());
    }
    Ok(out)
}

pub async fn create_provider(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<Typed>,
) -> Response {
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let form: &'static str = if f.protocol == "saml" { "saml" } else { "oidc" };
    let result = async {
        let mut b = NewProviderBody::new(form, f.name.trim().to_owned());
        b.issuer = f.issuer.trim().to_owned();
        b.client_id = f.client_id.trim().to_owned();
        b.client_secret = Some(f.client_secret.clone()).filter(|x| !x.is_empty());
        if !f.group_claim.trim().is_empty() {
            b.group_claim = f.group_claim.trim().to_owned();
        }
        b.role_map = role_lines(&f.role_map).map_err(ApiError::from)?;
        b.domains = f
            .domains
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect();
        b.trust_idp_mfa = f.trust_idp_mfa.is_some();
        b.email_authoritative = f.email_authoritative.is_some();
        b.idp_metadata = Some(f.idp_metadata.clone()).filter(|x| !x.trim().is_empty());
        create(&s, ctx, &actor, b).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/single-sign-on").into_response(),
        Err(e) if e.status.is_client_error() && e.status != StatusCode::FORBIDDEN => {
            match page(&s, &p, ctx).await {
                Ok(mut pg) => {
                    pg.error = Some((form, e.message));
                    pg.typed = Typed {
                        client_secret: String::new(),
                        ..f
                    };
                    (e.status, pg).into_response()
                }
                Err(e) => page_error(e),
            }
        }
        Err(e) => crate::web::error::page_of(e),
    }
}

fn provider_id(id: &str) -> Option<Uuid> {
    Uuid::try_parse(id).ok()
}

fn no_provider() -> Response {
    message(StatusCode::NOT_FOUND, "Not found", "No such identity provider.")
}

/// Whether the provider still loads, shown beside it.
pub async fn test_provider(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = provider_id(&id) else {
        return no_provider();
    };
    let result = check(&s, ctx, id).await;
    match (result, page(&s, &p, ctx).await) {
        (Ok(v), Ok(mut pg)) => {
            let ok = v.ok;
            let said = if ok {
                match (v.protocol.as_str(), &v.idp) {
                    ("saml", Some(idp)) => format!(
                        "The metadata loads: IdP {} signs in at {}.",
                        idp["entity_id"].as_str().unwrap_or("?"),
                        idp["sso_url"].as_str().unwrap_or("?")
                    ),
                    _ => "The issuer answers: its discovery document and signing keys load.".to_owned(),
                }
            } else {
                format!(
                    "It does not load: {}",
                    v.problem.as_deref().unwrap_or("unknown problem")
                )
            };
            pg.tested = Some((id, ok, said));
            pg.into_response()
        }
        (Err(e), _) => crate::web::error::page_of(e),
        (_, Err(e)) => page_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct EnabledForm {
    #[serde(default)]
    enabled: String,
}

/// Turns a provider off (its people's sessions end) or on again.
pub async fn set_enabled(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Form(f): Form<EnabledForm>,
) -> Response {
    let Some(id) = provider_id(&id) else {
        return no_provider();
    };
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        sso::update_provider(
            &tx,
            s.clock.as_ref(),
            &s.master_key,
            &actor,
            id,
            sso::ProviderUpdate {
                enabled: Some(f.enabled == "true"),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => {
            s.auth_cache.invalidate();
            Redirect::to("/single-sign-on").into_response()
        }
        Err(e) => page_error(e),
    }
}

/// Deletes a provider (confirmed in the page): its links and sessions go.
pub async fn delete_provider(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = provider_id(&id) else {
        return no_provider();
    };
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        sso::delete_provider(&tx, s.clock.as_ref(), &actor, id).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => {
            s.auth_cache.invalidate();
            Redirect::to("/single-sign-on").into_response()
        }
        Err(e) => page_error(e),
    }
}
