//! Ingest benchmarks (BENCHMARKS.md, issue 4), on SQLite and PostgreSQL:
//! * throughput: signed webhook deliveries of 100 alerts (CrowdStrike
//!   format, 50 hosts, shared hashes, so correlation has real work) POSTed
//!   over loopback HTTP to the real router by 4 concurrent senders; each
//!   answered delivery is committed, deduplicated and correlated. Ceiling:
//!   the same alert texts INSERTed 100 rows per transaction into a bare
//!   two-column table of the same database, in the same run.
//! * throughput at breadth (issue 14): the same 20,000 alerts' worth of
//!   deliveries, but each of 100 Falcon identity detections naming 200
//!   distinct hosts (a source and a target each, from an estate of 20,000
//!   hosts), incidents of 5 detections sharing an account, 8 senders.
//! * latency: single-alert deliveries sent open-loop at 500/s for 10 s,
//!   three rounds; p50/p99 from send to the 202, of the median round (by
//!   p99), every round printed — beside the same-run latency of a bare
//!   single-row INSERT commit at the same offered rate, on the same
//!   database, so a slow day shows as such.
//!
//! Both workloads end in realistic case counts (printed): one per host of
//! the narrow bench, one per incident of the wide one.
//!
//! Reproduce: `cargo run --release -p vigil-e2e --bin bench-ingest`
//! (PostgreSQL from VIGIL_TEST_DATABASE_URL, else 127.0.0.1:5432;
//! `BENCH_BACKEND=sqlite` or `postgres` runs one).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use serde_json::json;
use vigil::authz::Authorizer;
use vigil::web::{self, AppState};
use vigil_e2e::sim;
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::pipeline::ingest::sign;
use vigil_orchestrator::secrets::credentials::{MasterKey, PasswordPolicy};
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{Backend, Clock, Role, SystemClock, connect::integrations, identity};

const ALERTS: usize = 20_000;
const PER_DELIVERY: usize = 100;
const SENDERS: usize = 4;
const WIDE_SENDERS: usize = 8;
const WIDE_ESTATE: usize = 20_000;
const WIDE_INCIDENT: usize = 5;
const RATE: u64 = 500;
const LATENCY_SECONDS: u64 = 10;
const LATENCY_ROUNDS: usize = 3;

fn pct(v: &[Duration], p: f64) -> Duration {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn alert_text(n: usize, tag: &str) -> String {
    let ts = SystemClock
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut a = sim::crowdstrike::alert(n, &ts, &format!("host-{}", n % 50), &format!("{:064x}", n % 200));
    a["composite_id"] = json!(format!("{tag}:{n}"));
    a.to_string()
}

/// A Falcon identity detection naming two hosts of a large estate; the
/// detections of one incident share the account.
fn wide_text(n: usize) -> String {
    let ts = SystemClock
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let user = format!("acct{:05}", n / WIDE_INCIDENT);
    json!({
        "composite_id": format!("w:ind:{n:08x}"),
        "product": "idp",
        "timestamp": ts,
        "created_timestamp": ts,
        "name": "IdentityDetection",
        "description": "Lateral movement with stolen credentials",
        "severity": 70,
        "source_account_name": user,
        "source_account_upn": format!("{user}@corp.example"),
        "source_account_domain": "CORP.EXAMPLE",
        "source_endpoint_host_name": format!("host{:05}", (2 * n) % WIDE_ESTATE),
        "target_endpoint_host_name": format!("host{:05}", (2 * n + 1) % WIDE_ESTATE),
        "target_domain_controller_host_name": "dc01.corp.example",
    })
    .to_string()
}

struct Target {
    base: String,
    hook: String,
    secret: String,
    http: reqwest::Client,
}

impl Target {
    /// Whether the delivery was accepted: a 5xx (overload) is counted by
    /// the latency round; any other refusal is a bug and panics.
    async fn deliver(&self, body: String) -> bool {
        let ts = SystemClock.now().timestamp().to_string();
        let sig = sign(self.secret.as_bytes(), &ts, body.as_bytes());
        let res = self
            .http
            .post(format!("{}/api/v1/ingest/{}", self.base, self.hook))
            .header("content-type", "application/json")
            .header("x-vigil-timestamp", ts)
            .header("x-vigil-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        if status.is_server_error() {
            return false;
        }
        assert!(
            status.is_success(),
            "{status}: {}",
            res.text().await.unwrap_or_default()
        );
        true
    }
}

async fn run(db: TestDb, label: &str) {
    let master = MasterKey::generate();
    let ptx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&ptx, &SystemClock, &Actor::cli(), "bench")
        .await
        .unwrap();
    ptx.commit().await.unwrap();
    let eng = Actor {
        label: "user:eng".into(),
        role: Some(Role::SecurityEngineer),
        source_ip: None,
    };
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let (hook, secret) =
        integrations::create_with_secret(&tx, &SystemClock, &master, &eng, "webhook", "EDR", json!({}))
            .await
            .unwrap();
    tx.commit().await.unwrap();
    let state = AppState::new(
        db.store.clone(),
        Arc::new(SystemClock),
        "http://127.0.0.1".into(),
        MasterKey::from_hex(&master.to_hex()).unwrap(),
        Authorizer::load().await.unwrap(),
        PasswordPolicy::default(),
    )
    .with_limits(vigil::web::limits::Quotas {
        sign_in_per_minute: 0,
        failures_per_minute: 0,
    });
    let router = web::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let target = Arc::new(Target {
        base: format!("http://{addr}"),
        hook: hook.id.to_string(),
        secret: secret.unwrap(),
        http: reqwest::Client::new(),
    });

    // Throughput.
    let texts: Vec<String> = (0..ALERTS).map(|n| alert_text(n, "t")).collect();
    let (took, rate) = throughput(&target, &texts, SENDERS).await;

    // Latency at a steady 500 alerts/s (one alert per delivery, open
    // loop), in LATENCY_ROUNDS rounds: the figure is the median round.
    let mut rounds: Vec<(Duration, Duration)> = Vec::new();
    let mut failed = 0usize;
    for round in 0..LATENCY_ROUNDS {
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut pending = Vec::new();
        for n in 0..(RATE * LATENCY_SECONDS) as usize {
            tick.tick().await;
            let target = target.clone();
            let body = alert_text(ALERTS + n, &format!("l{round}"));
            pending.push(tokio::spawn(async move {
                let t0 = Instant::now();
                let ok = target.deliver(body).await;
                (t0.elapsed(), ok)
            }));
        }
        let mut lat = Vec::new();
        let mut per_second = vec![Duration::ZERO; LATENCY_SECONDS as usize];
        for (n, p) in pending.into_iter().enumerate() {
            let (d, ok) = p.await.unwrap();
            if ok {
                lat.push(d);
                let s = &mut per_second[n / RATE as usize];
                *s = (*s).max(d);
            } else {
                failed += 1;
            }
        }
        if std::env::var_os("VIGIL_BENCH_DETAIL").is_some() {
            eprintln!("{label} round {round}: slowest delivery per second: {per_second:?}");
        }
        lat.sort();
        rounds.push((pct(&lat, 0.5), pct(&lat, 0.99)));
    }
    let mut by_p99 = rounds.clone();
    by_p99.sort_by_key(|r| r.1);
    let (p50, p99) = by_p99[by_p99.len() / 2];
    let all_rounds: Vec<String> = rounds
        .iter()
        .map(|(a, b)| format!("{:.1}/{:.1}", ms(*a), ms(*b)))
        .collect();
    let narrow_cases = open_cases(&db, t.id).await;

    // Throughput at breadth, into a second tenant (its own estate).
    let ptx = db.store.begin_platform().await.unwrap();
    let wide_tenant = identity::create_tenant(&ptx, &SystemClock, &Actor::cli(), "bench-wide")
        .await
        .unwrap();
    ptx.commit().await.unwrap();
    let tx = db.store.begin_tenant(wide_tenant.id).await.unwrap();
    let (wide_hook, wide_secret) =
        integrations::create_with_secret(&tx, &SystemClock, &master, &eng, "webhook", "IdP", json!({}))
            .await
            .unwrap();
    tx.commit().await.unwrap();
    let wide_target = Arc::new(Target {
        base: target.base.clone(),
        hook: wide_hook.id.to_string(),
        secret: wide_secret.unwrap(),
        http: reqwest::Client::new(),
    });
    let wide: Vec<String> = (0..ALERTS).map(wide_text).collect();
    let (wide_took, wide_rate) = throughput(&wide_target, &wide, WIDE_SENDERS).await;
    let wide_cases = open_cases(&db, wide_tenant.id).await;
    server.abort();

    // Ceiling: the same texts, 100 rows per transaction, same database;
    // and a bare single-row INSERT commit at the latency round's rate.
    let ceil = vigil_e2e::batched_insert_ceiling(&db.url, &texts, PER_DELIVERY).await;
    let (bare50, bare99) =
        vigil_e2e::single_insert_latency(&db.url, RATE, Duration::from_secs(LATENCY_SECONDS)).await;

    // What was stored: every alert once, in cases.
    assert_eq!(
        stored(&db, t.id).await,
        ALERTS + LATENCY_ROUNDS * (RATE * LATENCY_SECONDS) as usize - failed
    );
    assert_eq!(stored(&db, wide_tenant.id).await, ALERTS);
    println!(
        "| {label} | {rate:.0} alerts/s ({ALERTS} in {:.2} s; {narrow_cases} cases) | {wide_rate:.0} alerts/s ({:.2} s; {wide_cases} cases of {} incidents) | {ceil:.0} rows/s | {:.3} / {:.3} | {:.2} ms / {:.2} ms (rounds, ms: {}; {failed} refused) | {:.2} ms / {:.2} ms |",
        took.as_secs_f64(),
        wide_took.as_secs_f64(),
        ALERTS / WIDE_INCIDENT,
        rate / ceil,
        wide_rate / ceil,
        ms(p50),
        ms(p99),
        all_rounds.join(", "),
        ms(bare50),
        ms(bare99),
    );
}

/// Delivers `texts` in deliveries of PER_DELIVERY by `senders` concurrent
/// senders; the time taken and alerts per second.
async fn throughput(target: &Arc<Target>, texts: &[String], senders: usize) -> (Duration, f64) {
    let bodies: Vec<String> = texts
        .chunks(PER_DELIVERY)
        .map(|c| format!("[{}]", c.join(",")))
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (queue, target) = (queue.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(body) = queue.lock().unwrap().pop() else {
                    break;
                };
                assert!(target.deliver(body).await, "throughput round: a delivery failed");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = start.elapsed();
    (took, texts.len() as f64 / took.as_secs_f64())
}

async fn stored(db: &TestDb, tenant: vigil_orchestrator::TenantId) -> usize {
    let tx = db.store.begin_tenant(tenant).await.unwrap();
    let backend = tx.get_database_backend();
    let sql = if backend == sea_orm::DbBackend::Postgres {
        "SELECT count(*) AS n FROM alerts WHERE tenant_id = $1"
    } else {
        "SELECT count(*) AS n FROM alerts WHERE tenant_id = ?"
    };
    let n: i64 = tx
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [tenant.0.into()],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    tx.commit().await.unwrap();
    n as usize
}

async fn open_cases(db: &TestDb, tenant: vigil_orchestrator::TenantId) -> u64 {
    let tx = db.store.begin_tenant(tenant).await.unwrap();
    let (_, cases) = vigil_orchestrator::engine::cases::list(&tx, None, 1, 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    cases
}

#[tokio::main]
async fn main() {
    println!(
        "| database | webhook ingest, {PER_DELIVERY} alerts per delivery, {SENDERS} senders | at breadth: {} hosts per delivery, {WIDE_SENDERS} senders | batched INSERT ceiling (same run) | ratio (narrow / wide) | latency at {RATE}/s, 1 alert per delivery: p50 / p99, median of {LATENCY_ROUNDS} rounds of {LATENCY_SECONDS} s | bare single-row INSERT commit at {RATE}/s (same run): p50 / p99 |",
        2 * PER_DELIVERY
    );
    println!("|---|---|---|---|---|---|---|");
    // BENCH_BACKEND=sqlite|postgres runs one (to profile it).
    let only = std::env::var("BENCH_BACKEND").unwrap_or_default();
    if only != "postgres" {
        run(TestDb::new(Backend::Sqlite).await, "SQLite").await;
    }
    if only != "sqlite" {
        run(TestDb::new(Backend::Postgres).await, "PostgreSQL").await;
    }
}
