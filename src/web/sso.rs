//! Single sign-on over HTTP: the tenant admin's provider API, and the two
//! browser legs of an OpenID Connect login:
//!
//! * `GET /sso/{provider}/login` — sends the browser to the IdP with state,
//!   nonce and PKCE S256; the state is bound to this browser by a
//!   `vigil_sso` cookie (SameSite=Lax: the callback is a cross-site
//!   redirect, which a Strict cookie would not survive);
//! * `GET /sso/{provider}/callback` — takes the login in flight once (state
//!   of this provider, this browser, in time), checks RFC 9207's `iss` when
//!   the IdP sends it, exchanges the code, verifies the ID token, admits the
//!   person (group → role) and opens a session bound to the tenant. Every
//!   refusal is a page saying why, and an audit entry.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use vigil_orchestrator::credentials::random_secret;
use vigil_orchestrator::{Error, auth, sso};

use super::api::{ApiResult, ip, parse_role};
use super::auth::{Principal, TenantCtx, cookie, session_cookie};
use super::pages::message;
use super::{ApiError, AppState};

const BROWSER_COOKIE: &str = "vigil_sso";

fn redirect_uri(s: &AppState, provider: Uuid) -> String {
    format!("{}/sso/{provider}/callback", s.public_url.trim_end_matches('/'))
}

#[derive(Deserialize)]
pub struct NewProviderBody {
    name: String,
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
    #[serde(default = "default_group_claim")]
    group_claim: String,
    /// IdP group → tenant role.
    role_map: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    trust_idp_mfa: bool,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}

fn default_group_claim() -> String {
    "groups".into()
}

pub async fn create_provider(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<NewProviderBody>,
) -> ApiResult {
    let mut role_map = Vec::with_capacity(b.role_map.len());
    for (group, role) in b.role_map {
        role_map.push((group, parse_role(&role)?));
    }
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let info = sso::create_provider(
        &tx,
        s.clock.as_ref(),
        &s.master_key,
        &p.actor(Some(ctx.role), ip(&c)),
        sso::NewProvider {
            name: b.name,
            issuer: b.issuer,
            client_id: b.client_id,
            client_secret: b.client_secret,
            algorithms: b.algorithms,
            group_claim: b.group_claim,
            role_map,
            trust_idp_mfa: b.trust_idp_mfa,
        },
    )
    .await?;
    tx.commit().await?;
    let login_url = format!("{}/sso/{}/login", s.public_url.trim_end_matches('/'), info.id);
    let callback = redirect_uri(&s, info.id);
    let mut v = serde_json::to_value(&info).map_err(|e| ApiError::internal("sso", &e))?;
    v["login_url"] = json!(login_url);
    v["redirect_uri"] = json!(callback);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub async fn list_providers(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let items = sso::list_providers(&tx).await?;
    tx.commit().await?;
    let total = items.len();
    Ok(Json(json!({"items": items, "total": total})).into_response())
}

fn refused(status: StatusCode, why: &str) -> Response {
    message(status, "Sign-in refused", why.to_owned())
}

pub async fn login(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(provider): Path<String>,
) -> Response {
    let Ok(provider) = Uuid::try_parse(&provider) else {
        return refused(StatusCode::NOT_FOUND, "No such identity provider.");
    };
    match start(&s, provider).await {
        Ok((to, browser)) => {
            let secure = if s.public_url.starts_with("https://") {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{BROWSER_COOKIE}={browser}; Path=/sso/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
                sso::LOGIN_TTL.num_seconds()
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to(&to)).into_response()
        }
        Err(Error::NotFound(_)) => refused(StatusCode::NOT_FOUND, "No such identity provider."),
        Err(e) => {
            tracing::warn!(%provider, peer = %peer.ip(), error = %e, "sso: cannot start a login");
            refused(
                StatusCode::BAD_GATEWAY,
                &format!("The identity provider cannot be reached or is misconfigured: {e}"),
            )
        }
    }
}

async fn start(s: &AppState, provider: Uuid) -> Result<(String, String), Error> {
    let tenant = sso::provider_tenant(&s.store, provider).await?;
    let (_, cfg) = {
        let tx = s.store.begin_tenant_read(tenant).await?;
        sso::provider(&tx, &s.master_key, provider).await?
    };
    let started = s
        .oidc
        .start(&cfg, &redirect_uri(s, provider))
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let browser = random_secret();
    let tx = s.store.begin_tenant(tenant).await?;
    sso::remember_login(
        &tx,
        s.clock.as_ref(),
        provider,
        &started.state,
        &browser,
        &started.nonce,
        &started.pkce_verifier,
    )
    .await?;
    tx.commit().await?;
    Ok((started.url, browser))
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub async fn callback(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let Ok(provider) = Uuid::try_parse(&provider) else {
        return refused(StatusCode::NOT_FOUND, "No such identity provider.");
    };
    let tenant = match sso::provider_tenant(&s.store, provider).await {
        Ok(t) => t,
        Err(Error::NotFound(_)) => return refused(StatusCode::NOT_FOUND, "No such identity provider."),
        Err(e) => return super::pages::page_error(e),
    };
    let source_ip = Some(peer.ip().to_string());
    match finish(
        &s,
        tenant,
        provider,
        cookie(&headers, BROWSER_COOKIE),
        &q,
        source_ip.clone(),
    )
    .await
    {
        Ok((session, needs_mfa)) => {
            let to = if needs_mfa { "/mfa" } else { "/" };
            let clear = format!("{BROWSER_COOKIE}=; Path=/sso/; HttpOnly; SameSite=Lax; Max-Age=0");
            // A page, not a redirect: the session cookie is SameSite=Strict
            // and this response ends a cross-site redirect chain; the next
            // request starts from Vigil's own page.
            let page = format!(
                "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=\"0;url={to}\">\
                 <title>Signed in</title><p>Signed in. <a href=\"{to}\">Continue to Vigil</a></p>"
            );
            let mut res = Html(page).into_response();
            let h = res.headers_mut();
            if let (Ok(a), Ok(b)) = (
                header::HeaderValue::from_str(&session_cookie(&s, &session.token)),
                header::HeaderValue::from_str(&clear),
            ) {
                h.append(header::SET_COOKIE, a);
                h.append(header::SET_COOKIE, b);
            }
            h.insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            res
        }
        Err((status, why)) => {
            if let Err(e) =
                sso::record_refusal(&s.store, s.clock.as_ref(), tenant, provider, &why, source_ip).await
            {
                tracing::error!(error = %e, "sso: cannot audit a refused login");
            }
            refused(status, &why)
        }
    }
}

type Refusal = (StatusCode, String);

fn core(e: Error) -> Refusal {
    let api = ApiError::from(e);
    (api.status, api.message)
}

async fn finish(
    s: &AppState,
    tenant: vigil_orchestrator::TenantId,
    provider: Uuid,
    browser: Option<&str>,
    q: &Callback,
    source_ip: Option<String>,
) -> Result<(auth::NewSession, bool), Refusal> {
    let unauthorized = |m: String| (StatusCode::UNAUTHORIZED, m);
    let Some(state) = q.state.as_deref() else {
        return Err(unauthorized("the response carries no state".into()));
    };
    // The login in flight is used up whatever happens next.
    let tx = s.store.begin_tenant(tenant).await.map_err(core)?;
    let taken = sso::take_login(&tx, state).await.map_err(core)?;
    tx.commit().await.map_err(core)?;
    let pending = taken.check(s.clock.as_ref(), provider, browser).map_err(core)?;
    let (info, cfg) = {
        let tx = s.store.begin_tenant_read(tenant).await.map_err(core)?;
        sso::provider(&tx, &s.master_key, provider).await.map_err(core)?
    };
    if let Some(err) = &q.error {
        return Err(unauthorized(format!(
            "the identity provider refused: {err}{}",
            q.error_description
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        )));
    }
    // RFC 9207: an authorization response naming its issuer must name this one.
    if let Some(iss) = &q.iss
        && iss != &cfg.issuer
    {
        return Err(unauthorized(format!(
            "the response comes from issuer {iss}, not from this provider ({})",
            cfg.issuer
        )));
    }
    let Some(code) = q.code.as_deref() else {
        return Err(unauthorized("the response carries no code".into()));
    };
    let who = s
        .oidc
        .finish(
            &cfg,
            &redirect_uri(s, provider),
            code,
            &pending.nonce,
            &pending.pkce_verifier,
            s.clock.now(),
        )
        .await
        .map_err(|e| unauthorized(e.to_string()))?;
    let tx = s.store.begin_tenant(tenant).await.map_err(core)?;
    let signed = sso::admit(&tx, s.clock.as_ref(), &info, &who, source_ip)
        .await
        .map_err(core)?;
    tx.commit().await.map_err(core)?;
    let session = auth::create_sso_session(&s.store, s.clock.as_ref(), signed.user, tenant, signed.idp_mfa)
        .await
        .map_err(core)?;
    s.auth_cache.invalidate();
    Ok((session, signed.role.requires_mfa() && !signed.idp_mfa))
}
