//! Authorization overhead per request (BENCHMARKS.md): the guard's work
//! (API-token or session lookup + the caller's role in the tenant + casbin
//! enforce) as a share of a simple authenticated request's p50
//! (`GET /api/v1/cases` through the whole router, in process), with 1 tenant
//! and with 1,000 tenants × 20 users, on PostgreSQL.
//!
//! Reproduce: `cargo run --release -p vigil-e2e --bin bench-authz`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, header};
use tower::ServiceExt;
use vigil::authz::Authorizer;
use vigil::web::{self, Access, AppState};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::ids::Email;
use vigil_orchestrator::secrets::credentials::{MasterKey, PasswordPolicy};
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{Role, SystemClock, TenantId, identity, identity::auth};

const SAMPLES: usize = 3000;

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn run(tenants: usize, users_per_tenant: usize) -> (Duration, Duration, Duration, Duration) {
    let db = TestDb::postgres().await;
    let clock = SystemClock;
    let mut target: Option<(TenantId, vigil_orchestrator::UserId)> = None;
    for t in 0..tenants {
        let ptx = db.store.begin_platform().await.unwrap();
        let tenant = identity::create_tenant(&ptx, &clock, &Actor::cli(), &format!("tenant-{t}"))
            .await
            .unwrap()
            .id;
        ptx.commit().await.unwrap();
        let tx = db.store.begin_tenant(tenant).await.unwrap();
        for u in 0..users_per_tenant {
            let email = Email::parse(&format!("u{u}@t{t}.example")).unwrap();
            let m = identity::add_member(&tx, &clock, &Actor::cli(), &email, Role::AnalystRead)
                .await
                .unwrap();
            if t == tenants / 2 && u == users_per_tenant / 2 {
                target = Some((tenant, m.user_id));
            }
        }
        tx.commit().await.unwrap();
    }
    let (tenant, user) = target.unwrap();
    // Every user of every tenant has a live session (the session table is full).
    let session = auth::create_session(&db.store, &clock, user, Some(tenant))
        .await
        .unwrap();
    let tx = db.store.begin_tenant(tenant).await.unwrap();
    let (_, token) = identity::issue_api_token(&tx, &clock, &Actor::cli(), "bench", Role::AnalystRead)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let state = AppState::new(
        db.store.clone(),
        Arc::new(SystemClock),
        "http://bench".into(),
        MasterKey::generate(),
        Authorizer::load().await.unwrap(),
        PasswordPolicy::default(),
    )
    .with_limits(vigil::web::limits::Quotas {
        sign_in_per_minute: 0,
        failures_per_minute: 0,
    });
    let router = web::router(state.clone()).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
    let cookie = format!("vigil_session={}", session.token);
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(header::COOKIE, cookie.parse().unwrap());
    let mut bearer = axum::http::HeaderMap::new();
    bearer.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());

    let access = Access::Tenant("case", "read");
    // The guard without its cache (every request reads the database), then
    // with it (its listener connected, as in `vigil serve` on PostgreSQL).
    let mut uncached = Vec::new();
    for i in 0..SAMPLES + 200 {
        let t0 = Instant::now();
        let p = web::auth::authenticate(&state, &headers).await.unwrap();
        web::auth::decide(&state, &p, access).await.unwrap().unwrap();
        if i >= 200 {
            uncached.push(t0.elapsed());
        }
    }
    let listener = state.spawn_auth_cache_listener();
    while !state.auth_cache.is_live() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (mut guard_session, mut guard_token, mut request) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..SAMPLES + 200 {
        let t0 = Instant::now();
        let p = web::auth::authenticate(&state, &headers).await.unwrap();
        web::auth::decide(&state, &p, access).await.unwrap().unwrap();
        let g = t0.elapsed();
        let t0 = Instant::now();
        let p = web::auth::authenticate(&state, &bearer).await.unwrap();
        web::auth::decide(&state, &p, access).await.unwrap().unwrap();
        let gt = t0.elapsed();
        let req = Request::builder()
            .uri("/api/v1/cases")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        let t0 = Instant::now();
        let res = router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200);
        axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let r = t0.elapsed();
        if i >= 200 {
            guard_session.push(g);
            guard_token.push(gt);
            request.push(r);
        }
    }
    listener.abort();
    (p50(uncached), p50(guard_session), p50(guard_token), p50(request))
}

#[tokio::main]
async fn main() {
    println!(
        "| tenants × users | guard p50, session, no cache | guard p50, session (cached) | guard p50, API token (cached) | GET /api/v1/cases p50 (whole request) | share (session) | share (token) | target |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (t, u) in [(1, 20), (1000, 20)] {
        let (un, gs, gt, r) = run(t, u).await;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "| {t} × {u} | {:.0} µs | {:.1} µs | {:.1} µs | {:.0} µs | {:.1}% | {:.1}% | ≤ 5%, flat |",
            us(un),
            us(gs),
            us(gt),
            us(r),
            100.0 * us(gs) / us(r),
            100.0 * us(gt) / us(r)
        );
    }
}
