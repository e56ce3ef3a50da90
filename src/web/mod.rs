//! HTTP: the JSON API under `/api/v1`, health probes, and server-rendered
//! pages. Handlers parse input, call the core, and render; errors become
//! responses in one place ([`error`]).

mod api;
pub mod auth;
mod engine_api;
pub mod error;
mod gate_pages;
mod health;
mod ingest_api;
mod integration_pages;
mod integrations_api;
pub mod limits;
mod pages;
mod session_pages;
mod sso;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use vigil_orchestrator::credentials::{MasterKey, PasswordPolicy};
use vigil_orchestrator::{Clock, Store};

pub use auth::{Access, RouteTable};
pub use error::ApiError;

use crate::authz::Authorizer;

#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub public_url: String,
    pub password_policy: PasswordPolicy,
    /// Seals TOTP secrets; wraps per-tenant data keys (integrations).
    pub master_key: Arc<MasterKey>,
    pub authz: Authorizer,
    /// The guard's node-local cache (live only while its PostgreSQL
    /// listener runs: see `orchestrator::authcache`).
    pub auth_cache: Arc<vigil_orchestrator::authcache::AuthCache>,
    /// Group commit of webhook deliveries (`orchestrator::ingest_queue`).
    pub ingest: Arc<vigil_orchestrator::ingest_queue::IngestQueue>,
    /// The OpenID Connect relying party (discovery and keys cached).
    pub oidc: Arc<vigil_integrations::oidc::RelyingParty>,
    /// Per-address rate limits of sign-in and of failed credentials.
    pub limits: Arc<limits::RateLimits>,
}

impl AppState {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        public_url: String,
        master_key: MasterKey,
        authz: Authorizer,
        password_policy: PasswordPolicy,
    ) -> Self {
        let ingest = vigil_orchestrator::ingest_queue::IngestQueue::new(store.clone(), clock.clone());
        Self(Arc::new(Inner {
            ingest,
            oidc: Arc::default(),
            store,
            clock,
            public_url,
            password_policy,
            master_key: Arc::new(master_key),
            authz,
            auth_cache: Arc::default(),
            limits: Arc::new(limits::RateLimits::new(limits::Quotas::default())),
        }))
    }

    /// Other rate-limit quotas (configuration; tests). Only before the
    /// state is shared.
    pub fn with_limits(mut self, quotas: limits::Quotas) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.limits = Arc::new(limits::RateLimits::new(quotas));
        }
        self
    }

    /// Replaces the OIDC relying party (tests: a shorter JWKS refetch
    /// interval). Only before the state is shared.
    pub fn with_oidc(mut self, rp: vigil_integrations::oidc::RelyingParty) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.oidc = Arc::new(rp);
        }
        self
    }

    /// Keeps the guard cache in step with the database (PostgreSQL; a
    /// no-op on SQLite). `vigil serve` runs it for the process's life.
    pub fn spawn_auth_cache_listener(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(vigil_orchestrator::authcache::listen(
            self.store.clone(),
            self.auth_cache.clone(),
        ))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Builds the routes and, beside them, the table of what each requires.
#[derive(Default)]
struct Routes {
    router: Router<AppState>,
    table: RouteTable,
}

impl Routes {
    fn route(
        mut self,
        path: &'static str,
        access: &[(Method, Access)],
        handler: MethodRouter<AppState>,
    ) -> Self {
        for (m, a) in access {
            self.table.insert((m.clone(), path), *a);
        }
        self.router = self.router.route(path, handler);
        self
    }
}

/// Every route of the app with its access rule.
pub fn routes() -> (Router<AppState>, RouteTable) {
    use Access::*;
    use Method as M;
    let r = Routes::default()
        // Public
        .route("/healthz", &[(M::GET, Public)], get(health::healthz))
        .route("/readyz", &[(M::GET, Public)], get(health::readyz))
        .route("/static/vigil.css", &[(M::GET, Public)], get(static_css))
        .route("/static/htmx.min.js", &[(M::GET, Public)], get(static_htmx))
        .route(
            "/gates",
            &[(M::GET, Tenant("gate", "read"))],
            get(gate_pages::inbox),
        )
        .route(
            "/gates/{id}/approve",
            &[(M::POST, Tenant("gate", "decide"))],
            post(gate_pages::approve),
        )
        .route(
            "/gates/{id}/reject",
            &[(M::POST, Tenant("gate", "decide"))],
            post(gate_pages::reject),
        )
        .route(
            "/integrations",
            &[(M::GET, Tenant("integration", "read"))],
            get(integration_pages::list),
        )
        .route(
            "/integrations/{id}/scopes/{scope}",
            &[(M::POST, TenantPerson("integration_scope", "set"))],
            post(integration_pages::set_scope),
        )
        .route("/", &[(M::GET, Public)], get(pages::index))
        .route(
            "/setup/bootstrap/{token}",
            &[(M::GET, Public), (M::POST, Public)],
            get(pages::bootstrap_form).post(pages::bootstrap_submit),
        )
        .route(
            "/setup/password/{token}",
            &[(M::GET, Public), (M::POST, Public)],
            get(pages::password_form).post(pages::password_submit),
        )
        .route(
            "/login",
            &[(M::GET, Public), (M::POST, Public)],
            get(session_pages::login_form).post(session_pages::login_submit),
        )
        .route("/sso/{id}/login", &[(M::GET, Public)], get(sso::login))
        .route("/sso/{id}/callback", &[(M::GET, Public)], get(sso::callback))
        .route("/sso/{id}/acs", &[(M::POST, Public)], post(sso::saml_acs))
        .route(
            "/sso/{id}/metadata",
            &[(M::GET, Public)],
            get(sso::saml_sp_metadata),
        )
        // Any signed-in principal, MFA pending included
        .route("/logout", &[(M::POST, SignedIn)], post(session_pages::logout))
        .route(
            "/mfa",
            &[(M::GET, SignedIn), (M::POST, SignedIn)],
            get(session_pages::mfa_form).post(session_pages::mfa_verify),
        )
        .route(
            "/mfa/recovery-codes",
            &[(M::POST, SignedIn)],
            post(session_pages::regenerate_recovery_codes),
        )
        .route(
            "/mfa/enroll",
            &[(M::POST, SignedIn)],
            post(session_pages::mfa_enroll),
        )
        .route(
            "/tenant",
            &[(M::POST, SignedIn)],
            post(session_pages::switch_tenant),
        )
        .route("/api/v1/me", &[(M::GET, SignedIn)], get(api::me))
        // Platform
        .route(
            "/api/v1/tenants",
            &[
                (M::GET, Platform("tenant", "list")),
                (M::POST, Platform("tenant", "create")),
            ],
            get(api::list_tenants).post(api::create_tenant),
        )
        // Tenant
        .route(
            "/api/v1/settings/sessions",
            &[
                (M::GET, Tenant("session_settings", "read")),
                (M::PUT, TenantPerson("session_settings", "set")),
            ],
            get(api::get_session_settings).put(api::put_session_settings),
        )
        .route(
            "/api/v1/sso/providers",
            &[
                (M::GET, Tenant("sso", "configure")),
                (M::POST, TenantPerson("sso", "configure")),
            ],
            get(sso::list_providers).post(sso::create_provider),
        )
        .route(
            "/api/v1/sso/providers/{id}",
            &[
                (M::PUT, TenantPerson("sso", "configure")),
                (M::DELETE, TenantPerson("sso", "configure")),
            ],
            put(sso::update_provider).delete(sso::delete_provider),
        )
        .route("/static/autopost.js", &[(M::GET, Public)], get(static_autopost))
        .route(
            "/api/v1/members",
            &[
                (M::GET, Tenant("member", "list")),
                (M::POST, Tenant("member", "invite")),
            ],
            get(api::list_members).post(api::invite_member),
        )
        .route(
            "/api/v1/members/{user_id}",
            &[
                (M::PUT, TenantPerson("member", "change_role")),
                (M::DELETE, TenantPerson("member", "change_role")),
            ],
            put(api::change_member_role).delete(api::remove_member),
        )
        .route(
            "/api/v1/tokens",
            &[
                (M::GET, Tenant("api_token", "list")),
                (M::POST, TenantPerson("api_token", "issue")),
            ],
            get(api::list_tokens).post(api::issue_token),
        )
        .route(
            "/api/v1/tokens/{id}/revoke",
            &[(M::POST, Tenant("api_token", "revoke"))],
            post(api::revoke_token),
        )
        .route(
            "/api/v1/audit",
            &[(M::GET, Tenant("audit", "read"))],
            get(api::list_audit),
        )
        // Engine
        .route(
            "/api/v1/cases",
            &[
                (M::GET, Tenant("case", "read")),
                (M::POST, Tenant("case", "write")),
            ],
            get(engine_api::list_cases).post(engine_api::open_case),
        )
        .route(
            "/api/v1/cases/{id}",
            &[(M::GET, Tenant("case", "read"))],
            get(engine_api::get_case),
        )
        .route(
            "/api/v1/cases/{id}/merge",
            &[(M::POST, Tenant("case", "write"))],
            post(engine_api::merge_case),
        )
        .route(
            "/api/v1/cases/{id}/split",
            &[(M::POST, Tenant("case", "write"))],
            post(engine_api::split_case),
        )
        .route(
            "/api/v1/cases/{id}/signals",
            &[(M::GET, Tenant("case", "read"))],
            get(engine_api::case_signals),
        )
        .route(
            "/api/v1/iocs",
            &[(M::GET, Tenant("case", "read"))],
            get(engine_api::list_iocs),
        )
        .route(
            "/api/v1/iocs/import",
            &[(M::POST, Tenant("ioc_list", "manage"))],
            post(engine_api::import_iocs),
        )
        .route(
            "/api/v1/cases/{id}/drafts",
            &[
                (M::GET, Tenant("draft", "read")),
                (M::POST, Tenant("case", "write")),
            ],
            get(engine_api::list_drafts).post(engine_api::generate_draft),
        )
        .route(
            "/api/v1/cases/{id}/briefs",
            &[(M::GET, Tenant("brief", "read_approved"))],
            get(engine_api::approved_briefs),
        )
        .route(
            "/api/v1/drafts/{id}/approve",
            &[(M::POST, Tenant("draft", "decide"))],
            post(engine_api::approve_draft),
        )
        .route(
            "/api/v1/drafts/{id}/reject",
            &[(M::POST, Tenant("draft", "decide"))],
            post(engine_api::reject_draft),
        )
        .route(
            "/api/v1/cases/{id}/timeline",
            &[(M::GET, Tenant("case", "read"))],
            get(engine_api::case_timeline),
        )
        .route(
            "/api/v1/cases/{id}/gates",
            &[(M::POST, Tenant("gate", "request"))],
            post(engine_api::request_gate),
        )
        .route(
            "/api/v1/gates",
            &[(M::GET, Tenant("gate", "read"))],
            get(engine_api::list_gates),
        )
        .route(
            "/api/v1/gates/{id}",
            &[(M::GET, Tenant("gate", "read"))],
            get(engine_api::get_gate),
        )
        .route(
            "/api/v1/gates/{id}/approve",
            &[(M::POST, Tenant("gate", "decide"))],
            post(engine_api::approve_gate),
        )
        .route(
            "/api/v1/gates/{id}/reject",
            &[(M::POST, Tenant("gate", "decide"))],
            post(engine_api::reject_gate),
        )
        .route(
            "/api/v1/gates/{id}/edit",
            &[(M::POST, Tenant("gate", "decide"))],
            post(engine_api::edit_gate),
        )
        .route(
            "/api/v1/kill-switch",
            &[
                (M::GET, Tenant("kill_switch", "read")),
                (M::PUT, Tenant("kill_switch", "engage")),
            ],
            get(engine_api::get_kill_switch).put(engine_api::set_kill_switch),
        )
        .route(
            "/api/v1/ingest/{id}",
            &[(M::POST, Public)],
            post(ingest_api::receive).layer(axum::extract::DefaultBodyLimit::max(ingest_api::BODY_LIMIT)),
        )
        .route(
            "/api/v1/alerts",
            &[(M::GET, Tenant("case", "read"))],
            get(ingest_api::list),
        )
        .route(
            "/api/v1/integrations",
            &[
                (M::GET, Tenant("integration", "read")),
                (M::POST, Tenant("integration", "configure")),
            ],
            get(integrations_api::list).post(integrations_api::create),
        )
        .route(
            "/api/v1/integrations/{id}",
            &[(M::GET, Tenant("integration", "read"))],
            get(integrations_api::get),
        )
        .route(
            "/api/v1/integrations/{id}/credentials",
            &[(M::POST, Tenant("credential", "set"))],
            post(integrations_api::set_credential),
        )
        .route(
            "/api/v1/integrations/{id}/credentials/revoke",
            &[(M::POST, Tenant("credential", "revoke"))],
            post(integrations_api::revoke_credential),
        )
        .route(
            "/api/v1/data-key/rotate",
            &[(M::POST, TenantPerson("data_key", "rotate"))],
            post(integrations_api::rotate_data_key),
        )
        .route(
            "/api/v1/integrations/{id}/scopes/{scope}",
            &[(M::PUT, TenantPerson("integration_scope", "set"))],
            axum::routing::put(integrations_api::set_scope),
        )
        .route(
            "/api/v1/settings/gate-quorum",
            &[
                (M::GET, Tenant("gate", "read")),
                (M::PUT, Tenant("gate_policy", "configure")),
            ],
            get(engine_api::get_quorum).put(engine_api::set_quorum),
        )
        .route(
            "/api/v1/settings/correlation",
            &[
                (M::GET, Tenant("case", "read")),
                (M::PUT, Tenant("correlation", "configure")),
            ],
            get(engine_api::get_correlation).put(engine_api::set_correlation),
        )
        .route(
            "/api/v1/steps",
            &[(M::GET, Tenant("case", "read"))],
            get(engine_api::list_steps),
        )
        .route(
            "/api/v1/steps/{id}/retry",
            &[(M::POST, Tenant("step", "retry"))],
            post(engine_api::retry_step),
        )
        .route(
            "/api/v1/platform/kill-switch",
            &[(M::PUT, Platform("platform_kill_switch", "set"))],
            axum::routing::put(engine_api::set_platform_kill_switch),
        );
    (r.router, r.table)
}

pub fn router(state: AppState) -> Router {
    let (routes, table) = routes();
    routes
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(
            (state.clone(), Arc::new(table)),
            auth::guard,
        ))
        .layer(middleware::from_fn(error::whole_body))
        .layer(middleware::from_fn(error::uniform_errors))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

async fn static_htmx() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../static/htmx.min.js"),
    )
}

async fn static_autopost() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../static/autopost.js"),
    )
}

async fn static_css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/vigil.css"),
    )
}

/// Request log: method, route *template*, status, latency. Never the raw
/// URI (paths and queries can carry one-time tokens) and never bodies.
async fn access_log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let res = next.run(req).await;
    tracing::info!(
        target: "vigil::access",
        method = %method,
        route = route.as_deref().unwrap_or("<unmatched>"),
        status = res.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1e3,
        "request"
    );
    res
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.entry(HeaderName::from_static(k))
            .or_insert(HeaderValue::from_static(v));
    };
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    // One-time links live in URLs: never leak them through Referer.
    set(h, "referrer-policy", "no-referrer");
    set(
        h,
        "content-security-policy",
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
    );
    set(h, "cache-control", "no-store");
    res
}

/// For handlers that only need the store.
pub(crate) fn store(state: &State<AppState>) -> &Store {
    &state.store
}
