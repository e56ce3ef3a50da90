//! HTTP: the JSON API under `/api/v1`, health probes, and server-rendered
//! pages. Handlers parse input, call the core, and render; errors become
//! responses in one place ([`error`]).

pub mod error;
mod health;
mod pages;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use vigil_orchestrator::credentials::{MasterKey, PasswordPolicy};
use vigil_orchestrator::{Clock, Store};

pub use error::ApiError;

#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub public_url: String,
    pub password_policy: PasswordPolicy,
    /// Wraps per-tenant data keys (used by the integrations' credentials).
    pub master_key: MasterKey,
}

impl AppState {
    pub fn new(store: Store, clock: Arc<dyn Clock>, public_url: String, master_key: MasterKey) -> Self {
        Self(Arc::new(Inner {
            store,
            clock,
            public_url,
            password_policy: PasswordPolicy::default(),
            master_key,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new().fallback(|| async { ApiError::not_found("no such API endpoint") });
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/", get(pages::index))
        .route(
            "/setup/bootstrap/{token}",
            get(pages::bootstrap_form).post(pages::bootstrap_submit),
        )
        .route(
            "/setup/password/{token}",
            get(pages::password_form).post(pages::password_submit),
        )
        .route("/static/vigil.css", get(static_css))
        .nest("/api/v1", api)
        .fallback(pages::not_found)
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(access_log))
        .with_state(state)
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
