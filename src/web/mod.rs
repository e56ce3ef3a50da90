//! HTTP: the JSON API under `/api/v1`, health probes, and server-rendered
//! pages. Handlers parse input, call the core, and render; errors become
//! responses in one place ([`error`]).

mod api;
pub mod auth;
pub mod error;
pub mod limits;
pub mod openapi;
mod pages;
pub mod requests;
mod routes;
mod urls;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use vigil_orchestrator::secrets::credentials::{MasterKey, PasswordPolicy};
use vigil_orchestrator::{Clock, Store};

pub use auth::{Access, RouteTable};
pub use error::ApiError;
pub use routes::{Answer, Body, answers, bodies, routes};

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
    pub auth_cache: Arc<vigil_orchestrator::identity::authcache::AuthCache>,
    /// Group commit of webhook deliveries (`orchestrator::ingest_queue`).
    pub ingest: Arc<vigil_orchestrator::pipeline::ingest_queue::IngestQueue>,
    /// The OpenID Connect relying party (discovery and keys cached).
    pub oidc: Arc<vigil_integrations::oidc::RelyingParty>,
    /// Per-address rate limits of sign-in and of failed credentials.
    pub limits: Arc<limits::RateLimits>,
    /// The audit checkpoint public key (the audit page verifies with it);
    /// None: checkpoints are not checked there.
    pub audit_key: Option<vigil_orchestrator::audit::chain::PublicKey>,
    /// The API request log's writer.
    pub requests: Arc<requests::RequestLog>,
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
        let ingest =
            vigil_orchestrator::pipeline::ingest_queue::IngestQueue::new(store.clone(), clock.clone());
        let requests = requests::RequestLog::spawn(store.clone(), clock.clone());
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
            audit_key: None,
            requests,
        }))
    }

    /// The audit checkpoint public key. Only before the state is shared.
    pub fn with_audit_key(mut self, key: vigil_orchestrator::audit::chain::PublicKey) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.audit_key = Some(key);
        }
        self
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
        tokio::spawn(vigil_orchestrator::identity::authcache::listen(
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

pub fn router(state: AppState) -> Router {
    let (routes, table) = routes();
    routes
        .fallback(pages::home::not_found)
        .layer(middleware::from_fn_with_state(
            (state.clone(), Arc::new(table)),
            auth::guard,
        ))
        // A handler that panics answers 500 in the error shape with an id
        // (logged with the panic), never a dropped connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn(error::whole_body))
        .layer(middleware::from_fn(error::uniform_errors))
        .layer(middleware::from_fn_with_state(state.clone(), security_headers))
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        .with_state(state)
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    axum::response::IntoResponse::into_response(ApiError::internal("handler", &"a request handler panicked"))
}

/// The request's id: the caller's `X-Request-Id` when it is a plain token
/// (1–64 of `A-Za-z0-9._-`, as a proxy in front sets it), else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string())
}

/// Request log: request id, method, route *template*, status, latency.
/// Never the raw URI (paths and queries can carry one-time tokens) and
/// never bodies. The request id is also the response's `X-Request-Id` and
/// is carried by every audit event the request records.
async fn access_log(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let id = request_id(&req);
    let mut res = vigil_orchestrator::audit::in_request(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), v);
    }
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if let Some(a) = res.extensions().get::<requests::Attribution>() {
        state.requests.push(
            a.tenant,
            vigil_orchestrator::audit::requests::Request {
                at: state.clock.now(),
                method: method.to_string(),
                route: route.clone().unwrap_or_else(|| "<unmatched>".into()),
                status: res.status().as_u16(),
                ms,
                actor: a.actor.clone(),
                request_id: id.clone(),
            },
        );
    }
    tracing::info!(
        target: "vigil::access",
        request_id = %id,
        method = %method,
        route = route.as_deref().unwrap_or("<unmatched>"),
        status = res.status().as_u16(),
        ms,
        "request"
    );
    res
}

async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
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
    // Served over HTTPS (Vigil's own TLS, or a proxy's): browsers keep to it.
    if state.public_url.starts_with("https://") {
        set(h, "strict-transport-security", "max-age=31536000");
    }
    res
}

/// For handlers that only need the store.
pub(crate) fn store(state: &State<AppState>) -> &Store {
    &state.store
}
