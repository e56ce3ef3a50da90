//! The HTTP layer in-process, on SQLite and PostgreSQL: every route of the
//! app (enumerated from the route table the router is built from) for every
//! principal — anonymous, each role's API token, each role's session with and
//! without MFA — against the role × action matrix in `policies/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{TimeZone, Utc};
use tower::ServiceExt;
use vigil::authz::Authorizer;
use vigil::web::{self, Access, AppState};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::identity;
use vigil_orchestrator::identity::auth;
use vigil_orchestrator::ids::Email;
use vigil_orchestrator::secrets::credentials::{MasterKey, PasswordPolicy};
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{Backend, Clock, ManualClock, Role, TenantId};

const TENANT_ROLES: [Role; 5] = [
    Role::TenantAdmin,
    Role::SecurityEngineer,
    Role::AnalystEdit,
    Role::AnalystRead,
    Role::Executive,
];

struct App {
    router: axum::Router,
    state: AppState,
    clock: Arc<ManualClock>,
    key: MasterKey,
    /// None for a second node on another app's database.
    _db: Option<TestDb>,
}

#[derive(Clone, Debug)]
enum Caller {
    Anonymous,
    Token {
        role: Role,
        token: String,
    },
    Session {
        role: Role,
        cookie: String,
        csrf: String,
        mfa: bool,
    },
}

impl Caller {
    fn name(&self) -> String {
        match self {
            Caller::Anonymous => "anonymous".into(),
            Caller::Token { role, .. } => format!("token:{role}"),
            Caller::Session { role, mfa, .. } => {
                format!("session:{role}{}", if *mfa { "" } else { " (no MFA)" })
            }
        }
    }
}

fn cheap() -> PasswordPolicy {
    PasswordPolicy {
        memory_kib: 1024,
        iterations: 1,
        min_length: 12,
    }
}

/// Rate limits off: the suites below send many sign-in attempts from one
/// address; `hostile::rate_limits` tests them.
const UNLIMITED: vigil::web::limits::Quotas = vigil::web::limits::Quotas {
    sign_in_per_minute: 0,
    failures_per_minute: 0,
};

async fn app(backend: Backend) -> App {
    app_with(backend, UNLIMITED).await
}

async fn app_with(backend: Backend, quotas: vigil::web::limits::Quotas) -> App {
    let db = TestDb::new(backend).await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap(),
    ));
    let key = MasterKey::generate();
    let key2 = MasterKey::from_hex(&key.to_hex()).unwrap();
    let state = AppState::new(
        db.store.clone(),
        clock.clone(),
        "http://vigil.test".into(),
        key2,
        Authorizer::load().await.unwrap(),
        cheap(),
    )
    .with_limits(quotas);
    let router = web::router(state.clone()).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    App {
        router,
        state,
        clock,
        key,
        _db: Some(db),
    }
}

impl App {
    async fn send(&self, req: Request<Body>) -> (StatusCode, String, axum::http::HeaderMap) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), 8 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned(), headers)
    }

    async fn call(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, String) {
        let mut b = Request::builder().method(method).uri(path);
        match caller {
            Caller::Anonymous => {}
            Caller::Token { token, .. } => b = b.header(header::AUTHORIZATION, format!("Bearer {token}")),
            Caller::Session { cookie, csrf, .. } => {
                b = b
                    .header(header::COOKIE, format!("vigil_session={cookie}"))
                    .header("x-csrf-token", csrf.as_str());
            }
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let (s, body, _) = self.send(req).await;
        (s, body)
    }

    async fn tenant(&self, name: &str) -> TenantId {
        let tx = self.state.store.begin_platform().await.unwrap();
        let t = identity::create_tenant(&tx, self.clock.as_ref(), &Actor::cli(), name)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        t.id
    }

    async fn token(&self, tenant: TenantId, role: Role) -> String {
        let tx = self.state.store.begin_tenant(tenant).await.unwrap();
        let (_, t) = identity::issue_api_token(&tx, self.clock.as_ref(), &Actor::cli(), "t", role)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        t
    }

    /// A person with `role` in `tenant` (or the platform admin when `tenant`
    /// is None), signed in, with or without a verified second factor.
    async fn session(&self, tenant: Option<TenantId>, role: Role, mfa: bool) -> Caller {
        let email = Email::parse(&format!(
            "{}-{}@t.example",
            role.as_str().replace('_', "-"),
            uuid::Uuid::new_v4().simple()
        ))
        .unwrap();
        let tx = self.state.store.begin_platform().await.unwrap();
        let user = identity::upsert_local_user(
            &tx,
            self.clock.as_ref(),
            &Actor::cli(),
            &email,
            cheap().hash("correct horse battery").unwrap(),
            tenant.is_none(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        if let Some(t) = tenant {
            let tx = self.state.store.begin_tenant(t).await.unwrap();
            identity::add_member(&tx, self.clock.as_ref(), &Actor::cli(), &email, role)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let s = auth::create_session(&self.state.store, self.clock.as_ref(), user, tenant)
            .await
            .unwrap();
        if !mfa {
            return Caller::Session {
                role,
                cookie: s.token,
                csrf: s.csrf,
                mfa,
            };
        }
        let (secret, _) = auth::begin_totp(&self.state.store, &self.key, user, email.as_str())
            .await
            .unwrap();
        let code = auth::totp_code(&secret, self.clock.now()).unwrap();
        let r = auth::verify_totp(
            &self.state.store,
            self.clock.as_ref(),
            &self.key,
            s.id,
            user,
            &code,
            None,
        )
        .await
        .unwrap()
        .verified()
        .unwrap();
        Caller::Session {
            role,
            cookie: r.token,
            csrf: r.csrf,
            mfa,
        }
    }
}

/// Whether `caller` should get past the guard on a route with `access`.
fn expected(authz: &Authorizer, caller: &Caller, access: Access) -> Result<(), &'static str> {
    let signed_in = !matches!(caller, Caller::Anonymous);
    match access {
        Access::Public => Ok(()),
        Access::SignedIn => {
            if signed_in {
                Ok(())
            } else {
                Err("unauthenticated")
            }
        }
        Access::Platform(o, a) => match caller {
            Caller::Anonymous => Err("unauthenticated"),
            Caller::Session {
                role: Role::PlatformAdmin,
                mfa,
                ..
            } => {
                if !mfa {
                    Err("mfa_required")
                } else if authz.allows(Role::PlatformAdmin, o, a) {
                    Ok(())
                } else {
                    Err("forbidden")
                }
            }
            _ => Err("forbidden"),
        },
        Access::Tenant(o, a) | Access::TenantPerson(o, a) => match caller {
            Caller::Anonymous => Err("unauthenticated"),
            Caller::Token { .. } if matches!(access, Access::TenantPerson(..)) => Err("forbidden"),
            Caller::Token { role, .. } => {
                if authz.allows(*role, o, a) {
                    Ok(())
                } else {
                    Err("forbidden")
                }
            }
            Caller::Session {
                role: Role::PlatformAdmin,
                ..
            } => Err("forbidden"),
            Caller::Session { role, mfa, .. } => {
                if !authz.allows(*role, o, a) {
                    Err("forbidden")
                } else if !mfa && (role.requires_mfa() || matches!(access, Access::TenantPerson(..))) {
                    Err("mfa_required")
                } else {
                    Ok(())
                }
            }
        },
    }
}

fn concrete(path: &str) -> String {
    path.replace("{token}", "no-such-token")
        .replace("{id}", &uuid::Uuid::new_v4().to_string())
}

fn sample_body(method: &Method, path: &str) -> Option<serde_json::Value> {
    if *method != Method::POST || !path.starts_with("/api/") {
        return None;
    }
    Some(match path {
        "/api/v1/tenants" => serde_json::json!({"name": format!("T-{}", uuid::Uuid::new_v4().simple())}),
        "/api/v1/members" => {
            serde_json::json!({"email": format!("n{}@t.example", uuid::Uuid::new_v4().simple()), "role": "analyst_read"})
        }
        "/api/v1/tokens" => serde_json::json!({"name": "walk", "role": "analyst_read"}),
        "/api/v1/integrations" => {
            serde_json::json!({"kind": "webhook", "name": format!("w-{}", uuid::Uuid::new_v4().simple())})
        }
        _ => serde_json::json!({}),
    })
}

async fn every_route_for_every_principal(backend: Backend) {
    let app = app(backend).await;
    let authz = Authorizer::load().await.unwrap();
    let a = app.tenant("A").await;
    let mut callers = vec![Caller::Anonymous];
    for role in TENANT_ROLES {
        callers.push(Caller::Token {
            role,
            token: app.token(a, role).await,
        });
        callers.push(app.session(Some(a), role, true).await);
        if role.requires_mfa() {
            callers.push(app.session(Some(a), role, false).await);
        }
    }
    callers.push(app.session(None, Role::PlatformAdmin, true).await);
    callers.push(app.session(None, Role::PlatformAdmin, false).await);

    let (_, table) = web::routes();
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|((m, p), _)| (p.to_string(), m.to_string()));
    assert!(entries.len() >= 20, "the walk covers the whole table");
    let mut checked = 0;
    for ((method, path), access) in entries {
        if *path == "/logout" {
            continue; // walked last: it ends the session
        }
        for caller in &callers {
            let (status, body) = app
                .call(caller, method.clone(), &concrete(path), sample_body(method, path))
                .await;
            let what = format!("{} {method} {path} → {status} {body}", caller.name());
            let api = path.starts_with("/api/");
            match expected(&authz, caller, *access) {
                Ok(()) => {
                    let refused = matches!(
                        status,
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::METHOD_NOT_ALLOWED
                    ) || (status == StatusCode::SEE_OTHER
                        && !matches!(*path, "/login" | "/mfa" | "/tenant"));
                    assert!(!refused, "allowed, but refused: {what}");
                }

                Err("unauthenticated") if api => assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}"),
                Err("unauthenticated") => {
                    assert_eq!(status, StatusCode::SEE_OTHER, "redirect to login: {what}")
                }
                // Pages answer a refusal in the browser's terms.
                Err("mfa_required") if !api => {
                    assert_eq!(status, StatusCode::SEE_OTHER, "redirect to /mfa: {what}")
                }
                Err(_) if !api => {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                    assert!(body.contains("Not allowed"), "{what}");
                }
                Err(code) => {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                    assert!(body.contains(&format!("\"code\":\"{code}\"")), "{code}: {what}");
                }
            }
            checked += 1;
        }
        // Methods the table does not list answer 405 and run nothing.
        for other in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if !table.contains_key(&(other.clone(), *path)) {
                let (status, _) = app.call(&callers[1], other.clone(), &concrete(path), None).await;
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{other} {path}");
            }
        }
    }
    assert!(checked > 200, "{checked} checks");
}

async fn tenant_isolation_and_token_rules(backend: Backend) {
    let app = app(backend).await;
    let (a, b) = (app.tenant("A").await, app.tenant("B").await);
    let admin_a = app.session(Some(a), Role::TenantAdmin, true).await;
    let admin_b = app.session(Some(b), Role::TenantAdmin, true).await;

    // Issue a token in A (a person with MFA may), list it, revoke it.
    let (s, body) = app
        .call(
            &admin_a,
            Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"name": "siem", "role": "analyst_read"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (id, token) = (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    );
    let reader = Caller::Token {
        role: Role::AnalystRead,
        token: token.clone(),
    };
    let (s, me) = app.call(&reader, Method::GET, "/api/v1/me", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        me.contains("\"role\":\"analyst_read\"") && me.contains(&a.to_string()),
        "{me}"
    );

    // Tenant B's admin cannot see or revoke A's token: 404, never 403, never data.
    let (s, list) = app.call(&admin_b, Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!list.contains(&id), "{list}");
    let (s, body) = app
        .call(
            &admin_b,
            Method::POST,
            &format!("/api/v1/tokens/{id}/revoke"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("\"code\":\"not_found\""));
    let (s, _) = app
        .call(&admin_a, Method::POST, "/api/v1/tokens/not-a-uuid/revoke", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, _) = app
        .call(
            &admin_a,
            Method::POST,
            &format!("/api/v1/tokens/{id}/revoke"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = app.call(&reader, Method::GET, "/api/v1/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "revoked token: {body}");

    // Bad input is a precise 4xx.
    let (s, body) = app
        .call(
            &admin_a,
            Method::POST,
            "/api/v1/members",
            Some(serde_json::json!({"email": "x@y.example", "role": "platform_admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (s, _) = app
        .call(
            &admin_a,
            Method::POST,
            "/api/v1/members",
            Some(serde_json::json!({"email": "x@y.example"})),
        )
        .await;
    assert!(s.is_client_error(), "{s}");
    let (s, _) = app
        .call(&admin_a, Method::GET, "/api/v1/audit?limit=0", None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Audit: A's log has A's events (with actor role), none of B's.
    let (s, body) = app
        .call(&admin_a, Method::GET, "/api/v1/audit?limit=100", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let actions: Vec<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        actions.contains(&"api_token.issue".to_owned()) && actions.contains(&"api_token.revoke".to_owned()),
        "{actions:?}"
    );
    let issue = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "api_token.issue")
        .unwrap();
    assert_eq!(issue["actor_role"], "tenant_admin");
    assert_eq!(issue["source_ip"], "127.0.0.1");
    assert_eq!(v["total"].as_u64().unwrap() as usize, actions.len());
}

async fn sessions_need_csrf_and_role_changes_apply_at_once(backend: Backend) {
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let admin = app.session(Some(a), Role::TenantAdmin, true).await;
    let Caller::Session { cookie, .. } = &admin else {
        unreachable!()
    };
    // No CSRF token: refused, nothing written.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/members")
        .header(header::COOKIE, format!("vigil_session={cookie}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"email":"csrf@t.example","role":"executive"}"#))
        .unwrap();
    let (s, body, _) = app.send(req).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("\"code\":\"csrf\""));
    let (_, list) = app.call(&admin, Method::GET, "/api/v1/members", None).await;
    assert!(!list.contains("csrf@t.example"));

    // A role change takes effect on the next request.
    let analyst = app.session(Some(a), Role::AnalystEdit, true).await;
    let (s, _) = app.call(&analyst, Method::GET, "/api/v1/members", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let owner = sea_orm::Database::connect(app._db.as_ref().unwrap().url.clone())
        .await
        .unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(
        &owner,
        "UPDATE memberships SET role = 'tenant_admin' WHERE role = 'analyst_edit'",
    )
    .await
    .unwrap();
    let (s, _) = app.call(&analyst, Method::GET, "/api/v1/members", None).await;
    assert_eq!(s, StatusCode::OK);
}

async fn login_mfa_and_logout_in_the_browser_flow(backend: Backend) {
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let tx = app.state.store.begin_tenant(a).await.unwrap();
    let email = Email::parse("adm@a.example").unwrap();
    identity::add_member(&tx, app.clock.as_ref(), &Actor::cli(), &email, Role::TenantAdmin)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let tx = app.state.store.begin_platform().await.unwrap();
    identity::upsert_local_user(
        &tx,
        app.clock.as_ref(),
        &Actor::cli(),
        &email,
        cheap().hash("correct horse battery").unwrap(),
        false,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let form = |body: &str, cookie: Option<&str>, uri: &str| {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, format!("vigil_session={c}"));
        }
        b.body(Body::from(body.to_owned())).unwrap()
    };
    let (s, body, _) = app
        .send(form(
            "email=adm%40a.example&password=wrong+password",
            None,
            "/login",
        ))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body.contains("Wrong e-mail or password"));
    // Cross-site login posts are refused.
    let mut cross = form(
        "email=adm%40a.example&password=correct+horse+battery",
        None,
        "/login",
    );
    cross
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(app.send(cross).await.0, StatusCode::FORBIDDEN);

    let (s, _, h) = app
        .send(form(
            "email=adm%40a.example&password=correct+horse+battery",
            None,
            "/login",
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(
        h[header::LOCATION],
        "/mfa",
        "an admin must verify a second factor"
    );
    let set_cookie = h[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Strict")
            && !set_cookie.contains("Secure")
    );
    let cookie = set_cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("vigil_session=")
        .to_owned();

    // Privileged API refused until MFA; the page says why.
    let get = |uri: &str, cookie: &str| {
        Request::builder()
            .uri(uri)
            .header(header::COOKIE, format!("vigil_session={cookie}"))
            .body(Body::empty())
            .unwrap()
    };
    let (s, body, _) = app.send(get("/api/v1/members", &cookie)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("mfa_required"));

    // Enrol: the form needs the session's CSRF token.
    let (_, page, _) = app.send(get("/mfa", &cookie)).await;
    let csrf = csrf_of(&page);
    let (s, _, _) = app.send(form("csrf=wrong", Some(&cookie), "/mfa/enroll")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, page, _) = app
        .send(form(&format!("csrf={csrf}"), Some(&cookie), "/mfa/enroll"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let secret = page
        .split("id=\"totp-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let code = auth::totp_code(&secret, app.clock.now()).unwrap();
    let (s, codes_page, h) = app
        .send(form(&format!("csrf={csrf}&code={code}"), Some(&cookie), "/mfa"))
        .await;
    // Enrolment done: the recovery codes, once, not cached by the browser.
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    let shown = codes_page
        .split("id=\"recovery-codes\">")
        .nth(1)
        .unwrap()
        .matches("<code>")
        .count();
    assert_eq!(shown, auth::RECOVERY_CODES, "{codes_page}");
    let rotated = session_of(&h);
    assert_ne!(rotated, cookie, "session id rotates at MFA step-up");
    assert_eq!(
        app.send(get("/api/v1/members", &cookie)).await.0,
        StatusCode::UNAUTHORIZED,
        "old id is dead"
    );
    assert_eq!(app.send(get("/api/v1/members", &rotated)).await.0, StatusCode::OK);
    let (_, home, _) = app.send(get("/", &rotated)).await;
    assert!(
        home.contains("adm@a.example") && home.contains("Second factor verified"),
        "{home}"
    );

    // Regenerating the recovery codes (a verified session only): the old
    // ones stop working, the new ones work.
    let codes_of = |page: &str| -> Vec<String> {
        page.split("id=\"recovery-codes\">")
            .nth(1)
            .unwrap()
            .split("<code>")
            .skip(1)
            .map(|c| c.split('<').next().unwrap().to_owned())
            .collect()
    };
    let first = codes_of(&codes_page);
    let (_, mfa_page, _) = app.send(get("/mfa", &rotated)).await;
    assert!(mfa_page.contains("Regenerate recovery codes"), "{mfa_page}");
    let csrf2 = csrf_of(&mfa_page);
    let (s, again, h) = app
        .send(form(
            &format!("csrf={csrf2}"),
            Some(&rotated),
            "/mfa/recovery-codes",
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    let second = codes_of(&again);
    assert_eq!(second.len(), auth::RECOVERY_CODES);
    assert!(first.iter().all(|c| !second.contains(c)));
    let (s, _, h) = app
        .send(form(
            "email=adm%40a.example&password=correct+horse+battery",
            None,
            "/login",
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let fresh = session_of(&h);
    let (_, page, _) = app.send(get("/mfa", &fresh)).await;
    assert!(!page.contains("Regenerate"), "not before this session passed MFA");
    let fcsrf = csrf_of(&page);
    let (s, _, _) = app
        .send(form(
            &format!("csrf={fcsrf}"),
            Some(&fresh),
            "/mfa/recovery-codes",
        ))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "an unverified session cannot regenerate");
    let (s, _, _) = app
        .send(form(
            &format!("csrf={fcsrf}&code={}", first[0]),
            Some(&fresh),
            "/mfa",
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "old codes are void");
    let (s, _, _) = app
        .send(form(
            &format!("csrf={fcsrf}&code={}", second[0]),
            Some(&fresh),
            "/mfa",
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "a new code works");

    // Logout kills the session server-side.
    let new_csrf = csrf_of(&home);
    let (s, _, _) = app
        .send(form(&format!("csrf={new_csrf}"), Some(&rotated), "/logout"))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(
        app.send(get("/api/v1/members", &rotated)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// `SELECT COUNT(*) AS n …` in a tenant's transaction, or a platform one
/// (audit events of logins are platform events).
async fn count_in(app: &App, tenant: Option<TenantId>, sql: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let stmt = |b| sea_orm::Statement::from_string(b, sql.to_owned());
    let n = match tenant {
        Some(t) => {
            let tx = app.state.store.begin_tenant(t).await.unwrap();
            let r = tx.query_one_raw(stmt(tx.get_database_backend())).await.unwrap();
            tx.commit().await.unwrap();
            r
        }
        None => {
            let tx = app.state.store.begin_platform().await.unwrap();
            let r = tx.query_one_raw(stmt(tx.get_database_backend())).await.unwrap();
            tx.commit().await.unwrap();
            r
        }
    };
    n.unwrap().try_get("", "n").unwrap()
}

/// The session id a response's `Set-Cookie` carries.
fn session_of(h: &axum::http::HeaderMap) -> String {
    h[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("vigil_session=")
        .to_owned()
}

/// The CSRF token a page's form carries.
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await } )* }
    };
}

#[path = "web/audit.rs"]
mod audit_suite;
#[path = "web/engine.rs"]
mod engine_suite;
#[path = "web/hostile.rs"]
mod hostile;
#[path = "web/ingest.rs"]
mod ingest_suite;
#[path = "web/pages.rs"]
mod pages_suite;
use hostile::{hostile_input_regressions, hostile_sweep, rate_limits};
#[path = "web/sign_in.rs"]
mod sign_in;
use sign_in::{
    login_answers_alike_for_unknown_accounts, second_factor_cannot_be_guessed,
    sso_provider_lifecycle_over_http,
};

on_both_backends!(
    every_route_for_every_principal,
    tenant_isolation_and_token_rules,
    sessions_need_csrf_and_role_changes_apply_at_once,
    login_mfa_and_logout_in_the_browser_flow,
    second_factor_cannot_be_guessed,
    login_answers_alike_for_unknown_accounts,
    sso_provider_lifecycle_over_http,
    hostile_input_regressions,
    rate_limits,
    hostile_sweep,
);

/// Two nodes on one PostgreSQL, each with its guard cache and listener: the
/// cache serves repeat requests without the database, and every change to
/// what the guard resolves — a role change, a removal, a logout, a token
/// revocation — made through node A reaches node B's guard (bounded wait:
/// the notification's delivery).
async fn guard_cache_follows_changes_on_every_node() {
    use std::sync::atomic::Ordering;
    use vigil_orchestrator::{Store, StoreOptions};
    let a = app(Backend::Postgres).await;
    let url = a._db.as_ref().unwrap().url.clone();
    let store_b = Store::connect(&StoreOptions::new(url)).await.unwrap();
    let state_b = AppState::new(
        store_b,
        a.clock.clone(),
        "http://vigil.test".into(),
        MasterKey::from_hex(&a.key.to_hex()).unwrap(),
        Authorizer::load().await.unwrap(),
        cheap(),
    )
    .with_limits(vigil::web::limits::Quotas {
        sign_in_per_minute: 0,
        failures_per_minute: 0,
    });
    let b = App {
        router: web::router(state_b.clone())
            .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 2], 40000)))),
        state: state_b,
        clock: a.clock.clone(),
        key: MasterKey::from_hex(&a.key.to_hex()).unwrap(),
        _db: None,
    };
    let listeners = [
        a.state.spawn_auth_cache_listener(),
        b.state.spawn_auth_cache_listener(),
    ];
    let live = |s: &AppState| s.auth_cache.is_live();
    for _ in 0..200 {
        if live(&a.state) && live(&b.state) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(live(&a.state) && live(&b.state), "listeners connected");

    let t = a.tenant("A").await;
    let admin = a.session(Some(t), Role::TenantAdmin, true).await;
    let analyst = a.session(Some(t), Role::AnalystEdit, false).await;
    let bot = Caller::Token {
        role: Role::AnalystRead,
        token: a.token(t, Role::AnalystRead).await,
    };
    // Served from B's cache after the first request.
    for _ in 0..3 {
        assert_eq!(
            b.call(&analyst, Method::GET, "/api/v1/cases", None).await.0,
            StatusCode::OK
        );
        assert_eq!(
            b.call(&bot, Method::GET, "/api/v1/cases", None).await.0,
            StatusCode::OK
        );
    }
    assert!(b.state.auth_cache.hits.load(Ordering::Relaxed) >= 4, "cache hits");

    // Waits until node B answers `want` (at most 2 s), and says how long.
    let until = |caller: Caller, method: Method, path: &'static str, want: StatusCode| {
        let b = &b;
        async move {
            let start = std::time::Instant::now();
            loop {
                let got = b.call(&caller, method.clone(), path, None).await.0;
                if got == want {
                    return start.elapsed();
                }
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(2),
                    "B still answers {got}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
    };
    let members: serde_json::Value =
        serde_json::from_str(&a.call(&admin, Method::GET, "/api/v1/members", None).await.1).unwrap();
    let analyst_id = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "analyst_edit")
        .unwrap()["user_id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(!analyst_id.is_empty(), "{members}");

    // Demoted to analyst_read on A: B refuses a write at once after.
    let (s, _) = a
        .call(
            &admin,
            Method::PUT,
            &format!("/api/v1/members/{analyst_id}"),
            Some(serde_json::json!({"role": "analyst_read"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let new_case = serde_json::json!({"title": "x", "severity": "low"});
    let start = std::time::Instant::now();
    loop {
        let (got, _) = b
            .call(&analyst, Method::POST, "/api/v1/cases", Some(new_case.clone()))
            .await;
        if got == StatusCode::FORBIDDEN {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "B still answers {got}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let demoted = start.elapsed();
    // Removed: no role at all.
    let (s, _) = a
        .call(
            &admin,
            Method::DELETE,
            &format!("/api/v1/members/{analyst_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let removed = until(
        analyst.clone(),
        Method::GET,
        "/api/v1/cases",
        StatusCode::FORBIDDEN,
    )
    .await;
    // The token revoked on A.
    let tx = a.state.store.begin_tenant(t).await.unwrap();
    let id = identity::list_api_tokens(&tx).await.unwrap()[0].id;
    identity::revoke_api_token(&tx, a.clock.as_ref(), &Actor::cli(), id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let revoked = until(
        bot.clone(),
        Method::GET,
        "/api/v1/cases",
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // The admin logs out on A.
    assert_eq!(
        b.call(&admin, Method::GET, "/api/v1/members", None).await.0,
        StatusCode::OK
    );
    let Caller::Session { cookie, .. } = &admin else {
        unreachable!()
    };
    auth::logout(&a.state.store, cookie).await.unwrap();
    let logged_out = until(
        admin.clone(),
        Method::GET,
        "/api/v1/members",
        StatusCode::UNAUTHORIZED,
    )
    .await;
    println!(
        "reached node B after: demotion {demoted:?}, removal {removed:?}, revocation {revoked:?}, logout {logged_out:?}"
    );
    for l in listeners {
        l.abort();
    }
}

#[tokio::test]
async fn guard_cache_postgres() {
    guard_cache_follows_changes_on_every_node().await;
}

#[tokio::test]
async fn the_last_tenant_admin_stays() {
    let a = app(Backend::Sqlite).await;
    let t = a.tenant("A").await;
    let admin = a.session(Some(t), Role::TenantAdmin, true).await;
    let members: serde_json::Value =
        serde_json::from_str(&a.call(&admin, Method::GET, "/api/v1/members", None).await.1).unwrap();
    let list = members["items"].as_array().unwrap().clone();
    let me = list.iter().find(|m| m["role"] == "tenant_admin").unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, body) = a
        .call(
            &admin,
            Method::PUT,
            &format!("/api/v1/members/{me}"),
            Some(serde_json::json!({"role": "analyst_read"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let (s, _) = a
        .call(&admin, Method::DELETE, &format!("/api/v1/members/{me}"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = a
        .call(
            &admin,
            Method::PUT,
            &format!("/api/v1/members/{}", uuid::Uuid::new_v4()),
            Some(serde_json::json!({"role": "analyst_read"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another tenant's or no such member");
}

/// `GET /api/openapi.json`, to anyone: every route of the table with its
/// method, path and access rule, nothing more; every documented body
/// resolves to its own schema (no two body types under one name); the
/// error shape with its codes.
#[tokio::test]
async fn openapi_documents_every_route() {
    use serde_json::Value;
    let a = app(Backend::Sqlite).await;
    let (status, body) = a
        .call(&Caller::Anonymous, Method::GET, "/api/openapi.json", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let (_, table) = web::routes();
    let mut documented = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented += 1;
            let m: Method = method.to_uppercase().parse().unwrap();
            let access = table
                .iter()
                .find(|((tm, tp), _)| *tm == m && *tp == path.as_str())
                .map(|(_, a)| *a)
                .unwrap_or_else(|| panic!("{method} {path} is documented but not a route"));
            assert_eq!(
                op["x-vigil-access"],
                web::openapi::access_label(access),
                "{method} {path}"
            );
            for p in op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
            {
                assert!(
                    path.contains(&format!("{{{}}}", p["name"].as_str().unwrap())),
                    "{method} {path}: {p}"
                );
            }
            if let Some(r) = op.pointer("/requestBody/content/application~1json/schema/$ref") {
                let name = r.as_str().unwrap().trim_start_matches("#/components/schemas/");
                assert!(doc["components"]["schemas"][name].is_object(), "{name}");
            }
            for (status, res) in op["responses"].as_object().unwrap() {
                let json_api = path.starts_with("/api/") || path == "/healthz" || path == "/readyz";
                if json_api && (status.starts_with('4') || status.starts_with('5')) {
                    let codes = res
                        .pointer("/content/application~1json/schema/properties/error/properties/code/enum");
                    assert!(
                        codes.is_some_and(|c| !c.as_array().unwrap().is_empty()),
                        "{method} {path} {status}"
                    );
                } else if status.starts_with('4') {
                    assert!(
                        res.pointer("/content/text~1html").is_some(),
                        "a page's refusal is a page: {method} {path}"
                    );
                }
            }
        }
    }
    assert_eq!(documented, table.len(), "every route of the table, nothing else");
    // Every route of the JSON interface documents its success body from the
    // handler's own response type (or says it answers 204), but the two
    // that are not JSON objects: the audit export's stream and this
    // document.
    let answers = web::answers();
    for ((m, p), _) in table.iter() {
        let json_api = p.starts_with("/api/") || *p == "/healthz" || *p == "/readyz";
        if !json_api || matches!(*p, "/api/v1/audit/export" | "/api/openapi.json") {
            continue;
        }
        let a = answers.iter().find(|a| a.method == *m && a.path == *p);
        assert!(a.is_some(), "{m} {p}: no success body documented");
        let ok = &doc["paths"][*p][m.as_str().to_lowercase()]["responses"]["2XX"];
        match &a.unwrap().schema {
            Some(_) => {
                let schema = &ok["content"]["application/json"]["schema"];
                assert!(
                    schema.get("$ref").is_some() || schema["properties"]["items"].is_object(),
                    "{m} {p}: {schema}"
                );
                if let Some(r) = schema
                    .get("$ref")
                    .or(schema.pointer("/properties/items/items/$ref"))
                {
                    let name = r.as_str().unwrap().trim_start_matches("#/components/schemas/");
                    assert!(doc["components"]["schemas"][name].is_object(), "{m} {p}: {name}");
                }
            }
            None => assert!(ok.get("content").is_none(), "{m} {p}: 204 has no body"),
        }
    }
    // Every reference points at a schema the document carries.
    fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("$ref", serde_json::Value::String(r)) => out.push(r),
                        _ => refs(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    for r in all_refs {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} points nowhere"
        );
    }
    // One schema per name: two types of one name (two `Role`s, say) would
    // silently describe one with the other.
    let mut named: std::collections::HashMap<String, serde_json::Value> = Default::default();
    let all = web::bodies()
        .into_iter()
        .flat_map(|b| b.schemas)
        .chain(answers.iter().flat_map(|a| a.schemas.clone()));
    for (name, schema) in all {
        if let Some(before) = named.insert(name.clone(), schema.clone()) {
            assert_eq!(before, schema, "two different schemas are named {name}");
        }
    }
    for a in &answers {
        assert!(
            table.contains_key(&(a.method.clone(), a.path)),
            "{} {} is answered but not a route",
            a.method,
            a.path
        );
    }
    // Each body type under its own name: the schema in the document is the
    // body's own, and every body names a route of the table.
    for b in web::bodies() {
        assert!(
            table.contains_key(&(b.method.clone(), b.path)),
            "{} {}",
            b.method,
            b.path
        );
        let own = &b.schemas.iter().find(|(n, _)| *n == b.name).unwrap().1;
        assert_eq!(
            &doc["components"]["schemas"][&b.name], own,
            "{} is one type",
            b.name
        );
    }
    // Query parameters from the handlers' own query types, with bounds.
    let limit = doc["paths"]["/api/v1/cases"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit" && p["in"] == "query")
        .cloned()
        .expect("GET /api/v1/cases documents ?limit");
    assert_eq!(limit["schema"]["maximum"], 500, "{limit}");
    // A body type's serde rules reach the schema: unknown fields refused.
    let sso = &doc["components"]["schemas"]["NewProviderBody"];
    assert_eq!(sso["additionalProperties"], false, "{sso}");
    assert!(
        sso["required"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("name")),
        "{sso}"
    );
}

/// Absurd numbers where the API takes a count of minutes or days (found by
/// the schemathesis sweep: chrono's constructors panic past their range,
/// which dropped the connection): a 422 naming the field.
#[tokio::test]
async fn absurd_durations_are_refused() {
    let a = app(Backend::Sqlite).await;
    let t = a.tenant("A").await;
    let admin = a.session(Some(t), Role::TenantAdmin, true).await;
    let platform = a.session(None, Role::PlatformAdmin, true).await;
    for n in [i64::MAX, i64::MIN, 9_223_372_036_854_775_806] {
        let (s, body) = a
            .call(
                &admin,
                Method::PUT,
                "/api/v1/settings/sessions",
                Some(serde_json::json!({"idle_minutes": n, "absolute_minutes": 60})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {body}");
        assert!(body.contains("idle_minutes"), "{body}");
        let (s, body) = a
            .call(
                &platform,
                Method::POST,
                &format!("/api/v1/tenants/{}/deletion", t.0),
                Some(serde_json::json!({"grace_days": n})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {body}");
        assert!(body.contains("grace"), "{body}");
    }
}
