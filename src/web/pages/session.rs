//! Sign-in pages: login (password), MFA (TOTP enrolment and verification),
//! tenant switch, logout. Forms carry the session's CSRF token.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use vigil_orchestrator::identity;
use vigil_orchestrator::identity::auth::{self, LoginRefused, MfaOutcome};
use vigil_orchestrator::{Role, TenantId};

use crate::web::AppState;
use crate::web::auth::{Principal, clear_cookie, session_cookie};
use crate::web::error::{message, page_error};

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    email: String,
    error: Option<String>,
    /// Identity providers found for the address (single sign-on).
    providers: Vec<(uuid::Uuid, String)>,
    /// Where to go after signing in (a local path, else empty).
    next: String,
    /// The one provider found: the page goes on to it by itself (a
    /// navigation, not a redirect of the form: the page's CSP allows form
    /// submissions only to Vigil itself, redirects included).
    auto: Option<uuid::Uuid>,
}

/// `?next=`: where a page that needed a signed-in person sends them back.
#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

fn next_of(raw: &str) -> String {
    crate::web::urls::local_next(raw).unwrap_or_default().to_owned()
}

#[derive(Template, WebTemplate)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage {
    pub codes: Vec<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "mfa.html")]
pub struct MfaPage {
    csrf: String,
    enrolled: bool,
    /// This session passed MFA (it may regenerate recovery codes).
    verified: bool,
    secret: Option<String>,
    uri: Option<String>,
    error: Option<String>,
    next: String,
    /// A code was just refused during enrolment: ask again (the pending
    /// secret stays in the authenticator app).
    retry: bool,
}

fn not_a_person() -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "Not a browser session",
        "MFA applies to people, not API tokens.",
    )
}

pub async fn login_form(
    Extension(p): Extension<Principal>,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    let next = next_of(&q.next);
    if matches!(p, Principal::Session { .. }) {
        return Redirect::to(if next.is_empty() { "/" } else { &next }).into_response();
    }
    LoginPage {
        email: String::new(),
        error: None,
        providers: Vec::new(),
        next,
        auto: None,
    }
    .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct SsoQuery {
    #[serde(default)]
    email: String,
}

/// Single sign-on from the login page: the providers that own the
/// address's domain. One: straight to it. Several: a button each. None:
/// the login page says so (and the password form stays).
pub async fn sso_discovery(
    State(s): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<SsoQuery>,
) -> Response {
    let email = q.email.trim().to_owned();
    let found = match identity::sso::providers_for_email(&s.store, &email).await {
        Ok(f) => f,
        Err(e) => return page_error(e),
    };
    match found.as_slice() {
        [(id, _)] => LoginPage {
            email,
            error: None,
            providers: found.clone(),
            next: String::new(),
            auto: Some(*id),
        }
        .into_response(),
        [] => (
            StatusCode::NOT_FOUND,
            LoginPage {
                error: Some(if email.contains('@') {
                    "No single sign-on is set up for that address's domain: sign in with your password."
                        .into()
                } else {
                    "Enter your work e-mail address to find its single sign-on.".into()
                }),
                email,
                providers: Vec::new(),
                next: String::new(),
                auto: None,
            },
        )
            .into_response(),
        _ => LoginPage {
            email,
            error: None,
            providers: found,
            next: String::new(),
            auto: None,
        }
        .into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn login_submit(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<LoginForm>,
) -> Response {
    let refused = |status: StatusCode, msg: &str| {
        (
            status,
            LoginPage {
                email: f.email.clone(),
                error: Some(msg.to_owned()),
                providers: Vec::new(),
                next: next_of(&f.next),
                auto: None,
            },
        )
            .into_response()
    };
    let outcome = auth::login(
        &s.store,
        s.clock.as_ref(),
        &s.password_policy,
        &f.email,
        &f.password,
        Some(peer.ip().to_string()),
    )
    .await;
    match outcome {
        Ok(Ok((session, user))) => {
            let needs_mfa = match needs_mfa(&s, user).await {
                Ok(b) => b,
                Err(e) => return page_error(e),
            };
            let next = next_of(&f.next);
            let to = match (needs_mfa, next.is_empty()) {
                (true, true) => "/mfa".to_owned(),
                (true, false) => format!("/mfa?next={}", crate::web::urls::encode(&next)),
                (false, true) => "/".to_owned(),
                (false, false) => next,
            };
            (
                [(header::SET_COOKIE, session_cookie(&s, &session.token))],
                Redirect::to(&to),
            )
                .into_response()
        }
        Ok(Err(LoginRefused::Locked { until })) => refused(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many failed attempts. Try again after {} UTC.",
                until.format("%H:%M")
            ),
        ),
        Ok(Err(_)) => refused(StatusCode::UNAUTHORIZED, "Wrong e-mail or password."),
        Err(e) => page_error(e),
    }
}

/// Whether any role the user holds requires MFA.
async fn needs_mfa(s: &AppState, user: vigil_orchestrator::UserId) -> vigil_orchestrator::Result<bool> {
    let roles = identity::memberships_of(&s.store, user).await?;
    Ok(identity::is_platform_admin(s.store.conn(), user).await?
        || roles.iter().any(|(_, r)| r.requires_mfa()))
}

pub async fn logout(State(s): State<AppState>, Extension(p): Extension<Principal>) -> Response {
    if let Principal::Session { token, .. } = &p
        && let Err(e) = auth::logout(&s.store, token).await
    {
        return page_error(e);
    }
    s.auth_cache.invalidate();
    ([(header::SET_COOKIE, clear_cookie())], Redirect::to("/login")).into_response()
}

fn session(p: &Principal) -> Option<&auth::SessionInfo> {
    match p {
        Principal::Session { info, .. } => Some(info),
        _ => None,
    }
}

pub async fn mfa_form(
    Extension(p): Extension<Principal>,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    let Some(info) = session(&p) else {
        return not_a_person();
    };
    if info.mfa_verified && !info.totp_enabled {
        return message(
            StatusCode::OK,
            "MFA verified",
            "This session has verified its second factor.",
        );
    }
    MfaPage {
        csrf: info.csrf.clone(),
        enrolled: info.totp_enabled,
        verified: info.mfa_verified,
        secret: None,
        uri: None,
        error: None,
        next: next_of(&q.next),
        retry: false,
    }
    .into_response()
}

pub async fn mfa_enroll(State(s): State<AppState>, Extension(p): Extension<Principal>) -> Response {
    let Some(info) = session(&p) else {
        return not_a_person();
    };
    match auth::begin_totp(&s.store, &s.master_key, info.user, &info.email).await {
        Ok((secret, uri)) => MfaPage {
            csrf: info.csrf.clone(),
            enrolled: false,
            verified: info.mfa_verified,
            secret: Some(secret),
            uri: Some(uri),
            error: None,
            next: String::new(),
            retry: false,
        }
        .into_response(),
        Err(e) => page_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    code: String,
    #[serde(default)]
    next: String,
}

pub async fn mfa_verify(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<CodeForm>,
) -> Response {
    let Some(info) = session(&p) else {
        return not_a_person();
    };
    let checked = auth::verify_totp(
        &s.store,
        s.clock.as_ref(),
        &s.master_key,
        info.id,
        info.user,
        &f.code,
        Some(peer.ip().to_string()),
    )
    .await;
    if matches!(checked, Ok(MfaOutcome::Verified(_) | MfaOutcome::SessionEnded)) {
        // The session id rotated (or the session ended): the old one is
        // dead on this node at once.
        s.auth_cache.invalidate();
    }
    let again = |status: StatusCode, error: String| {
        (
            status,
            MfaPage {
                csrf: info.csrf.clone(),
                enrolled: info.totp_enabled,
                verified: info.mfa_verified,
                secret: None,
                uri: None,
                error: Some(error),
                next: next_of(&f.next),
                retry: !info.totp_enabled,
            },
        )
            .into_response()
    };
    match checked {
        // Enrolment done: the recovery codes, shown once.
        Ok(MfaOutcome::Verified(rotated)) if !rotated.recovery_codes.is_empty() => (
            [
                (header::SET_COOKIE, session_cookie(&s, &rotated.token)),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            RecoveryCodesPage {
                codes: rotated.recovery_codes,
            },
        )
            .into_response(),
        Ok(MfaOutcome::Verified(rotated)) => (
            [(header::SET_COOKIE, session_cookie(&s, &rotated.token))],
            Redirect::to(
                &Some(next_of(&f.next))
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "/".into()),
            ),
        )
            .into_response(),
        Ok(MfaOutcome::Refused) => again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "That code is not valid (or was already used). Try the next one.".into(),
        ),
        Ok(MfaOutcome::Locked { until }) => {
            let wait = (until - s.clock.now()).num_seconds().max(1);
            let mut res = again(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many wrong codes. Try again after {} UTC.",
                    until.format("%H:%M:%S")
                ),
            );
            if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        Ok(MfaOutcome::SessionEnded) => (
            StatusCode::UNAUTHORIZED,
            [(header::SET_COOKIE, clear_cookie())],
            message(
                StatusCode::UNAUTHORIZED,
                "Signed out",
                "Too many wrong codes in this session: it has been ended. Sign in again.".to_owned(),
            ),
        )
            .into_response(),
        Err(e) => page_error(e),
    }
}

/// New recovery codes (the old ones stop working), shown once.
pub async fn regenerate_recovery_codes(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let Some(info) = session(&p) else {
        return not_a_person();
    };
    match auth::regenerate_recovery_codes(&s.store, s.clock.as_ref(), info, Some(peer.ip().to_string())).await
    {
        Ok(codes) => ([(header::CACHE_CONTROL, "no-store")], RecoveryCodesPage { codes }).into_response(),
        Err(e) => page_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct TenantForm {
    tenant: String,
}

pub async fn switch_tenant(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Form(f): Form<TenantForm>,
) -> Response {
    let Some(info) = session(&p) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Not a browser session",
            "API tokens belong to one tenant.",
        );
    };
    let tenant: TenantId = match f.tenant.parse() {
        Ok(t) => t,
        Err(_) => return message(StatusCode::NOT_FOUND, "Not found", "No such tenant."),
    };
    match auth::set_active_tenant(&s.store, info.id, info.user, tenant).await {
        Ok(()) => {
            s.auth_cache.invalidate();
            Redirect::to("/").into_response()
        }
        Err(e) => page_error(e),
    }
}

/// What the home page shows a signed-in person.
#[derive(Debug)]
pub struct Membership {
    pub id: TenantId,
    pub name: String,
    pub role: Role,
    pub active: bool,
}

pub async fn memberships(
    s: &AppState,
    info: &auth::SessionInfo,
) -> vigil_orchestrator::Result<Vec<Membership>> {
    let mut out = Vec::new();
    for (t, role) in identity::memberships_of(&s.store, info.user).await? {
        let tenant = identity::get_tenant(s.store.conn(), t).await?;
        out.push(Membership {
            id: t,
            name: tenant.name,
            role,
            active: info.active_tenant == Some(t),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
