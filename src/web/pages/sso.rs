//! Single sign-on in the browser: the two legs of an OpenID Connect login,
//! the SAML ACS and the SP metadata (the provider API is `api::sso`):
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

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;
use vigil_orchestrator::secrets::credentials::random_secret;
use vigil_orchestrator::{Error, identity::auth, identity::sso};

use crate::web::auth::{cookie, session_cookie};
use crate::web::error::message;
use crate::web::urls::{redirect_uri, sp};
use crate::web::{ApiError, AppState};

const BROWSER_COOKIE: &str = "vigil_sso";

fn refused(status: StatusCode, why: &str) -> Response {
    message(status, "Sign-in refused", why.to_owned())
}

/// Where a login goes first: a redirect to the IdP, or (SAML HTTP-POST
/// binding) a page that posts the AuthnRequest to it.
enum Start {
    Redirect(String),
    Post {
        url: String,
        saml_request: String,
        relay_state: String,
    },
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
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
            match to {
                Start::Redirect(to) => ([(header::SET_COOKIE, cookie)], Redirect::to(&to)).into_response(),
                Start::Post {
                    url,
                    saml_request,
                    relay_state,
                } => {
                    // The form goes to the IdP: this page alone may post there.
                    let origin = url
                        .split_once("://")
                        .map(|(scheme, rest)| {
                            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
                            format!("{scheme}://{host}")
                        })
                        .unwrap_or_default();
                    let csp = format!(
                        "default-src 'self'; frame-ancestors 'none'; form-action {origin}; base-uri 'none'; object-src 'none'"
                    );
                    let page = format!(
                        "<!doctype html><meta charset=utf-8><title>Signing in</title>\
                         <script src=\"/static/autopost.js\"></script>\
                         <form id=\"autopost\" method=\"post\" action=\"{}\">\
                         <input type=\"hidden\" name=\"SAMLRequest\" value=\"{}\">\
                         <input type=\"hidden\" name=\"RelayState\" value=\"{}\">\
                         <p>Taking you to your identity provider… <button type=\"submit\">Continue</button></p></form>",
                        html_escape(&url),
                        html_escape(&saml_request),
                        html_escape(&relay_state)
                    );
                    let mut res = ([(header::SET_COOKIE, cookie)], Html(page)).into_response();
                    if let Ok(v) = header::HeaderValue::from_str(&csp) {
                        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
                    }
                    res
                }
            }
        }
        Err(Error::NotFound(_)) => refused(StatusCode::NOT_FOUND, "No such identity provider."),
        Err(Error::Forbidden(why)) => refused(StatusCode::FORBIDDEN, &why),
        Err(e) => {
            tracing::warn!(%provider, peer = %peer.ip(), error = %e, "sso: cannot start a login");
            refused(
                StatusCode::BAD_GATEWAY,
                &format!("The identity provider cannot be reached or is misconfigured: {e}"),
            )
        }
    }
}

async fn start(s: &AppState, provider: Uuid) -> Result<(Start, String), Error> {
    let tenant = sso::provider_tenant(&s.store, provider).await?;
    let (info, cfg) = {
        let tx = s.store.begin_tenant_read(tenant).await?;
        sso::provider(&tx, &s.master_key, provider).await?
    };
    if !info.enabled {
        return Err(Error::Forbidden("This identity provider is disabled.".into()));
    }
    if info.protocol == "saml" {
        let metadata = {
            let tx = s.store.begin_tenant_read(tenant).await?;
            sso::saml_metadata(&tx, provider).await?
        };
        let relay = random_secret();
        let (out, request_id) =
            vigil_integrations::saml::authn_request(&metadata, Some(&info.issuer), &sp(s, provider), &relay)
                .map_err(|e| Error::Invalid(e.to_string()))?;
        let browser = random_secret();
        let tx = s.store.begin_tenant(tenant).await?;
        sso::remember_login(&tx, s.clock.as_ref(), provider, &relay, &browser, &request_id, "").await?;
        tx.commit().await?;
        let to = match out {
            vigil_integrations::saml::Outgoing::Redirect(u) => Start::Redirect(u),
            vigil_integrations::saml::Outgoing::Post {
                url,
                saml_request,
                relay_state,
            } => Start::Post {
                url,
                saml_request,
                relay_state,
            },
        };
        return Ok((to, browser));
    }
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
    Ok((Start::Redirect(started.url), browser))
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The provider a path names and its tenant, or the page saying why not.
async fn provider_and_tenant(
    s: &AppState,
    raw: &str,
) -> Result<(Uuid, vigil_orchestrator::TenantId), Response> {
    let Ok(provider) = Uuid::try_parse(raw) else {
        return Err(refused(StatusCode::NOT_FOUND, "No such identity provider."));
    };
    match sso::provider_tenant(&s.store, provider).await {
        Ok(t) => Ok((provider, t)),
        Err(Error::NotFound(_)) => Err(refused(StatusCode::NOT_FOUND, "No such identity provider.")),
        Err(e) => Err(crate::web::error::page_error(e)),
    }
}

pub async fn callback(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let (provider, tenant) = match provider_and_tenant(&s, &provider).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let source_ip = Some(peer.ip().to_string());
    let outcome = finish(
        &s,
        tenant,
        provider,
        cookie(&headers, BROWSER_COOKIE),
        &q,
        source_ip.clone(),
    )
    .await;
    conclude(&s, tenant, provider, outcome, source_ip).await
}

/// The end of a sign-in: the session and a page to go on from, or the
/// refusal as a page and an audit entry.
async fn conclude(
    s: &AppState,
    tenant: vigil_orchestrator::TenantId,
    provider: Uuid,
    outcome: Result<(auth::NewSession, bool), Refusal>,
    source_ip: Option<String>,
) -> Response {
    match outcome {
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
                header::HeaderValue::from_str(&session_cookie(s, &session.token)),
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
    let session = auth::create_sso_session(
        &s.store,
        s.clock.as_ref(),
        signed.user,
        tenant,
        provider,
        signed.idp_mfa,
    )
    .await
    .map_err(core)?;
    s.auth_cache.invalidate();
    Ok((session, signed.role.requires_mfa() && !signed.idp_mfa))
}

/// This SP's SAML metadata (public: the IdP's administrator loads it).
pub async fn saml_sp_metadata(State(s): State<AppState>, Path(provider): Path<String>) -> Response {
    let (provider, tenant) = match provider_and_tenant(&s, &provider).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let is_saml = match s.store.begin_tenant_read(tenant).await {
        Ok(tx) => sso::saml_metadata(&tx, provider).await.is_ok(),
        Err(_) => false,
    };
    if !is_saml {
        return refused(StatusCode::NOT_FOUND, "No such SAML identity provider.");
    }
    (
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        vigil_integrations::saml::sp_metadata(&sp(&s, provider)),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// The assertion consumer service (HTTP-POST binding).
pub async fn saml_acs(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(provider): Path<String>,
    axum::Form(f): axum::Form<AcsForm>,
) -> Response {
    let (provider, tenant) = match provider_and_tenant(&s, &provider).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let source_ip = Some(peer.ip().to_string());
    let outcome = acs(&s, tenant, provider, &f, source_ip.clone()).await;
    conclude(&s, tenant, provider, outcome, source_ip).await
}

async fn acs(
    s: &AppState,
    tenant: vigil_orchestrator::TenantId,
    provider: Uuid,
    f: &AcsForm,
    source_ip: Option<String>,
) -> Result<(auth::NewSession, bool), Refusal> {
    let unauthorized = |m: String| (StatusCode::UNAUTHORIZED, m);
    let (Some(response), Some(relay)) = (f.saml_response.as_deref(), f.relay_state.as_deref()) else {
        return Err(unauthorized(
            "the post carries no SAMLResponse or RelayState".into(),
        ));
    };
    let tx = s.store.begin_tenant(tenant).await.map_err(core)?;
    let taken = sso::take_login(&tx, relay).await.map_err(core)?;
    tx.commit().await.map_err(core)?;
    let pending = taken
        .check_bound(s.clock.as_ref(), provider, None)
        .map_err(core)?;
    let (info, metadata) = {
        let tx = s.store.begin_tenant_read(tenant).await.map_err(core)?;
        let (info, _) = sso::provider(&tx, &s.master_key, provider).await.map_err(core)?;
        (info, sso::saml_metadata(&tx, provider).await.map_err(core)?)
    };
    let who = vigil_integrations::saml::verify_response(
        &metadata,
        &sp(s, provider),
        Some(&info.issuer),
        response,
        &pending.nonce,
        &info.group_claim,
    )
    .map_err(|e| unauthorized(e.to_string()))?;
    let identity = vigil_integrations::oidc::Identity {
        issuer: who.issuer.clone(),
        subject: who.subject.clone(),
        email: who.email.clone(),
        email_verified: info.email_authoritative,
        groups: who.groups.clone(),
        amr: who.authn_context.clone(),
    };
    let tx = s.store.begin_tenant(tenant).await.map_err(core)?;
    sso::first_use_of_assertion(
        &tx,
        s.clock.as_ref(),
        provider,
        &who.assertion_id,
        who.not_on_or_after,
    )
    .await
    .map_err(core)?;
    let signed = sso::admit(&tx, s.clock.as_ref(), &info, &identity, source_ip)
        .await
        .map_err(core)?;
    tx.commit().await.map_err(core)?;
    let session = auth::create_sso_session(
        &s.store,
        s.clock.as_ref(),
        signed.user,
        tenant,
        provider,
        signed.idp_mfa,
    )
    .await
    .map_err(core)?;
    s.auth_cache.invalidate();
    Ok((session, signed.role.requires_mfa() && !signed.idp_mfa))
}
