//! Page latency (BENCHMARKS.md): the case page of a case with a 1,000-event
//! timeline under 50 concurrent users, and the case queue with 100,000
//! cases in the tenant (filters applied), through the whole router in
//! process on PostgreSQL, each as p50/p99 beside a static page of the same
//! router (`/static/vigil.css`) under the same load in the same run.
//!
//! Reproduce: `cargo run --release -p vigil-e2e --bin bench-pages`
//! (`BENCH_CASES` overrides the 100,000, `BENCH_USERS` the 50 users;
//! `BENCH_KEEP_DB=1` keeps the database and prints its address, for
//! `EXPLAIN ANALYZE` as the application role).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, header};
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::json;
use tower::ServiceExt;
use vigil::authz::Authorizer;
use vigil::web::{self, AppState};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::ids::Email;
use vigil_orchestrator::pipeline::ingest;
use vigil_orchestrator::secrets::credentials::{MasterKey, PasswordPolicy};
use vigil_orchestrator::store::entity::case;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{Role, SystemClock, connect::integrations, identity, identity::auth};

const PER_USER: usize = 20;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// `users` concurrent users each GET `path` `PER_USER` times; latencies.
async fn load(router: &axum::Router, cookie: &str, path: &str, users: usize) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for _ in 0..users {
        let (router, cookie, path) = (router.clone(), cookie.to_owned(), path.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(PER_USER);
            for _ in 0..PER_USER {
                let req = Request::builder()
                    .uri(&path)
                    .header(header::COOKIE, &cookie)
                    .body(Body::empty())
                    .unwrap();
                let t0 = Instant::now();
                let res = router.clone().oneshot(req).await.unwrap();
                assert_eq!(res.status(), 200, "{path}");
                axum::body::to_bytes(res.into_body(), 16 << 20).await.unwrap();
                out.push(t0.elapsed());
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::main]
async fn main() {
    let n_cases: usize = std::env::var("BENCH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let users: usize = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let db = TestDb::postgres().await;
    let clock = SystemClock;
    let ptx = db.store.begin_platform().await.unwrap();
    let tenant = identity::create_tenant(&ptx, &clock, &Actor::cli(), "bench")
        .await
        .unwrap()
        .id;
    ptx.commit().await.unwrap();
    let tx = db.store.begin_tenant(tenant).await.unwrap();
    let email = Email::parse("analyst@bench.example").unwrap();
    let m = identity::add_member(&tx, &clock, &Actor::cli(), &email, Role::AnalystEdit)
        .await
        .unwrap();
    let hook = integrations::create(&tx, &clock, &Actor::cli(), "webhook", "feed", json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // One case of 1,000 alerts on one host within its window.
    let now = vigil_orchestrator::Clock::now(&clock);
    let start = now - chrono::Duration::hours(6);
    let mut texts = Vec::new();
    for i in 0..1000 {
        let at = start + chrono::Duration::seconds(i * 20);
        texts.push(
            json!({
                "@timestamp": at.to_rfc3339(), "ecs": {"version": "8.11.0"},
                "event": {"id": format!("bench-{i}"), "kind": "alert"},
                "host": {"name": "bench-ws-001"}, "message": format!("Beaconing {i} from bench-ws-001"),
                "destination": {"ip": format!("203.0.113.{}", i % 200)},
                "user": {"name": "b.user"}
            })
            .to_string(),
        );
    }
    let mut big_case = None;
    for chunk in texts.chunks(200) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let tx = db.store.begin_tenant(tenant).await.unwrap();
        let ids = ingest::store_checked(&tx, &clock, hook.id, ingest::check("auto", &refs).unwrap())
            .await
            .unwrap()
            .alert_ids;
        let (_, c) = ingest::get(&tx, ids[0]).await.unwrap();
        big_case = c;
        tx.commit().await.unwrap();
    }
    let big_case = big_case.unwrap();

    // The rest of the queue: plain case rows, in batches.
    let t0 = Instant::now();
    let severities = ["low", "medium", "high", "critical"];
    let words = [
        "Beaconing",
        "Phishing",
        "Credential dumping",
        "Encoded PowerShell",
        "Impossible travel",
    ];
    for batch in (0..n_cases).collect::<Vec<_>>().chunks(2000) {
        let tx = db.store.begin_tenant(tenant).await.unwrap();
        let rows = batch.iter().map(|&i| {
            let at = now - chrono::Duration::minutes(i as i64);
            case::ActiveModel {
                id: Set(uuid::Uuid::now_v7()),
                tenant_id: Set(tenant.0),
                title: Set(format!("{} on ws-{:05}", words[i % words.len()], i)),
                severity: Set(severities[i % 4].to_owned()),
                state: Set(if i % 3 == 0 { "closed" } else { "open" }.to_owned()),
                created_at: Set(at),
                updated_at: Set(at),
                merged_into: Set(None),
                assignee: Set(None),
            }
        });
        case::Entity::insert_many(rows).exec(&*tx).await.unwrap();
        tx.commit().await.unwrap();
    }
    eprintln!("seeded {n_cases} cases in {:.1} s", t0.elapsed().as_secs_f64());
    // Statistics, as autovacuum gathers them within a minute of a load this
    // size: without them the planner guesses, and a bench minutes after a
    // bulk load would measure its guesses, not the pages.
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(&owner, "ANALYZE")
        .await
        .unwrap();
    owner.close().await.unwrap();

    let session = auth::create_session(&db.store, &clock, m.user_id, Some(tenant))
        .await
        .unwrap();
    let state = AppState::new(
        db.store.clone(),
        Arc::new(SystemClock),
        "http://bench".into(),
        MasterKey::generate(),
        Authorizer::load().await.unwrap(),
        PasswordPolicy::default(),
    );
    let listener = state.spawn_auth_cache_listener();
    while !state.auth_cache.is_live() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let router = web::router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
    let cookie = format!("vigil_session={}", session.token);

    let pages = [
        ("static page (ceiling)", "/static/vigil.css".to_owned()),
        (
            "home page, signed in (a page that reads the database)",
            "/".to_owned(),
        ),
        ("case page, 1,000-event timeline", format!("/cases/{big_case}")),
        (
            "case page, its timeline's last 200 events",
            format!("/cases/{big_case}?events=800"),
        ),
        ("queue, default (open, recently changed)", "/cases".to_owned()),
        (
            "queue, severity=high, sort=severity",
            "/cases?severity=high&sort=severity".to_owned(),
        ),
        (
            "queue, sort=severity (every severity)",
            "/cases?sort=severity".to_owned(),
        ),
        (
            "queue, title search \"powershell\", all states",
            "/cases?state=all&q=powershell".to_owned(),
        ),
        (
            "queue, title search \"ws-04200\" (one match), all states",
            "/cases?state=all&q=ws-04200".to_owned(),
        ),
        ("queue, page 200", "/cases?page=200".to_owned()),
    ];
    // Warm up every page once, then measure.
    for (_, p) in &pages {
        load(&router, &cookie, p, users).await;
    }
    println!(
        "{n_cases} cases in the tenant; {users} concurrent users × {PER_USER} requests each; PostgreSQL, in process"
    );
    println!();
    println!("| page | p50 | p99 | p50 / static p50 | p99 / static p99 | p99 / home p99 | target p99 |");
    println!("|---|---|---|---|---|---|---|");
    let mut ceiling = (Duration::ZERO, Duration::ZERO);
    let mut floor = Duration::ZERO;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (i, (name, p)) in pages.iter().enumerate() {
        let mut v = load(&router, &cookie, p, users).await;
        let (p50, p99) = (pct(&mut v, 0.5), pct(&mut v, 0.99));
        if i == 0 {
            ceiling = (p50, p99);
        }
        if i == 1 {
            floor = p99;
        }
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.1}× | {:.1}× | {} | {} |",
            ms(p50),
            ms(p99),
            ms(p50) / ms(ceiling.0).max(1e-6),
            ms(p99) / ms(ceiling.1).max(1e-6),
            if i == 0 {
                "—".to_owned()
            } else {
                format!("{:.1}×", ms(p99) / ms(floor).max(1e-6))
            },
            if i < 2 { "—" } else { "< 50 ms" }
        );
    }
    listener.abort();
    if std::env::var("BENCH_KEEP_DB").is_ok() {
        eprintln!("kept {} (tenant {})", db.url, tenant.0);
        std::mem::forget(db);
    }
}
