//! The one guard every request passes: who is calling (API token, session
//! cookie, or nobody), CSRF for cookie-authenticated writes, and whether the
//! route's declared [`Access`] lets them through. A route without a
//! declared access rule is refused (fail closed).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::identity::auth::{self, SessionInfo};
use vigil_orchestrator::identity::{self, ApiPrincipal};
use vigil_orchestrator::ids::UserId;
use vigil_orchestrator::{Role, TenantId};

use super::{ApiError, AppState};

pub const SESSION_COOKIE: &str = "vigil_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const CSRF_FIELD: &str = "csrf";

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No authentication (health, login, one-time links, static files).
    Public,
    /// Any signed-in principal, MFA pending included (own profile, MFA
    /// enrolment, tenant switch, logout).
    SignedIn,
    /// The platform admin (MFA-verified session), for `object`/`action`.
    Platform(&'static str, &'static str),
    /// A role in the request's tenant allowed `object`/`action` by the matrix;
    /// sessions of MFA roles must be MFA-verified. API tokens qualify.
    Tenant(&'static str, &'static str),
    /// As `Tenant`, but only a person's MFA-verified session (e.g. issuing
    /// API tokens), never a token.
    TenantPerson(&'static str, &'static str),
}

/// The route table: (method, route template) → access. Built with the
/// router, walked by the authorization test.
pub type RouteTable = HashMap<(Method, &'static str), Access>;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    Anonymous,
    Session { info: SessionInfo, token: String },
    Token(ApiPrincipal),
}

/// The tenant a request acts in, with the caller's role there (resolved
/// fresh for every request).
#[derive(Debug, Clone, Copy)]
pub struct TenantCtx {
    pub tenant: TenantId,
    pub role: Role,
}

impl Principal {
    /// The person signed in, if a person is (an API token is no one).
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Principal::Session { info, .. } => Some(info.user),
            _ => None,
        }
    }

    /// The audit actor, with the role held at this moment.
    pub fn actor(&self, role: Option<Role>, ip: Option<String>) -> Actor {
        let label = match self {
            Principal::Anonymous => "anonymous".to_owned(),
            Principal::Session { info, .. } => format!("user:{}", info.user),
            Principal::Token(t) => format!("token:{}", t.token_id),
        };
        Actor {
            label,
            role,
            source_ip: ip,
        }
    }
}

pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// `Set-Cookie` for a session (HttpOnly, SameSite=Strict, Secure over TLS).
pub fn session_cookie(state: &AppState, token: &str) -> String {
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let max_age = auth::ABSOLUTE_TIMEOUT.num_seconds();
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// A refusal in the caller's language: JSON for the API, a page or a
/// redirect to the login page for the browser.
fn refuse(path: &str, status: StatusCode, code: &'static str, message: &str) -> Response {
    if is_api(path) {
        return ApiError::new(status, code, message).into_response();
    }
    match (status, code) {
        (StatusCode::METHOD_NOT_ALLOWED, _) => status.into_response(),
        (StatusCode::UNAUTHORIZED, _) => Redirect::to("/login").into_response(),
        (_, "mfa_required") => Redirect::to("/mfa").into_response(),
        _ => super::error::message(status, "Not allowed", message),
    }
}

/// As [`refuse`], and a page that needs a signed-in person sends them to
/// the login page and, after it, back here (a GET; else home).
fn refuse_at(
    method: &Method,
    uri: &axum::http::Uri,
    status: StatusCode,
    code: &'static str,
    message: &str,
) -> Response {
    let path = uri.path();
    if status == StatusCode::UNAUTHORIZED && !is_api(path) && *method == Method::GET {
        let here = uri.path_and_query().map_or(path, |pq| pq.as_str());
        return Redirect::to(&format!("/login?next={}", super::urls::encode(here))).into_response();
    }
    refuse(path, status, code, message)
}

/// Who is calling (the guard's first half; public for the authorization benchmark).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, (StatusCode, &'static str, String)> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        return match identity::authenticate_api_token_cached(&state.store, &state.auth_cache, token).await {
            Ok(p) => Ok(Principal::Token(p)),
            Err(vigil_orchestrator::Error::Unauthenticated(m)) => {
                Err((StatusCode::UNAUTHORIZED, "unauthenticated", m.into()))
            }
            Err(e) => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                ApiError::internal("authenticate", &e).message,
            )),
        };
    }
    if let Some(token) = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) {
        return match auth::resolve_session_cached(
            &state.store,
            state.clock.as_ref(),
            &state.auth_cache,
            token,
        )
        .await
        {
            Ok(info) => Ok(Principal::Session {
                info,
                token: token.to_owned(),
            }),
            // A stale cookie is no session at all.
            Err(vigil_orchestrator::Error::Unauthenticated(_)) => Ok(Principal::Anonymous),
            Err(e) => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                ApiError::internal("session", &e).message,
            )),
        };
    }
    Ok(Principal::Anonymous)
}

/// Buffers a form body to read its `csrf` field, then puts it back.
async fn form_csrf(req: Request) -> Result<(Request, Option<String>), Response> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((req, None));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "form too large").into_response()
    })?;
    let token = form_urlencoded_field(&bytes, CSRF_FIELD);
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Routes where every attempt counts against the address's sign-in quota.
const SIGN_IN_ROUTES: [(&str, &str); 6] = [
    ("POST", "/login"),
    ("GET", "/login/sso"),
    ("POST", "/mfa"),
    ("GET", "/sso/{id}/login"),
    ("GET", "/sso/{id}/callback"),
    ("POST", "/sso/{id}/acs"),
];

/// Public routes a browser reaches by a cross-site form post by design:
/// the SAML assertion consumer service (the IdP's page posts the signed
/// Response; the one-time RelayState and InResponseTo bind it).
const CROSS_SITE_POSTS: [&str; 1] = ["/sso/{id}/acs"];

/// Cross-site form posts to public endpoints (login CSRF) are refused.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
}

pub async fn guard(
    State((state, table)): State<(AppState, Arc<RouteTable>)>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let Some(route) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        // Unmatched: the fallback answers 404 and needs nobody.
        return next.run(req).await;
    };
    let Some(access) = table.get(&(req.method().clone(), route.as_str())).copied() else {
        // No rule for this method: no handler runs (fail closed).
        return refuse(
            &path,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed here",
        );
    };
    // (tests serve the router with axum's MockConnectInfo instead)
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
        .or_else(|| {
            req.extensions()
                .get::<axum::extract::connect_info::MockConnectInfo<SocketAddr>>()
                .map(|m| m.0.ip())
        });
    if let Some(ip) = ip {
        if SIGN_IN_ROUTES.contains(&(req.method().as_str(), route.as_str()))
            && let Err(wait) = state.limits.sign_in(ip)
        {
            return super::limits::too_many(&path, wait);
        }
        if req.headers().contains_key(header::AUTHORIZATION)
            && let Err(wait) = state.limits.penalized(super::limits::Kind::BadToken, ip)
        {
            return super::limits::too_many(&path, wait);
        }
    }
    let principal = match authenticate(&state, req.headers()).await {
        Ok(p) => p,
        Err((status, code, message)) => {
            if status == StatusCode::UNAUTHORIZED
                && let Some(ip) = ip
                && let Err(wait) = state.limits.failure(super::limits::Kind::BadToken, ip)
            {
                return super::limits::too_many(&path, wait);
            }
            return refuse(&path, status, code, &message);
        }
    };
    if is_api(&path) || path.starts_with("/static/") || path.starts_with("/sso/") {
        return admit(&state, principal, access, &path, &route, req, next).await;
    }
    let chrome = super::pages::chrome::resolve(&state, &principal, &path).await;
    super::pages::chrome::scope(chrome, admit(&state, principal, access, &path, &route, req, next)).await
}

/// The guard's second half, once the caller is known: CSRF, the access
/// decision, the handler.
async fn admit(
    state: &AppState,
    principal: Principal,
    access: Access,
    path: &str,
    route: &str,
    req: Request,
    next: Next,
) -> Response {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut req = req;
    if unsafe_method {
        if let Principal::Session { info, .. } = &principal {
            let header_token = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let (r, field) = match form_csrf(req).await {
                Ok(x) => x,
                Err(resp) => return resp,
            };
            req = r;
            let presented = header_token.or(field).unwrap_or_default();
            if !auth::csrf_matches(info, &presented) {
                return refuse(path, StatusCode::FORBIDDEN, "csrf", "missing or wrong CSRF token");
            }
        } else if cross_site(req.headers()) && !CROSS_SITE_POSTS.contains(&route) {
            return refuse(path, StatusCode::FORBIDDEN, "csrf", "cross-site request refused");
        }
    }

    // The tenant the caller acts in (for the request log), refused or not.
    let acting_in = match &principal {
        Principal::Token(t) => Some(t.tenant),
        Principal::Session { info, .. } => info.active_tenant,
        Principal::Anonymous => None,
    };
    let attribution = acting_in.map(|tenant| super::requests::Attribution {
        tenant,
        actor: principal.actor(None, None).label,
    });
    let ctx = match decide(state, &principal, access).await {
        Ok(ctx) => ctx,
        Err((status, code, message)) => {
            let mut res = refuse_at(req.method(), req.uri(), status, code, &message);
            if let Some(a) = attribution {
                res.extensions_mut().insert(a);
            }
            return res;
        }
    };
    if let Some(ctx) = ctx {
        req.extensions_mut().insert(ctx);
    }
    req.extensions_mut().insert(principal);
    let mut res = next.run(req).await;
    if let Some(a) = attribution {
        res.extensions_mut().insert(a);
    }
    res
}

/// A refusal: status, error code, message.
pub type Refusal = (StatusCode, &'static str, String);

fn forbidden(message: &str) -> Refusal {
    (StatusCode::FORBIDDEN, "forbidden", message.to_owned())
}

/// The access decision. `Ok(Some(ctx))` for tenant routes.
pub async fn decide(
    state: &AppState,
    principal: &Principal,
    access: Access,
) -> Result<Option<TenantCtx>, Refusal> {
    let unauthenticated = || {
        (
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in or send an API token".to_owned(),
        )
    };
    let mfa_required = || {
        (
            StatusCode::FORBIDDEN,
            "mfa_required",
            "this role requires MFA: verify your second factor first".to_owned(),
        )
    };
    match access {
        Access::Public => Ok(None),
        Access::SignedIn => match principal {
            Principal::Anonymous => Err(unauthenticated()),
            _ => Ok(None),
        },
        Access::Platform(object, action) => match principal {
            Principal::Anonymous => Err(unauthenticated()),
            Principal::Session { info, .. } if info.platform_admin => {
                if !info.mfa_verified {
                    Err(mfa_required())
                } else if state.authz.allows(Role::PlatformAdmin, object, action) {
                    Ok(None)
                } else {
                    Err(forbidden("the platform admin may not do this"))
                }
            }
            _ => Err(forbidden("platform admins only")),
        },
        Access::Tenant(object, action) | Access::TenantPerson(object, action) => {
            let person_only = matches!(access, Access::TenantPerson(..));
            let (tenant, role, mfa_ok) = match principal {
                Principal::Anonymous => return Err(unauthenticated()),
                Principal::Token(_) if person_only => {
                    return Err(forbidden("an API token may not do this; a person must"));
                }
                Principal::Token(t) => (t.tenant, t.role, true),
                Principal::Session { info, .. } => {
                    let Some(tenant) = info.active_tenant else {
                        return Err(forbidden("choose a tenant first"));
                    };
                    let role = auth::role_in_cached(&state.store, &state.auth_cache, info.user, tenant)
                        .await
                        .map_err(|e| {
                            (
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "internal",
                                ApiError::internal("role", &e).message,
                            )
                        })?
                        .ok_or_else(|| forbidden("you have no role in this tenant"))?;
                    (tenant, role, info.mfa_verified || !role.requires_mfa())
                }
            };
            if !state.authz.allows(role, object, action) {
                return Err(forbidden(&format!("the {role} role may not {action} {object}")));
            }
            if !mfa_ok
                || (person_only && !matches!(principal, Principal::Session { info, .. } if info.mfa_verified))
            {
                return Err(mfa_required());
            }
            Ok(Some(TenantCtx { tenant, role }))
        }
    }
}

/// The peer address, for audit events.
pub fn peer(req_info: &Option<ConnectInfo<SocketAddr>>) -> Option<String> {
    req_info.as_ref().map(|ConnectInfo(a)| a.ip().to_string())
}
